"""A warm run's answer whose outer shape is the stack's but whose entries are not the result contract's (a
result without scores, a label that is none of the five, an error without its message, a NaN figure, a
model that is a number): one rcyc error (exit 6, "the stack did not answer"), never a TypeError from the
score tables nor a NaN printed as --json (which no JSON reader takes)."""

from __future__ import annotations

import pytest
from rcyc_core.errors import FunctionError

from rcyc_cli.local.session import Upload
from rcyc_cli.local.stack import warm
from tests.unit.test_stack_replies_hostile import RESULT, remote, serve_json


def answer(**response) -> dict:
    return {"response": {"results": [], "errors": [], "skipped": [], **response}, "invocations": [{"report": {}}],
            "seconds": 0.5, "prefix": "runs/x/"}


BROKEN_ENTRIES = [
    answer(results=[{}]),
    answer(results=[{**RESULT, "scores": None}]),
    answer(results=[{**RESULT, "scores": {"boxes": 1.0}}]),
    answer(results=[{**RESULT, "scores": {**RESULT["scores"], "boxes": "high"}}]),
    answer(results=[{**RESULT, "label": "bananas"}]),
    answer(results=[{**RESULT, "record": "0"}]),
    answer(results=[{**RESULT, "record": True}]),
    answer(results=[{**RESULT, "key": 7}]),
    answer(errors=[{"record": "x"}]),
    answer(errors=[{"record": 0, "bucket": "b", "key": "k", "error": "NoSuchKey"}]),
    answer(skipped=[{"record": 0, "bucket": "b", "key": "k"}]),
    answer(model=5),
    answer(model={"name": "m", "version": 1, "sha256": "s"}),
    answer(batchItemFailures=[{"itemIdentifier": None}]),
    answer(batchItemFailures="all"),
]


@pytest.mark.parametrize("document", BROKEN_ENTRIES)
def test_entries_that_are_not_the_contract_are_one_function_error(document):
    upload = Upload(name="a.jpg", body=b"x", content_type="image/jpeg")
    with pytest.raises(FunctionError) as caught:
        warm.run_on_stack(remote(serve_json(document)), [upload], None, 1, 1)
    assert "stack" in caught.value.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_figure_that_is_no_number_is_refused(constant):
    from rcyc_cli.local.stack import loopback, replies

    body = b'{"response": {}, "invocations": [], "seconds": %s, "prefix": "runs/x/"}' % constant.encode()
    with pytest.raises(loopback.StackAnswerError, match="not JSON"):
        replies.run(body)


def test_the_contracts_own_entries_are_read():
    document = answer(results=[RESULT], errors=[{"record": None, "bucket": None, "key": None, "error": "InvalidEvent",
                                                 "message": "m"}],
                      skipped=[{"record": 1, "bucket": "b", "key": "k", "reason": "r"}],
                      model={"name": "m", "version": "1", "sha256": "s"}, batchItemFailures=[{"itemIdentifier": "id"}])
    upload = Upload(name="a.jpg", body=b"x", content_type="image/jpeg")
    got = warm.run_on_stack(remote(serve_json(document)), [upload], None, 1, 1)
    assert got["response"]["results"][0]["label"] == "boxes"
