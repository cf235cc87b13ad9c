"""What a newcomer meets first: quiet stderr, titles that are their own paths, plain plurals, options that
name their service, doctor rows that are whole, build's next step that works, the real peak in the log."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rcyc_cli.invocation import with_measured_peak
from rcyc_cli.render.console import plural
from rcyc_cli.render.results import where
from rcyc_cli.render.tables import next_invoke
from tests.cli import run
from tests.conftest import ROOT
from tests.docs_blocks import blocks

NOISE = [
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796527412.002371    6655 port.cc:153] oneDNN custom operations are on. You may see slightly different",
    "W0000 00:00:1796527412.002371    6655 cpu_feature_guard.cc:12] something",
]


def test_native_noise_is_dropped_and_everything_else_passes():
    # A child process with a real fd 2, as a user's terminal is: native code writes straight to the fd.
    code = textwrap.dedent(f"""
        import os, sys
        from rcyc_cli.quiet import native_noise_filtered
        with native_noise_filtered():
            os.write(2, {("".join(line + chr(10) for line in NOISE) + "error: kept" + chr(10)).encode()!r})
            print("python stderr kept", file=sys.stderr)
        os.write(2, b"after kept\\n")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert sorted(lines) == sorted(["error: kept", "python stderr kept", "after kept"]), lines


