"""The training image on this side of the engine: its build context, its build, and ``--local-mode``, which
runs it exactly as SageMaker does (``docker run IMAGE train`` with /opt/ml/input/config,
/opt/ml/input/data/training, /opt/ml/model, /opt/ml/output and /opt/ml/checkpoints mounted), as the
SageMaker Python SDK's local mode does, so the container contract is exercised here without AWS.

The container gets no network at all (``network_mode="none"``): training needs none, so a job also runs
with SageMaker's network isolation.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rcyc_core.errors import InputError

from ..defaults import DEFAULT_TRAIN_BASE_IMAGE, DEFAULT_TRAIN_REPOSITORY
from ..paths import REPO_ROOT
from ..reporting import SILENT, Reporter
from .sagemaker import DEFAULT_CHANNEL, IN_CONTAINER, Layout

DOCKERFILE = "Dockerfile.train"
LOCAL_TAG = f"{DEFAULT_TRAIN_REPOSITORY}:local"
CHANNEL = DEFAULT_CHANNEL


class TrainingFailed(InputError):
    """The training container exited non-zero; its /opt/ml/output/failure is the message."""

    kind = "TrainingFailed"


def context_files(root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(file, name in context) for the training image: its Dockerfile (as ``Dockerfile``), the training
    core's code (rcyc_cli, rcyc_core) and the backbone's reference photos; no tests, no other fixtures."""
    files = [(root / DOCKERFILE, "Dockerfile"), (root / ".build" / "README", ".build/README")]
    for folder in ("rcyc_cli", "lambda/rcyc_core"):
        base = root / folder
        files += [(p, f"{folder}/{p.relative_to(base).as_posix()}") for p in sorted(base.rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".j2")]
    files += [(p, f"fixtures/train/{p.name}") for p in sorted((root / "fixtures" / "train").iterdir()) if p.is_file()]
    return files


def build_context(ca_bundle: Path | None = None, root: Path = REPO_ROOT) -> io.BytesIO:
    buffer = io.BytesIO()
    entries = context_files(root)
    if ca_bundle is not None:
        if not Path(ca_bundle).is_file():
            raise InputError(f"the CA bundle {ca_bundle} does not exist", hint="Give a PEM file, e.g. /etc/ssl/certs/ca-certificates.crt.")
        entries.append((Path(ca_bundle), ".build/ca-bundle.crt"))
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, name in entries:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: same files, same context
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build(client, tag: str = LOCAL_TAG, base_image: str | None = None, ca_bundle: Path | None = None,
          platform: str | None = None, report: Reporter = SILENT):
    """Build the training image (classic builder, host network for pip); a cache hit when nothing changed."""
    from .. import image as images
    from ..paths import require_checkout

    require_checkout()
    report.status(f"building the training image {tag}")
    return images.build(client, tag, base_image=base_image or DEFAULT_TRAIN_BASE_IMAGE, platform=platform, ca_bundle=ca_bundle,
                        on_step=report.build_step, context=build_context(ca_bundle))


def hyperparameters_json(values: dict) -> str:
    """As SageMaker writes hyperparameters.json: every value a string."""
    return json.dumps({key: json.dumps(v) if isinstance(v, bool) else str(v) for key, v in values.items() if v is not None},
                      indent=2, sort_keys=True)


@dataclass
class Staging:
    """A job's /opt/ml on this machine: config, model and output are fresh; data and checkpoints are the
    user's (data mounted read-only)."""

    root: Path
    data: Path
    checkpoints: Path

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @property
    def model(self) -> Path:
        return self.layout.model

    @property
    def output(self) -> Path:
        return self.layout.output

    def volumes(self) -> dict:
        inside = IN_CONTAINER
        return {str(self.layout.config): {"bind": str(inside.config), "mode": "ro"},
                str(self.data.resolve()): {"bind": str(inside.data / CHANNEL), "mode": "ro"},
                str(self.model): {"bind": str(inside.model), "mode": "rw"},
                str(self.output): {"bind": str(inside.output), "mode": "rw"},
                str(self.checkpoints.resolve()): {"bind": str(inside.checkpoints), "mode": "rw"}}


