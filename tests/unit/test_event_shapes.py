"""Every delivery shape read into records (events), the answer each source expects (answers), and repeat
deliveries reusing the stored result (function + result_store) — unit level, moto in-process."""

import json

import pytest

from rcyc_core import answers, events
from rcyc_core.results import empty_response, error_entry
from tests.unit.test_function import BUCKET, IMAGES, make_function, put, put_model, s3  # noqa: F401 - fixture

GOOD, BROKEN, MISSING, GONE = "images/a b.jpg", "images/broken.jpg", "images/missing.jpg", "images/deleted.jpg"


def kinds(records):
    return [(type(r).__name__, r.key) for r in records]


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "sns-sqs"])
def test_every_shape_reads_back_the_objects_and_deletions_it_was_made_of(shape):
    delivery = events.read(events.make(shape, "bkt", [GOOD, "images/c+d.jpg"], removed=[GONE]))
    assert kinds(delivery.records) == [("ObjectRecord", GOOD), ("ObjectRecord", "images/c+d.jpg"), ("SkippedRecord", GONE)]
    assert "ObjectRemoved:Delete" in delivery.records[2].reason
    assert delivery.source == {"sns-sqs": "sqs"}.get(shape, shape)
    if delivery.source == "sqs":
        assert len(delivery.messages) == 3 and [r.message_id for r in delivery.records] == delivery.messages


def test_eventbridge_keys_are_not_url_decoded_but_s3_keys_are():
    [created] = events.read(events.make("eventbridge", "bkt", ["images/a+b c.jpg"], etags={"images/a+b c.jpg": "e1"})).records
    assert (created.key, created.etag) == ("images/a+b c.jpg", "e1")
    [deleted] = events.read(events.make("eventbridge", "bkt", removed=["images/x.jpg"])).records
    assert isinstance(deleted, events.SkippedRecord) and "Object Deleted" in deleted.reason
    [notified] = events.parse({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                            "s3": {"bucket": {"name": "b"}, "object": {"key": "images/a%2Bb+c.jpg"}}}]})
    assert notified.key == "images/a+b c.jpg"


def test_test_events_are_skipped_and_say_so():
    direct = events.read(events.make("s3-test", "bkt"))
    assert direct.source == "s3-test" and "s3:TestEvent" in direct.records[0].reason
    published = events.read(events.make("sns", "bkt", [GOOD], test_event=True))
    assert kinds(published.records) == [("SkippedRecord", None), ("ObjectRecord", GOOD)]
    queued = events.read(events.make("sqs", "bkt", [GOOD], test_event=True))
    assert kinds(queued.records) == [("SkippedRecord", None), ("ObjectRecord", GOOD)]
    assert queued.records[0].message_id == queued.messages[0]


def test_an_eventbridge_event_in_an_sqs_body_is_read():
    body = json.dumps(events.make("eventbridge", "bkt", [GOOD]))
    [record] = events.parse({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": body}]})
    assert (record.key, record.message_id) == (GOOD, "m1")


def test_the_same_call_makes_the_same_event_and_message_ids_can_be_given():
    assert events.make("sqs", "bkt", [GOOD]) == events.make("sqs", "bkt", [GOOD])
    event = events.make("sqs", "bkt", [GOOD, BROKEN], message_ids=["m1"])
    assert [r["messageId"] for r in event["Records"]][0] == "m1"


@pytest.mark.parametrize("shape,keys", [("eventbridge", [GOOD, BROKEN]), ("s3-test", [GOOD]), ("nope", [])])
def test_impossible_events_are_refused(shape, keys):
    from rcyc_core.errors import InputError

    with pytest.raises(InputError):
        events.make(shape, "bkt", keys)


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "sns-sqs", "eventbridge"])
def test_rebase_moves_the_objects_of_every_shape(shape):
    event = events.make(shape, "bkt", ["2 x.jpg"])
    rebased, moved = events.rebase(event, {"2 x.jpg": "runs/r1/images/2 x.jpg"})
    assert moved == 1
    assert [r.key for r in events.parse(rebased)] == ["runs/r1/images/2 x.jpg"]


