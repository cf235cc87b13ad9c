"""The rcyc command line: the root group, config loading and the one error boundary. The commands live in
``commands/``: each only parses options, calls one function of the library, and renders.

Heavy modules (boto3, numpy, LiteRT, moto, TensorFlow) are imported inside the commands that need them,
so `rcyc --help` stays fast.
"""

from __future__ import annotations

import os

import click

from rcyc_core.errors import RcycError

from . import __version__
from .commands import all_commands
from .config import read_config
from .exit_status import ExitStatus, for_error

class RcycGroup(click.Group):
    """The one error boundary: expected failures become one error: line, one hint: line and the exit status
    of their kind (exit_status.py, README); anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RcycError as exc:
            from .render import console

            console.log_lines(getattr(exc, "logs", None) or [])
            console.error(exc.message, exc.hint)
            ctx.exit(for_error(exc))
        except KeyboardInterrupt:
            from .render import console

            console.error("interrupted; everything rcyc started has been stopped")
            ctx.exit(ExitStatus.INTERRUPTED)


def load_config(ctx: click.Context) -> None:
    """rcyc.toml (or RCYC_CONFIG) in the lowest place of: flags > environment > config file > defaults.
    Its top-level keys are option names (bucket = "...", model = "...") applied to every command that has
    that option, subcommands of groups (rcyc models promote, rcyc local up) included."""
    try:
        settings = read_config()
    except RcycError as exc:
        raise click.UsageError(exc.message) from None
    settings = {key.replace("-", "_"): value for key, value in settings.items() if not isinstance(value, dict)}
    ctx.default_map = _defaults_for(ctx.command, settings)


def _defaults_for(command: click.Command, settings: dict) -> dict:
    """click's default_map for ``command``: its own options' values, and a nested map per subcommand."""
    defaults = {p.name: settings[p.name] for p in command.params if p.name in settings}
    for name, sub in getattr(command, "commands", {}).items():
        defaults[name] = _defaults_for(sub, settings)
    return defaults


@click.group(cls=RcycGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rcyc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """rcyc: build, run, deploy and query the recyclable-item classifier on AWS Lambda.

    \b
    Start here:
      rcyc predict IMAGE...        classify files in-process (no AWS, no Docker)
      rcyc invoke-local [IMAGE...] the same through the real Lambda emulator and a local S3
      rcyc doctor                  what is installed, what is missing, and how to fix it
    """
    keep_loopback_off_proxies()
    load_config(ctx)


def keep_loopback_off_proxies() -> None:
    """rcyc's local servers are on 127.0.0.1: behind a corporate HTTP(S)_PROXY, requests to them must not
    go through the proxy (urllib and botocore both honour NO_PROXY)."""
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h]
        missing = [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        if missing:
            os.environ[name] = ",".join(hosts + missing)


for _command in all_commands():
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="rcyc")


if __name__ == "__main__":
    main()
