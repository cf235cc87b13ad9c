"""A loaded model: preprocess a batch of images, run the backend once, build result entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import backends
from .errors import ImageError
from .manifest import Manifest
from .preprocess import DEFAULT_MAX_PIXELS, decoded_pixels, draft_size, preprocess
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

    def decoded_pixels(self, item: Item, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
        """The pixels ``prepare`` decodes ``item`` to, from its header alone (0: it refuses it undecoded)."""
        return decoded_pixels(item.data, max_pixels, draft_size(self.manifest.input))

    def prepare(self, item: Item, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | dict:
        """The model input for ``item``, or its error entry when the bytes are no usable image (any other
        failure raises: it is the batch's, not the record's)."""
        try:
            return preprocess(item.data, self.manifest.input, max_pixels)
        except ImageError as exc:
            return error_entry(item.record, item.bucket, item.key, exc.kind, exc.message)

    def classify(self, items: Sequence[Item], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[dict], list[dict]]:
        """(results, errors) for these items; an image that fails never costs the others their result."""
        return self.classify_prepared([(item, self.prepare(item, max_pixels)) for item in items])

    def classify_prepared(self, prepared: Sequence[tuple[Item, np.ndarray | dict]]) -> tuple[list[dict], list[dict]]:
        """(results, errors) for items ``prepare`` has made inputs (or error entries) of."""
        good = [(item, array) for item, array in prepared if not isinstance(array, dict)]
        errors = [array for _item, array in prepared if isinstance(array, dict)]
        results = []
        if good:
            # One batch for every record: one backend call per member network instead of one per image.
            scores, raw = self.run(np.stack([array for _item, array in good]))
            for row, (item, _array) in enumerate(good):
                member_rows = [out[row] for out in raw]
                results.append(result_entry(item.record, item.bucket, item.key, scores[row], member_rows))
        return results, errors
