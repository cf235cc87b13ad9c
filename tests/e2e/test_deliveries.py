"""Every way an upload reaches the function, through the real Lambda emulator and moto's S3 server: a batch
mixing good images, a broken image, a missing key, a deletion (and for SQS a test event) gets every good
image exactly one result, skips what is not an upload and says why, answers SQS with exactly the messages
worth retrying, and delivered twice, redoes nothing and leaves byte-identical results."""

import json
import uuid

import pytest
from click.testing import CliRunner

from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY
from rcyc_cli.local.emulator.launcher import FunctionLauncher, FunctionSpec
from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.main import cli
from rcyc_core import events
from rcyc_core.manifest import Manifest
from tests.conftest import IMAGES, MODELS

pytestmark = pytest.mark.e2e
BUCKET = "recycle-able-image"
GOOD = {"images/a box.jpg": ("boxes", IMAGES / "boxes" / "boxes_0.jpg"),
        "images/can+1.jpg": ("soda_cans", IMAGES / "soda_cans" / "soda_cans_0.jpg")}
BROKEN, MISSING, DELETED = "images/broken.jpg", "images/missing.jpg", "images/deleted.jpg"


@pytest.fixture
def function(rie_path):
    """One function instance (the real emulator) writing results under a prefix of its own (moto's servers in
    one process share their state) of a versioned bucket on moto's S3 server, holding the good images and the
    broken one. Stopped by its own handles."""
    results = f"results-{uuid.uuid4().hex[:8]}/"
    server = EmbeddedS3().start()
    pool = None
    try:
        s3 = cloud_aws.s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        launcher = FunctionLauncher(FunctionSpec(runtime="process", rie=str(rie_path), timeout=60))
        server.seed_model(BUCKET, Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"], POINTER_KEY)
        pool = launcher.start(server.endpoint_url, BUCKET, refresh_seconds=0, results_prefix=results)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for key, (_, path) in GOOD.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        s3.put_object(Bucket=BUCKET, Key=BROKEN, Body=(IMAGES / "bad" / "not_an_image.jpg").read_bytes())
        yield s3, pool.instances[0].sandbox, results
    finally:
        if pool is not None:
            pool.stop()
        server.stop()


def etags(s3) -> dict[str, str]:
    """Each object's ETag, as S3 names it in its events."""
    return {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"') for key in [*GOOD, BROKEN]}


def deliveries(shape: str, s3) -> list[dict]:
    """The batch as ``shape`` delivers it: one event (EventBridge: one event per object)."""
    created, tags = [*GOOD, BROKEN, MISSING], etags(s3)
    if shape == "eventbridge":
        return [events.make(shape, BUCKET, [key], etags=tags) for key in created] + \
            [events.make(shape, BUCKET, removed=[DELETED])]
        # (S3 sends EventBridge no test event)
    return [events.make(shape, BUCKET, created, removed=[DELETED], etags=tags, test_event=shape != "s3")]


def deliver(sandbox, batch: list[dict]) -> tuple[dict, list[dict], int]:
    """Post each event; returns the merged entries by kind, the SQS answers, and how many results were reused."""
    merged, answers, reused = {"results": [], "errors": [], "skipped": []}, [], 0
    for event in batch:
        invocation = sandbox.invoke(event)
        for kind in merged:
            merged[kind] += [{k: v for k, v in entry.items() if k != "record"} for entry in invocation.response[kind]]
        if "batchItemFailures" in invocation.response:
            answers.append(invocation.response)
        reused += sum(json.loads(line).get("reused", 0) for line in invocation.logs if line.startswith('{"rcyc": "invoke"'))
    return merged, answers, reused


def stored(s3, results: str) -> dict[str, tuple[bytes, int]]:
    """Each stored result's bytes and how many versions of it the bucket holds."""
    out = {}
    for key in [*GOOD, BROKEN]:
        versions = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{results}{key}.json").get("Versions", [])
        out[key] = (s3.get_object(Bucket=BUCKET, Key=f"{results}{key}.json")["Body"].read(), len(versions))
    return out


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "sns-sqs", "eventbridge"])
def test_a_mixed_batch_in_every_shape_delivered_twice(function, shape):
    s3, sandbox, results = function
    batch = deliveries(shape, s3)
    first, answers, reused = deliver(sandbox, batch)

    assert sorted((r["key"], r["label"]) for r in first["results"]) == sorted((k, label) for k, (label, _) in GOOD.items())
    assert [(e["key"], e["error"], e["retryable"]) for e in first["errors"]] == [
        (BROKEN, "NotAnImage", False), (MISSING, "NoSuchKey", False)]
    skipped = [(s["key"], s["reason"]) for s in first["skipped"]]
    test_events = [s for s in skipped if "s3:TestEvent" in s[1]]
    assert len(test_events) == (0 if shape in ("s3", "eventbridge") else 1)  # S3 sends one to a queue or a topic
    assert [key for key, reason in skipped if key == DELETED and ("ObjectRemoved" in reason or "Object Deleted" in reason)] == [DELETED]
    assert len(skipped) == 1 + len(test_events)
    if shape in ("sqs", "sns-sqs"):
        # The broken image and the missing key fail for good: no message is worth retrying.
        assert [a["batchItemFailures"] for a in answers] == [[]]
    else:
        assert answers == []
    assert reused == 0
    written = stored(s3, results)
    assert all(count == 1 for _, count in written.values())

    again, _, reused = deliver(sandbox, batch)
    assert again == first
    assert reused == 3  # both good images and the broken one: their stored results answer, nothing is redone
    assert stored(s3, results) == written  # the same bytes, not rewritten (one version each)