@pytest.mark.parametrize("verbose", [False, True])
def test_predict_stderr_has_no_litert_info_line_unless_verbose(verbose):
    image = ROOT / "fixtures" / "images" / "soda_cans" / "soda_cans_0.jpg"
    args = [sys.executable, "-m", "rcyc_cli.main"] + (["--verbose"] if verbose else []) + ["predict", str(image), "--json"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ("INFO: Created TensorFlow Lite XNNPACK delegate" in result.stderr) is verbose, result.stderr


@pytest.mark.parametrize("n, text", [(0, "0 images"), (1, "1 image"), (2, "2 images"), (1000, "1,000 images")])
def test_plural(n, text):
    assert plural(n, "image") == text


def test_results_are_titled_with_the_users_path_when_the_key_is_one_the_run_uploaded():
    from rcyc_core.results import RecordError

    entry = RecordError(0, "b", "runs/0bb1ed5f1990/images/soda_cans_0.jpg", "NoSuchKey", "gone")
    assert where(entry, {"s3://b/runs/0bb1ed5f1990/images/soda_cans_0.jpg": "photos/soda_cans_0.jpg"}) == "photos/soda_cans_0.jpg"
    # the same key in another bucket (an --event naming it) is another object, never the user's file
    assert where(entry, {"s3://c/runs/0bb1ed5f1990/images/soda_cans_0.jpg": "photos/soda_cans_0.jpg"}).startswith("s3://b/")
    assert where(entry, {}) == "s3://b/runs/0bb1ed5f1990/images/soda_cans_0.jpg"
    assert where(RecordError(0, None, "x.jpg", "NotFound", "gone")) == "x.jpg"


def test_a_long_title_is_not_wrapped_mid_word_at_80_columns(monkeypatch):
    from rcyc_cli.render import console

    path = "fixtures/images/soda_cans/" + "a" * 50 + ".jpg"
    monkeypatch.setenv("COLUMNS", "80")
    console._consoles.clear()
    with console._console(False).capture() as captured:
        from rcyc_cli.render.results import render_response

        scores = dict.fromkeys(("boxes", "glass_bottles", "soda_cans", "crushed_soda_cans", "plastic_bottles"), 0.0)
        render_response({"results": [{"bucket": "b", "key": "k", "label": "boxes", "confidence": 1.0,
                                      "scores": {**scores, "boxes": 1.0}}]}, {"s3://b/k": path})
    console._consoles.clear()
    assert path in captured.get().splitlines()


def test_peak_memory_replaces_the_emulators_memory_size_in_the_report_line():
    lines = ["START RequestId: x", "REPORT RequestId: x  Duration: 3.00 ms  Memory Size: 1024 MB  Max Memory Used: 1024 MB"]
    assert with_measured_peak(lines, 107.6)[1].endswith("Max Memory Used: 108 MB")
    assert with_measured_peak(lines, None) == lines
    assert with_measured_peak(lines, 107.6)[0] == lines[0]


def test_builds_next_step_keeps_the_base_image_and_ca_bundle():
    hint = next_invoke({"flavor": "slim", "base_image": "rcyc/python-base:bookworm", "ca_bundle": "/etc/ca bundle.pem"})
    assert hint == "rcyc invoke-local --runtime docker --flavor slim --base-image rcyc/python-base:bookworm --ca-bundle '/etc/ca bundle.pem'"
    assert "--base-image" not in next_invoke({"flavor": "keras", "base_image": "public.ecr.aws/lambda/python:3.12"})


def test_endpoint_options_name_their_service_and_the_old_spelling_still_works():
    bad = run("invoke-local", "--s3-endpoint-url", "nope")
    assert bad.exit_code == 2 and "not an http(s) URL" in bad.output
    old = run("invoke-local", "--endpoint-url", "nope")
    assert old.exit_code == 2 and "--endpoint-url" in old.output
    assert "--lambda-endpoint-url" in run("invoke", "--help").output
    assert "--s3-endpoint-url" in run("invoke-local", "--help").output
    assert "--endpoint-url " not in run("invoke", "--help").output  # the alias is hidden


def test_the_old_lambda_spelling_warns_and_is_used(monkeypatch):
    seen = {}

    def fake_invoke(keys, bucket, function, endpoint_url, region):
        seen["endpoint"] = endpoint_url
        return {"response": {"results": [], "errors": [], "skipped": []}, "invocation": {}, "log_tail": []}

    monkeypatch.setattr("rcyc_cli.cloud.invoke.invoke", fake_invoke)
    result = run("invoke", "k.jpg", "--endpoint-url", "http://127.0.0.1:9", "--json")
    assert result.exit_code == 0, result.output
    assert seen["endpoint"] == "http://127.0.0.1:9"
    assert "deprecated" in result.stderr and "--lambda-endpoint-url" in result.stderr


def test_doctor_rows_are_whole_lines_with_the_fix(capsys):
    from rcyc_cli.render import tables

    fix = "export AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
    tables.render_checks([("AWS credentials", "missing", "none found", fix), ("LiteRT", "ok", "installed", "")])
    text = capsys.readouterr().out
    assert fix in text.splitlines()[1] and "…" not in text


def test_the_docs_parser_finds_fenced_blocks_and_refuses_indented_code(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("intro\n\n```sh\n# not run by the docs tests: needs a real account\nrcyc deploy\n```\n\n"
                   "text\n\n    indented code\n\n- a list\n\n    continued item\n\n```python\nprint(1)\n```\n")
    found = blocks(doc)
    assert [(b.language, b.line) for b in found] == [("sh", 3), ("indented", 10), ("python", 16)]
    assert found[0].not_run_reason == "needs a real account" and found[2].not_run_reason is None
    assert found[1].kind == "unknown"


def test_every_doc_block_is_labelled():
    from tests.docs_blocks import all_blocks

    unknown = [b.name for b in all_blocks() if b.kind == "unknown"]
    assert not unknown
    assert Path(ROOT / "README.md") in {b.doc for b in all_blocks()}


def test_a_large_warm_run_reports_a_total_then_progress_and_numbers_records_across_parts(monkeypatch):
    """1,000 images on a warm stack, -c 2: expect(1000) first (the bar's total), then done() per part; the
    merged answer reads as one run (records numbered 0..999, each upload's own key)."""
    from rcyc_cli.local.session import Upload
    from rcyc_cli.local.stack import warm
    from rcyc_cli.reporting import Reporter

    calls = []

    def fake_run_on_stack(running, uploads, event, concurrency, batch_size):
        prefix = f"runs/part{len(calls)}/"
        calls.append(len(uploads))
        results = [{"record": i, "bucket": "b", "key": f"{prefix}images/{u.name}", "label": "boxes"} for i, u in enumerate(uploads)]
        return {"response": {"results": results, "errors": [], "skipped": [], "model": {"name": "m"}},
                "invocations": [], "seconds": 0.5, "prefix": prefix}

    monkeypatch.setattr(warm, "run_on_stack", fake_run_on_stack)
    events = []
    report = Reporter(expect=lambda n: events.append(("expect", n)), done=lambda n: events.append(("done", n)))
    uploads = [Upload(f"img_{i:04d}.jpg", b"x", "image/jpeg") for i in range(1000)]
    answer = warm.run_on_stack_in_parts(None, uploads, None, 2, 16, report)
    assert events[0] == ("expect", 1000) and sum(n for kind, n in events if kind == "done") == 1000
    assert len(calls) > 1 and sum(calls) == 1000
    assert [r["record"] for r in answer["response"]["results"]] == list(range(1000))
    assert answer["keys"] == [r["key"] for r in answer["response"]["results"]]
    assert answer["response"]["model"] == {"name": "m"}