def test_sqs_answer_names_exactly_the_messages_worth_retrying():
    delivery = events.read(events.make("sqs", "bkt", ["ok.jpg", "broken.jpg", "slow.jpg", "gone.jpg"], test_event=True))
    test_msg, ok, broken, slow, gone = delivery.messages
    response = empty_response(None)
    response["errors"] += [error_entry(2, "bkt", "broken.jpg", "CorruptImage", "x"),
                           error_entry(3, "bkt", "slow.jpg", "S3Unreachable", "x"),
                           error_entry(4, "bkt", "gone.jpg", "NoSuchKey", "x")]
    answered = answers.answer(delivery, response)
    assert answered["batchItemFailures"] == [{"itemIdentifier": slow}]
    assert [e["retryable"] for e in answered["errors"]] == [False, True, False]


def test_a_whole_invocation_failure_retries_every_message_and_other_sources_get_the_document():
    delivery = events.read(events.make("sqs", "bkt", ["a.jpg", "b.jpg"]))
    response = empty_response(None)
    response["errors"].append(error_entry(None, None, None, "InternalError", "bug"))
    assert [f["itemIdentifier"] for f in answers.answer(delivery, response)["batchItemFailures"]] == delivery.messages
    direct = answers.answer(events.read(events.make("s3", "bkt", ["a.jpg"])), empty_response(None))
    assert "batchItemFailures" not in direct


def test_the_function_answers_sqs_with_batch_item_failures(s3, tmp_path):  # noqa: F811
    put_model(s3)
    put(s3, GOOD, IMAGES / "boxes" / "boxes_1.jpg")
    put(s3, BROKEN, IMAGES / "bad" / "not_an_image.jpg")
    event = events.make("sqs", BUCKET, [GOOD, BROKEN, MISSING], removed=[GONE], test_event=True)
    response = make_function(s3, tmp_path).handle(event)
    assert [r["key"] for r in response["results"]] == [GOOD]
    assert [(e["key"], e["error"]) for e in response["errors"]] == [(BROKEN, "NotAnImage"), (MISSING, "NoSuchKey")]
    assert [s["key"] for s in response["skipped"]] == [None, GONE]
    assert response["batchItemFailures"] == []  # broken and missing fail for good: retrying repeats them


def test_a_repeat_delivery_reuses_the_stored_result_byte_for_byte(s3, tmp_path):  # noqa: F811
    put_model(s3)
    put(s3, GOOD, IMAGES / "boxes" / "boxes_1.jpg")
    put(s3, BROKEN, IMAGES / "bad" / "not_an_image.jpg")
    function = make_function(s3, tmp_path, results_prefix="results/")
    etag = s3.head_object(Bucket=BUCKET, Key=GOOD)["ETag"].strip('"')
    with_etag = events.make("eventbridge", BUCKET, [GOOD], etags={GOOD: etag})
    first = function.handle(events.make("s3", BUCKET, [GOOD, BROKEN]))
    stored = {k: s3.get_object(Bucket=BUCKET, Key=f"results/{k}.json")["Body"].read() for k in (GOOD, BROKEN)}
    assert json.loads(stored[GOOD])["object"]["etag"] == etag

    fetched = []
    real_get = s3.get_object
    s3.get_object = lambda **kw: fetched.append(kw) or real_get(**kw)
    for again in (events.make("s3", BUCKET, [GOOD, BROKEN]), with_etag):
        answer = function.handle(again)
        assert answer["results"][0] == {**first["results"][0], "record": 0}
    # No image bytes were read again: one conditional GET per record (304) without an ETag, none with one.
    conditions = sorted((kw["Key"], kw.get("IfNoneMatch")) for kw in fetched if kw["Key"] in (GOOD, BROKEN))
    assert conditions == [(key, s3.head_object(Bucket=BUCKET, Key=key)["ETag"]) for key in sorted((GOOD, BROKEN))]
    assert {k: real_get(Bucket=BUCKET, Key=f"results/{k}.json")["Body"].read() for k in stored} == stored

    put(s3, GOOD, IMAGES / "glass_bottles" / "glass_bottles_1.jpg")  # a new version is classified again
    assert function.handle(events.make("s3", BUCKET, [GOOD]))["results"][0]["label"] == "glass_bottles"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.conftest import examples  # noqa: E402