def test_sqs_names_exactly_the_messages_worth_retrying(function):
    """Delivered while the model is unavailable, the messages holding an image are named for retry, the test
    event and the deletion are not; the retry (only those messages) then classifies each image once."""
    s3, sandbox, results = function
    pointer = s3.get_object(Bucket=BUCKET, Key=POINTER_KEY)["Body"].read()
    s3.delete_object(Bucket=BUCKET, Key=POINTER_KEY)
    [event] = deliveries("sqs", s3)
    first = sandbox.invoke(event).response
    by_message = {r["messageId"]: events.parse({"Records": [r]})[0] for r in event["Records"]}
    with_objects = [m for m, record in by_message.items() if isinstance(record, events.ObjectRecord)]
    assert {e["error"] for e in first["errors"] if e["key"] in GOOD} == {"ModelUnavailable"}
    assert [f["itemIdentifier"] for f in first["batchItemFailures"]] == with_objects
    assert len(with_objects) == 4 and len(event["Records"]) == 6

    s3.put_object(Bucket=BUCKET, Key=POINTER_KEY, Body=pointer)
    retry = {"Records": [r for r in event["Records"] if r["messageId"] in with_objects]}
    second = sandbox.invoke(retry).response
    assert sorted(r["key"] for r in second["results"]) == sorted(GOOD)
    assert second["batchItemFailures"] == []


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "sns-sqs", "eventbridge"])
def test_rcyc_event_round_trips_through_invoke_local(shape, rie_path, tmp_path, monkeypatch):
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    made = run("event", shape, "--key", "images/soda_cans_0.jpg")
    assert made.exit_code == 0, made.stderr
    event_file = tmp_path / "event.json"
    event_file.write_text(made.stdout)
    local = run("invoke-local", "--json", "--no-stack", "--rie", rie_path, "--event", event_file)
    assert local.exit_code == 0, local.stderr
    output = json.loads(local.stdout)
    assert [r["label"] for r in output["results"]] == ["soda_cans"]
    assert ("batchItemFailures" in output) == (shape in ("sqs", "sns-sqs"))


def test_a_test_event_through_invoke_local_is_skipped_and_says_so(rie_path, tmp_path, monkeypatch):
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    event_file = tmp_path / "test-event.json"
    event_file.write_text(run("event", "s3-test").stdout)
    local = run("invoke-local", "--json", "--no-stack", "--rie", rie_path, "--event", event_file)
    assert local.exit_code == 0, local.stderr
    output = json.loads(local.stdout)
    assert output["results"] == output["errors"] == [] and "s3:TestEvent" in output["skipped"][0]["reason"]


def test_the_seed_projects_event_names_an_uploaded_file(rie_path, tmp_path, monkeypatch):
    """The original project's event, key 2.jpg at the bucket root, reaches this run's copy of a file 2.jpg."""
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    image = tmp_path / "2.jpg"
    image.write_bytes((IMAGES / "boxes" / "boxes_0.jpg").read_bytes())
    seed = tmp_path / "seed.json"
    seed.write_text('{"Records":[{"s3":{"bucket":{"name":"recycle-able-image"},"object":{"key":"2.jpg"}}}]}')
    local = run("invoke-local", "--json", "--no-stack", "--rie", rie_path, "--event", seed, image)
    assert local.exit_code == 0, local.stderr
    [result] = json.loads(local.stdout)["results"]
    assert (result["key"], result["label"]) == ("images/2.jpg", "boxes")
