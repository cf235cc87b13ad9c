"""A loaded model: preprocess a batch of images, run the backend once, build result entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import backends
from .errors import ImageError
from .manifest import Manifest
from .preprocess import DEFAULT_MAX_PIXELS, preprocess
from .results import error_entry, result_entry

CHUNK_RECORDS = 32  # images fetched, decoded and predicted together (function and predict); bounds memory


@dataclass(frozen=True)
class Item:
    """One image to classify: where it came from (for the result) and its bytes."""

    record: int
    bucket: str | None
    key: str | None
    data: bytes


class Classifier:
    def __init__(self, manifest: Manifest, backend: backends.Backend):
        self.manifest = manifest
        self.backend = backend

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        raw = self.backend.run(batch)
        return backends.scores(self.manifest.layout, raw), raw

    def classify(self, items: Sequence[Item], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[dict], list[dict]]:
        """(results, errors) for these items; an image that fails never costs the others their result."""
        arrays, good, errors = [], [], []
        for item in items:
            try:
                arrays.append(preprocess(item.data, self.manifest.input, max_pixels))
                good.append(item)
            except ImageError as exc:
                errors.append(error_entry(item.record, item.bucket, item.key, exc.kind, exc.message))
        results = []
        if good:
            # One batch for every record: one backend call per member network instead of one per image.
            scores, raw = self.run(np.stack(arrays))
            for row, item in enumerate(good):
                member_rows = [out[row] for out in raw]
                results.append(result_entry(item.record, item.bucket, item.key, scores[row], member_rows))
        return results, errors
