"""One progress display for every command: a ``Reporter`` whose callbacks draw on stderr (``live_progress``),
or, when quiet (--json), one that only passes on what the user must know, without importing rich."""

from __future__ import annotations

import contextlib

from ..reporting import Reporter
from .console import plain_notice


@contextlib.contextmanager
def rich_reporter(quiet: bool = False, transient: bool = False):
    """Yields the Reporter a command hands to the library; stops the display on exit (also on errors)."""
    if quiet:
        yield Reporter(notice=plain_notice)
        return
    from .live_progress import live_reporter

    with live_reporter(transient) as report:
        yield report
