"""What a function's error object says is the function's word, not rcyc's: an errorType that is not a
string, empty, megabytes long or full of escape sequences still ends as one short, printable error kind; a
stack answer flagged ``X-Amz-Function-Error`` is a failure whatever its body; rcyc's own report header,
garbled, is no traceback; and a 502 error object up to Lambda's payload size is still read as one."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.invocation import decode_reply
from rcyc_core.errors import FunctionError
from tests.unit.test_answers_cut_short import serve  # noqa: F401  (the fixture)
from tests.unit.test_emulator_statuses import StandIn, emulator, failure_of  # noqa: F401  (the fixture)
from tests.unit.test_stack_replies_hostile import remote


def http_reply(body: bytes, headers: dict) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (head.encode(), len(body), body)


HOSTILE_TYPES = {"a number": 7, "a list": ["a"], "null": None, "empty": "", "an object": {"x": 1},
                 "10 MB": "E" * 10_000_000, "escapes": "\x1b[31mRed\x1b[0m\nError", "spaces only": "   "}


@pytest.mark.parametrize("error_type", HOSTILE_TYPES.values(), ids=HOSTILE_TYPES.keys())
def test_an_error_type_that_is_not_a_short_printable_name_is_still_one(error_type):
    with pytest.raises(FunctionError) as caught:
        decode_reply(json.dumps({"errorType": error_type, "errorMessage": "boom"}))
    kind = caught.value.kind
    assert isinstance(kind, str) and kind.strip() and kind.isprintable() and len(kind) <= 120, kind[:200]
    assert kind not in ("None", "7", "['a']")


@pytest.mark.parametrize("error_type", ["EmulatorError", "BadResponse"])
def test_a_function_cannot_name_its_failure_as_rcyc_s_own(error_type):
    # EmulatorError is the sandbox's failure (the pool replaces the instance, the Invoke API answers 500):
    # a function's error object that says so is still the function's failure
    with pytest.raises(FunctionError) as caught:
        decode_reply(json.dumps({"errorType": error_type, "errorMessage": "boom"}))
    assert caught.value.kind != error_type


NOT_ERROR_OBJECTS = {"a result": {"results": [], "errors": [], "skipped": [], "model": None}, "a list": [],
                     "null": None, "a string": "oops", "half an error": {"errorType": "X"}}


@pytest.mark.parametrize("body", NOT_ERROR_OBJECTS.values(), ids=NOT_ERROR_OBJECTS.keys())
def test_a_stack_answer_flagged_as_the_functions_error_is_a_failure_whatever_its_body(serve, body):  # noqa: F811
    server = serve(http_reply(json.dumps(body).encode(), {"X-Amz-Function-Error": "Unhandled"}))
    with pytest.raises(FunctionError) as caught:
        remote(f"http://127.0.0.1:{server.port}").invoke({"Records": []}, attempts=1)
    assert caught.value.kind != "EmulatorError"


GARBLED_REPORTS = {"not JSON": "{fast", "a list": "[]", "report a list": '{"report": []}',
                   "unknown figures": '{"report": {"speed": 1}}', "a number": "7"}


@pytest.mark.parametrize("header", GARBLED_REPORTS.values(), ids=GARBLED_REPORTS.keys())
def test_a_garbled_report_header_is_no_traceback(serve, header):  # noqa: F811
    server = serve(http_reply(b'{"results": [], "errors": [], "skipped": [], "model": null}', {"X-Rcyc-Report": header}))
    try:
        answer = remote(f"http://127.0.0.1:{server.port}").invoke({"Records": []}, attempts=1)
    except FunctionError:
        return
    assert answer.response["results"] == []


def test_a_502_error_object_past_64_kib_is_still_the_functions_failure(emulator):  # noqa: F811
    port, answer = emulator
    error = {"errorType": "Runtime.ExitError", "errorMessage": "RequestId: 1 Error: " + "x" * (64 * 1024)}
    answer["reply"] = (502, json.dumps(error).encode())
    failure = failure_of(StandIn(port))
    assert failure.kind == "Runtime.ExitError", failure.message[:300]


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000])
def test_an_answer_nested_past_the_parsers_limit_is_not_json_not_a_traceback(text):
    with pytest.raises(FunctionError) as caught:
        decode_reply(text)
    assert caught.value.kind == "BadResponse"


HUGE = "the function failed: Boom: " + "m" * 10_000_000


def test_a_failed_events_megabyte_message_is_not_copied_into_each_of_its_records():
    from rcyc_cli.local.emulator.pool import run_keys

    def invoke(event):
        if any(r["s3"]["object"]["key"] == "k3" for r in event["Records"]):
            raise FunctionError(HUGE, kind="Boom")
        return type("Answer", (), {"response": {"results": [], "errors": [], "skipped": [], "model": None}})()

    run = run_keys(invoke, "b", [f"k{i}" for i in range(8)], batch_size=4, concurrency=2)
    assert len(run.response["errors"]) == 4
    assert len(json.dumps(run.response)) < 20_000


def test_a_megabyte_error_is_one_short_error_line(capsys):
    from rcyc_cli.render import console

    console.error(HUGE, "a hint")
    err = capsys.readouterr().err
    assert len(err) < 5_000 and err.count("\n") == 2 and "a hint" in err
