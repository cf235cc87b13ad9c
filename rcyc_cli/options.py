"""Options and defaults shared by the commands (kept import-light: `rcyc --help` loads this)."""

from __future__ import annotations

from pathlib import Path

import click

from rcyc_core.errors import EXIT_RECORD_ERRORS

DEFAULT_BUCKET = "recycle-able-image"
DEFAULT_FUNCTION = "rcyc-function"

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON only (on stdout).")
bucket_option = click.option("--bucket", default=DEFAULT_BUCKET, show_default=True, envvar="RCYC_BUCKET",
                             help="The bucket for models and images. [env RCYC_BUCKET]")
model_option = click.option(
    "--model", type=click.Path(path_type=Path), envvar="RCYC_MODEL",
    help="A manifest directory, a .h5/.keras file, or a Portland State directory (model_N_prime.h5). "
    "Default: the fixture model. [env RCYC_MODEL]",
)
flavor_option = click.option("--flavor", type=click.Choice(["slim", "keras"]), default="slim", show_default=True,
                             envvar="RCYC_FLAVOR", help="slim: LiteRT runs the .tflite files; keras: TensorFlow runs the .h5 files.")
base_image_option = click.option("--base-image", envvar="RCYC_BASE_IMAGE",
                                 help="Base image (default public.ecr.aws/lambda/python:3.12). [env RCYC_BASE_IMAGE]")
ca_bundle_option = click.option("--ca-bundle", type=click.Path(path_type=Path), envvar="RCYC_CA_BUNDLE",
                                help="CA bundle pip trusts during the build (TLS-intercepting proxies). [env RCYC_CA_BUNDLE]")


def exit_for_record_errors(ctx: click.Context, response: dict) -> None:
    """Exit 7 when the command finished but some records or images are in ``errors``."""
    if response.get("errors"):
        ctx.exit(EXIT_RECORD_ERRORS)
