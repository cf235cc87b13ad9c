"""The two consoles (results and JSON on stdout; progress, logs and errors on stderr) and one-line
messages. rich honours NO_COLOR and prints plainly when the output is not a terminal."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def status(message: str) -> None:
    err.print(Text(f"• {message}", style="dim"), soft_wrap=True)


def error(message: str, hint: str = "") -> None:
    # soft_wrap: one line each, however narrow the terminal (or 80 columns when not a terminal)
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        err.print(Text.assemble(("hint: ", "yellow"), hint), soft_wrap=True)



def notice(message: str) -> None:
    err.print(Text.assemble(("rcyc: ", "cyan"), message), soft_wrap=True)


def warning(message: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), message), soft_wrap=True)


def log_lines(lines) -> None:
    """The function's (or a build's) own log lines, dimmed, on stderr."""
    for line in lines:
        err.print(line, markup=False, highlight=False, style="dim", soft_wrap=True)
