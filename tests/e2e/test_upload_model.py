"""`rcyc upload-model` and `rcyc models list/promote` against moto's HTTP server: verified files, the pointer
moved last, published versions immutable, models that are not models refused."""

from __future__ import annotations

import hashlib

import pytest

from rcyc_cli.cloud import store
from rcyc_cli.exit_status import ExitStatus
from rcyc_core.errors import AwsError
from rcyc_core.manifest import Manifest
from tests.cli import run
from tests.conftest import MODELS
from tests.e2e.cloud_checks import SODA, ok, pointer, repackaged, s3_objects

pytestmark = pytest.mark.e2e


def check_uploaded(aws_on_moto, bucket: str, summary: dict) -> Manifest:
    """Every file the uploaded manifest names is in the bucket with the sha256 the manifest says."""
    objects = s3_objects(aws_on_moto, bucket)
    manifest = Manifest.from_json(objects[summary["manifest"]])
    prefix = summary["manifest"].rsplit("/", 1)[0] + "/"
    for fmt in ("h5", "tflite"):
        for ref in manifest.files(fmt):
            assert hashlib.sha256(objects[prefix + ref.path]).hexdigest() == ref.sha256
    assert manifest.sha256 == summary["sha256"]
    return manifest


@pytest.mark.parametrize("layout", ["softmax", "one-vs-rest"])
def test_upload_model_fixture_layouts_uploads_verified_files_then_moves_the_pointer(aws_on_moto, bucket, layout):
    summary = ok(run("upload-model", "--json", "--bucket", bucket, MODELS[layout]))
    manifest = check_uploaded(aws_on_moto, bucket, summary)
    assert manifest.layout == layout and summary["layout"] == layout
    assert len(summary["files"]) == (2 if layout == "softmax" else 10)
    assert pointer(aws_on_moto, bucket) == {"manifest": summary["manifest"], "name": manifest.name, "version": manifest.version,
                                    "sha256": manifest.sha256}


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_upload_model_bare_portland_state_dir_is_converted_and_parity_checked(aws_on_moto, bucket, psu_bare_dir, isolated_cache,
                                                                             tensorflow_available):
    summary = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "psu", psu_bare_dir))
    assert summary["name"] == "psu" and summary["layout"] == "one-vs-rest"
    manifest = check_uploaded(aws_on_moto, bucket, summary)
    assert [m.files["h5"].path for m in manifest.members] == [f"model_{i}_prime.h5" for i in range(5)]
    for i in range(5):  # the .h5 files are the very files given
        assert manifest.members[i].files["h5"].sha256 == hashlib.sha256((psu_bare_dir / f"model_{i}_prime.h5").read_bytes()).hexdigest()
    assert pointer(aws_on_moto, bucket)["manifest"] == summary["manifest"]


def test_models_list_promote_rollback_and_no_promote(aws_on_moto, bucket):
    first = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["one-vs-rest"]))
    second = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["softmax"]))
    assert second["previous"]["version"] == "1"
    third = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "3", "--no-promote", MODELS["softmax"]))
    assert third["promoted"] is False and pointer(aws_on_moto, bucket)["version"] == "2"
    listing = ok(run("models", "list", "--json", "--bucket", bucket))
    assert [(m["version"], m["current"]) for m in listing["models"]] == [("1", False), ("2", True), ("3", False)]
    rolled = ok(run("models", "promote", "--json", "--bucket", bucket, "m", "1"))
    assert rolled["previous"]["version"] == "2" and rolled["current"]["manifest"] == first["manifest"]
    assert pointer(aws_on_moto, bucket)["manifest"] == first["manifest"]
    human = run("models", "list", "--bucket", bucket)
    assert human.exit_code == 0 and "▶" in human.stdout
    missing = run("models", "promote", "--bucket", bucket, "m", "9")
    assert missing.exit_code == ExitStatus.BAD_INPUT and "does not exist" in missing.stderr
    assert pointer(aws_on_moto, bucket)["manifest"] == first["manifest"]


def test_promote_refuses_an_incomplete_version(aws_on_moto, bucket):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "2", "--no-promote", MODELS["softmax"]))
    aws_on_moto.client("s3").delete_object(Bucket=bucket, Key="models/m/2/model.tflite")
    result = run("models", "promote", "--bucket", bucket, "m", "2")
    assert result.exit_code == ExitStatus.BAD_INPUT and "incomplete" in result.stderr
    assert pointer(aws_on_moto, bucket)["version"] == "1"


