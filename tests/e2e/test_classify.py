"""rcyc classify against a real local stack: moto's server (the stack's S3), the real emulator pool, and the
stack's Lambda Invoke API through rcyc's own client of it (boto3's Lambda client against the same API is
tests/e2e/test_invoke_api.py's)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from rcyc_cli.cloud import store
from rcyc_cli.defaults import STACK_REFRESH_SECONDS
from rcyc_core.manifest import Manifest
from tests.cli import run as run_cli
from tests.e2e.cloud_fixtures import private_stack, set_faults
from tests.conftest import IMAGES, MODELS, class_images, stops_as_in_a_terminal

pytestmark = pytest.mark.e2e
BUCKET = "photo-archive"
# Keys a backfill meets: spaces, '+', unicode, deep "folders".
FOLDERS = ["photos/with space/", "photos/plus+sign/", "photos/ünïcødé/", "photos/a/b/c/"]


@pytest.fixture(scope="module")
def local_stack(rie_path, tmp_path_factory):
    """A private warm stack (its own RCYC_CACHE_HOME), stopped after the module, also on failure."""
    with private_stack(tmp_path_factory.mktemp("classify-cache"), rie_path, BUCKET) as (running, s3):
        yield running, s3


def put_images(s3, prefix_folders: list[str], copies: int) -> dict[str, str]:
    """Upload the class drawings ``copies`` times under each folder; returns key -> true label."""
    truth = {}
    for folder in prefix_folders:
        for n in range(copies):
            for label, path in class_images():
                key = f"{folder}{n}-{path.name}"
                s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
                truth[key] = label
    return truth


def run(*args):
    return run_cli("classify", *args)


def results(s3, prefix: str = "results/") -> dict[str, dict]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            if "/.rcyc-index/" in obj["Key"]:  # classify's resume index, not a result
                continue
            found[obj["Key"]] = json.loads(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    return found


def test_a_prefix_of_tricky_keys_is_classified_once_and_reruns_invoke_nothing(local_stack, tmp_path):
    _, s3 = local_stack
    truth = put_images(s3, FOLDERS, copies=3)  # 4 folders x 3 copies x 20 drawings = 240 images
    for name in ("empty.jpg", "not_an_image.jpg", "truncated.jpg"):
        s3.put_object(Bucket=BUCKET, Key=f"photos/broken/{name}", Body=(IMAGES / "bad" / name).read_bytes())
    s3.put_object(Bucket=BUCKET, Key="photos/notes.txt", Body=b"not an image")
    s3.put_object(Bucket=BUCKET, Key="photos/a/table.csv", Body=b"x,y\n")
    output = tmp_path / "out.jsonl"

    first = run(f"s3://{BUCKET}/photos/", "--local", "--json", "--output", output)
    assert first.exit_code == 7, first.stderr  # the broken files are record errors
    summary = json.loads(first.stdout)
    assert summary["images"] == len(truth) + 2 and summary["not_images"] == 3  # empty.jpg (0 bytes) is no image either
    assert summary["classified"] == len(truth) and sum(summary["per_class"].values()) == len(truth)
    assert summary["errors"] == {"NotAnImage": 1, "CorruptImage": 1}

    stored = results(s3)
    for key, label in truth.items():
        assert stored[f"results/{key}.json"]["label"] == label, key
    assert stored["results/photos/broken/not_an_image.jpg.json"]["error"] == "NotAnImage"
    head = s3.head_object(Bucket=BUCKET, Key=f"results/{next(iter(truth))}.json")  # as an S3 PUT stores it
    assert head["ContentType"] == "application/json"
    assert head["Metadata"]["rcyc-model-sha256"] == stored[f"results/{next(iter(truth))}.json"]["model"]["sha256"]
    assert not any(k.endswith(("notes.txt.json", "table.csv.json", "empty.jpg.json")) for k in stored)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["key"] for line in lines) == sorted([*truth, "photos/broken/not_an_image.jpg",
                                                            "photos/broken/truncated.jpg"])
    assert all(line["model_version"] for line in lines)

    again = json.loads(run(f"s3://{BUCKET}/photos/", "--local", "--json", "--output", output).stdout)
    assert again["invocations"] == 0 and again["classified"] == 0 and again["done_before"] == len(truth) + 2
    assert len(output.read_text().splitlines()) == len(lines)  # every key again, once

    # A result changed since the index vouched for it (another model's document) is read, not trusted.
    changed = "photos/a/b/c/0-boxes_0.jpg"
    document = stored[f"results/{changed}.json"]
    s3.put_object(Bucket=BUCKET, Key=f"results/{changed}.json",
                  Body=json.dumps({**document, "model": {**document["model"], "sha256": "0" * 64}}).encode())
    redone = json.loads(run(f"s3://{BUCKET}/photos/", "--local", "--json").stdout)
    assert redone["classified"] == 1 and redone["done_before"] == len(truth) + 1
    assert results(s3)[f"results/{changed}.json"]["model"] == document["model"]

    plan = json.loads(run(f"s3://{BUCKET}/photos/", "--local", "--json", "--dry-run").stdout)
    assert plan["dry_run"] and plan["to_classify"] == 0 and plan["estimate"]["invocations"] == 0
    plan = json.loads(run(f"s3://{BUCKET}/photos/", "--local", "--json", "--dry-run", "--force").stdout)
    assert plan["to_classify"] == len(truth) + 2 and plan["estimate"]["invocations"] == -(-(len(truth) + 2) // 16)
    assert plan["estimate"]["cost_usd"] > 0 and len(results(s3)) == len(truth) + 2  # nothing was invoked


@pytest.mark.slow  # retries with back-off, a signal mid-run
def test_sigterm_mid_run_loses_nothing_and_the_rerun_finishes_the_rest(local_stack):
    _, s3 = local_stack
    truth = put_images(s3, ["batch/"], copies=6)  # 114 images
    command = [sys.executable, "-m", "rcyc_cli.main", "classify", f"s3://{BUCKET}/batch/", "--local", "--json",
               "--concurrency", "1", "--batch-size", "2", "--results-prefix", "batch-results/"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=stops_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while len(results(s3, "batch-results/")) < 10 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    done = len(results(s3, "batch-results/"))
    assert 0 < done < len(truth)
    rest = json.loads(run(f"s3://{BUCKET}/batch/", "--local", "--json", "--results-prefix", "batch-results/").stdout)
    assert rest["done_before"] == done and rest["classified"] == len(truth) - done
    stored = results(s3, "batch-results/")
    assert sorted(stored) == sorted(f"batch-results/{key}.json" for key in truth)
    assert all(stored[f"batch-results/{key}.json"]["label"] == label for key, label in truth.items())


def test_a_promoted_model_makes_the_next_run_reclassify(local_stack):
    running, s3 = local_stack
    truth = put_images(s3, ["promote/"], copies=1)
    first = json.loads(run(f"s3://{BUCKET}/promote/", "--local", "--json").stdout)
    assert first["classified"] == len(truth)
    model_bucket = running.state.config.bucket
    store.put_model(s3, model_bucket, Manifest.load(MODELS["softmax"]), MODELS["softmax"])  # moves the pointer
    time.sleep(STACK_REFRESH_SECONDS + 0.5)  # the instances see it at their next pointer check
    second = json.loads(run(f"s3://{BUCKET}/promote/", "--local", "--json").stdout)
    assert second["classified"] == len(truth) and second["done_before"] == 0
    assert {m["sha256"] for m in second["models"]} == {Manifest.load(MODELS["softmax"]).sha256}


@pytest.mark.slow  # retries with back-off, a signal mid-run
def test_throttling_from_the_invoke_api_is_retried_to_completion(local_stack):
    running, s3 = local_stack
    truth = put_images(s3, ["throttled/"], copies=1)
    status, switch = set_faults(running, {"next": 4, "status": 429})
    assert status == 200 and switch["next"] == 4
    summary = json.loads(run(f"s3://{BUCKET}/throttled/", "--local", "--json", "--batch-size", "4").stdout)
    assert summary["classified"] == len(truth) and not summary["errors"]
    with urllib.request.urlopen(running.endpoint_url + "/rcyc/faults", timeout=10) as reply:
        faults = json.loads(reply.read())
    assert faults["next"] == 0 and faults["injected"] >= 4  # every 429 was answered, and retried through


def test_upload_image_local_then_classify_local_classify_the_images_just_uploaded(local_stack, tmp_path):
    """One S3 for local work: what `upload-image --local` puts is what `classify --local` classifies."""
    _, s3 = local_stack
    folder = tmp_path / "mine"
    folder.mkdir()
    truth = {}
    for label, path in class_images():
        (folder / f"new-{path.name}").write_bytes(path.read_bytes())
        truth[f"fresh/new-{path.name}"] = label
    uploaded = run_cli("upload-image", "--local", "--bucket", BUCKET, "--prefix", "fresh/", folder, "--json")
    assert uploaded.exit_code == 0, uploaded.output
    assert sorted(entry["key"] for entry in json.loads(uploaded.stdout)["images"]) == sorted(truth)
    result = run(f"s3://{BUCKET}/fresh/", "--local", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["classified"] == len(truth), summary
    answers = results(s3, "results/fresh/")
    assert {key.removeprefix("results/").removesuffix(".json") for key in answers} == set(truth)
    assert sum(answers[f"results/{key}.json"]["label"] == label for key, label in truth.items()) >= len(truth) - 1


def test_a_replaced_image_is_classified_again_and_the_results_route_refuses_hostile_bodies(local_stack):
    import urllib.error

    from rcyc_cli.local.stack.protocol import RESULTS_PATH

    running, s3 = local_stack
    drawings = class_images()
    first, second = drawings[0], next(d for d in drawings if d[0] != drawings[0][0])
    s3.put_object(Bucket=BUCKET, Key="replaced/one.jpg", Body=first[1].read_bytes())
    assert json.loads(run(f"s3://{BUCKET}/replaced/", "--local", "--json").stdout)["classified"] == 1
    s3.put_object(Bucket=BUCKET, Key="replaced/one.jpg", Body=second[1].read_bytes())  # same key, other bytes
    again = json.loads(run(f"s3://{BUCKET}/replaced/", "--local", "--json").stdout)
    assert again["classified"] == 1 and again["done_before"] == 0
    assert results(s3, "results/replaced/")["results/replaced/one.jpg.json"]["label"] == second[0]

    hostile = [b"not json", b"[" * 100_000,
               json.dumps({"bucket": BUCKET, "objects": [{"key": 7, "body": "{}"}]}).encode(),
               json.dumps({"bucket": BUCKET, "objects": [{"key": "replaced/one.jpg", "body": "{}"}]}).encode(),
               json.dumps({"bucket": BUCKET, "objects": [{"key": "r/x.json", "body": "{}",
                                                          "metadata": {"rcyc-model-sha256": "\u00e9"}}]}).encode(),
               b"x" * (7 * 1024 * 1024)]
    for body in hostile:
        request = urllib.request.Request(running.endpoint_url + RESULTS_PATH, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code in (400, 413), body[:40]
    assert s3.get_object(Bucket=BUCKET, Key="replaced/one.jpg")["Body"].read() == second[1].read_bytes()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="r/")
