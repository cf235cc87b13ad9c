"""rcyc classify s3://BUCKET/PREFIX: a whole prefix of images, on the local pool or fanned out on Lambda."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CLASSIFY_CONCURRENCY, DEFAULT_FUNCTION, DEFAULT_RESULTS_PREFIX
from .options import function_option, region_option
from .output import emit, json_option, progress, record_status


@click.command()
@click.argument("uri", metavar="s3://BUCKET/PREFIX")
@click.option("--local", is_flag=True, help="Use the warm local stack (started if none runs) instead of AWS Lambda.")
@function_option
@click.option("--concurrency", "-c", default=DEFAULT_CLASSIFY_CONCURRENCY, show_default=True, type=click.IntRange(1, 1000),
              help="Events in flight at once (never above the function's reserved or the account's concurrency).")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1, 1000), help="Records per event.")
@click.option("--results-prefix", default=DEFAULT_RESULTS_PREFIX, show_default=True,
              help="Each key's result goes to <prefix><key>.json in the bucket.")
@click.option("--output", type=click.Path(path_type=Path), help="Also one line per key here (.jsonl or .csv).")
@click.option("--force", is_flag=True, help="Classify again keys whose result for the current model exists.")
@click.option("--limit", type=click.IntRange(1), help="At most this many images.")
@click.option("--dry-run", is_flag=True, help="List, count and estimate the cost; invoke nothing.")
@region_option
@json_option
def classify(uri, local, function, concurrency, batch_size, results_prefix, output, force, limit, dry_run, region):
    """Classify every image under s3://BUCKET/PREFIX (a backfill), resumably.

    Keys are listed page by page; other objects are counted, never invoked. A key whose result for the
    current model exists is skipped (--force classifies it again), so an interrupted run continues where
    it stopped and a promoted model makes the next run reclassify.
    """
    from ..classify.run import ClassifyOptions, check_options, classify as run_classify
    from ..classify.target import aws_target, local_target

    function = function or DEFAULT_FUNCTION
    options = ClassifyOptions(uri, local, None, function, concurrency, batch_size, results_prefix, output, force, limit,
                              dry_run, region)
    check_options(options)  # before a stack is started or a key listed
    with progress(transient=True) as report:
        target, s3 = local_target(function, concurrency, report) if local else aws_target(function, region, concurrency)
        summary = run_classify(options, target, s3, report)
    emit(summary, _render, record_status(summary))


def _render(summary: dict) -> None:
    # rich's tables: only for people, never with --json
    from ..render.classify import render_summary

    render_summary(summary)
