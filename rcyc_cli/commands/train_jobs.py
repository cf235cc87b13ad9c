"""rcyc train --local-mode and --sagemaker: the training image through Docker, or as a SageMaker job."""

from __future__ import annotations

import click

from .output import emit, progress


def local_mode_job(data_dir, out, image, base_image, ca_bundle, checkpoint_dir, hyperparameters) -> None:
    from ..train.container import local_mode

    with progress(transient=True) as report:
        summary = local_mode(data_dir, out, hyperparameters, image, base_image, ca_bundle, checkpoint_dir, report)
    emit(summary, _render_local)


def _render_local(summary: dict) -> None:
    from ..render import console

    manifest, features = summary["manifest"], summary["features"]
    console.out.print(f"trained {manifest['name']} {manifest['version']} in the training image → {summary['out']} "
                      f"(features: {features['computed']} computed, {features['cached']} from the checkpoints)")
    if summary.get("val_accuracy") is not None:
        console.out.print(f"held-out accuracy {summary['val_accuracy']:.1%}")
    console.out.print(f"[dim]next: rcyc eval DATA_DIR --model {summary['out']}[/dim]")


def sagemaker_job(data_uri, role, create_role, bucket, region, instance_type, spot, max_runtime, wait, dry_run, image,
                  base_image, ca_bundle, hyperparameters, job_name) -> None:
    from ..train.jobs import JobOptions, submit

    if not role:
        raise click.UsageError("--sagemaker needs --role (an execution role ARN, or a NAME with --create-role)")
    options = JobOptions(data_uri, role, bucket, region, instance_type, spot, max_runtime, wait, dry_run, create_role, image,
                         base_image=base_image, ca_bundle=ca_bundle, name=hyperparameters["name"],
                         hyperparameters={k: v for k, v in hyperparameters.items() if k != "name"}, job_name=job_name)
    with progress(transient=True) as report:
        summary = submit(options, report)
    emit(summary, _render)


def _render(summary: dict) -> None:
    from ..render import console

    cost = summary["estimate"]
    if summary["dry_run"]:
        console.out.print("dry run: nothing was called. The CreateTrainingJob request:")
        console.print_json(summary["request"])
    else:
        console.out.print(f"training job {summary['job']} created")
    if cost["usd_per_hour"] is not None:
        expected = (f"expected ~{cost['expected_seconds'] / 60:.0f} min for {cost['images']} photos, ${cost['expected_usd']:.3f}; "
                    if cost["expected_usd"] is not None else
                    f"${cost['startup_usd']:.3f} start-up + ${cost['usd_per_1000_images']:.3f} per 1,000 photos; ")
        console.out.print(f"estimated cost on {cost['instance_type']} at ${cost['usd_per_hour']}/h ({cost['price_source']}): "
                          f"{expected}at most ${cost['max_usd']:.2f} (--max-runtime {cost['max_seconds']} s)"
                          + ("; spot bills less" if cost["spot"] else ""))
    else:
        console.out.print(cost["note"])
    if "status" in summary:
        billed = f", billed {summary['billable_seconds']} s" if summary.get("billable_seconds") else ""
        console.out.print(f"{summary['job']}: {summary['status']}{billed}")
        candidate = summary["candidate"]
        console.out.print(f"candidate {candidate['name']} {candidate['version']} uploaded (not promoted); next: "
                          f"rcyc models promote {candidate['name']} {candidate['version']} --eval DATA_DIR")
    elif not summary["dry_run"]:
        console.out.print(f"[dim]next: follow it with --wait, or rcyc models import {summary['request']['OutputDataConfig']['S3OutputPath']}"
                          f"{summary['job']}/output/model.tar.gz --name NAME when it completes[/dim]")
