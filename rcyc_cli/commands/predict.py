"""rcyc predict: classify files in-process with the function's own inference core."""

from __future__ import annotations

from pathlib import Path

import click

from .options import exit_for_record_errors, json_option, model_option


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              envvar="RCYC_BACKEND", help="litert runs the .tflite files; keras runs the .h5 files (needs TensorFlow).")
@json_option
@click.pass_context
def predict(ctx, images, model, backend, as_json):
    """Classify IMAGE files in-process with the function's own inference core."""
    from ..predict import predict_files
    from ..render import console, results
    from ..render.progress import rich_reporter

    with rich_reporter(quiet=as_json, transient=True) as report:
        response = predict_files(list(images), model, backend, report)
    if as_json:
        console.print_json(response)
    else:
        results.render_response(response)
        console.out.print(f"[dim]backend {response['backend']}[/dim]")
    exit_for_record_errors(ctx, response)
