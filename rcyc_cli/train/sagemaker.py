"""SageMaker's training-container contract around the training core of ``rcyc train``.

The training image runs ``python3 -m rcyc_cli.train.sagemaker train`` (SageMaker starts a training image as
``docker run IMAGE train``). What SageMaker (and ``rcyc train --local-mode``) provides and expects, under
the root ``/opt/ml`` (``--root`` or ``RCYC_SAGEMAKER_ROOT`` elsewhere, e.g. in tests):

- ``input/data/<channel>/``: the labelled photos, ``<label>/<file>`` as ``rcyc train DATA_DIR`` reads them.
  The channel is ``training`` (the SDK's default name), or the only channel there is.
- ``input/config/hyperparameters.json``: every value arrives as a string (the Python SDK JSON-encodes
  them, the console and boto3 callers often do not): each is decoded as JSON if it parses, then coerced and
  checked. Keys: epochs, seed, val_split, fine_tune, fine_tune_epochs, name, version. An unknown key fails
  the job (a typo would otherwise train with a default); ``sagemaker_*`` keys the SDK adds are ignored.
- ``model/``: the exported model, a manifest directory exactly as ``rcyc train --out`` writes it (SageMaker
  uploads it as ``model.tar.gz``). Written only by a complete run.
- ``output/failure``: the reason, on failure (SageMaker shows it as the job's FailureReason), and a non-zero
  exit status. ``output/data/training.json``: the training summary (SageMaker uploads ``output.tar.gz``).
- ``checkpoints/``: the training cache (converted backbone + content-addressed features). SageMaker syncs
  it with S3 for managed spot; a restarted job finds every feature already computed and starts from there.

Metrics are printed one line per epoch in the shape :data:`METRIC_DEFINITIONS` reads. Imports nothing
of the CLI's (no click, rich or boto3): the image holds only the training core's dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from rcyc_core.errors import InputError, RcycError

from ..defaults import DEFAULT_EPOCHS, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_MODEL_NAME, DEFAULT_SEED, DEFAULT_VAL_SPLIT

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "RCYC_SAGEMAKER_ROOT"
DEFAULT_CHANNEL = "training"
METRIC_PREFIX = "rcyc-metric"

# For CreateTrainingJob's AlgorithmSpecification.MetricDefinitions: read from the lines metric_line() prints.
# " loss=" (with its space) does not match inside "val_loss=".
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": rf"{METRIC_PREFIX} .* loss={_NUMBER}"},
    {"Name": "train:accuracy", "Regex": rf"{METRIC_PREFIX} .* accuracy={_NUMBER}"},
    {"Name": "validation:loss", "Regex": rf"{METRIC_PREFIX} .*val_loss={_NUMBER}"},
    {"Name": "validation:accuracy", "Regex": rf"{METRIC_PREFIX} .*val_accuracy={_NUMBER}"},
]


@dataclass(frozen=True)
class Layout:
    """The /opt/ml tree (or its stand-in under another root)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "input" / "data"

    @property
    def config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.config / "hyperparameters.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"


# The tree as the training container sees it (also what --local-mode mounts the host's folders onto).
IN_CONTAINER = Layout(Path(DEFAULT_ROOT))
CHECKPOINTS_LOCAL = str(IN_CONTAINER.checkpoints)  # CheckpointConfig.LocalPath: SageMaker syncs it with S3


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = DEFAULT_EPOCHS
    seed: int = DEFAULT_SEED
    val_split: float = DEFAULT_VAL_SPLIT
    fine_tune: bool = False
    fine_tune_epochs: int = DEFAULT_FINE_TUNE_EPOCHS
    name: str = DEFAULT_MODEL_NAME
    version: str | None = None
    channel: str | None = None


