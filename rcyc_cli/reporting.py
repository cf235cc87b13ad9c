"""How library functions tell the user what they are doing, without knowing how it is shown.

A ``Reporter`` is a set of callbacks; the default one says nothing (tests, --json). The commands pass the
one ``render.progress.rich_reporter`` makes, which draws every kind of progress on stderr."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def _silent(*args, **kwargs) -> None:
    return None


@dataclass
class Reporter:
    status: Callable[[str], None] = _silent  # one line about the current step
    notice: Callable[[str], None] = _silent  # a line the user must see even with --json (stderr): e.g. a daemon started
    build_step: Callable[[int, int, str], None] = _silent  # (step, total steps, instruction) of an image build
    upload: Callable[[str, int, int], None] = _silent  # (label, bytes sent since the last call, file size)
    layer: Callable[[str, str, int | None, int | None], None] = _silent  # (layer id, status, bytes done, layer size)
    stage: Callable[[str, int, int], None] = _silent  # (stage, done, total) of a multi-stage job (training)
    expect: Callable[[int], None] = _silent  # how many items there will be (the total for done)
    done: Callable[[int], None] = _silent  # n more items (images, records) finished


SILENT = Reporter()


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """"1 image", "2 images" (``nouns`` for irregular plurals): for status lines and results alike."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
