"""The live progress display (rich): bars appear only when there is something to show (an image build,
uploads, a push, many images, training stages), all in one rich ``Progress``."""

from __future__ import annotations

import contextlib

from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

from ..reporting import Reporter
from . import console


class _Amount(ProgressColumn):
    """Bytes for transfers, "done/total" for steps and items."""

    def __init__(self):
        super().__init__()
        self._bytes, self._count, self._speed = DownloadColumn(), MofNCompleteColumn(), TransferSpeedColumn()

    def render(self, task):
        return self._bytes.render(task) if task.fields.get("bytes") else self._count.render(task)


def _safe(text: str) -> str:
    """A name in a task's description: printable (shown) and not read as rich markup."""
    from rich.markup import escape

    from ..files import shown

    return escape(shown(text))


@contextlib.contextmanager
def live_reporter(transient: bool = False):
    """A Reporter drawing on stderr with one rich Progress; stopped on exit (also on errors)."""
    progress = Progress(TextColumn("[bold]{task.fields[what]}"), BarColumn(), _Amount(), TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.description}"), console=console.err, transient=transient)
    tasks: dict[tuple[str, str], int] = {}

    def task(what: str, name: str = "", total=None, in_bytes: bool = False) -> int:
        if (what, name) not in tasks:
            if not progress.live.is_started:
                progress.start()
            tasks[what, name] = progress.add_task(_safe(name[:40]), what=what, total=total, bytes=in_bytes)
        return tasks[what, name]

    def build_step(step: int, total: int, text: str) -> None:
        progress.update(task("build"), total=total, completed=step - 1, description=_safe(text[:60]))

    def upload(label: str, sent: int, total: int) -> None:
        progress.update(task("upload", label, total or None, in_bytes=True), advance=sent)

    def layer(layer_id: str, state: str, current, total) -> None:
        handle = task("push", layer_id[:12], in_bytes=True)
        if state in ("Pushed", "Layer already exists", "Mounted from"):
            size = progress.tasks[handle].total or 1
            progress.update(handle, description=f"{layer_id[:12]} {state}", total=size, completed=size)
        elif total:
            progress.update(handle, description=f"{layer_id[:12]} {state}", total=total, completed=current or 0)
        else:
            progress.update(handle, description=f"{layer_id[:12]} {state}")

    def stage(name: str, done: int, total: int) -> None:
        progress.update(task(name), total=total or None, completed=done)

    def expect(total: int) -> None:
        progress.update(task("images"), total=total)

    def done(n: int) -> None:
        progress.advance(task("images"), n)

    try:
        yield Reporter(status=console.status, notice=console.notice, build_step=build_step, upload=upload, layer=layer, stage=stage, expect=expect, done=done)
    finally:
        if "build" in (what for what, _ in tasks):
            handle = tasks["build", ""]
            progress.update(handle, completed=progress.tasks[handle].total or 0, description="done")
        progress.stop()
