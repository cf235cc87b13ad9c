"""Issue 20's examples outside the stack, each a test that failed before: quiet wrong answers are documented
non-zero exits, outputs go only where they were asked, names never reach the terminal raw, and every
failure is one line (the hostile harness in test_hostile_cli.py covers the classes these belong to)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from click.testing import CliRunner

from rcyc_cli.main import cli
from tests.conftest import IMAGES, LABELS


def rcyc(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def labelled(folder, per_label=1):
    for label in LABELS:
        (folder / label).mkdir(parents=True)
        for i in range(per_label):
            shutil.copy(IMAGES / label / f"{label}_{i}.jpg", folder / label / f"{label}_{i}.jpg")
    return folder


def test_eval_of_all_broken_images_is_an_error_not_zero_percent(tmp_path):
    for label in LABELS:
        (tmp_path / label).mkdir()
        (tmp_path / label / "broken.jpg").write_bytes(b"not an image")
    result = rcyc("eval", tmp_path)
    assert result.exit_code == 3, result.output
    assert "none of the 5 images" in result.stderr and "0.0%" not in result.output


def test_predict_of_an_empty_folder_is_exit_3_as_invoke_local(tmp_path):
    result = rcyc("predict", tmp_path)
    assert result.exit_code == 3 and "no image files" in result.stderr


def test_classify_with_the_input_inside_the_results_prefix_is_refused_before_listing():
    result = rcyc("classify", "s3://bucket/results/photos/", "--results-prefix", "results/")
    assert result.exit_code == 3 and "under the results prefix" in result.stderr


def test_eval_never_follows_a_link_out_of_the_data_folder(tmp_path):
    data = labelled(tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(IMAGES / "boxes" / "boxes_1.jpg", outside / "elsewhere.jpg")
    os.symlink(outside, data / "boxes" / "link-to-outside")
    os.symlink(outside / "elsewhere.jpg", data / "boxes" / "file-link.jpg")
    os.symlink("/", data / "soda_cans" / "root")
    result = rcyc("eval", data, "--json")
    assert result.exit_code == 0, result.stderr
    import json

    answer = json.loads(result.stdout)
    assert answer["images"] == len(LABELS)  # only the five inside
    inside_link = data / "glass_bottles" / "again"
    os.symlink(data / "glass_bottles", inside_link)  # a link that stays inside is still followed once
    assert json.loads(rcyc("eval", data, "--json").stdout)["images"] == len(LABELS)


def test_eval_report_never_replaces_a_device_or_a_fifo_and_works_before_any_scoring(tmp_path, monkeypatch):
    from rcyc_cli.evaluate import session

    monkeypatch.setattr(session, "evaluate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("scored")))
    os.mkfifo(tmp_path / "fifo")
    device = tmp_path / "null"  # a null device of the test's own: a regression must not replace the machine's
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        device = "/dev/null"  # not root: it cannot be replaced
    for target in (device, tmp_path / "fifo", tmp_path, "/proc/version", tmp_path / "missing" / "r.html"):
        result = rcyc("eval", IMAGES, "--report", target)
        assert result.exit_code == 3, (target, result.output)
        assert result.stderr.count("error:") == 1 and "hint:" in result.stderr
    assert stat.S_ISCHR(os.stat(device).st_mode) and stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


def test_classify_output_to_a_directory_is_refused_before_any_listing(tmp_path):
    for target in (tmp_path, tmp_path / "missing" / "out.jsonl"):
        result = rcyc("classify", "s3://bucket/photos/", "--output", target)
        assert result.exit_code == 3, result.output
        assert "--output" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no .part left


def test_eval_escapes_terminal_sequences_in_file_names(tmp_path):
    data = labelled(tmp_path / "data")
    (data / "boxes" / "\x1b]0;owned\x07\x1b[2Jevil.jpg").write_bytes(b"broken")
    result = rcyc("eval", data)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b]0;owned" in result.stdout


def test_bad_values_in_rcyc_toml_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line in ("keep_warm = 1", "timeout = 1e400", "timeout = 1.5", "concurrency = -3", 'model = "a\\u0000b"'):
        (tmp_path / "rcyc.toml").write_text(line + "\n")
        result = rcyc("invoke-local", "--help")
        assert result.exit_code == 3, (line, result.output)
        assert result.stderr.startswith("error: rcyc.toml:") and "hint:" in result.stderr


def test_nan_gate_and_huge_seed_are_usage_errors():
    assert rcyc("eval", IMAGES, "--min-accuracy", "nan").exit_code == 2
    assert rcyc("train", IMAGES, "--out", "x", "--seed", "99999999999999999999999").exit_code == 2


def test_stack_idle_seconds_is_validated(monkeypatch):
    from rcyc_cli.config import env_seconds
    from rcyc_core.errors import InputError

    for bad in ("-5", "abc", "nan", "0", "inf"):
        monkeypatch.setenv("RCYC_STACK_IDLE_SECONDS", bad)
        try:
            env_seconds("RCYC_STACK_IDLE_SECONDS", 900)
        except InputError as exc:
            assert "RCYC_STACK_IDLE_SECONDS" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
    monkeypatch.setenv("RCYC_STACK_IDLE_SECONDS", "30")
    assert env_seconds("RCYC_STACK_IDLE_SECONDS", 900) == 30


def test_any_command_sweeps_what_a_killed_rcyc_left(tmp_path):
    """A sandbox or training folder, a half-written temporary file of a process that is gone (kill -9):
    removed by the next command, whatever it is; those of a living process are kept."""
    from rcyc_cli import leftovers

    root = leftovers.temp_root()
    root.mkdir(parents=True, exist_ok=True)
    dead = _dead_pid()
    left = [root / f"sandbox-{dead}-12345-abc", root / f"train-{dead}-12345-def.tflite"]
    left[0].mkdir()
    (left[0] / "tmp").mkdir()
    left[1].write_bytes(b"x" * 1000)
    mine = leftovers.temp_dir("sandbox")
    assert rcyc("rie", "path").exit_code in (0, 4)
    assert not any(path.exists() for path in left) and mine.exists()


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
