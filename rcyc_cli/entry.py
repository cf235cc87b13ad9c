"""The ``rcyc`` command's entry point (pyproject's console script). A Ctrl-C (or SIGTERM, SIGHUP) while Python
still loads the CLI (click and the commands: the first tenth of a second or so) ends it as any stop does, with
one error line and exit 130 (143, 129), not with a KeyboardInterrupt traceback from inside an import or a
death by the signal. Once loaded, ``main.main`` installs rcyc's own stop handling in place of this guard. Only
the console script comes here: a test or a library that imports ``rcyc_cli.main`` keeps its own handling."""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130  # exit_status.ExitStatus.INTERRUPTED (not imported: this runs before anything is loaded)
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # main.STOPS; SIGTERM, SIGHUP: 128 + their number


def _interrupted_while_loading(signum, frame) -> None:
    # a second stop is this same stop: left to Python's exit, which puts the default back, it would end rcyc
    # by its signal instead of with this status (an ignored signal stays ignored)
    for stop in STOPS:
        signal.signal(stop, signal.SIG_IGN)
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    try:
        sys.stderr.write(f"error: {what} while rcyc was starting; it had started nothing yet\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or a broken pipe: the status says it
        pass
    raise SystemExit(INTERRUPTED if signum == signal.SIGINT else 128 + signum)


def main() -> None:
    for stop in STOPS:
        if signal.getsignal(stop) is not signal.SIG_IGN:  # ignored at start (nohup, a background job): it stays so
            signal.signal(stop, _interrupted_while_loading)
    from .main import main as run  # the loading this guards

    run(loading_guard=_interrupted_while_loading)  # replaced by rcyc's own stop handling first thing
