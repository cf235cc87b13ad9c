"""rcyc eval: how good a model is on labelled photos, and whether it beats another."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import DEFAULT_EVAL_VIA, EVAL_VIAS
from ..exit_status import ExitStatus
from .options import Fraction, bucket_option, region_option
from .output import emit, json_option, progress, wants_json

model_help = ("A local model (as predict --model takes), or a model in the bucket: 'current' or NAME/VERSION. "
              "Default: the fixture model.")


@click.command("eval")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--model", "model", envvar="RCYC_MODEL", help=model_help)
@click.option("--against", help="A second model (same forms as --model): both side by side, with an exact McNemar test.")
@click.option("--via", type=click.Choice(EVAL_VIAS), default=DEFAULT_EVAL_VIA, show_default=True,
              help="predict: the function's core in-process; emulator: the local Lambda emulator pool (the deployed code path).")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write a self-contained HTML report here.")
@click.option("--min-accuracy", type=Fraction(0, 1), help="Gate: exit 9 when accuracy is below this fraction.")
@click.option("--no-worse-than", "no_worse_than",
              help="Gate: exit 9 when significantly worse than this model (e.g. current) on the same images.")
@bucket_option
@region_option
@json_option
def eval_command(data_dir, model, against, via, report_path, min_accuracy, no_worse_than, bucket, region):
    """Evaluate a model on DATA_DIR/<label>/* (the five labels as folder names; nested folders allowed).

    Prints accuracy, per-class precision/recall/F1, the confusion matrix (rows = true label), top
    confusions and calibration; broken files are listed, never fatal.
    """
    from ..evaluate.session import EvalOptions, run_eval
    from ..render import evaluation

    if against and no_worse_than and against != no_worse_than:
        raise click.UsageError("--against and --no-worse-than name different models; --no-worse-than M compares against M")
    if report_path:
        from ..outputs import check_output_file

        check_output_file(report_path, "--report")  # before any work: never after minutes of scoring
    options = EvalOptions(data_dir, model, against or no_worse_than, via, bucket, region, min_accuracy,
                          gate_against=no_worse_than is not None)
    with progress(transient=True) as report:
        result = run_eval(options, report)
        if report_path:
            from ..evaluate import write_report

            write_report(result, report_path)
            result["report"] = str(report_path)
    if wants_json():  # people get these in the summary; with --json on stderr, so they are never silent
        from ..evaluate.evidence import warnings_for

        for line in warnings_for(result):
            click.echo(f"warning: {line}", err=True)
    emit(result, evaluation.render_evaluation, ExitStatus.GATE_FAILED if result["gate"]["failed"] else ExitStatus.OK)