bodies = st.one_of(
    st.text(max_size=30),
    st.builds(lambda keys, removed: json.dumps(events.make("s3", "bkt", keys, removed)),
              st.lists(st.text(min_size=1, max_size=20), max_size=3), st.lists(st.text(min_size=1, max_size=20), max_size=2)),
    st.just(json.dumps({"Event": "s3:TestEvent", "Bucket": "bkt"})),
    st.builds(lambda key: json.dumps(events.make("eventbridge", "bkt", [key])), st.text(min_size=1, max_size=20)),
)
kinds_of_error = st.sampled_from(["NotAnImage", "NoSuchKey", "S3Unreachable", "AccessDenied", "ModelUnavailable"])


@settings(max_examples=examples(200))
@given(st.lists(bodies, max_size=8), st.data())
def test_any_sqs_batch_names_only_its_own_messages_with_retryable_errors(batch, data):
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": f"m{i}", "body": body} for i, body in enumerate(batch)]}
    delivery = events.read(event)
    assert delivery.source == ("sqs" if batch else "s3") and delivery.messages == [f"m{i}" for i in range(len(batch))]
    assert [r.index for r in delivery.records] == list(range(len(delivery.records)))
    assert set(r.message_id for r in delivery.records) <= set(delivery.messages)
    response = empty_response(None)
    failing = {}
    for record in delivery.records:
        if isinstance(record, events.ObjectRecord) and data.draw(st.booleans()):
            kind = data.draw(kinds_of_error)
            response["errors"].append(error_entry(record.index, record.bucket, record.key, kind, "x"))
            failing.setdefault(record.message_id, []).append(answers.retryable(kind))
    named = [f["itemIdentifier"] for f in answers.answer(delivery, response).get("batchItemFailures", [])]
    assert named == [m for m in delivery.messages if any(failing.get(m, []))]


@pytest.mark.parametrize("args,needle", [
    (["eventbridge", "--key", "a.jpg", "--key", "b.jpg"], "exactly one object"),
    (["s3-test", "--key", "a.jpg"], "names no objects"),
    (["s3", "--test-event"], "no s3:TestEvent"),
    (["sqs", "--key", "a.jpg", "--message-id", "m1", "--message-id", "m2"], "message ids for 1 message"),
    (["s3", "--key", "a.jpg", "--etag", "b.jpg=e"], "KEY=ETAG for a --key"),
    (["nope"], "Invalid value"),
    (["s3", "--key", ""], "empty"),  # every text option: not empty (commands/options.PlainText)
    (["eventbridge", "--removed", "\udcff.jpg"], "not valid UTF-8"),  # a non-UTF-8 argument, as Python reads it
    (["sqs", "--key", "k" * 1025], "longer than 1024 bytes"),
    (["s3", "--bucket", "Not A Bucket!"], "bucket name"),
    (["sqs", "--bucket", ""], "empty"),
    (["sqs", "--message-id", ""], "empty"),
    (["s3", "--region", "us\neast"], "control character"),
])
def test_rcyc_event_refuses_impossible_events_with_one_error_line(args, needle):
    from click.testing import CliRunner

    from rcyc_cli.main import cli

    result = CliRunner().invoke(cli, ["event", *args])
    assert result.exit_code in (2, 3) and result.stdout == ""
    assert needle in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr


