"""What the function is, wherever it runs: ``rcyc deploy`` (Lambda), the warm stack and a one-shot
``invoke-local``. Kept light (no boto3, no docker): invoke-local's warm path builds one too."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .defaults import DEFAULT_BASE_IMAGE, DEFAULT_FLAVOR, DEFAULT_MEMORY, DEFAULT_RUNTIME, DEFAULT_TIMEOUT


@dataclass(frozen=True)
class FunctionSpec:
    """The image the function is built into (flavor, base image, CA bundle, architecture), its limits
    (memory, timeout) and, for local runs, how it runs (runtime, the emulator binary)."""

    flavor: str = DEFAULT_FLAVOR  # slim | keras
    base_image: str = DEFAULT_BASE_IMAGE
    ca_bundle: Path | None = None  # absolute: the same file whichever folder a later call runs in
    memory: int = DEFAULT_MEMORY  # MB
    timeout: int = DEFAULT_TIMEOUT  # seconds
    runtime: str = DEFAULT_RUNTIME  # local runs: auto | docker | process
    architecture: str | None = None  # x86_64 | arm64; None: the machine's (local) or the image's (deploy)
    rie: str | None = None  # local runs: the emulator binary (None: the installed one)

    def __post_init__(self):
        # Frozen, so normalised here once: no caller ever sees a None base image or a relative CA bundle.
        object.__setattr__(self, "base_image", self.base_image or DEFAULT_BASE_IMAGE)
        if self.ca_bundle is not None:
            object.__setattr__(self, "ca_bundle", Path(self.ca_bundle).resolve())
        if self.rie:  # absolute too: the emulator runs in its sandbox's folder, a stack compares it across folders
            object.__setattr__(self, "rie", str(Path(self.rie).expanduser().absolute()))

    def with_runtime(self, runtime: str) -> FunctionSpec:
        return replace(self, runtime=runtime)

    def accepts_runtime(self, concrete: str | None) -> bool:
        """Whether a function already running as ``concrete`` (docker or process) is this one: ``auto`` takes
        whichever runs (resolving it again would cost the warm path the Docker SDK and an engine round trip)."""
        return self.runtime == "auto" or self.runtime == concrete

    def to_json(self) -> dict:
        return {**asdict(self), "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None}

    @classmethod
    def from_json(cls, data: dict) -> FunctionSpec:
        """The spec a stack wrote (its state file, its command line); ValueError when a field has the wrong type."""
        given = {f.name: data[f.name] for f in fields(cls) if data.get(f.name) is not None}
        checked(given, {"flavor": str, "base_image": str, "ca_bundle": str, "memory": int, "timeout": int,
                        "runtime": str, "architecture": str, "rie": str})
        return cls(**given)


def checked(data: dict, kinds: dict[str, type | tuple[type, ...]]) -> dict:
    """``data`` when each of its fields named in ``kinds`` is None or of that kind (a bool is no number);
    ValueError naming the first that is not. A JSON file rcyc wrote can still be edited or damaged: its
    readers get the types they were promised, or a refusal, never an AttributeError deep inside."""
    for name, kind in kinds.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
            raise ValueError(f"{name} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return data
