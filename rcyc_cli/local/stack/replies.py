"""The stack's answers as the warm CLI path reads them: checked for the shape the stack gives before any
field is used. The stack is ours, but whatever listens on its port (a crashed stack's port taken by another
program, a proxy, a half-written answer that still parses) must end as "the stack did not answer" (an
OSError, one error line), never as a KeyError or TypeError deep in the rendering."""

from __future__ import annotations

import json

from rcyc_core.errors import FunctionError

from ...files import shown
from ...invocation import FIGURE_LIMIT, LOG_ABOVE, decode_reply
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
    ok = (isinstance(response, dict) and _response(response) and isinstance(answer.get("prefix"), str)
          and type(answer.get("seconds")) in _NUMBER
          and isinstance(invocations, list) and all(_invocation(i) for i in invocations))
    if not ok:
        raise StackAnswerError("the stack's answer to the run is not one it gives")
    return answer


def invoke_answer(text: str, function_error: str | None) -> object:
    """The function's answer to an invoke; with ``X-Amz-Function-Error`` its failure, whatever the body is:
    on one bounded line, as the function's errorMessage may be megabytes over many lines, and classify copies
    it into every record of the event."""
    try:
        return _invoke_answer(text, function_error)
    except FunctionError as exc:
        raise FunctionError(_one_line(exc.message), kind=exc.kind, hint=exc.hint) from None


def _invoke_answer(text: str, function_error: str | None) -> object:
    if function_error:
        try:
            error = json.loads(text)
            if error.get("errorType") == "Sandbox.Timedout":
                text = str(error.get("errorMessage"))  # decoded as the emulator's own timeout answer
        except (ValueError, AttributeError, RecursionError):
            pass
    response = decode_reply(text)
    if function_error:  # the stack said the function failed: a body that is no error object is still no result
        raise FunctionError(f"the function failed ({shown(function_error)[:40]}) without an error object: {text[:120]!r}",
                            kind="Unhandled", hint=LOG_ABOVE)
    return response


def refusal(status: int, error_type: str, body: bytes) -> str:
    """``status Type: message`` of an Invoke API error answer (its body is JSON with a message, or anything)."""
    try:
        answer = json.loads(body[:64 * 1024] or b"{}")
        message = answer.get("Message", answer.get("message", ""))
    except (ValueError, AttributeError, RecursionError):  # not JSON, or not an object
        message = ""
    return f"{status} {shown(error_type)[:100] or 'refused'}: {shown(str(message))[:200]}".rstrip(": ")


def refusal_kind(status: int, error_type: str) -> str:
    """The error kind of a refusal: its error type when that is a short word ending in Exception, as every
    error type of Lambda's Invoke API does, else the status. Any other word (``EmulatorError``, ``Timeout``)
    could be a kind rcyc gives its own transient failures, and would have classify retry a 400."""
    named = (0 < len(error_type) <= 100 and error_type.isascii() and error_type.isidentifier()
             and error_type.endswith("Exception"))
    return error_type if named else str(status)


MESSAGE_LIMIT = 500  # characters of a failure's message


def _one_line(message: str) -> str:
    text = shown(message)
    return text if len(text) <= MESSAGE_LIMIT else f"{text[:MESSAGE_LIMIT]}... ({len(text) - MESSAGE_LIMIT:,} characters more)"


def report(header: str | None) -> dict:
    """The figures of rcyc's ``X-Rcyc-Report`` header that are figures: a garbled header gives none, not a
    traceback."""
    try:
        figures = json.loads(header or "{}").get("report")
    except (ValueError, AttributeError, RecursionError):
        return {}
    if not isinstance(figures, dict):
        return {}
    return {name: value for name, value in figures.items()
            if name in _REPORT_FIELDS and (value is None or (type(value) in _tuple(_REPORT_FIELDS[name]) and _figure(value)))}


def _figure(value) -> bool:
    """Whether a figure is one a stack gives: 0 to FIGURE_LIMIT. NaN, infinity (JSON's 1e999), negatives and
    a huge int are not: classify sums and rounds them into its summary, where one would end the run."""
    return type(value) is bool or 0 <= value <= FIGURE_LIMIT


# Each entry of a response as the result contract has it (rcyc_core.results), so that neither the tables nor
# the summaries meet a missing score or a label that is none of the five.
_TEXT_OR_NONE = (str, type(None))
_ENTRY_FIELDS = {
    "results": {"record": int, "bucket": _TEXT_OR_NONE, "key": _TEXT_OR_NONE, "label": str, "confidence": _NUMBER,
                "scores": dict},
    "errors": {"record": (int, type(None)), "bucket": _TEXT_OR_NONE, "key": _TEXT_OR_NONE, "error": str, "message": str},
    "skipped": {"record": int, "bucket": _TEXT_OR_NONE, "key": _TEXT_OR_NONE, "reason": str},
}


def _response(response: dict) -> bool:
    from rcyc_core.labels import LABELS

    for name, kinds in _ENTRY_FIELDS.items():
        entries = response.get(name, [])
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and all(type(e.get(k)) in _tuple(t) for k, t in kinds.items()) for e in entries):
            return False
        if name == "results" and not all(e["label"] in LABELS and set(e["scores"]) >= set(LABELS)
                                         and all(type(e["scores"][label]) in _NUMBER for label in LABELS)
                                         for e in entries):
            return False
    model = response.get("model")
    failures = response.get("batchItemFailures", [])
    return ((model is None or (isinstance(model, dict) and all(isinstance(model.get(k), str) for k in ("name", "version", "sha256"))))
            and isinstance(failures, list) and all(isinstance(f, dict) and isinstance(f.get("itemIdentifier"), str)
                                                    for f in failures))


def _json(body: bytes, what: str) -> dict:
    try:
        answer = json.loads(body, parse_constant=_no_constant)  # NaN or Infinity: no figure the stack gives
    except (ValueError, RecursionError):
        raise StackAnswerError(f"the stack's {what} is not JSON") from None
    if not isinstance(answer, dict):
        raise StackAnswerError(f"the stack's {what} is not a JSON object")
    return answer


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


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