def _shown(value) -> str:
    """A value for an error line: its repr, cut short (a hostile value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(key: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise InputError(f"hyperparameter {key}={_shown(value)} is not a whole number")
    if not low <= int(value) <= high:
        raise InputError(f"hyperparameter {key}={_shown(value)} is out of range ({low}..{high})")
    return int(value)


def _float(key: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"hyperparameter {key}={_shown(value)} is not a number")
    if not low <= float(value) <= high:
        raise InputError(f"hyperparameter {key}={_shown(value)} is out of range ({low}..{high})")
    return float(value)


def _bool(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    if value in (0, 1):
        return bool(value)
    raise InputError(f"hyperparameter {key}={_shown(value)} is not true or false")


def _segment(key: str, value) -> str:
    import re

    text = value if isinstance(value, str) else json.dumps(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", text):
        raise InputError(f"hyperparameter {key}={_shown(text)} must be letters, digits, '.', '_' or '-' (at most 128)")
    return text


# key -> coercion of the decoded value (the same ranges as `rcyc train`'s options)
_COERCE = {
    "epochs": lambda v: _int("epochs", v, 1, 1000),
    "seed": lambda v: _int("seed", v, 0, 2**32 - 1),
    "val_split": lambda v: _float("val_split", v, 0.05, 0.5),
    "fine_tune": lambda v: _bool("fine_tune", v),
    "fine_tune_epochs": lambda v: _int("fine_tune_epochs", v, 1, 100),
    "name": lambda v: _segment("name", v),  # a text key: see _TEXT
    "version": lambda v: _segment("version", v),
    "channel": lambda v: _segment("channel", v),
}


# Keys whose values are text: a string is taken as written, never decoded as a number ("1.10" stays "1.10",
# not 1.1; "1e3" stays "1e3", not 1000.0); only a JSON-quoted string (the SDK's encoding) is unquoted.
_TEXT = ("name", "version", "channel")


def _json(text: str, what: str):
    """json.loads, with a nesting too deep for the parser (a hostile file) as bad input rather than a crash."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to be read") from None


def parse_hyperparameters(raw: dict) -> Hyperparameters:
    """SageMaker's hyperparameters (string -> string) as typed, checked values. Each string is decoded as
    JSON when it parses ("3" -> 3, "true" -> True, "\\"name\\"" -> "name"), else kept as the string."""
    if not isinstance(raw, dict):
        raise InputError("hyperparameters.json is not a JSON object")
    values = {}
    for key, value in raw.items():
        if key.startswith("sagemaker_"):
            continue
        if key not in _COERCE:
            raise InputError(f"unknown hyperparameter {key!r}", hint=f"Known: {', '.join(sorted(_COERCE))}.")
        if isinstance(value, str) and (key not in _TEXT or value.startswith('"')):
            try:
                value = _json(value, f"hyperparameter {key}")
            except ValueError:
                pass
        values[key] = _COERCE[key](value)
    return Hyperparameters(**values)


def read_hyperparameters(layout: Layout) -> Hyperparameters:
    try:
        text = layout.hyperparameters.read_text()
    except FileNotFoundError:
        return Hyperparameters()  # SageMaker writes {} when none are given; a missing file means the same
    except OSError as exc:
        raise InputError(f"cannot read {layout.hyperparameters}: {exc.strerror or exc}") from None
    try:
        raw = _json(text, str(layout.hyperparameters))
    except ValueError as exc:
        raise InputError(f"{layout.hyperparameters} is not JSON: {exc}") from None
    return parse_hyperparameters(raw)


def channel_dir(layout: Layout, wanted: str | None) -> Path:
    """The data channel's directory: the one named, else ``training``, else the only one there is."""
    try:
        channels = sorted(p.name for p in layout.data.iterdir() if p.is_dir())
    except OSError:
        channels = []
    name = wanted or (DEFAULT_CHANNEL if DEFAULT_CHANNEL in channels or len(channels) != 1 else channels[0])
    if name not in channels:
        raise InputError(f"no data channel {name!r} in {layout.data} (channels: {', '.join(channels) or 'none'})",
                         hint="Give the job one channel named 'training' whose S3 prefix holds <label>/<photo> folders.")
    return layout.data / name