def test_an_interrupted_model_upload_leaves_the_pointer_on_the_previous_version(aws_on_moto, bucket, monkeypatch):
    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    real, calls = store._upload_file, []

    def flaky(s3, path, bucket_, key, progress, extra=None):
        calls.append(key)
        if len(calls) == 3:
            raise AwsError("upload model_2_prime.h5: connection reset", kind="S3Unreachable")
        return real(s3, path, bucket_, key, progress, extra)

    monkeypatch.setattr(store, "_upload_file", flaky)
    result = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "2", MODELS["one-vs-rest"])
    assert result.exit_code == ExitStatus.AWS and "connection reset" in result.stderr
    assert len(calls) == 3
    assert pointer(aws_on_moto, bucket)["version"] == "1"
    assert "models/m/2/manifest.json" not in s3_objects(aws_on_moto, bucket)


def test_upload_model_killed_before_the_pointer_moves_leaves_the_previous_version(aws_on_moto, bucket, moto_server):
    """A real SIGKILL at the worst moment: every file and the manifest uploaded, the pointer not yet moved."""
    import signal
    import subprocess
    import sys

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    code = (
        "import os, signal, sys\n"
        "from rcyc_cli.cloud import store as s3\n"
        "s3.move_pointer = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from rcyc_cli.main import cli\n"
        "cli(sys.argv[1:])\n"
    )
    args = ["upload-model", "--bucket", bucket, "--name", "m", "--version", "2", str(MODELS["one-vs-rest"])]
    killed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    objects = s3_objects(aws_on_moto, bucket)
    assert "models/m/2/manifest.json" in objects  # it got as far as it could
    assert pointer(aws_on_moto, bucket)["version"] == "1"  # and the function still sees the last complete version
    rerun = subprocess.run([sys.executable, "-m", "rcyc_cli.main", *args], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert pointer(aws_on_moto, bucket)["version"] == "2"


def test_upload_model_refuses_what_is_not_a_model(aws_on_moto, bucket, tmp_path):
    (tmp_path / "model_0_prime.h5").write_bytes(b"not a model")
    result = run("upload-model", "--bucket", bucket, tmp_path)
    assert result.exit_code == ExitStatus.BAD_INPUT and "model_N_prime.h5" in result.stderr and "hint: " in result.stderr
    assert bucket not in [b["Name"] for b in aws_on_moto.client("s3").list_buckets()["Buckets"]]


def test_models_promote_without_usable_credentials_or_endpoint_is_one_line(aws_on_moto, bucket, monkeypatch, tmp_path):
    from rcyc_cli.local.emulator.ports import free_port

    ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    with monkeypatch.context() as env:  # a refused endpoint
        env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "cannot reach" in result.stderr and "Traceback" not in result.stderr
    with monkeypatch.context() as env:  # no credentials at all
        env.delenv("AWS_ACCESS_KEY_ID")
        env.delenv("AWS_SECRET_ACCESS_KEY")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "no AWS credentials" in result.stderr and "Traceback" not in result.stderr
    with monkeypatch.context() as env:  # an SSO profile whose login is missing/expired (no token in the cache)
        env.delenv("AWS_ACCESS_KEY_ID")
        env.delenv("AWS_SECRET_ACCESS_KEY")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("HOME", str(tmp_path))  # an empty ~/.aws/sso/cache
        config = tmp_path / "sso-config"
        config.write_text("[profile rcyc-sso]\nsso_start_url = https://rcyc-test.invalid/start\nsso_region = us-east-1\n"
                          "sso_account_id = 111122223333\nsso_role_name = reader\nregion = us-east-1\n")
        env.setenv("AWS_CONFIG_FILE", str(config))
        env.setenv("AWS_PROFILE", "rcyc-sso")
        result = run("models", "promote", "--bucket", bucket, "m", "1")
        assert result.exit_code == ExitStatus.AWS and "aws sso login" in result.stderr, result.stderr
        assert "network" not in result.stderr and "Traceback" not in result.stderr


def test_a_published_model_version_never_changes(aws_on_moto, bucket):
    first = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    assert first["uploaded"] is True
    s3 = aws_on_moto.client("s3")
    before = s3_objects(aws_on_moto, bucket)
    versions = len(s3.list_object_versions(Bucket=bucket)["Versions"])
    # Other content under the same name/version: refused, with --no-promote too; nothing changes.
    for extra in ([], ["--no-promote"]):
        other = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "1", *extra, MODELS["one-vs-rest"])
        assert other.exit_code == ExitStatus.BAD_INPUT, other.stderr
        assert "already published" in other.stderr and "--version" in other.stderr
    assert s3_objects(aws_on_moto, bucket) == before
    # The same content again: nothing is sent, and the output says so.
    again = run("upload-model", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"])
    assert again.exit_code == 0 and "already uploaded" in again.stdout
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == versions
    assert ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))["uploaded"] is False
    # A packaged directory takes its version from its manifest: re-uploading other content under it is refused too.
    assert run("upload-model", "--bucket", bucket, "--name", "m", MODELS["one-vs-rest"]).exit_code == ExitStatus.BAD_INPUT


