"""rcyc train: a five-class model from labelled photos (transfer learning from EfficientNet-Lite0), offline."""

from __future__ import annotations

from pathlib import Path

import click

from ..exit_status import ExitStatus
from .options import SEED, Fraction, bucket_option, region_option
from .output import emit, json_option, progress


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), help="The new model directory (must not exist, or be empty).")
@click.option("--name", default="rcyc-efficientnet-lite0", show_default=True, help="Model name in its manifest.")
@click.option("--version", "version", help="Version (default: a hash of the trained model).")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(1, 1000), help="Head epochs.")
@click.option("--fine-tune", is_flag=True, help="Then fine-tune the top backbone blocks (slower; BatchNorm stays frozen).")
@click.option("--val-split", default=0.2, show_default=True, type=Fraction(0.05, 0.5),
              help="Share of each class held out (never trained on) and evaluated.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Same seed, same data: the same model.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="The held-out evaluation as an HTML report.")
@click.option("--upload", is_flag=True, help="Upload it; promoted only with enough held-out images per class and if not "
              "significantly worse than the current model (else exit 9).")
@click.option("--min-per-class", type=click.IntRange(1), default=None,
              help="With --upload: held-out images per class needed to promote [default: 20].")
@click.option("--exclude-suspects", is_flag=True, help="Leave the suspected label errors out (needs the eval extra).")
@bucket_option
@region_option
@click.option("--self-check", is_flag=True, help="Check the backbone against its golden logits and exit.")
@json_option
def train(data_dir, out, name, version, epochs, fine_tune, val_split, seed, report_path, upload, min_per_class,
          exclude_suspects, bucket, region, self_check):
    """Train a five-class model on DATA_DIR/<label>/* (as rcyc eval reads it) and write it to --out, packaged
    as predict, invoke-local, eval and upload-model take it. Needs the train extra: pip install 'rcyc[train]'."""
    from ..render import console

    if self_check:
        from ..train import require, self_check as check

        require()
        with console.err.status("running the backbone on the reference photos"):
            result = check()
        emit(result, _render_self_check, ExitStatus.OK if result["ok"] else ExitStatus.MISSING_PREREQ)
        return
    if data_dir is None or out is None:
        raise click.UsageError("give DATA_DIR and --out (or --self-check)")
    from ..outputs import check_output_dir, check_output_file
    from ..train.session import TrainOptions, run_training

    check_output_dir(out, "--out")  # before any work: never after minutes of training
    if report_path:
        check_output_file(report_path, "--report")

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
