"""The five-way prediction as people read it: a table with a score bar per class, or a per-class summary
of many images; errors and skips one line each."""

from __future__ import annotations

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rcyc_core.labels import LABELS
from rcyc_core.results import Response, Result

from ..files import shown
from .console import log_lines, out, plural, title


def where(entry, files: dict[str, str] | None = None) -> str:
    """What to call a result, an error or a skip: the user's own file when the object is one this run uploaded
    (``files``: its S3 URI -> the path as given; the same key in another bucket is another object), else its
    S3 URI (or the key, for rcyc predict)."""
    key = str(entry.key)
    uri = f"s3://{entry.bucket}/{key}"
    if files and entry.bucket and uri in files:
        return shown(files[uri])
    return shown(uri if entry.bucket else key)


def prediction_table(entry: Result) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("class")
    table.add_column("score", justify="right")
    table.add_column("", min_width=24)
    for label in LABELS:
        score = entry.scores[label]
        top = label == entry.label
        style = "bold green" if top else ""
        bar = ProgressBar(total=1.0, completed=score, width=30, complete_style="green" if top else "bar.complete")
        table.add_row(Text(("▶ " if top else "  ") + label, style=style), Text(f"{score:.4f}", style=style), bar)
    return table


TABLES_UP_TO = 8  # more results than this: a per-class summary instead of a table each


def render_response(response: dict, files: dict[str, str] | None = None) -> None:
    """The five-way prediction of every record (or a per-class summary of many), then each error and skip.
    ``files`` (S3 URI -> the user's path) names results after the files they came from."""
    typed = Response.from_json(response)
    results = typed.results
    if len(results) <= TABLES_UP_TO:
        for entry in results:
            title(where(entry, files))
            out.print(prediction_table(entry))
            out.print()
    else:
        title(plural(len(results), "image"))
        summary = Table(show_edge=False)
        summary.add_column("class")
        summary.add_column("images", justify="right")
        summary.add_column("mean confidence", justify="right")
        for label in LABELS:
            mine = [r.confidence for r in results if r.label == label]
            summary.add_row(label, str(len(mine)), f"{sum(mine) / len(mine):.3f}" if mine else "-")
        out.print(summary)
    for error in typed.errors:
        name = where(error, files) if error.key else "(event)"
        out.print(Text.assemble(("✗ ", "bold red"), (name, "bold"), f"  {error.error}: {shown(error.message)}"), soft_wrap=True)
    for skipped in typed.skipped:
        out.print(Text.assemble(("– ", "yellow"), (where(skipped, files) if skipped.key else "(event)", "bold"),
                                f"  skipped: {shown(skipped.reason)}"), soft_wrap=True)
    if "batchItemFailures" in response:  # an SQS batch: what Lambda would do with each message
        retry = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        out.print(Text(f"SQS answer: retry {len(retry)} message(s){': ' + ', '.join(retry) if retry else ''}; "
                       "the others are deleted from the queue", style="bold"))
    if typed.model:
        out.print(Text(f"model {shown(typed.model.name)} {shown(typed.model.version)} (sha256 {typed.model.sha256[:12]}…)", style="dim"))


def render_report(invocation_info: dict) -> None:
    if "report" not in invocation_info:
        out.print(Text(
            f"emulator ({invocation_info['runtime']}): {plural(invocation_info['invocations'], 'invocation')}, "
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


def render_invocation(result: dict) -> None:
    """A deployed function's answer (rcyc invoke, upload-image --invoke, deploy --smoke) and its log tail."""
    log_lines(result.get("log_tail", []))
    render_response(result["response"])
    info = result["invocation"]
    out.print(Text(f"invoked {info['function']} ({info['endpoint']}) in {info['wall_ms']:.0f} ms", style="cyan"))
