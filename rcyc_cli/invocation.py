"""What one invocation of the function gives back, however it was run (emulator, warm stack, AWS Lambda):
the decoded reply, the emulator's REPORT figures, the wall time and the log lines."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from rcyc_core.errors import FunctionError


LOG_TAIL_BYTES = 4096  # what Lambda's LogType=Tail returns: the last 4 KB of the invocation's log


def log_tail_lines(log_result: str | None) -> list[str]:
    """The log lines of a ``LogResult`` / ``X-Amz-Log-Result`` (base64 of the last 4 KB: a first line cut in
    the middle is dropped)."""
    if not log_result:
        return []
    try:
        data = base64.b64decode(log_result)
    except (ValueError, binascii.Error):
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if len(data) >= LOG_TAIL_BYTES and lines else lines


@dataclass
class Report:
    """The emulator's figures for one invocation (its REPORT line, plus its INIT REPORT when cold)."""

    duration_ms: float | None = None
    billed_ms: float | None = None
    init_ms: float | None = None
    memory_mb: int | None = None  # the configured memory, as the emulator reports it
    peak_mb: float | None = None  # the function's real peak resident memory during this invocation (process runtime)
    memory_enforced: bool | None = None  # whether memory_mb is a limit the function cannot exceed here

    @property
    def cold(self) -> bool:
        return self.init_ms is not None

    def to_dict(self) -> dict:
        return {"cold": self.cold, **self.to_dict_raw()}

    def to_dict_raw(self) -> dict:
        return {"init_ms": self.init_ms, "duration_ms": self.duration_ms, "billed_ms": self.billed_ms,
                "memory_mb": self.memory_mb, "peak_mb": self.peak_mb, "memory_enforced": self.memory_enforced}


@dataclass
class Invocation:
    response: object
    report: Report
    wall_ms: float
    logs: list[str] = field(default_factory=list)


REPORT_RE = re.compile(r"REPORT RequestId: (?P<id>\S+)(?P<rest>.*)")
MAX_MEMORY_RE = re.compile(r"(Max Memory Used: )\d+( MB)")


def with_measured_peak(lines: list[str], peak_mb: float | None) -> list[str]:
    """The emulator's REPORT line gives the memory size as "Max Memory Used" (it measures nothing); where rcyc
    measured the function's real peak, the line says that instead."""
    if peak_mb is None:
        return lines
    return [MAX_MEMORY_RE.sub(rf"\g<1>{max(1, round(peak_mb))}\g<2>", line) if line.startswith("REPORT") else line
            for line in lines]


INIT_RE = re.compile(r"INIT REPORT\(durationMs: (?P<ms>[\d.]+)\)")


FIELD_RE = re.compile(r"(Init Duration|Duration|Billed Duration|Memory Size): ([\d.]+)")


def parse_report(lines: list[str]) -> Report:
    """Figures from the emulator output written during one invocation."""
    report = Report()
    for line in lines:
        if (match := INIT_RE.search(line)):
            report.init_ms = _figure(match["ms"])
        elif (match := REPORT_RE.search(line)):
            fields = dict(FIELD_RE.findall(match["rest"]))
            report.duration_ms = _figure(fields.get("Duration"))
            report.billed_ms = _figure(fields.get("Billed Duration"))
            memory = _figure(fields.get("Memory Size"))
            report.memory_mb = None if memory is None else int(memory)
    return report


FIGURE_LIMIT = 1e12  # ms or MB: far above any a function reports, far below a sum of them that overflows


def _figure(text: str | None) -> float | None:
    """A REPORT figure; None for one that is no number ("1.2.3") or too large to be one ("1" x 400 is
    infinity): the log tail carries the function's own lines too, and a summary rounds these."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value <= FIGURE_LIMIT else None


LOG_ABOVE = "The function's log is above."


def decode_reply(text: str) -> object:
    """The function's answer as the emulator (or Lambda) returns it. A timeout, a body that is not JSON and
    an error object (which comes back with HTTP 200) are FunctionErrors."""
    if text.startswith("Task timed out"):
        raise FunctionError(f"the function timed out ({text.strip()})", kind="Timeout",
                            hint="Raise --timeout, or look in the log above for what the handler waited on.")
    try:
        response = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's limit, still not an answer
        raise FunctionError(f"the function returned something that is not JSON: {text[:120]!r}", kind="BadResponse",
                            hint=LOG_ABOVE) from None
    if isinstance(response, dict) and "errorType" in response and "errorMessage" in response:
        kind = error_kind(response["errorType"])
        raise FunctionError(f"the function failed: {kind}: {response['errorMessage']}", kind=kind, hint=LOG_ABOVE)
    return response


# rcyc's own kinds: EmulatorError is the sandbox's failure (the pool replaces the instance, the Invoke API
# answers 500), Timeout and BadResponse what rcyc read from the emulator. A function's word never means them.
_OWN_KINDS = ("EmulatorError", "Timeout", "BadResponse")


def error_kind(error_type: object) -> str:
    """A function's ``errorType`` as the error kind rcyc prints and stores for each record: the function's
    word, so a short printable name (not ``None``, ``7``, ten megabytes or an escape sequence), and never one of
    rcyc's own; Lambda's ``Unhandled`` when it gave none."""
    from .files import shown

    if not isinstance(error_type, str) or not error_type.strip():
        return "Unhandled"
    kind = shown(error_type.strip())[:100]
    return f"Function.{kind}" if kind in _OWN_KINDS else kind