def stage(data_dir: Path, hyperparameters: dict, checkpoints: Path) -> Staging:
    """Write the job's /opt/ml/input/config as SageMaker does and make the empty model and output folders."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir} is not a directory", hint="Give a folder with one sub-folder per label.")
    checkpoints = Path(checkpoints)
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"the checkpoint directory {checkpoints} cannot be made ({exc.strerror or exc})",
                         hint="Give --checkpoint-dir a folder (or a path where one can be made).") from None
    root = Path(tempfile.mkdtemp(prefix="rcyc-local-mode-"))
    config = Layout(root).config
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(hyperparameters_json(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {CHANNEL: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for folder in ("model", "output"):
        (root / folder).mkdir()
    return Staging(root, data_dir, checkpoints)


def start(client, image: str, staging: Staging):
    """The job's container, started (``docker run IMAGE train``) and not waited for. It carries the owner labels
    of rcyc's other containers, so one left by a ``kill -9`` of this process is removed by the next sweep."""
    from ..local.emulator import reaper
    from ..local.emulator.sandbox import owner_identity

    reaper.sweep_orphan_containers(client)
    labels = {"rcyc.role": "local-mode-training", "rcyc.owner": reaper.new_owner("train"),
              **{f"rcyc.{k.lower()}": v for k, v in owner_identity().items()}}
    return client.containers.run(
        image, ["train"], detach=True, network_mode="none", volumes=staging.volumes(),
        user=f"{os.getuid()}:{os.getgid()}", environment={"HOME": "/tmp"}, labels=labels,
    )


def run_local(client, image: str, data_dir: Path, out_dir: Path, hyperparameters: dict, checkpoints: Path,
              on_line: Callable[[str], None] = lambda line: None) -> dict:
    """Run one training job through the engine and publish its /opt/ml/model as ``out_dir`` (never over an
    existing model). Returns the job's training summary. TrainingFailed carries the job's failure reason."""
    from .pipeline import _check_target

    out_dir = Path(out_dir)
    _check_target(out_dir)
    staging = stage(data_dir, hyperparameters, checkpoints)
    container = None
    try:
        container = start(client, image, staging)
        for chunk in container.logs(stream=True, follow=True):
            for line in chunk.decode(errors="replace").splitlines():
                on_line(line)
        status = container.wait().get("StatusCode", 1)
        if status != 0:
            failure = staging.layout.failure
            reason = failure.read_text().strip() if failure.is_file() else "no /opt/ml/output/failure was written"
            raise TrainingFailed(f"the training job failed (exit {status}): {reason}",
                                 hint="The job's log is above; fix the data or the hyperparameters and run again.")
        summary = json.loads((staging.output / "data" / "training.json").read_text())
        _check_target(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
        try:
            shutil.copytree(staging.model, partial, dirs_exist_ok=True)
            os.replace(partial, out_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return summary
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:
                pass  # already gone with the engine: nothing left to stop
        shutil.rmtree(staging.root, ignore_errors=True)


def local_mode(data_dir: Path, out_dir: Path, hyperparameters: dict, image: str | None = None, base_image: str | None = None,
               ca_bundle: Path | None = None, checkpoints: Path | None = None, report: Reporter = SILENT) -> dict:
    """``rcyc train --local-mode``: build the training image (a cache hit when nothing changed) unless
    ``image`` is given, run one job through the engine, publish its model as ``out_dir``. The summary's
    held-out paths are mapped back from the container's channel to ``data_dir``."""
    import re

    from .. import image as images
    from .samples import default_cache_root

    from .pipeline import _check_target

    from ..config import eval_label_mapping
    from ..dataset import load_dataset

    # before the engine and the build (minutes): a taken --out or unusable photos are refused at once,
    # as the job itself would refuse them
    _check_target(Path(out_dir))
    load_dataset(Path(data_dir), eval_label_mapping())
    client = images.engine()
    if image is None:
        built = build(client, base_image=base_image, ca_bundle=ca_bundle, report=report)
        image, how = built.image_id, ("cache hit" if built.cache_hit else f"built in {built.seconds:.0f} s")
    else:
        how = "given"
    checkpoints = Path(checkpoints) if checkpoints is not None else default_cache_root()
    report.status(f"training in {image[:19]} ({how}); checkpoints in {checkpoints}")

    def on_line(line: str) -> None:
        match = re.match(r"rcyc(?:-metric stage=| )(\w+) (?:epoch=)?(\d+)/(\d+)", line)
        if match:
            report.stage(match[1], int(match[2]), int(match[3]))

    summary = run_local(client, image, data_dir, out_dir, hyperparameters, checkpoints, on_line)
    channel = f"{IN_CONTAINER.data / CHANNEL}/"
    summary["held_out_images"] = [(str(Path(data_dir) / p[len(channel):]) if p.startswith(channel) else p, label)
                                  for p, label in summary.get("held_out_images", [])]
    summary["out"] = str(out_dir)
    summary["image"] = {"id": image, "how": how}
    return summary