def test_rcyc_event_prints_only_the_event_and_the_same_one_twice():
    from click.testing import CliRunner

    from rcyc_cli.main import cli

    args = ["event", "sqs", "--key", "images/a b.jpg", "--etag", "images/a b.jpg=abc", "--test-event"]
    first, second = (CliRunner().invoke(cli, args) for _ in range(2))
    assert first.exit_code == 0 and first.stdout == second.stdout
    [test, created] = events.parse(json.loads(first.stdout))
    assert "s3:TestEvent" in test.reason and (created.key, created.etag) == ("images/a b.jpg", "abc")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["aws:sqs", "aws:sns", "aws:s3", "aws.s3", "Object Created", "s3:TestEvent", "Notification"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["Records", "eventSource", "EventSource", "body", "Sns", "Message", "Type", "source", "detail-type",
                         "detail", "bucket", "object", "name", "key", "s3", "eventName", "messageId", "Event", "x"]),
        children, max_size=5),
    max_leaves=25)


@settings(max_examples=examples(400))
@given(json_values)
def test_any_json_is_read_or_refused_and_rebased_without_surprise(value):
    from rcyc_core.errors import EventError

    try:
        delivery = events.read(value)
    except EventError:
        delivery = None
    if delivery is not None:
        assert [r.index for r in delivery.records] == list(range(len(delivery.records)))
        assert all(isinstance(r, (events.ObjectRecord, events.SkippedRecord, events.BadRecord)) for r in delivery.records)
    rebased, moved = events.rebase(value, {"a": "b"})
    if delivery is not None and moved == 0:  # rebasing nothing changes nothing the function reads
        assert events.parse(rebased) == delivery.records


BUCKET_ARN = "arn:aws:s3:::bkt"
PINNED = {"ArnEquals": {"aws:SourceArn": BUCKET_ARN}}


@pytest.mark.parametrize("statement,severity", [
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage", "Condition": PINNED}, "ok"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
      "Condition": {"arnlike": {"AWS:SOURCEARN": BUCKET_ARN}}}, "ok"),  # operators and keys are case-insensitive
    ({"Effect": "Deny", "Principal": "*", "Action": "sqs:*"}, "ok"),
    ({"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sqs:SendMessage", "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage"}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
      "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
      "Condition": {"ArnNotEquals": {"aws:SourceArn": BUCKET_ARN}}}, "high"),
    ({"Effect": "Allow", "NotPrincipal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage", "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": ["s3.amazonaws.com", "sns.amazonaws.com"]}, "Action": "sqs:SendMessage",
      "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage", "Condition": "x"}, "high"),
    ({"Effect": "allow", "Principal": "*", "Action": "sqs:*"}, "high"),  # not plainly a Deny: read as an Allow
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:*", "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": ["sqs:SendMessage", "sqs:DeleteQueue"],
      "Condition": PINNED}, "high"),
    ({"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
      "NotResource": "arn:aws:sqs:us-east-1:123456789012:other", "Condition": PINNED}, "high"),
])
def test_the_queue_policy_audit_lets_only_this_bucket_send(statement, severity):
    from rcyc_cli.cloud.triggers.sqs import _policy_finding

    assert _policy_finding(json.dumps({"Statement": [statement]}), "bkt").severity == severity


def _sqs_record(message_id, key, bucket="bkt"):
    record = {"eventSource": "aws:sqs", "body": json.dumps(events.make("s3", bucket, [key]))}
    return record if message_id is ... else {**record, "messageId": message_id}


@pytest.mark.parametrize("unnamed", [
    _sqs_record(..., "slow.jpg"), _sqs_record(5, "slow.jpg"), _sqs_record("", "slow.jpg"),
    events.make("s3", "bkt", ["slow.jpg"])["Records"][0],  # a record of another shape in an SQS batch
], ids=["no-messageId", "messageId-not-a-string", "empty-messageId", "mixed-shapes"])
def test_a_retryable_error_no_message_id_names_retries_the_whole_batch_rather_than_being_lost(unnamed):
    delivery = events.read({"Records": [unnamed, _sqs_record("m1", "ok.jpg")]})
    slow = next(r for r in delivery.records if r.key == "slow.jpg")
    response = empty_response(None)
    response["errors"].append(error_entry(slow.index, "bkt", "slow.jpg", "S3Unreachable", "timed out"))
    assert answers.answer(delivery, response)["batchItemFailures"] == [{"itemIdentifier": "m1"}]


