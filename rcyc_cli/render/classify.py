"""rcyc classify's summary: what was classified, per class, errors by kind, throughput and cost."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from rcyc_core.labels import LABELS

from ..files import shown
from .console import out, plural, title


def render_summary(summary: dict) -> None:
    where = f"s3://{summary['bucket']}/{summary['prefix']}"
    if summary["dry_run"]:
        estimate = summary["estimate"]
        out.print(Text.assemble(("plan (dry run: nothing invoked) ", "bold"), where))
        out.print(f"{plural(summary['images'], 'image')} ({summary['not_images']} other objects), {summary['done_before']} already "
                  f"classified by the current model, {summary['to_classify']} to classify")
        out.print(f"{plural(estimate['invocations'], 'invocation')} of {summary['function']} ({summary['endpoint']}), "
                  f"about {estimate['seconds']} s at concurrency {summary['concurrency']}, "
                  f"{estimate['gb_seconds']} GB-s ({estimate['cold_starts']} cold starts) ≈ ${estimate['lambda_usd']:.4f} at "
                  f"{summary['memory_mb']} MB {summary['architecture']}, + ${estimate['s3_usd']:.4f} of S3 requests "
                  f"≈ ${estimate['cost_usd']:.4f} in all")
        out.print(Text(f"estimated from {estimate['basis']}", style="dim"))
        return
    title(f"{where} → {summary['results_prefix']}")
    table = Table(show_edge=False)
    table.add_column("class")
    table.add_column("images", justify="right")
    for label in LABELS:
        table.add_row(label, str(summary["per_class"][label]))
    out.print(table)
    out.print(f"{summary['classified']} classified now, {summary['done_before']} already done, "
              f"{summary['not_images']} other objects untouched; {plural(summary['invocations'], 'invocation')} "
              f"({summary['retries']} retried), {summary['seconds']:.1f} s"
              + (f", {summary['images_per_second']} images/s" if summary.get("images_per_second") else ""))
    for kind, count in sorted(summary["errors"].items()):
        out.print(Text.assemble(("✗ ", "bold red"), f"{count} × {kind}"))
    if "cost_usd" in summary:
        out.print(f"billed {summary['billed_ms'] / 1000:.1f} s, {summary['gb_seconds']} GB-s ≈ ${summary['cost_usd']:.4f} "
                  f"({summary['memory_mb']} MB {summary['architecture']}, public on-demand price)")
    if summary.get("output"):
        out.print(Text(f"one line per key: {shown(summary['output'])}", style="dim"))
    for warning in summary.get("warnings", []):
        out.print(Text.assemble(("! ", "bold yellow"), shown(warning)))