def metric_line(stage: str, epoch: int, epochs: int, info: dict) -> str:
    parts = [f"{METRIC_PREFIX} stage={stage} epoch={epoch}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if info.get(key) is not None:
            parts.append(f"{key}={info[key]:.6f}")
    return " ".join(parts)


def _progress(out):
    last = {}

    def progress(stage: str, done: int, total: int, info: dict) -> None:
        if stage in ("head", "fine_tune") and done:
            print(metric_line(stage, done, total, info), file=out, flush=True)
        elif stage != last.get("stage") or done == total or done % 10 == 0:
            print(f"rcyc {stage} {done}/{total}", file=out, flush=True)
        last["stage"] = stage

    return progress


def run(layout: Layout, out=None) -> dict:
    """One training job: read the channel and hyperparameters, train with the core of ``rcyc train``,
    and publish the model directory into ``layout.model``. Raises RcycError on bad input."""
    from ..config import eval_label_mapping
    from ..dataset import load_dataset
    from .pipeline import train

    out = out or sys.stdout
    hp = read_hyperparameters(layout)
    data = channel_dir(layout, hp.channel)
    dataset = load_dataset(data, eval_label_mapping())
    if layout.model.exists() and any(layout.model.iterdir()):
        raise InputError(f"{layout.model} is not empty; a job's model directory is never overwritten")
    print(f"rcyc training on {len(dataset.images)} images of {data} with {hp}", file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="rcyc-sm-") as tmp:
        staged = Path(tmp) / "model"
        summary = train(dataset.images, staged, name=hp.name, version=hp.version, seed=hp.seed, epochs=hp.epochs,
                        fine_tune=hp.fine_tune, fine_tune_epochs=hp.fine_tune_epochs, val_split=hp.val_split,
                        progress=_progress(out), cache_root=layout.checkpoints)
        if summary["interrupted"]:
            raise KeyboardInterrupt  # stopped mid-epochs: not a complete job, nothing is published
        # /opt/ml/model is often a mount point (rename onto it fails): copy the finished files in.
        layout.model.mkdir(parents=True, exist_ok=True)
        for file in sorted(staged.iterdir()):
            shutil.copy2(file, layout.model / file.name)
    data_out = layout.output / "data"
    data_out.mkdir(parents=True, exist_ok=True)
    (data_out / "training.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    features = summary["features"]
    print(f"rcyc features computed={features['computed']} from_checkpoints={features['cached']}", file=out, flush=True)
    if summary["val_accuracy"] is not None:
        print(f"{METRIC_PREFIX} stage=final val_accuracy={summary['val_accuracy']:.6f}", file=out, flush=True)
    manifest = summary["manifest"]
    print(f"rcyc model {manifest['name']} {manifest['version']} written to {layout.model}", file=out, flush=True)
    return summary


def _fail(layout: Layout, reason: str, status: int) -> int:
    print(f"rcyc training failed: {reason}", file=sys.stderr, flush=True)
    try:
        layout.output.mkdir(parents=True, exist_ok=True)
        # SageMaker keeps the first 1024 bytes of the file (not characters): cut on a character boundary.
        layout.failure.write_bytes((reason + "\n").encode()[:1024].decode(errors="ignore").encode())
    except OSError as exc:
        print(f"cannot write {layout.failure}: {exc}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="rcyc-train-container", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["train"], help="SageMaker starts training images with 'train'")
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV, DEFAULT_ROOT), help="the /opt/ml tree")
    args = parser.parse_args(argv)
    layout = Layout(Path(args.root))

    def stop(signum, frame):  # SageMaker stops a job (and a spot interruption ends it) with SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        run(layout)
    except RcycError as exc:
        from ..exit_status import for_error

        return _fail(layout, exc.message + (f" ({exc.hint})" if exc.hint else ""), int(for_error(exc)))
    except KeyboardInterrupt:
        return _fail(layout, "stopped (SIGTERM or Ctrl-C) before the model was complete; the checkpoints are kept", 143)
    except Exception:  # a bug: the traceback goes to the log, its last line to the failure reason
        traceback.print_exc()
        return _fail(layout, "internal error: " + traceback.format_exc().strip().splitlines()[-1], 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
