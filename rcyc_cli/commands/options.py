"""Every option more than one command takes, declared once (import-light: `rcyc --help` loads this).
Defaults come from ``defaults``. ``function_spec_options`` gathers the function's own options into one
``spec`` (a FunctionSpec) for deploy, the warm stack and invoke-local."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ..defaults import (ARCHITECTURES, DEFAULT_BASE_IMAGE, DEFAULT_BUCKET, DEFAULT_FLAVOR, DEFAULT_FUNCTION, DEFAULT_MEMORY,
                        DEFAULT_RUNTIME, DEFAULT_TIMEOUT, FLAVORS, MIN_PER_CLASS, RUNTIMES)

bucket_option = click.option("--bucket", default=DEFAULT_BUCKET, show_default=True, envvar="RCYC_BUCKET",
                             help="The bucket for models and images. [env RCYC_BUCKET]")
model_option = click.option(
    "--model", type=click.Path(path_type=Path), envvar="RCYC_MODEL",
    help="A manifest directory, a .h5/.keras file, or a Portland State directory (model_N_prime.h5). "
    "Default: the fixture model. [env RCYC_MODEL]",
)
flavor_option = click.option("--flavor", type=click.Choice(FLAVORS), default=DEFAULT_FLAVOR, show_default=True,
                             envvar="RCYC_FLAVOR", help="slim: LiteRT runs the .tflite files; keras: TensorFlow runs the .h5 files.")
base_image_option = click.option("--base-image", envvar="RCYC_BASE_IMAGE",
                                 help=f"Base image (default {DEFAULT_BASE_IMAGE}). [env RCYC_BASE_IMAGE]")
ca_bundle_option = click.option("--ca-bundle", type=click.Path(path_type=Path), envvar="RCYC_CA_BUNDLE",
                                help="CA bundle pip trusts during the build (TLS-intercepting proxies). [env RCYC_CA_BUNDLE]")
rie_option = click.option("--rie", envvar="RCYC_RIE", help="Path of the aws-lambda-rie binary. [env RCYC_RIE]")
timeout_option = click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.IntRange(1, 900),
                              help="Function timeout, seconds.")
memory_option = click.option("--memory", default=DEFAULT_MEMORY, show_default=True, type=click.IntRange(128, 10240),
                             help="Function memory, MB.")
min_per_class_option = click.option(
    "--min-per-class", type=click.IntRange(1), default=MIN_PER_CLASS, show_default=True,
    help="Images per class the gate needs before it promotes (held-out for train --upload, --eval's otherwise).")
region_option = click.option("--region", envvar="AWS_REGION", help="AWS region. [env AWS_REGION, or the profile's]")
function_option = click.option("--function", "function", envvar="RCYC_FUNCTION",
                               help=f"The Lambda function (default {DEFAULT_FUNCTION}; 'function' with --endpoint-url). "
                               "[env RCYC_FUNCTION]")
runtime_option = click.option(
    "--runtime", type=click.Choice(RUNTIMES), default=DEFAULT_RUNTIME, show_default=True, envvar="RCYC_RUNTIME",
    help="docker: the function image in a container; process: the emulator on this machine; auto: docker when an "
    "engine answers and has the base image. [env RCYC_RUNTIME]")
platform_option = click.option("--platform", type=click.Choice(sorted(ARCHITECTURES)),
                               help="Target platform (sets the function's architecture).")
endpoint_option = click.option("--endpoint-url",
                               help="Invoke an emulator at this URL (e.g. rcyc's local sandbox) instead of AWS Lambda.")


def function_spec_options(local: bool):
    """The function's options (flavor, base image, CA bundle, memory, timeout; with ``local`` the runtime and
    the emulator, else the platform), handed to the command as one ``spec``."""
    extra = [runtime_option, rie_option] if local else [platform_option]
    names = ["flavor", "base_image", "ca_bundle", "memory", "timeout"] + (["runtime", "rie"] if local else ["platform"])

    def decorate(command):
        @functools.wraps(command)
        def with_spec(*args, **kwargs):
            from ..function_spec import FunctionSpec

            given = {name: kwargs.pop(name) for name in names}
            platform = given.pop("platform", None)
            kwargs["spec"] = FunctionSpec(**given, architecture=ARCHITECTURES.get(platform))
            return command(*args, **kwargs)

        for option in reversed([flavor_option, base_image_option, ca_bundle_option, memory_option, timeout_option, *extra]):
            with_spec = option(with_spec)
        return with_spec

    return decorate
