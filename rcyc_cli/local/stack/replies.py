"""The stack's answers as the warm CLI path reads them: checked for the shape the stack gives before any
field is used. The stack is ours, but whatever listens on its port (a crashed stack's port taken by another
program, a proxy, a half-written answer that still parses) must end as "the stack did not answer" (an
OSError, one error line), never as a KeyError or TypeError deep in the rendering."""

from __future__ import annotations

import json

from .loopback import StackAnswerError

_NUMBER = (int, float)
_REPORT_FIELDS = {"duration_ms": _NUMBER, "billed_ms": _NUMBER, "init_ms": _NUMBER, "memory_mb": _NUMBER,
                  "peak_mb": _NUMBER, "memory_enforced": bool}
_INSTANCE_FIELDS = {"instance": (int, str), "runtime": str, "invocations": int, "restarts": int}


def status(body: bytes) -> dict:
    """The stack's status (``GET /rcyc/status``) as ``local status`` shows it."""
    answer = _json(body, "status")
    ok = (isinstance(answer.get("s3_endpoint"), str) and isinstance(answer.get("bucket"), str)
          and isinstance(answer.get("instances"), list)
          and all(_instance(instance) for instance in answer["instances"]))
    if not ok:
        raise StackAnswerError("the stack's status is not one it gives")
    return answer


def run(body: bytes) -> dict:
    """The stack's answer to a run (``POST /rcyc/runs``): its ``error``, or its response, invocations,
    seconds and prefix."""
    answer = _json(body, "answer to the run")
    if "error" in answer:
        error = answer["error"]
        if not (isinstance(error, dict) and all(isinstance(error.get(k, ""), str) for k in ("message", "kind"))
                and isinstance(error.get("hint") or "", str) and _strings(error.get("logs", []))):
            raise StackAnswerError("the stack's error answer to the run is not one it gives")
        return answer
    response, invocations = answer.get("response"), answer.get("invocations")
    ok = (isinstance(response, dict) and isinstance(answer.get("prefix"), str)
          and type(answer.get("seconds")) in _NUMBER
          and all(isinstance(response.get(name, []), list) and all(isinstance(e, dict) for e in response.get(name, []))
                  for name in ("results", "errors", "skipped"))
          and isinstance(invocations, list) and all(_invocation(i) for i in invocations))
    if not ok:
        raise StackAnswerError("the stack's answer to the run is not one it gives")
    return answer


def _json(body: bytes, what: str) -> dict:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise StackAnswerError(f"the stack's {what} is not JSON") from None
    if not isinstance(answer, dict):
        raise StackAnswerError(f"the stack's {what} is not a JSON object")
    return answer


def _instance(instance: object) -> bool:
    return (isinstance(instance, dict) and all(type(instance.get(k)) in (t if isinstance(t, tuple) else (t,))
                                               for k, t in _INSTANCE_FIELDS.items())
            and (instance.get("cold_start_ms") is None or type(instance["cold_start_ms"]) in _NUMBER)
            and isinstance(instance.get("model") or {}, dict))


def _invocation(invocation: object) -> bool:
    if not isinstance(invocation, dict):
        return False
    report = invocation.get("report", {})
    return (isinstance(report, dict)
            and all(k in _REPORT_FIELDS and (v is None or type(v) in _tuple(_REPORT_FIELDS[k])) for k, v in report.items())
            and type(invocation.get("wall_ms", 0.0)) in _NUMBER and _strings(invocation.get("logs", [])))


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
