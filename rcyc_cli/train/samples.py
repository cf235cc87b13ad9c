"""Training data: the labelled images scanned (hashed, exact duplicates dropped, labels checked) and
split (stratified, seeded, by content hash). See ``pipeline`` for the stages."""


from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


from rcyc_core.errors import InputError
from rcyc_core.labels import LABELS
from rcyc_core.manifest import sha256_file
from rcyc_core.preprocess import InputSpec

from . import backbone

Progress = Callable[[str, int, int, dict], None]


SPEC = InputSpec(backbone.INPUT_SIZE, backbone.INPUT_SIZE)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    sha256: str


def _noop(stage: str, done: int, total: int, info: dict) -> None:
    pass


def default_cache_root() -> Path:
    from rcyc_cli.paths import cache_dir

    return cache_dir() / "train"


def _pairs(images: Iterable[Any]) -> list[tuple[Path, str]]:
    """(path, label) pairs from tuples or from objects with ``.path`` and ``.label`` (dataset entries)."""
    out = []
    for item in images:
        if hasattr(item, "path") and hasattr(item, "label"):
            path, label = item.path, item.label
        else:
            path, label = item
        out.append((Path(path), str(label)))
    return out


def scan(images: Iterable[Any], progress: Progress = _noop) -> tuple[list[Sample], list[dict], int]:
    """(samples, skipped, duplicates): hash each image, refuse unknown labels, drop duplicate content.

    ``images`` as :func:`train` takes them. The same bytes under two paths would otherwise land in both
    splits (the held-out score would then measure memory); the same bytes under two labels is an error.
    """
    pairs = _pairs(images)
    unknown = sorted({label for _, label in pairs if label not in LABELS})
    if unknown:
        raise InputError(f"unknown label(s) {', '.join(unknown)}", hint=f"Labels are: {', '.join(LABELS)}.")
    samples: list[Sample] = []
    seen: dict[str, Sample] = {}
    skipped: list[dict] = []
    duplicates = 0
    for i, (path, label) in enumerate(pairs):
        if not path.is_file():
            skipped.append({"path": str(path), "reason": "not a regular file"})
        else:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                skipped.append({"path": str(path), "reason": f"unreadable ({exc.strerror or exc})"})
            else:
                first = seen.get(digest)
                if first is None:
                    seen[digest] = sample = Sample(path, label, digest)
                    samples.append(sample)
                elif first.label != label:
                    raise InputError(
                        f"{path} ({label}) and {first.path} ({first.label}) are the same image with two labels",
                        hint="Remove one of them, or fix its label folder.",
                    )
                else:
                    duplicates += 1
        progress("scan", i + 1, len(pairs), {})
    return samples, skipped, duplicates


def split(samples: Sequence[Sample], val_split: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, held out): per label, the ``round(n * val_split)`` images (at least one when the label
    has two or more and val_split > 0) whose keyed hash sha256(seed, content hash) is lowest.

    Stratified and seeded, independent of file names and order, and stable as photos are added.
    """
    if not 0.0 <= val_split < 1.0:
        raise InputError(f"the held-out fraction must be in [0, 1), not {val_split}", hint="Use e.g. --val-split 0.2.")
    train, held = [], []
    counts = {label: [s for s in samples if s.label == label] for label in LABELS}
    empty = [label for label, group in counts.items() if not group]
    if empty:
        raise InputError(
            f"no usable images for {', '.join(empty)} "
            f"({', '.join(f'{label}: {len(group)}' for label, group in counts.items())})",
            hint="Every one of the five labels needs photos; see docs/train.md for how many.",
        )
    for label, group in counts.items():
        ranked = sorted(group, key=lambda s: hashlib.sha256(f"{seed}:{s.sha256}".encode()).hexdigest())
        n_val = round(len(ranked) * val_split)
        if val_split > 0 and len(ranked) >= 2:
            n_val = min(max(n_val, 1), len(ranked) - 1)
        held += ranked[:n_val]
        train += ranked[n_val:]
    return train, held

