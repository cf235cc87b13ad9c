"""Summaries of what a command did: builds, the local stack, deploys, model lists, checks."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .console import out, warning
from .results import render_invocation


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def render_build(summary: dict) -> None:
    state = "cache hit: nothing rebuilt" if summary["cache_hit"] else f"built in {summary['seconds']:.1f} s"
    out.print(Text.assemble(("image ", "bold"), summary["image_id"][7:19], f"  ({state})"))
    out.print(f"tags:  {', '.join(summary['tags']) or '(none)'}")
    out.print(f"size:  {_size(summary['size'])} in all, {_size(summary['own_layers_size'])} of it the function's own layers")
    out.print(Text(f"next: rcyc invoke-local --runtime docker --flavor {summary['flavor']}", style="dim"))


def render_stack(status: dict) -> None:
    """rcyc local up / status: the stack's instances (status as ``stack.describe`` returns it)."""
    table = Table(title=f"local stack at {status['endpoint']} (S3 {status['s3_endpoint']}, bucket {status['bucket']})",
                  title_justify="left", show_edge=False)
    for column in ("instance", "runtime", "model", "invokes", "cold start", "restarts"):
        table.add_column(column)
    for instance in status["instances"]:
        model = instance.get("model") or {}
        table.add_row(str(instance["instance"]), instance["runtime"], f"{model.get('name', '?')} {model.get('version', '')}",
                      str(instance["invocations"]), f"{instance['cold_start_ms']:.0f} ms" if instance["cold_start_ms"] else "-",
                      str(instance["restarts"]))
    out.print(table)


def render_deploy(summary: dict) -> None:
    title = "plan (dry run: nothing changed)" if summary["dry_run"] else "deployed"
    table = Table(title=Text(title, style="bold"), title_justify="left", show_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    repo, image, role, function = summary["repository"], summary["image"], summary["role"], summary["function"]
    table.add_row("repository", f"{repo['name']}: {repo['action']}" + (" (scan on push)" if repo.get("scan_on_push") else ""))
    registry = summary["registry"]
    table.add_row("registry", f"{registry['host']} (login: {registry['login']}" + (f"; {registry['note']}" if registry.get("note") else "") + ")")
    table.add_row("image", f"{image['reference']}: {image.get('action')}")
    table.add_row("", image["local"])
    if image.get("architecture"):
        table.add_row("architecture", image["architecture"])
    table.add_row("role", f"{role['name']}: {role['action']}")
    table.add_row("function", f"{function['name']}: {function['action']}" +
                  (f" ({'; '.join(function['changes'])})" if function.get("changes") and function["action"] != "created" else ""))
    if function.get("version"):
        table.add_row("version", str(function["version"]))
    if function.get("state"):
        table.add_row("state", f"{function['state']}, last update {function.get('last_update_status') or '-'}")
    table.add_row("environment", ", ".join(f"{k}={v}" for k, v in function["environment"].items()))
    if summary.get("trigger"):
        trigger = summary["trigger"]
        where = f"s3://{summary['bucket']}/{trigger['prefix']}*" if trigger.get("prefix") is not None else f"s3://{summary['bucket']}"
        table.add_row("trigger", f"{where}: {trigger['action']}" + (f" (via {trigger['via']})" if trigger.get("via") else ""))
    out.print(table)
    # Identifiers are printed whole, one per line, never cut to the terminal's width (they are copied and compared).
    for label, value in (("digest", image.get("digest")), ("image uri", image.get("uri")), ("arn", function.get("arn"))):
        if value:
            out.print(Text.assemble((f"{label}: ", "bold"), value), soft_wrap=True)
    for message in summary.get("warnings", []):
        warning(message)
    smoke = summary.get("smoke")
    if smoke and smoke.get("error"):
        warning(f"smoke test failed: {smoke['error']['kind']}: {smoke['error']['message']}")
    elif smoke:
        render_invocation(smoke)


def render_checks(rows: list[tuple[str, str, str, str]]) -> None:
    """rcyc doctor: (check, status, detail, fix) per row, the status coloured."""
    styles = {"ok": "green", "missing": "red", "high": "bold red", "medium": "yellow", "skipped": "dim",
              "not applicable": "dim"}
    table = Table(show_edge=False)
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    for name, state, detail, fix in rows:
        table.add_row(name, f"[{styles.get(state, '')}]{state}[/]", detail, fix)
    out.print(table)


def render_models(listing: dict) -> None:
    table = Table(show_edge=False)
    for column in ("", "name", "version", "uploaded"):
        table.add_column(column)
    for model in listing["models"]:
        table.add_row("▶" if model["current"] else "", model["name"], model["version"], model["uploaded"])
    out.print(table)
    if listing["current"] is None:
        out.print("no current model: rcyc upload-model PATH")
