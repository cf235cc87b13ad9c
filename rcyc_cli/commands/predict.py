"""rcyc predict: classify files in-process with the function's own inference core."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import BACKENDS, DEFAULT_BACKEND
from .options import model_option
from .output import emit, json_option, progress, record_status


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND, show_default=True,
              envvar="RCYC_BACKEND", help="litert runs the .tflite files; keras runs the .h5 files (needs TensorFlow).")
@json_option
def predict(images, model, backend):
    """Classify IMAGE files in-process with the function's own inference core."""
    from ..predict import predict_files

    with progress(transient=True) as report:
        response = predict_files(list(images), model, backend, report)
    emit(response, _render, record_status(response))


def _render(response: dict) -> None:
    from ..render import console, results

    results.render_response(response)
    console.out.print(f"[dim]backend {response['backend']}[/dim]")
