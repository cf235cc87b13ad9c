"""deploy's ways of wiring uploads to the function (triggers: s3, sqs, eventbridge) against moto's HTTP server
(S3, SQS, EventBridge, Lambda with its event source mappings, IAM): each is made whole, read back, left
unchanged when asked again, replaced whole by another, removed whole; doctor --security audits the queue
policy and the rule."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from rcyc_cli.cloud import audit, buckets, functions, triggers
from rcyc_cli.cloud import aws as cloud_aws
from rcyc_cli.cloud.triggers import eventbridge, sqs
from tests.e2e.cloud_fixtures import MotoServer, point_aws_at

pytestmark = pytest.mark.e2e
BUCKET, FUNCTION, PREFIX = "rcyc-triggers", "rcyc-trigger-fn", "incoming/"


@pytest.fixture
def aws(monkeypatch, tmp_path, request):
    # moto's Lambda would try a Docker engine to run a function an event source mapping feeds: give it none.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    # moto's servers in one process share their state: this test's bucket and function get names of their own.
    suffix = hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    monkeypatch.setattr(sys.modules[__name__], "BUCKET", f"{BUCKET}-{suffix}", raising=True)
    monkeypatch.setattr(sys.modules[__name__], "FUNCTION", f"{FUNCTION}-{suffix}", raising=True)
    server = MotoServer().start()
    try:
        point_aws_at(monkeypatch, server.endpoint_url, tmp_path)
        aws = cloud_aws.Aws()
        buckets.ensure_private_bucket(aws.client("s3"), BUCKET, tls_only=False)
        role = aws.client("iam").create_role(RoleName=f"{FUNCTION}-role",
                                             AssumeRolePolicyDocument=json.dumps(functions.LAMBDA_TRUST_POLICY))["Role"]
        aws.function_arn = aws.client("lambda").create_function(
            FunctionName=FUNCTION, PackageType="Image", Role=role["Arn"], Timeout=30,
            Code={"ImageUri": f"{aws.account}.dkr.ecr.us-east-1.amazonaws.com/rcyc@sha256:{'0' * 64}"})["FunctionArn"]
        yield aws
    finally:
        server.stop()


def wiring(aws) -> dict:
    """Every part rcyc may have set up, read back from the services."""
    s3, lam, queues, events = (aws.client(n) for n in ("s3", "lambda", "sqs", "events"))
    notifications = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    policy = json.loads(lam.get_policy(FunctionName=FUNCTION)["Policy"])["Statement"] if _has_policy(lam) else []
    return {
        "lambda_rules": [r["Id"] for r in notifications.get("LambdaFunctionConfigurations", [])],
        "queue_rules": [(r["Id"], r["QueueArn"].rsplit(":", 1)[1]) for r in notifications.get("QueueConfigurations", [])],
        "queues": sorted(u.rsplit("/", 1)[1] for u in queues.list_queues().get("QueueUrls", [])),
        "mappings": [(m["EventSourceArn"].rsplit(":", 1)[1], m["BatchSize"], m["FunctionResponseTypes"])
                     for m in lam.list_event_source_mappings(FunctionName=aws.function_arn)["EventSourceMappings"]],
        "rules": [r["Name"] for r in events.list_rules().get("Rules", [])],
        "permissions": sorted((s["Principal"]["Service"], s["Sid"].rsplit("-", 1)[0]) for s in policy),
    }


def _has_policy(lam) -> bool:
    try:
        lam.get_policy(FunctionName=FUNCTION)
        return True
    except lam.exceptions.ResourceNotFoundException:
        return False


NOTHING = {"lambda_rules": [], "queue_rules": [], "queues": [], "mappings": [], "rules": [], "permissions": []}


def test_sqs_is_made_whole_kept_replaced_and_removed_whole(aws):
    made = triggers.converge("sqs", aws, aws.function_arn, BUCKET, PREFIX, batch_size=7)
    assert made["action"] == "created" and made["via"] == "sqs"
    queue, dlq = sqs.names(FUNCTION)
    assert wiring(aws) == {**NOTHING, "queue_rules": [(sqs.rule_id(FUNCTION), queue)], "queues": sorted([queue, dlq]),
                           "mappings": [(queue, 7, ["ReportBatchItemFailures"])]}
    queues = aws.client("sqs")
    attributes = queues.get_queue_attributes(QueueUrl=queues.get_queue_url(QueueName=queue)["QueueUrl"],
                                             AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": made["dead_letter_queue_arn"], "maxReceiveCount": sqs.MAX_RECEIVE_COUNT}
    assert int(attributes["VisibilityTimeout"]) == 6 * 30
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": f"arn:aws:s3:::{BUCKET}"}
    assert triggers.current(aws, BUCKET, FUNCTION) == {"via": "sqs", "prefix": PREFIX}
    # The role may receive and delete on this queue and nothing else.
    [receive] = triggers.role_statements("sqs", aws, FUNCTION)
    assert receive["Resource"] == made["queue_arn"] and set(receive["Action"]) == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

    assert triggers.converge("sqs", aws, aws.function_arn, BUCKET, PREFIX, batch_size=7)["action"] == "unchanged"
    assert triggers.converge("sqs", aws, aws.function_arn, BUCKET, PREFIX, batch_size=3)["action"] == "configured"
    assert wiring(aws)["mappings"] == [(queue, 3, ["ReportBatchItemFailures"])]

    # doctor --security: the queue policy, the dead-letter queue and the mapping pass; a loose policy does not.
    assert {f.check: f.severity for f in triggers.audit(aws, BUCKET, FUNCTION)} == {
        "queue: policy": "ok", "queue: dead-letter queue": "ok", "queue: partial batch failures": "ok"}
    url = queues.get_queue_url(QueueName=queue)["QueueUrl"]
    loose = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage",
                                                     "Resource": made["queue_arn"]}]}
    queues.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(loose)})
    findings = {f.check: f for f in audit.run(f"{BUCKET}/{FUNCTION}")}
    assert findings["queue: policy"].severity == "high"

    # Another way replaces it whole; --no-trigger removes every part.
    switched = triggers.converge("s3", aws, aws.function_arn, BUCKET, PREFIX, batch_size=7)
    assert [r["via"] for r in switched["replaced"]] == ["sqs"]
    assert wiring(aws) == {**NOTHING, "lambda_rules": [f"rcyc-{PREFIX.strip('/')}"],
                           "permissions": [("s3.amazonaws.com", "rcyc-s3-trigger")]}
    assert triggers.remove(aws, FUNCTION, BUCKET)["via"] == "s3"
    assert wiring(aws) == NOTHING and triggers.remove(aws, FUNCTION, BUCKET) is None


def test_eventbridge_is_made_whole_kept_replaced_and_removed_whole(aws):
    made = triggers.converge("eventbridge", aws, aws.function_arn, BUCKET, PREFIX, batch_size=10)
    assert made["action"] == "created"
    name = eventbridge.rule_name(FUNCTION)
    assert wiring(aws) == {**NOTHING, "rules": [name], "permissions": [("events.amazonaws.com", "rcyc-eventbridge")]}
    events = aws.client("events")
    rule = events.describe_rule(Name=name)
    assert json.loads(rule["EventPattern"]) == {"source": ["aws.s3"], "detail-type": ["Object Created"],
                                                "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": PREFIX}]}}}
    assert [(t["Id"], t["Arn"]) for t in events.list_targets_by_rule(Rule=name)["Targets"]] == [("rcyc-function", aws.function_arn)]
    [permission] = json.loads(aws.client("lambda").get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]
    assert permission["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]
    assert triggers.current(aws, BUCKET, FUNCTION) == {"via": "eventbridge", "prefix": PREFIX}
    assert triggers.role_statements("eventbridge", aws, FUNCTION) == []  # EventBridge invokes; the role needs nothing

    assert triggers.converge("eventbridge", aws, aws.function_arn, BUCKET, PREFIX, batch_size=10)["action"] == "unchanged"
    moved = triggers.converge("eventbridge", aws, aws.function_arn, BUCKET, "uploads/", batch_size=10)
    assert moved["action"] == "configured" and triggers.current(aws, BUCKET, FUNCTION)["prefix"] == "uploads/"
    assert {f.check: f.severity for f in triggers.audit(aws, BUCKET, FUNCTION)} == {
        "rule: pattern": "ok", "rule: targets": "ok", "rule: invoke permission": "ok"}
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.s3"]}), State="ENABLED")
    assert {f.check: f.severity for f in triggers.audit(aws, BUCKET, FUNCTION)}["rule: pattern"] == "high"
    whole_bucket = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [BUCKET]}}}
    for careless in (whole_bucket, {**whole_bucket, "detail": {**whole_bucket["detail"], "object": {"key": [{"prefix": ""}]}}}):
        events.put_rule(Name=name, EventPattern=json.dumps(careless), State="ENABLED")  # also fires for the results
        assert {f.check: f.severity for f in triggers.audit(aws, BUCKET, FUNCTION)}["rule: pattern"] == "high"

    switched = triggers.converge("sqs", aws, aws.function_arn, BUCKET, PREFIX, batch_size=10)
    assert [r["via"] for r in switched["replaced"]] == ["eventbridge"]
    assert wiring(aws)["rules"] == [] and wiring(aws)["permissions"] == []
    assert triggers.remove(aws, FUNCTION, BUCKET)["via"] == "sqs"
    assert wiring(aws) == NOTHING


def test_switching_ways_back_and_forth_leaves_exactly_the_current_one(aws):
    queue, dlq = sqs.names(FUNCTION)
    parts = {"s3": {**NOTHING, "lambda_rules": [f"rcyc-{PREFIX.strip('/')}"], "permissions": [("s3.amazonaws.com", "rcyc-s3-trigger")]},
             "sqs": {**NOTHING, "queue_rules": [(sqs.rule_id(FUNCTION), queue)], "queues": sorted([queue, dlq]),
                     "mappings": [(queue, 10, ["ReportBatchItemFailures"])]},
             "eventbridge": {**NOTHING, "rules": [eventbridge.rule_name(FUNCTION)],
                             "permissions": [("events.amazonaws.com", "rcyc-eventbridge")]}}
    for via in ("s3", "eventbridge", "s3", "sqs", "eventbridge", "sqs", "s3"):
        triggers.converge(via, aws, aws.function_arn, BUCKET, PREFIX, batch_size=10)
        assert wiring(aws) == parts[via], via
        assert triggers.current(aws, BUCKET, FUNCTION) == {"via": via, "prefix": PREFIX}
        assert {f.severity for f in triggers.audit(aws, BUCKET, FUNCTION)} <= {"ok"}
        assert bool(triggers.role_statements(via, aws, FUNCTION)) == (via == "sqs")  # SQS grants only while via sqs
    assert triggers.remove(aws, FUNCTION, BUCKET)["via"] == "s3" and wiring(aws) == NOTHING
