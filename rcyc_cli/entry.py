"""The ``rcyc`` command's entry point (pyproject's console script). A Ctrl-C while Python still loads the CLI
(click and the commands: the first tenth of a second or so) ends it as any Ctrl-C does, with one error line
and exit 130, not with a KeyboardInterrupt traceback from inside an import. Once loaded, ``main.main``
installs rcyc's own stop handling. Only the console script comes here: a test or a library that imports
``rcyc_cli.main`` keeps its own SIGINT handling."""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130  # exit_status.ExitStatus.INTERRUPTED (not imported: this runs before anything is loaded)


def _interrupted_while_loading(signum, frame) -> None:
    # a second Ctrl-C is this same stop: left to Python's exit, which puts the default back, it would end
    # rcyc by SIGINT instead of with this status (an ignored signal stays ignored)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stderr.write("error: interrupted while rcyc was starting; it had started nothing yet\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or a broken pipe: the status says it
        pass
    raise SystemExit(INTERRUPTED)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_while_loading)
    from .main import main as run  # the loading this guards

    run(loading_guard=_interrupted_while_loading)  # replaced by rcyc's own stop handling first thing
