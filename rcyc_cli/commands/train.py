"""rcyc train: a five-class model from labelled photos (transfer learning from EfficientNet-Lite0), offline."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import (DEFAULT_EPOCHS, DEFAULT_INSTANCE_TYPE, DEFAULT_MAX_RUNTIME, DEFAULT_MODEL_NAME, DEFAULT_SEED,
                        DEFAULT_VAL_SPLIT)
from ..exit_status import ExitStatus
from .options import SEED, Fraction, bucket_option, ca_bundle_option, min_per_class_needs, min_per_class_option, region_option
from .output import emit, json_option, progress


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), help="The new model directory (must not exist, or be empty).")
@click.option("--name", default=DEFAULT_MODEL_NAME, show_default=True, help="Model name in its manifest.")
@click.option("--version", "version", help="Version (default: a hash of the trained model).")
@click.option("--epochs", default=DEFAULT_EPOCHS, show_default=True, type=click.IntRange(1, 1000), help="Head epochs.")
@click.option("--fine-tune", is_flag=True, help="Then fine-tune the top backbone blocks (slower; BatchNorm stays frozen).")
@click.option("--val-split", default=DEFAULT_VAL_SPLIT, show_default=True, type=Fraction(0.05, 0.5),
              help="Share of each class held out (never trained on) and evaluated.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=SEED, help="Same seed, same data: the same model.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="The held-out evaluation as an HTML report.")
@click.option("--upload", is_flag=True, help="Upload it; promoted only with enough held-out images per class and if not "
              "significantly worse than the current model (else exit 9).")
@min_per_class_option
@click.option("--exclude-suspects", is_flag=True, help="Leave the suspected label errors out (needs the eval extra).")
@bucket_option
@region_option
@click.option("--self-check", is_flag=True, help="Check the backbone against its golden logits and exit.")
@click.option("--local-mode", is_flag=True,
              help="Train in the training image through the local Docker engine, as SageMaker runs it (/opt/ml layout).")
@click.option("--sagemaker", "data_uri", metavar="DATA_S3_URI",
              help="Train as a SageMaker training job on s3://BUCKET/PREFIX/<label>/<photo> (DATA_DIR not needed).")
@click.option("--role", help="--sagemaker: the job's execution role (ARN or name).")
@click.option("--create-role", is_flag=True, help="--sagemaker: create (or converge) --role NAME with least privilege.")
@click.option("--instance-type", default=DEFAULT_INSTANCE_TYPE, show_default=True, help="--sagemaker: the training instance.")
@click.option("--spot", is_flag=True, help="--sagemaker: managed spot training (resumes from the checkpoints).")
@click.option("--max-runtime", default=DEFAULT_MAX_RUNTIME, show_default=True, type=click.IntRange(60, 28 * 24 * 3600),
              help="--sagemaker: seconds before SageMaker stops the job.")
@click.option("--wait", is_flag=True, help="--sagemaker: follow the job to its end, then import its model as a candidate.")
@click.option("--job-name", help="--sagemaker: the job's name (default: rcyc-train-<UTC time>-<random>).")
@click.option("--dry-run", is_flag=True, help="--sagemaker: print the request and the estimated cost; call nothing.")
@click.option("--image", "image", help="--local-mode/--sagemaker: use this training image instead of building one.")
@click.option("--base-image", envvar="RCYC_TRAIN_BASE_IMAGE",
              help="The training image's base (default: Python 3.12 slim from ECR Public). [env RCYC_TRAIN_BASE_IMAGE]")
@ca_bundle_option
@click.option("--checkpoint-dir", type=click.Path(path_type=Path),
              help="--local-mode: the job's /opt/ml/checkpoints (default: rcyc's training cache).")
@json_option
def train(data_dir, out, name, version, epochs, fine_tune, val_split, seed, report_path, upload, min_per_class,
          exclude_suspects, bucket, region, self_check, local_mode, data_uri, role, create_role, instance_type, spot,
          max_runtime, wait, job_name, dry_run, image, base_image, ca_bundle, checkpoint_dir):
    """Train a five-class model on DATA_DIR/<label>/* (as rcyc eval reads it) and write it to --out, packaged
    as predict, invoke-local, eval and upload-model take it. Needs the train extra: pip install 'rcyc[train]'.

    --local-mode runs the same training in the training image through Docker; --sagemaker runs it as a
    SageMaker training job (docs/train.md)."""
    from ..render import console

    if self_check:
        from ..train import require, self_check as check

        require()
        with console.err.status("running the backbone on the reference photos"):
            result = check()
        emit(result, _render_self_check, ExitStatus.OK if result["ok"] else ExitStatus.MISSING_PREREQ)
        return
    hyperparameters = {"epochs": epochs, "seed": seed, "val_split": val_split, "fine_tune": fine_tune, "name": name,
                       "version": version}
    if (local_mode or data_uri) and (upload or report_path):
        raise click.UsageError("--upload and --report go with a local run; after --local-mode use rcyc eval / upload-model "
                               "on --out, after --sagemaker rcyc models import --promote --eval")
    if data_uri is not None:
        if data_dir is not None or out is not None or local_mode:
            raise click.UsageError("--sagemaker trains on the photos in S3: drop DATA_DIR, --out and --local-mode")
        from .train_jobs import sagemaker_job

        return sagemaker_job(data_uri, role, create_role, bucket, region, instance_type, spot, max_runtime, wait, dry_run,
                             image, base_image, ca_bundle, hyperparameters, job_name)
    if data_dir is None or out is None:
        raise click.UsageError("give DATA_DIR and --out (or --self-check, or --sagemaker DATA_S3_URI)")
    min_per_class_needs("--upload", upload)
    from ..outputs import check_output_dir, check_output_file

    check_output_dir(out, "--out")  # before any work: never after minutes of training
    if report_path:
        check_output_file(report_path, "--report")
    if local_mode:
        from .train_jobs import local_mode_job

        return local_mode_job(data_dir, out, image, base_image, ca_bundle, checkpoint_dir, hyperparameters)
    from ..train.session import TrainOptions, run_training

    options = TrainOptions(data_dir, out, name, version, epochs, fine_tune, val_split, seed, report_path, upload, bucket, region,
                           exclude_suspects, min_per_class)
    with progress(transient=True) as report:
        summary = run_training(options, report)
    not_promoted = summary.get("upload") and not summary["upload"]["promoted"]
    emit(summary, _render_training, ExitStatus.GATE_FAILED if not_promoted else ExitStatus.OK)


def _render_self_check(result: dict) -> None:
    from ..render import console

    console.out.print(f"backbone {'ok' if result['ok'] else 'WRONG'}: max |delta| {result['max_abs_delta']:.2e} "
                      f"against the golden logits (limit {result['tolerance']:.0e})")


def _render_training(summary: dict) -> None:
    from ..render.evaluation import render_training

    render_training(summary)
