"""The two consoles (results and JSON on stdout; progress, logs and errors on stderr) and one-line
messages. rich honours NO_COLOR and prints plainly when the output is not a terminal."""

from __future__ import annotations

import json
import sys

from ..quiet import drop_stream
from ..reporting import plural  # noqa: F401 - the renderers' one plural

_consoles: dict[bool, object] = {}


def _console(stderr: bool):
    if stderr not in _consoles:
        from rich.console import Console

        class OutConsole(Console):
            def on_broken_pipe(self) -> None:
                # rich's own answer is SystemExit(1); the one output path (commands.output.emit) decides instead.
                self.quiet = True
                raise BrokenPipeError

        class ErrConsole(Console):
            def on_broken_pipe(self) -> None:
                # rich's own answer is SystemExit(1) (and stdout pointed at /dev/null): the reader of the
                # diagnostics went away (`rcyc ... 2>&1 | head`), not the work's. They go nowhere from now
                # on; the command goes on and ends with its own status.
                drop_stream(sys.stderr)

        _consoles[stderr] = (ErrConsole if stderr else OutConsole)(stderr=stderr, highlight=False)
    return _consoles[stderr]


def __getattr__(name: str):
    # console.out / console.err are made on first use: importing rich costs ~40 ms that --json does not need.
    if name in ("out", "err"):
        return _console(name == "err")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _text(*parts):
    from rich.text import Text

    return Text.assemble(*parts)


def title(text: str, style: str = "bold") -> None:
    """A heading on a line of its own, never wrapped: a table's own title wraps at the table's width, which cuts
    a long path or URI mid-word even in a wide terminal."""
    _console(False).print(_text((text, style)), soft_wrap=True)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def status(message: str) -> None:
    from ..files import shown

    _console(True).print(_text((f"• {shown(message)}", "dim")), soft_wrap=True)


def error(message: str, hint: str = "") -> None:
    # soft_wrap: one line each, however narrow the terminal (or 80 columns when not a terminal); shown():
    # a name in the message with a newline or an escape sequence cannot break the line or reach the terminal
    from ..files import shown

    # _cut: a message that carries the function's word (its errorMessage) may be megabytes long; one line is not
    _console(True).print(_text(("error: ", "bold red"), _cut(shown(message))), soft_wrap=True)
    if hint:
        _console(True).print(_text(("hint: ", "yellow"), _cut(shown(hint))), soft_wrap=True)


def _cut(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} characters more)"



def notice(message: str) -> None:
    from ..files import shown

    _console(True).print(_text(("rcyc: ", "cyan"), shown(message)), soft_wrap=True)


def plain_notice(message: str) -> None:
    """A notice without rich (the --json path imports no rich)."""
    from ..files import shown

    try:
        print(f"rcyc: {shown(message)}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        drop_stream(sys.stderr)


def warning(message: str) -> None:
    from ..files import shown

    _console(True).print(_text(("warning: ", "yellow"), shown(message)), soft_wrap=True)


def log_lines(lines) -> None:
    """The function's (or a build's) own log lines, dimmed, on stderr."""
    for line in lines:
        _console(True).print(line, markup=False, highlight=False, style="dim", soft_wrap=True)
