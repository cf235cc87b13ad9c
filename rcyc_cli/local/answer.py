"""What a local run answers: the function's response, where it ran, and the emulator's figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..invocation import Invocation


@dataclass(frozen=True)
class RunInfo:
    """Where a run ran: invoke-local --json's "invocation", before the emulator's figures."""

    runtime: str  # process | docker, with " (warm stack)" on the stack
    bucket: str
    s3_endpoint: str
    model: dict  # the model that answered (name, version, sha256) and its layout when it is the one asked for
    prefix: str | None = None  # the run's own prefix on a shared bucket

    def to_json(self) -> dict:
        return {name: value for name, value in vars(self).items() if value is not None or name != "prefix"}

    @classmethod
    def from_json(cls, data: dict) -> RunInfo:
        return cls(data["runtime"], data["bucket"], data["s3_endpoint"], data["model"], data.get("prefix"))


@dataclass
class LocalRun:
    response: dict
    info: RunInfo
    invocations: list[Invocation]
    seconds: float
    keys: list[str] = field(default_factory=list)  # each image's key, in the order given
    files: dict[str, str] = field(default_factory=dict)  # s3://bucket/key -> the image's path as given (for titles)

    def figures(self) -> dict:
        """The emulator's figures: the report of a single invocation, or a summary over many."""
        if len(self.invocations) == 1:
            only = self.invocations[0]
            return {"report": only.report.to_dict(), "wall_ms": round(only.wall_ms, 2)}
        done = len(self.response["results"]) + len(self.response["errors"])
        durations = sorted(i.report.duration_ms for i in self.invocations if i.report.duration_ms is not None)
        return {"invocations": len(self.invocations), "cold_starts": sum(i.report.cold for i in self.invocations),
                "seconds": round(self.seconds, 3), "images_per_second": round(done / self.seconds, 2) if self.seconds else None,
                "duration_ms_p50": durations[len(durations) // 2] if durations else None,
                "peak_mb": max((i.report.peak_mb for i in self.invocations if i.report.peak_mb is not None), default=None)}


def answered_by(response, manifest) -> dict:
    """The model that actually answered (the response says), with the layout when it is the one asked for."""
    answered = response.get("model") if isinstance(response, dict) else None
    same = (answered or {}).get("sha256") in (None, manifest.sha256)
    return {**(answered or manifest.summary()), "layout": manifest.layout if same else None}
