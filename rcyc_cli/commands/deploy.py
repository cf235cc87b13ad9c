"""rcyc deploy: build, push to ECR (never twice), point the function at the image by digest."""

from __future__ import annotations

import os

import click

from ..defaults import DEFAULT_FUNCTION, DEFAULT_REFRESH_SECONDS, DEFAULT_REPOSITORY, DEFAULT_RESULTS_PREFIX, DEFAULT_SQS_BATCH_SIZE
from .options import bucket_option, function_option, function_spec_options, region_option
from .output import emit, json_option, progress


@click.command()
@click.option("--tag", "-t", required=True, help="Image tag to push and deploy (e.g. v3).")
@bucket_option
@function_option
@click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True, envvar="RCYC_REPOSITORY", help="ECR repository. [env RCYC_REPOSITORY]")
@click.option("--role-name", help="IAM role for the function (default <function>-role; rcyc creates it).")
@region_option
@click.option("--image", help="Deploy this local image instead of building one.")
@function_spec_options(local=False)
@click.option("--refresh-seconds", default=DEFAULT_REFRESH_SECONDS, show_default=True, type=click.IntRange(0, 86400),
              help="How often a warm instance re-checks the current-model pointer.")
@click.option("--registry", envvar="RCYC_REGISTRY", help="Push to this registry HOST:PORT instead of ECR's (local stacks). [env RCYC_REGISTRY]")
@click.option("--registry-username", envvar="RCYC_REGISTRY_USERNAME",
              help="Basic-auth user for --registry; the password comes from the env RCYC_REGISTRY_PASSWORD only "
              "(never the command line, where ps and shell history would keep it). [env RCYC_REGISTRY_USERNAME]")
@click.option("--force-tag", is_flag=True, help="Move TAG even if it names a different image in the registry.")
@click.option("--trigger", metavar="PREFIX", help="New objects under PREFIX invoke the function (--via says how). "
              "Without --trigger or --no-trigger, an existing trigger is kept whole.")
@click.option("--via", type=click.Choice(["s3", "sqs", "eventbridge"]),
              help="With --trigger: how uploads reach the function. s3: bucket notifications (default); sqs: through a "
              "queue with a dead-letter queue and partial batch failures; eventbridge: through a rule on the default bus.")
@click.option("--batch-size", default=DEFAULT_SQS_BATCH_SIZE, show_default=True, type=click.IntRange(1, 1000),
              help="With --via sqs: messages per invocation.")
@click.option("--no-trigger", is_flag=True, help="Remove the function's trigger whole, whichever way it was wired "
              "(notification, queues, mapping, rule, permissions, role statements, results prefix).")
@click.option("--results-prefix", default=DEFAULT_RESULTS_PREFIX, show_default=True, help="With --trigger: where results are written.")
@click.option("--smoke", "smoke", metavar="KEY", multiple=True, help="After deploying, invoke once with this image key.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--adopt-role", is_flag=True, help="Use an existing role that grants more than rcyc's policy, narrowed to it "
              "(other policies deleted or detached, the trust reset to Lambda's); without it such a role is refused.")
@json_option
def deploy(tag, bucket, function, repository, role_name, region, image, spec, refresh_seconds, registry, registry_username,
           force_tag, trigger, via, batch_size, no_trigger, results_prefix, smoke, dry_run, adopt_role):
    """Build the image, push it to ECR (never twice, never moving a tag silently), and point the function at
    it by digest: created if missing (image package, least-privilege role), else updated, then waited for."""
    from ..cloud import deploy as cloud_deploy
    from ..render import tables

    options = cloud_deploy.DeployOptions(
        tag=tag, bucket=bucket, function=function or DEFAULT_FUNCTION, repository=repository, role_name=role_name,
        region=region, image=image, spec=spec, refresh_seconds=refresh_seconds, registry=registry, registry_username=registry_username,
        registry_password=os.environ.get("RCYC_REGISTRY_PASSWORD"), force_tag=force_tag, trigger=trigger, via=via,
        batch_size=batch_size, no_trigger=no_trigger,
        results_prefix=results_prefix,
        dry_run=dry_run, smoke=list(smoke), adopt_role=adopt_role)
    from rcyc_core.errors import RcycError

    try:
        with progress() as report:
            summary = cloud_deploy.deploy(options, report)
    except RcycError as exc:
        if getattr(exc, "summary", None) is None:
            raise
        # The smoke test failed after the function was updated: say what was deployed, then the error (exit 6).
        emit(exc.summary, tables.render_deploy)
        raise
    emit(summary, tables.render_deploy)

