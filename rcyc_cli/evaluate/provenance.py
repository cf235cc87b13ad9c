"""What a trained model saw, and which evaluated images it saw (train/test leakage).

``rcyc train`` records in the model's manifest (``provenance``) a fingerprint of every image it trained on
and every image it held out: the sha256 of the file's bytes and a 64-bit perceptual hash (pHash) of its
picture, with the data folder's name, the seed and the backbone's version. ``rcyc eval`` fingerprints the
images it evaluates and matches them: the same bytes (``exact``) or the same picture re-encoded, resized
or recompressed (``near``: pHash within :data:`NEAR_BITS` bits).

The pHash: the image through rcyc's one preprocessing (upright RGB, transparent -> white) at 32x32, its
luma, a 2-D DCT-II, the 8x8 lowest frequencies, each bit "above their median". Measured on the fixture
drawings: re-encoding as JPEG quality 60 at 50-200% size moves at most 4 bits, two different drawings
differ by at least 18. It is written here on numpy rather than taken from ``imagehash`` because that
package needs scipy and PyWavelets (about 50 MB more), and this check must run on the light install.
An almost flat picture (a blank or one-pixel image) has no pHash to speak of: it is matched by sha256 only.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

SCHEMA = 1
HASH = "dct-phash-64"
NEAR_BITS = 8
"""Hamming distance (of 64 bits) up to which two pictures count as the same photo."""
_SIDE = 32
_LOW = 8
_FLAT = 1.0 / 255  # luma standard deviation below which a picture is "flat" (no pHash)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    k = np.arange(_SIDE)
    return np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * _SIDE))


def phash(data: bytes) -> str | None:
    """The 64-bit perceptual hash of an image's bytes as 16 hex digits; ``None`` for a flat picture.
    Raises :class:`rcyc_core.errors.ImageError` when the bytes are not a readable image."""
    from rcyc_core.preprocess import InputSpec, preprocess

    rgb = preprocess(data, InputSpec(_SIDE, _SIDE)).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    if luma.std() < _FLAT:
        return None
    matrix = _dct_matrix()
    low = (matrix @ luma @ matrix.T)[:_LOW, :_LOW].ravel()
    bits = low > np.median(low)
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def fingerprint(path: Path) -> tuple[str, str | None]:
    """(sha256 of the file, its pHash or None). Raises OSError / ImageError for unreadable files."""
    import hashlib

    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), _phash_or_none(data)


def _phash_or_none(data: bytes) -> str | None:
    from rcyc_core.errors import ImageError

    try:
        return phash(data)
    except ImageError:  # an undecodable file still has its sha256
        return None


def record(images: Iterable[tuple[Path, str, str | None]], data_dir: Path | str, seed: int, backbone: dict) -> dict:
    """The manifest's ``provenance`` for ``(path, split, sha256 or None)`` triples (split ``train`` or
    ``held_out``). Only fingerprints are kept, never paths: a model can be shared without its folder's names."""
    entries = []
    for path, split, digest in images:
        if digest is None:
            digest, hashed = fingerprint(path)
        else:
            hashed = _phash_or_none(Path(path).read_bytes())
        entries.append({"sha256": digest, "phash": hashed, "split": split})
    entries.sort(key=lambda e: (e["split"], e["sha256"]))
    return {"schema": SCHEMA, "data_dir": Path(data_dir).name, "seed": seed, "backbone": backbone,
            "hash": HASH, "near_bits": NEAR_BITS, "images": entries}


def load(model_dir: Path | None) -> dict | None:
    """The provenance recorded in a model directory's manifest, or None (not trained by rcyc, or no manifest).
    A manifest is only as trustworthy as whoever wrote it: the records are checked one by one (:func:`clean`),
    and those that are not fingerprints are dropped and counted in ``invalid``, never trusted or crashed on."""
    from rcyc_core.manifest import MANIFEST_NAME, Manifest

    if model_dir is None or not (Path(model_dir) / MANIFEST_NAME).is_file():
        return None
    try:
        provenance = Manifest.load(Path(model_dir)).provenance
    except Exception:  # noqa: BLE001 - the model's own loader reports a bad manifest with its hint
        return None
    return clean(provenance)


_SPLITS = ("train", "held_out")


def _fingerprint_ok(entry: object) -> bool:
    if not isinstance(entry, dict) or entry.get("split") not in _SPLITS:
        return False
    digest, hashed = entry.get("sha256"), entry.get("phash")
    return (isinstance(digest, str) and len(digest) == 64 and _is_hex(digest)
            and (hashed is None or (isinstance(hashed, str) and len(hashed) == 16 and _is_hex(hashed))))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())


def clean(provenance: object) -> dict | None:
    """``provenance`` (as read from a manifest) with only well-formed image records, plus ``invalid``: how many
    were dropped (a malformed ``images`` counts as one). None when it is not this schema's provenance at all."""
    if not isinstance(provenance, dict) or provenance.get("schema") != SCHEMA:
        return None
    raw = provenance.get("images")
    if not isinstance(raw, list):
        return {**provenance, "images": [], "invalid": 1}
    kept = [{"sha256": e["sha256"].lower(), "phash": e.get("phash"), "split": e["split"]} for e in raw if _fingerprint_ok(e)]
    return {**provenance, "images": kept, "invalid": len(raw) - len(kept)}


def _as_int(value: str | None) -> int | None:
    try:
        return int(value, 16) if value else None
    except (TypeError, ValueError):
        return None


def match(provenances: Iterable[dict | None], images: Iterable[tuple[str, Path]]) -> dict[str, dict]:
    """Which of ``(name, path)`` images a model saw: ``{name: {"match": "exact" | "near", "split":
    "train" | "held_out", "distance": bits}}`` for the matched ones only. A training match wins over a
    held-out one, an exact one over a near one."""
    records = [e for p in map(clean, provenances) if p for e in p["images"]]
    if not records:
        return {}
    by_sha = {}
    for entry in records:
        if by_sha.get(entry.get("sha256"), {}).get("split") != "train":
            by_sha[entry.get("sha256")] = entry
    hashed = [(h, e["split"]) for e in records if (h := _as_int(e.get("phash"))) is not None]
    values = np.array([h for h, _ in hashed], dtype=np.uint64)
    is_train = np.array([s == "train" for _, s in hashed], dtype=bool)
    found: dict[str, dict] = {}
    for name, path in images:
        try:
            digest, hashed_value = fingerprint(path)
        except OSError:
            continue
        exact = by_sha.get(digest)
        if exact is not None and exact.get("split") == "train":
            found[name] = {"match": "exact", "split": "train", "distance": 0}
            continue
        near = None
        value = _as_int(hashed_value)
        if value is not None and len(values):
            distance = np.bitwise_count(values ^ np.uint64(value))
            close = distance <= NEAR_BITS
            if close.any():
                train_close = close & is_train
                pick = train_close if train_close.any() else close
                best = int(np.argmin(np.where(pick, distance, 65)))
                near = {"match": "near", "split": "train" if is_train[best] else "held_out", "distance": int(distance[best])}
        if near is not None and near["split"] == "train":
            found[name] = near
        elif exact is not None:
            found[name] = {"match": "exact", "split": exact.get("split", "held_out"), "distance": 0}
        elif near is not None:
            found[name] = near
    return found