def test_an_unpublished_version_keeps_no_files_of_an_interrupted_upload_of_another_layout(aws_on_moto, bucket):
    s3 = aws_on_moto.client("s3")
    ok(run("upload-image", "--json", "--bucket", bucket, SODA))
    s3.put_object(Bucket=bucket, Key="models/m/1/model_3_prime.h5", Body=b"left by an interrupted upload")
    summary = ok(run("upload-model", "--json", "--bucket", bucket, "--name", "m", "--version", "1", MODELS["softmax"]))
    assert sorted(k for k in s3_objects(aws_on_moto, bucket) if k.startswith("models/m/1/")) == \
        ["models/m/1/manifest.json", "models/m/1/model.h5", "models/m/1/model.tflite"]
    check_uploaded(aws_on_moto, bucket, summary)


@pytest.mark.parametrize("layout, swap, found", [
    ("softmax", {"model.tflite": MODELS["one-vs-rest"] / "model_0_prime.tflite"}, "outputs shape (2,), softmax needs (5,)"),
    ("one-vs-rest", {"model_2_prime.tflite": MODELS["softmax"] / "model.tflite"}, "member 2 (soda_cans) outputs shape (5,)"),
])
def test_upload_model_refuses_a_packaged_model_whose_outputs_break_its_layout(aws_on_moto, bucket, tmp_path, layout, swap, found):
    directory = repackaged(tmp_path, layout, swap)
    result = run("upload-model", "--json", "--bucket", bucket, directory)
    assert result.exit_code == ExitStatus.BAD_INPUT, result.stderr
    assert found in result.stderr and "hint: " in result.stderr and result.stdout == ""
    assert bucket not in [b["Name"] for b in aws_on_moto.client("s3").list_buckets()["Buckets"]]  # refused before any AWS call


LINEAR_MODEL = """
import sys
from rcyc_core.backends import import_keras
keras = import_keras()
inputs = keras.Input((32, 32, 3))
hidden = keras.layers.GlobalAveragePooling2D()(inputs)
keras.Model(inputs, keras.layers.Dense(5, bias_initializer="ones")(hidden)).save(sys.argv[1])
"""


@pytest.mark.slow  # TensorFlow conversions or a whole deploy cycle
def test_upload_model_refuses_a_keras_model_without_a_softmax_and_tensorflow_stays_quiet(aws_on_moto, bucket, tmp_path, isolated_cache,
                                                                                        tensorflow_available):
    """A 5-unit Dense with a linear last layer has the right shape but its scores are not probabilities."""
    import subprocess
    import sys

    linear = tmp_path / "linear.h5"
    made = subprocess.run([sys.executable, "-c", LINEAR_MODEL, str(linear)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    result = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "upload-model", "--json", "--bucket", bucket, str(linear)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == ExitStatus.BAD_INPUT, result.stderr
    assert "does not behave as a softmax model" in result.stderr and "sum to" in result.stderr
    assert result.stdout == ""
    for noise in ("oneDNN", "absl", "Saved artifact", "TensorSpec"):
        assert noise not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) <= 4, result.stderr
    assert bucket not in [b["Name"] for b in aws_on_moto.client("s3").list_buckets()["Buckets"]]
