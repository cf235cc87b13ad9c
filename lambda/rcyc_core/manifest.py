"""The model manifest: what a model is (layout, labels, input) and which files, with which sha256, make it.

rcyc writes it beside the model files; the function and ``rcyc predict`` read it. Layouts:

- ``softmax``: one network, output (N, 5) in LABELS order.
- ``one-vs-rest``: five binary networks, one per label in LABELS order, each with output (N, 2) where
  column 1 means "this is the class" (the Portland State layout, ``model_0_prime.h5`` ... ``model_4_prime.h5``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError
from .labels import LABELS
from .spec import InputSpec

MANIFEST_NAME = "manifest.json"
SCHEMA = 1
LAYOUTS = ("softmax", "one-vs-rest")
FORMATS = ("h5", "tflite")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
PSU_NAMES = tuple(f"model_{i}_prime.h5" for i in range(len(LABELS)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileRef:
    path: str  # relative to the manifest's directory (or S3 prefix); never absolute, never ".."
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class Member:
    """One network of the model: the .h5 it came from and the .tflite converted from it."""

    label: str | None  # the class it answers for (one-vs-rest), None for a softmax network
    files: dict[str, FileRef] = field(default_factory=dict)  # format -> file

    def to_dict(self) -> dict:
        return {"label": self.label, **{fmt: ref.to_dict() for fmt, ref in sorted(self.files.items())}}


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    layout: str
    input: InputSpec
    members: tuple[Member, ...]
    labels: tuple[str, ...] = LABELS
    # What a model trained by rcyc saw (fingerprints of its images, data folder name, seed, backbone):
    # for rcyc eval's leakage check; the function ignores it. Part of the identity (the sha256) like the rest.
    provenance: dict | None = field(default=None, hash=False)

    def files(self, fmt: str) -> list[FileRef]:
        """The files of one format, in member order; ModelError if any member lacks it."""
        missing = [m.label or "model" for m in self.members if fmt not in m.files]
        if missing:
            raise ModelError(
                f"model {self.name} {self.version} has no .{fmt} file for {', '.join(missing)}",
                hint="Repackage it with rcyc (it converts .h5 to .tflite), or use --backend keras.",
            )
        return [m.files[fmt] for m in self.members]

    def has(self, fmt: str) -> bool:
        return all(fmt in m.files for m in self.members)

    @property
    def sha256(self) -> str:
        """Identity of the whole model: the hash of its canonical manifest text."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def summary(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "layout": self.layout,
            "input": self.input.to_dict(),
            "members": [m.to_dict() for m in self.members],
            **({"provenance": self.provenance} if self.provenance is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: object, source: str = "manifest") -> "Manifest":
        try:
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise ValueError(f"not an rcyc manifest (schema {SCHEMA})")
            labels = tuple(data["labels"])
            if labels != LABELS:
                raise ValueError(f"labels {list(labels)} differ from {list(LABELS)}")
            layout = data["layout"]
            if layout not in LAYOUTS:
                raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
            members = []
            for raw in data["members"]:
                files = {}
                for fmt in FORMATS:
                    if fmt in raw:
                        ref = FileRef(str(raw[fmt]["path"]), str(raw[fmt]["sha256"]))
                        _check_relative(ref.path)
                        if not SHA256_RE.fullmatch(ref.sha256):
                            raise ValueError(f"sha256 of {ref.path!r} is not 64 hex digits")
                        files[fmt] = ref
                members.append(Member(raw.get("label"), files))
            expected = 1 if layout == "softmax" else len(LABELS)
            if len(members) != expected:
                raise ValueError(f"layout {layout} needs {expected} member(s), found {len(members)}")
            if layout == "one-vs-rest" and [m.label for m in members] != list(LABELS):
                raise ValueError("one-vs-rest members must be in label order")
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                layout=layout,
                input=InputSpec.from_dict(data["input"]),
                members=tuple(members),
                labels=labels,
                provenance=data["provenance"] if isinstance(data.get("provenance"), dict) else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"{source} is not a valid model manifest: {exc}",
                hint="Write manifests with rcyc (upload-model / predict --model on the .h5 files).",
            ) from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest") -> "Manifest":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelError(f"{source} is not JSON: {exc}", hint="Rewrite it with rcyc.") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, directory: Path) -> "Manifest":
        path = Path(directory) / MANIFEST_NAME
        return cls.from_json(path.read_bytes(), source=str(path))

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    def verify_local(self, directory: Path, fmt: str) -> list[Path]:
        """Paths of one format's files under ``directory``, each checked against its sha256."""
        paths = []
        for ref in self.files(fmt):
            path = Path(directory) / ref.path
            if not path.is_file():
                raise ModelError(f"{path} is missing", hint="The manifest names a file that is not there.")
            actual = sha256_file(path)
            if actual != ref.sha256:
                raise ModelError(
                    f"{path} has sha256 {actual[:12]}…, the manifest says {ref.sha256[:12]}…",
                    kind="ModelIntegrityError",
                    hint="The file changed after the manifest was written: repackage the model.",
                )
            paths.append(path)
        return paths


def _check_relative(path: str) -> None:
    parts = Path(path).parts
    if not parts or path.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"file path {path!r} must be relative and inside the model directory")
