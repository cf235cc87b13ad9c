"""Rendering: rich tables with score bars for people, JSON for machines. Results and JSON go to stdout;
progress, logs and errors go to stderr. rich honours NO_COLOR and plain output when not on a terminal."""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rcyc_core.labels import LABELS

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def prediction_table(entry: dict) -> Table:
    where = f"s3://{entry['bucket']}/{entry['key']}" if entry.get("bucket") else str(entry.get("key"))
    table = Table(title=Text(where, style="bold"), title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("class")
    table.add_column("score", justify="right")
    table.add_column("", min_width=24)
    for label in LABELS:
        score = entry["scores"][label]
        top = label == entry["label"]
        style = "bold green" if top else ""
        bar = ProgressBar(total=1.0, completed=score, width=30, complete_style="green" if top else "bar.complete")
        table.add_row(Text(("▶ " if top else "  ") + label, style=style), Text(f"{score:.4f}", style=style), bar)
    return table


TABLES_UP_TO = 8  # more results than this: a per-class summary instead of a table each


def render_response(response: dict) -> None:
    """The five-way prediction of every record (or a per-class summary of many), then each error and skip."""
    results = response.get("results", [])
    if len(results) <= TABLES_UP_TO:
        for entry in results:
            out.print(prediction_table(entry))
            out.print()
    else:
        summary = Table(title=f"{len(results)} images", title_justify="left", show_edge=False)
        summary.add_column("class")
        summary.add_column("images", justify="right")
        summary.add_column("mean confidence", justify="right")
        for label in LABELS:
            mine = [r["confidence"] for r in results if r["label"] == label]
            summary.add_row(label, str(len(mine)), f"{sum(mine) / len(mine):.3f}" if mine else "-")
        out.print(summary)
    for entry in response.get("errors", []):
        where = entry.get("key") or "(event)"
        out.print(Text.assemble(("✗ ", "bold red"), (str(where), "bold"), f"  {entry['error']}: {entry['message']}"))
    for entry in response.get("skipped", []):
        out.print(Text.assemble(("– ", "yellow"), (str(entry.get("key")), "bold"), f"  skipped: {entry['reason']}"))
    model = response.get("model")
    if model:
        out.print(Text(f"model {model['name']} {model['version']} (sha256 {model['sha256'][:12]}…)", style="dim"))


def render_report(invocation_info: dict) -> None:
    if "report" not in invocation_info:
        out.print(Text(
            f"emulator ({invocation_info['runtime']}): {invocation_info['invocations']} invocations, "
            f"{invocation_info['cold_starts']} cold, {invocation_info['seconds']:.2f} s, "
            f"{invocation_info['images_per_second']} images/s, duration p50 {invocation_info['duration_ms_p50']} ms",
            style="cyan"))
        return
    report = invocation_info["report"]
    parts = ["cold start" if report["cold"] else "warm"]
    if report["init_ms"] is not None:
        parts.append(f"init {report['init_ms']:.0f} ms")
    if report["duration_ms"] is not None:
        parts.append(f"duration {report['duration_ms']:.1f} ms")
    if report["billed_ms"] is not None:
        parts.append(f"billed {report['billed_ms']:.0f} ms")
    parts.append(f"round trip {invocation_info['wall_ms']:.0f} ms")
    out.print(Text(f"emulator ({invocation_info['runtime']}): " + ", ".join(parts), style="cyan"))


def status(message: str) -> None:
    err.print(Text(f"• {message}", style="dim"), soft_wrap=True)


def error(message: str, hint: str = "") -> None:
    # soft_wrap: one line each, however narrow the terminal (or 80 columns when not a terminal)
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        err.print(Text.assemble(("hint: ", "yellow"), hint), soft_wrap=True)


@contextlib.contextmanager
def build_progress(disable: bool = False, transient: bool = False):
    """A progress bar over the build's steps, with the current step and the elapsed time (stderr)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]build"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, disable=disable, transient=transient) as progress:
        task = progress.add_task("", total=None)

        def on_step(step: int, total: int, text: str) -> None:
            progress.update(task, total=total, completed=step - 1, description=text[:60])

        yield on_step
        progress.update(task, completed=progress.tasks[0].total or 0, description="done")


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def render_build(summary: dict) -> None:
    state = "cache hit: nothing rebuilt" if summary["cache_hit"] else f"built in {summary['seconds']:.1f} s"
    out.print(Text.assemble(("image ", "bold"), summary["image_id"][7:19], f"  ({state})"))
    out.print(f"tags:  {', '.join(summary['tags']) or '(none)'}")
    out.print(f"size:  {_size(summary['size'])} in all, {_size(summary['own_layers_size'])} of it the function's own layers")
    out.print(Text(f"next: rcyc invoke-local --runtime docker --flavor {summary['flavor']}", style="dim"))


@contextlib.contextmanager
def count_progress(what: str, disable: bool = False):
    """A progress bar counting finished items (stderr); yields the callback that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=disable, transient=True) as progress:
        task = progress.add_task(what, total=None)
        yield lambda n: progress.advance(task, n)
