"""Every option more than one command takes, declared once (import-light: `rcyc --help` loads this).
Defaults come from ``defaults``. ``function_spec_options`` gathers the function's own options into one
``spec`` (a FunctionSpec) for deploy, the warm stack and invoke-local."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from ..defaults import (ARCHITECTURES, DEFAULT_BASE_IMAGE, DEFAULT_BUCKET, DEFAULT_FLAVOR, DEFAULT_FUNCTION, DEFAULT_MEMORY,
                        DEFAULT_RUNTIME, DEFAULT_TIMEOUT, FLAVORS, MIN_PER_CLASS, RUNTIMES)

class Fraction(click.FloatRange):
    """A float in a range that is a number: click's FloatRange lets NaN through (every comparison with it is
    false), and a NaN gate or split would be a wrong answer or a traceback later."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


class PlainText(click.types.StringParamType):
    """Every text option (names, prefixes, regions, URLs): not empty, valid UTF-8, no control characters; refused
    as a usage error before any work. A name with an escape sequence or a newline would reach a terminal,
    a log line or an AWS call raw; undecodable bytes would be a traceback wherever they are first encoded.
    File paths keep click.Path: the files they name are checked where they are read (files.py)."""

    name = "text"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{ascii(value)[:60]} is not valid UTF-8", param, ctx)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            self.fail(f"{ascii(value)[:60]} holds a control character", param, ctx)
        if not value.strip():
            self.fail("it is empty", param, ctx)
        return value


def plain_text_everywhere(command: click.Command) -> None:
    """Give every text option of ``command`` (and of its subcommands) the PlainText check. (Arguments are
    file names and keys: checked where they are read, exit 3 as the README says for such names.)"""
    for param in command.params:
        if isinstance(param, click.Option) and type(param.type) is click.types.StringParamType:
            param.type = PLAIN_TEXT
    for sub in getattr(command, "commands", {}).values():
        plain_text_everywhere(sub)


PLAIN_TEXT = PlainText()
SEED = click.IntRange(0, 2**32 - 1)  # what numpy's and the backbone's generators take


def check_endpoint_url(ctx, param, value):
    """An http(s) URL with a host, or a usage error naming the value (never a traceback from botocore)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts, ok = None, False
    import re

    shown = re.sub(r"//[^/?#]*@", "//...@", value)  # what a message may repeat: never a user:password
    if parts is not None and "@" in parts.netloc:
        # botocore never authenticates with a URL's user:password, and the URL is echoed in --json, errors and
        # logs: a secret in it would leak; refused, without repeating it.
        raise click.BadParameter(f"{shown!r} holds a user name or password, which S3 and Lambda never "
                                 "use and rcyc would show: remove it (credentials come from the AWS profile)")
    if not ok:
        raise click.BadParameter(f"{shown!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:5000")
    return value


def check_region(ctx, param, value):
    """An AWS region's shape (botocore's own check raises a bare error deep inside a call)."""
    import re

    if value is not None and not re.fullmatch(r"[a-z]{2}(-[a-z0-9]+){1,4}", value):
        raise click.BadParameter(f"{value[:60]!r} is not an AWS region name, e.g. eu-west-1")
    return value


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
ca_bundle_option = click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar="RCYC_CA_BUNDLE",
                                help="CA bundle pip trusts during the build (TLS-intercepting proxies). [env RCYC_CA_BUNDLE]")
rie_option = click.option("--rie", envvar="RCYC_RIE", help="Path of the aws-lambda-rie binary. [env RCYC_RIE]")
timeout_option = click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.IntRange(1, 900),
                              help="Function timeout, seconds.")
memory_option = click.option("--memory", default=DEFAULT_MEMORY, show_default=True, type=click.IntRange(128, 10240),
                             help="Function memory, MB.")
min_per_class_option = click.option(
    "--min-per-class", type=click.IntRange(1), default=MIN_PER_CLASS, show_default=True,
    help="Images per class the gate needs before it promotes (held-out for train --upload, --eval's otherwise).")


def min_per_class_needs(flag: str, present: bool) -> None:
    """--min-per-class is the gate's floor: given without the option that runs the gate, it would be silently
    ignored, so it is a usage error instead."""
    from click.core import ParameterSource

    if not present and click.get_current_context().get_parameter_source("min_per_class") is not ParameterSource.DEFAULT:
        raise click.UsageError(f"--min-per-class is the promotion gate's floor: it needs {flag}")


region_option = click.option("--region", envvar="AWS_REGION", callback=check_region, help="AWS region. [env AWS_REGION, or the profile's]")
function_option = click.option("--function", "function", envvar="RCYC_FUNCTION",
                               help=f"The Lambda function (default {DEFAULT_FUNCTION}; 'function' with --lambda-endpoint-url). "
                               "[env RCYC_FUNCTION]")
runtime_option = click.option(
    "--runtime", type=click.Choice(RUNTIMES), default=DEFAULT_RUNTIME, show_default=True, envvar="RCYC_RUNTIME",
    help="docker: the function image in a container; process: the emulator on this machine; auto: docker when an "
    "engine answers and has the base image. [env RCYC_RUNTIME]")
platform_option = click.option("--platform", type=click.Choice(sorted(ARCHITECTURES)),
                               help="Target platform (sets the function's architecture).")


def _endpoint_option(flag: str, help: str, envvar: list[str] | None = None):
    """--s3-endpoint-url or --lambda-endpoint-url (one name per service across commands), plus the old
    --endpoint-url with this command's old meaning, kept as a deprecated alias. Both fill ``endpoint_url``."""
    key = "rcyc.deprecated_endpoint_url"

    def deprecated(ctx, param, value):
        # Processed before the new option when given on the command line (click handles given options first).
        if value is not None:
            ctx.meta[key] = check_endpoint_url(ctx, param, value)
            click.echo(f"warning: --endpoint-url is deprecated here; it means {flag} (use that).", err=True)

    def current(ctx, param, value):
        return ctx.meta.get(key) or check_endpoint_url(ctx, param, value)

    env = f" [env {', '.join(envvar)}]" if envvar else ""

    def decorate(f):
        f = click.option("--endpoint-url", "deprecated_endpoint_url", hidden=True, expose_value=False,
                         callback=deprecated)(f)
        return click.option(flag, "endpoint_url", envvar=envvar, callback=current, help=help + env)(f)

    return decorate


# S3 endpoints are --s3-endpoint-url, Lambda endpoints --lambda-endpoint-url, in every command.
endpoint_option = _endpoint_option(
    "--lambda-endpoint-url", "Invoke an emulator at this URL (e.g. the local stack's `endpoint`) instead of AWS Lambda.")
s3_endpoint_option = _endpoint_option(
    "--s3-endpoint-url", "Use the S3 at this URL instead of the local stack's (or the embedded one).",
    envvar=["RCYC_LOCAL_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"])


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
