"""rcyc deploy --trigger PREFIX --via sqs|eventbridge end to end against moto's server (S3, SQS, EventBridge,
Lambda with event source mappings, IAM, ECR API) and the local registry: each way is created, left unchanged
when deployed again, kept by a deploy without --trigger, replaced whole by the other, removed whole by
--no-trigger; the role reads its own queue only; doctor --security audits the queue and the rule."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.cloud import functions
from rcyc_cli.exit_status import ExitStatus
from tests.conftest import MODELS
from tests.cli import run
from tests.e2e.cloud_checks import ok
from tests.e2e.test_deploy import function_image  # noqa: F401 - fixture (registry: tests/e2e/conftest.py)

pytestmark = pytest.mark.e2e


def role_statements(aws, function: str) -> dict[str, dict]:
    document = aws.client("iam").get_role_policy(RoleName=f"{function}-role", PolicyName=functions.ROLE_POLICY_NAME)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    return {s.get("Sid"): s for s in document["Statement"]}


@pytest.mark.slow  # a whole deploy cycle, five times
def test_deploy_via_sqs_then_eventbridge_then_no_trigger(aws_on_moto, bucket, registry, engine, function_image, monkeypatch):  # noqa: F811
    aws = aws_on_moto
    monkeypatch.setenv("RCYC_REGISTRY_PASSWORD", registry.password)
    ok(run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"]))
    function = f"fn-{bucket}"
    # The image by its id: other runs on a shared engine may move the tag between these deploys.
    image_id = engine.images.get(function_image).id
    common = ["--tag", "tv", "--image", image_id, "--bucket", bucket, "--function", function,
              "--registry", registry.host, "--registry-username", registry.username]
    refused = run("deploy", *common, "--via", "sqs")
    assert refused.exit_code == ExitStatus.BAD_INPUT and "--trigger" in refused.stderr

    plan = ok(run("deploy", "--json", "--dry-run", *common, "--trigger", "incoming/", "--via", "sqs"))
    assert (plan["trigger"]["via"], plan["trigger"]["action"]) == ("sqs", "configure")
    assert not [url for url in aws.client("sqs").list_queues().get("QueueUrls", []) if function in url]  # a plan makes nothing

    made = ok(run("deploy", "--json", *common, "--trigger", "incoming/", "--via", "sqs", "--batch-size", "5"))
    assert (made["trigger"]["via"], made["trigger"]["action"], made["trigger"]["batch_size"]) == ("sqs", "created", 5)
    receive = role_statements(aws, function)["ReceiveUploads"]
    assert receive["Resource"] == made["trigger"]["queue_arn"]
    [mapping] = aws.client("lambda").list_event_source_mappings(EventSourceArn=made["trigger"]["queue_arn"])["EventSourceMappings"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and mapping["BatchSize"] == 5

    again = ok(run("deploy", "--json", *common, "--trigger", "incoming/", "--via", "sqs", "--batch-size", "5"))
    assert (again["trigger"]["action"], again["role"]["action"], again["function"]["action"]) == ("unchanged",) * 3
    kept = ok(run("deploy", "--json", *common))
    assert kept["trigger"]["via"] == "sqs" and kept["trigger"]["action"] == "kept" and kept["role"]["action"] == "unchanged"

    audit = run("doctor", "--security", f"{bucket}/{function}", "--json")
    checks = {f["check"]: f["severity"] for f in json.loads(audit.stdout)["findings"]}
    assert checks["queue: policy"] == checks["queue: partial batch failures"] == checks["queue: dead-letter queue"] == "ok"

    switched = ok(run("deploy", "--json", *common, "--trigger", "incoming/", "--via", "eventbridge"))
    assert switched["trigger"]["via"] == "eventbridge" and [r["via"] for r in switched["trigger"]["replaced"]] == ["sqs"]
    assert "ReceiveUploads" not in role_statements(aws, function)  # no queue, no queue permission
    assert not [url for url in aws.client("sqs").list_queues().get("QueueUrls", []) if function in url]
    audit = run("doctor", "--security", f"{bucket}/{function}", "--json")
    checks = {f["check"]: f["severity"] for f in json.loads(audit.stdout)["findings"]}
    assert checks["rule: pattern"] == checks["rule: targets"] == checks["rule: invoke permission"] == "ok"

    removed = ok(run("deploy", "--json", *common, "--no-trigger"))
    assert removed["trigger"]["action"] == "removed" and removed["trigger"]["via"] == "eventbridge"
    assert aws.client("events").list_rules(NamePrefix=f"rcyc-{function}").get("Rules", []) == []
