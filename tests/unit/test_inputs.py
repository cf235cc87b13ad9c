"""Issue 10's hostile inputs: each gets one error: line and one hint: line and a documented exit status,
before anything is started or read beyond its bound (no traceback, no hang, no unbounded read)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from rcyc_cli.defaults import LAMBDA_MAX_PAYLOAD
from rcyc_cli.exit_status import ExitStatus
from rcyc_core import events
from rcyc_core.manifest import Manifest
from tests.conftest import IMAGES, MODELS
from tests.cli import run

IMAGE = IMAGES / "boxes" / "boxes_0.jpg"



def one_error(result, status: int, *words: str) -> None:
    assert result.exit_code == status, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert [line.split(":")[0] for line in lines if line.startswith(("error:", "hint:"))] == ["error", "hint"], lines
    for word in words:
        assert word in result.stderr, (word, result.stderr)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    return path


# --- devices and FIFOs are never read ---------------------------------------------------------------------

def test_predict_dev_zero_and_a_fifo_are_refused_without_reading(fifo):
    result = run("predict", "--json", "/dev/zero", fifo, IMAGE)
    assert result.exit_code == ExitStatus.RECORD_ERRORS
    output = json.loads(result.stdout)
    assert [(e["record"], e["error"]) for e in output["errors"]] == [(0, "UnreadableFile"), (1, "UnreadableFile")]
    assert "character device" in output["errors"][0]["message"] and "FIFO" in output["errors"][1]["message"]
    assert [r["record"] for r in output["results"]] == [2]


@pytest.mark.parametrize("what", ["dev-zero", "fifo"])
def test_invoke_local_event_from_a_device_or_fifo_is_bad_input(what, fifo):
    source = "/dev/zero" if what == "dev-zero" else fifo
    one_error(run("invoke-local", "--event", source), ExitStatus.BAD_INPUT, "not a regular file")


@pytest.mark.parametrize("what", ["dev-zero", "fifo"])
def test_invoke_local_image_from_a_device_or_fifo_is_bad_input(what, fifo):
    source = "/dev/zero" if what == "dev-zero" else fifo
    one_error(run("invoke-local", source), ExitStatus.BAD_INPUT, "not a regular file")


def test_a_fifo_in_a_folder_is_skipped_not_waited_on(tmp_path, fifo):
    from rcyc_cli.files import expand_images

    shutil.copy(IMAGE, tmp_path / "a.jpg")
    assert expand_images([tmp_path]) == [tmp_path / "a.jpg"]


# --- events: bounded and strict, checked before anything starts ------------------------------------------

def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", ["over-6MB", "nan", "not-utf8", "nested-100k", "no-records"])
def test_bad_event_files_are_refused_before_posting(case, tmp_path):
    record = json.dumps(events.make_event("recycle-able-image", ["images/x.jpg"])["Records"][0])
    data = {
        "over-6MB": ('{"Records": [' + ",".join([record] * (LAMBDA_MAX_PAYLOAD // len(record) + 10)) + "]}").encode(),
        "nan": b'{"Records": [NaN]}',
        "not-utf8": b'{"Records": [], "x": "\xff\xfe"}',
        "nested-100k": b"[" * 100_000 + b"]" * 100_000,
        "no-records": b"{}",
    }[case]
    event = write(tmp_path / "event.json", data)
    # --rie points nowhere: had anything been started, the error would be a missing emulator (exit 4)
    one_error(run("invoke-local", "--rie", tmp_path / "no-rie", "--event", event), ExitStatus.BAD_INPUT)


def test_a_generated_event_over_6mb_is_refused_before_posting():
    from rcyc_cli.local.emulator.sandbox import ProcessSandbox
    from rcyc_core.errors import EventError

    sandbox = ProcessSandbox("/nonexistent", env={})  # never started: the check comes first
    big = events.make_event("recycle-able-image", ["images/" + "k" * 1000] * 7000)
    with pytest.raises(EventError, match="more than the 6,291,456"):
        sandbox.invoke(big)


# --- file names, folders, paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [b"new\nline.jpg", b"bad-\xff-utf8.jpg"])
def test_file_names_s3_cannot_carry_are_refused(name, tmp_path):
    target = os.path.join(os.fsencode(tmp_path), name)
    shutil.copy(IMAGE, os.fsdecode(target))
    one_error(run("invoke-local", "--rie", tmp_path / "no-rie", os.fsdecode(target)), ExitStatus.BAD_INPUT, "Rename")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: an unreadable file cannot be made")
def test_a_folder_holding_an_unreadable_file_is_bad_input(tmp_path):
    shutil.copy(IMAGE, tmp_path / "a.jpg")
    shutil.copy(IMAGE, tmp_path / "locked.jpg")
    (tmp_path / "locked.jpg").chmod(0)
    from rcyc_cli.files import read_regular
    from rcyc_core.errors import InputError

    with pytest.raises(InputError, match="cannot read"):
        read_regular(tmp_path / "locked.jpg")


def test_an_empty_image_argument_is_refused_not_the_current_folder():
    one_error(run("invoke-local", ""), ExitStatus.BAD_INPUT, "empty path")


@pytest.mark.parametrize("url", ["junk", "http://[::1", "ftp://127.0.0.1", "http://127.0.0.1:notaport"])
def test_a_bad_endpoint_url_is_a_usage_error(url):
    one_error(run("invoke-local", "--endpoint-url", url), ExitStatus.USAGE, "--endpoint-url")


@pytest.mark.parametrize("command", [["invoke-local"], ["local", "up"], ["build"], ["deploy", "--tag", "v1"]])
@pytest.mark.parametrize("given", ["no-such-ca.pem", "."])
def test_a_ca_bundle_that_is_no_file_is_refused_whatever_the_runtime(command, given, monkeypatch):
    """It was used only by an image build, and silently ignored by a process-runtime run or stack."""
    one_error(run(*command, "--ca-bundle", given), ExitStatus.USAGE, "--ca-bundle")
    monkeypatch.setenv("RCYC_CA_BUNDLE", given)
    one_error(run(*command), ExitStatus.USAGE, "--ca-bundle")


# --- configuration and cache --------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"model = 5\n", b'bucket = "\xff"\n', b"model = [1, 2]\n"])
def test_a_bad_rcyc_toml_is_bad_input(content, tmp_path, monkeypatch):
    config = write(tmp_path / "rcyc.toml", content)
    monkeypatch.setenv("RCYC_CONFIG", str(config))
    one_error(run("predict", IMAGE), ExitStatus.BAD_INPUT, str(config))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: an unwritable cache cannot be made")
def test_an_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch, psu_bare_dir):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("RCYC_CACHE_HOME", str(locked))
    one_error(run("local", "up"), ExitStatus.MISSING_PREREQ, "not writable")
    one_error(run("predict", "--model", psu_bare_dir, IMAGE), ExitStatus.MISSING_PREREQ, "not writable")


def test_an_unwritable_cache_is_a_clear_error_even_for_root(tmp_path, monkeypatch, psu_bare_dir):
    """A cache path under a regular file cannot be created by anyone, root included."""
    blocker = write(tmp_path / "file", b"")
    monkeypatch.setenv("RCYC_CACHE_HOME", str(blocker / "cache"))
    one_error(run("local", "up"), ExitStatus.MISSING_PREREQ, "not writable", "RCYC_CACHE_HOME")
    one_error(run("predict", "--model", psu_bare_dir, IMAGE), ExitStatus.MISSING_PREREQ, "not writable")


def test_local_status_with_no_stack_says_so_in_one_error_and_hint():
    one_error(run("local", "status"), ExitStatus.MISSING_PREREQ, "no local stack", "rcyc local up")


# --- models --------------------------------------------------------------------------------------------------

def test_a_manifest_input_of_100000_squared_is_refused_before_allocating(tmp_path):
    model = tmp_path / "huge"
    shutil.copytree(MODELS["softmax"], model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["input"].update(width=100_000, height=100_000)
    (model / "manifest.json").write_text(json.dumps(manifest))
    started = __import__("time").monotonic()
    one_error(run("predict", "--model", model, IMAGE), ExitStatus.BAD_INPUT, "larger than 4096x4096")
    assert __import__("time").monotonic() - started < 30
    with pytest.raises(Exception, match="larger than"):
        Manifest.load(model)


# --- SNS- and SQS-wrapped S3 events are unwrapped ---------------------------------------------------------

def test_sns_and_sqs_wrapped_s3_events_are_unwrapped():
    s3_event = events.make_event("bkt", ["images/a b.jpg", "images/c.jpg"])
    sns = {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(s3_event)}}
    sqs = {"eventSource": "aws:sqs", "body": json.dumps(s3_event)}
    sns_in_sqs = {"eventSource": "aws:sqs", "body": json.dumps({"Type": "Notification", "Message": json.dumps(s3_event)})}
    test_event = {"eventSource": "aws:sqs", "body": json.dumps({"Event": "s3:TestEvent", "Bucket": "bkt"})}
    parsed = events.parse({"Records": [sns, sqs, sns_in_sqs, test_event]})
    assert [(type(r).__name__, r.index, r.key) for r in parsed] == [
        ("ObjectRecord", 0, "images/a b.jpg"), ("ObjectRecord", 1, "images/c.jpg"),
        ("ObjectRecord", 2, "images/a b.jpg"), ("ObjectRecord", 3, "images/c.jpg"),
        ("ObjectRecord", 4, "images/a b.jpg"), ("ObjectRecord", 5, "images/c.jpg"),
        ("SkippedRecord", 6, None)]


def test_wrapping_deeper_than_sns_in_sqs_is_an_invalid_record():
    inner = json.dumps(events.make_event("bkt", ["k.jpg"]))
    for _ in range(3):
        inner = json.dumps({"Records": [{"eventSource": "aws:sqs", "body": inner}]})
    [record] = events.parse(json.loads(inner))
    assert isinstance(record, events.BadRecord) and "deep" in record.message


def test_the_function_classifies_the_images_of_a_wrapped_event(moto_in_process):
    import boto3

    from rcyc_cli.cloud import store
    from rcyc_core.config import Config
    from rcyc_core.function import Function

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt")
    store.put_model(s3, "bkt", Manifest.load(MODELS["softmax"]), MODELS["softmax"])
    s3.put_object(Bucket="bkt", Key="images/a.jpg", Body=IMAGE.read_bytes())
    wrapped = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(events.make_event("bkt", ["images/a.jpg"]))}},
                           {"eventSource": "aws:sqs", "body": json.dumps(events.make_event("bkt", ["images/a.jpg"]))}]}
    response = Function(Config(model_bucket="bkt", refresh_seconds=0), s3).handle(wrapped)
    assert [(r["record"], r["label"]) for r in response["results"]] == [(0, "boxes"), (1, "boxes")]
    assert response["errors"] == [] and response["skipped"] == []


def test_unwritable_paths_never_print_a_traceback_in_a_real_process(tmp_path):
    """The error boundary of the installed command, not only of CliRunner."""
    blocker = write(tmp_path / "file", b"")
    env = {**os.environ, "RCYC_CACHE_HOME": str(blocker / "cache")}
    done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "local", "up"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == ExitStatus.MISSING_PREREQ and "Traceback" not in done.stderr, done.stderr


# --- the warm stack's reuse check compares every setting that makes it unsuitable -------------------------

@pytest.mark.parametrize("setting", ["runtime", "flavor", "model", "base image", "CA bundle", "emulator", "memory", "bucket"])
def test_a_stack_built_differently_is_not_reused(setting, tmp_path, rie_path):
    from rcyc_cli.local.run import Options
    from rcyc_cli.local.stack.client import StackState
    from rcyc_cli.local.stack.warm import stack_conflict
    from rcyc_cli.function_spec import FunctionSpec

    manifest = Manifest.load(MODELS["one-vs-rest"])
    state = StackState.from_json({"runtime": "process", "rie_path": str(rie_path.resolve()), "model": manifest.summary(),
                                  "config": {"bucket": "recycle-able-image", "timeout": 180, "memory": 1024, "flavor": "slim",
                                             "base_image": None, "ca_bundle": None}})
    same = Options([IMAGE], function=FunctionSpec(rie=str(rie_path)))
    assert stack_conflict(same.wanted_stack(), state, manifest) is None
    other_rie = tmp_path / "rie"
    shutil.copy(rie_path, other_rie)
    spec = {"runtime": FunctionSpec(runtime="docker", rie=str(rie_path)), "flavor": FunctionSpec(flavor="keras", rie=str(rie_path)),
            "base image": FunctionSpec(base_image="debian:bookworm", rie=str(rie_path)),
            "CA bundle": FunctionSpec(ca_bundle=tmp_path / "ca.pem", rie=str(rie_path)),
            "emulator": FunctionSpec(rie=str(other_rie)), "memory": FunctionSpec(memory=2048, rie=str(rie_path))}
    if setting == "model":
        softmax = Manifest.load(MODELS["softmax"])
        why = stack_conflict(Options([IMAGE], model=MODELS["softmax"], function=FunctionSpec(rie=str(rie_path))).wanted_stack(), state, softmax)
    elif setting == "bucket":
        why = stack_conflict(Options([IMAGE], bucket="other-bucket", function=FunctionSpec(rie=str(rie_path))).wanted_stack(), state, manifest)
    else:
        why = stack_conflict(Options([IMAGE], function=spec[setting]).wanted_stack(), state, manifest)
    assert why and (setting in why or setting == "model" and "fixture-softmax" in why), why


def test_a_folder_holding_a_file_that_cannot_be_read_is_bad_input_even_for_root(tmp_path, rie_path):
    """/proc/self/mem is a regular file that no one can read from its start (EIO), root included: the
    unreadable file of the issue's table, reproducible as any user."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(IMAGE, folder / "good.jpg")
    (folder / "bad.jpg").symlink_to("/proc/self/mem")
    one_error(run("invoke-local", "--rie", rie_path, "--no-stack", folder), ExitStatus.BAD_INPUT, "bad.jpg", "cannot read")