@pytest.mark.parametrize("bucket,key", [("Not_A..Bucket!", GOOD), (BUCKET, "images/\ud800.jpg")],
                         ids=["invalid-bucket-name", "key-not-utf8"])
def test_a_record_s3_refuses_before_any_request_fails_for_good_and_is_not_retried(s3, tmp_path, bucket, key):  # noqa: F811
    put_model(s3)
    put(s3, GOOD, IMAGES / "boxes" / "boxes_1.jpg")
    hostile = {"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m0", "body": json.dumps(hostile)},
                         {"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(events.make("s3", BUCKET, [GOOD]))}]}
    response = make_function(s3, tmp_path).handle(event)
    assert [r["key"] for r in response["results"]] == [GOOD]
    assert [(e["error"], e["retryable"]) for e in response["errors"]] == [("InvalidRecord", False)]
    assert response["batchItemFailures"] == []


@pytest.mark.parametrize("stored", [
    {"key": GOOD, "model": "not an object"},
    {"key": GOOD, "model": {"sha256": "SHA"}, "object": "not an object"},
    {"key": GOOD, "model": {"sha256": "SHA"}, "object": {"etag": 5}},
], ids=["model-a-string", "object-a-string", "etag-a-number"])
def test_a_malformed_stored_result_is_classified_again_and_costs_no_other_record(s3, tmp_path, stored):  # noqa: F811
    put_model(s3)
    for key in (GOOD, BROKEN):
        put(s3, key, IMAGES / "boxes" / "boxes_1.jpg")
    function = make_function(s3, tmp_path, results_prefix="results/")
    sha256 = function.store.current().manifest.sha256
    s3.put_object(Bucket=BUCKET, Key=f"results/{GOOD}.json", Body=json.dumps(stored).replace("SHA", sha256))
    response = function.handle(events.make("sqs", BUCKET, [GOOD, BROKEN]))
    assert [r["key"] for r in response["results"]] == [GOOD, BROKEN]
    assert response["errors"] == response["batchItemFailures"] == []
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=f"results/{GOOD}.json")["Body"].read())["label"] == "boxes"


@pytest.mark.parametrize("uri", ["s3://bkt/images/", "s3://bkt/images/sub/"])
def test_classify_refuses_images_under_the_results_prefix_instead_of_finding_none(uri):
    from rcyc_cli.classify.run import ClassifyOptions, classify
    from rcyc_core.errors import InputError

    with pytest.raises(InputError, match="under the results prefix"):
        classify(ClassifyOptions(uri, results_prefix="images/"), target=None, s3=None)


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "sns-sqs", "eventbridge"])
def test_rebase_onto_a_bucket_leaves_another_buckets_objects_as_they_are(shape):
    # invoke-local --event naming another bucket: its key is that bucket's object, never this run's copy (it
    # once became s3://other/runs/<id>/images/x.jpg, an object the user never named)
    mine, theirs = events.make(shape, "bkt", ["x.jpg"]), events.make(shape, "other", ["x.jpg"])
    assert [r.key for r in events.parse(events.rebase(mine, {"x.jpg": "runs/r1/images/x.jpg"}, "bkt")[0])] == \
        ["runs/r1/images/x.jpg"]
    rebased, moved = events.rebase(theirs, {"x.jpg": "runs/r1/images/x.jpg"}, "bkt")
    assert moved == 0 and [(r.bucket, r.key) for r in events.parse(rebased)] == [("other", "x.jpg")]
