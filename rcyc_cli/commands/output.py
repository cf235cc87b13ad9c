"""The one output path of every command: ``--json`` or people, progress, a reader that went away, and the
exit status. Commands build a payload and hand it to ``emit`` with the renderer people see; they never
choose the format themselves.

- ``--json``: the payload as JSON, alone on stdout (progress and notices go to stderr, without rich).
- people: ``human(payload)`` draws it with rich, which honours ``NO_COLOR`` and prints plainly off a terminal.
- a closed stdout (``rcyc eval ... | head``): the rest of the output is dropped, the command's own exit
  status stands (no traceback, no exit 1).
- ``status``: the exit status after the output (``record_status`` says 7 when some records failed).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

import click

from ..exit_status import ExitStatus

_JSON = "rcyc.json"  # where --json is kept in the click context's meta (shared by a group and its subcommands)


def _remember_json(ctx: click.Context, _param, value: bool) -> bool:
    ctx.meta[_JSON] = value
    return value


json_option = click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_remember_json,
                           help="Print machine-readable JSON only (on stdout).")


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_JSON))


def record_status(response: dict | None) -> ExitStatus:
    """7 when the command finished but some records or images are in ``errors``."""
    return ExitStatus.RECORD_ERRORS if response and response.get("errors") else ExitStatus.OK


def progress(transient: bool = False):
    """The Reporter a command hands to the library: live progress on stderr for people, notices only with --json."""
    from ..render.progress import rich_reporter

    return rich_reporter(quiet=wants_json(), transient=transient)


def emit(payload: object, human: Callable[[object], None] | None = None, status: int = ExitStatus.OK) -> None:
    """Print ``payload`` (JSON with --json, else ``human(payload)``; nothing for people when ``human`` is None),
    then exit with ``status`` unless it is 0."""
    try:
        if wants_json():
            from ..render import console

            console.print_json(payload)
        elif human is not None:
            human(payload)
            sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    if status:
        click.get_current_context().exit(int(status))


def _drop_stdout() -> None:
    """The reader went away: point stdout at /dev/null, so nothing later (nor the interpreter's last flush)
    fails on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
