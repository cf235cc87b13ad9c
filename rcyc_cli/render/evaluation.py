"""rcyc eval in the terminal: the headline, per-class figures, the confusion matrix, what went wrong."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from rcyc_core.labels import LABELS

from ..files import shown
from .console import out, plural, warning

SHORT = {"boxes": "box", "glass_bottles": "glass", "soda_cans": "can", "crushed_soda_cans": "crushed", "plastic_bottles": "plastic"}


def _model(model: dict) -> str:
    return shown(f"{model.get('name', '?')} {model.get('version', '')}".strip())


def percent_ci(value: float | None, interval: list[float] | None) -> str:
    """87.5% (95% CI 69.0-95.7%): an accuracy never without its interval."""
    if value is None:
        return "n/a"
    return f"{value:.1%}" + (f" (95% CI {interval[0]:.1%}–{interval[1]:.1%})" if interval else "")


def render_evaluation(result: dict) -> None:
    metrics = result["metrics"]
    rate = result.get("images_per_second")
    leakage = result.get("leakage") or {}
    if leakage.get("seen") and not leakage.get("unseen"):
        headline = Text("no honest accuracy: every evaluated image was in the model's training set", style="bold red")
    else:
        headline = Text.assemble(("accuracy ", "bold"), (percent_ci(result["accuracy"], result.get("accuracy_ci")), "bold green"),
                                 f" on {metrics['support']}" + (" unseen" if leakage.get("seen") else "") + " images")
    out.print(Text.assemble(headline, f"  macro F1 {metrics['macro']['f1']:.3f}  ECE {metrics['ece'] or 0:.3f}  "
                            f"{result['evaluated']} of {plural(result['images'], 'image')} answered  "
                            f"model {_model(result['model'])}  via {result.get('via', 'predict')}"
                            + (f"  {rate:.1f} images/s" if rate else "")))
    if leakage.get("seen"):
        everything = leakage["all_images"]
        out.print(f"seen in training: {leakage['seen']} ({leakage['exact']} identical, {leakage['near']} near-duplicates); "
                  f"accuracy on all {everything['evaluated']} would read {percent_ci(everything['accuracy'], everything['accuracy_ci'])}")
    table = Table(show_edge=False, title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label in LABELS:
        c = metrics["per_class"][label]
        table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
    out.print(table)
    matrix = Table(show_edge=False, title="confusion matrix (rows = true label)", title_justify="left")
    matrix.add_column("true \\ predicted")
    for label in LABELS:
        matrix.add_column(SHORT[label], justify="right")
    for label, row in zip(LABELS, result["confusion_matrix"]):
        matrix.add_row(label, *[Text(str(n), style="bold green" if i == j else ("red" if n else "dim"))
                                for j, n in enumerate(row) for i in [LABELS.index(label)]])
    out.print(matrix)
    for confusion in metrics["top_confusions"][:3]:
        out.print(f"confuses {confusion['true']} as {confusion['predicted']}: {confusion['count']}")
    render_suspects(result.get("suspects") or {})
    for entry in result["broken"]:
        out.print(Text.assemble(("✗ ", "bold red"), shown(entry["path"]), f"  {entry['error']}: {shown(entry['message'])}"))
    if "against" in result:
        comparison = result["against"]["comparison"]
        test = comparison["mcnemar"]
        out.print(Text.assemble(("against ", "bold"), _model(result["against"]["model"]),
                                f": accuracy {percent_ci(comparison['accuracy_b'], comparison.get('accuracy_b_ci'))} "
                                f"(delta {comparison['accuracy_delta']:+.1%}), "
                                f"{len(comparison['disagreements'])} images answered differently; "
                                f"exact McNemar p = {test['p_value']:.3g}" + (f"; {test['note']}" if test.get("note") else "")))
    if result.get("report"):
        out.print(Text(f"report: {shown(result['report'])}", style="cyan"))
    for reason in result["gate"]["reasons"]:
        warning(f"gate: {reason}")
    from ..evaluate.evidence import warnings_for

    for line in warnings_for(result):
        warning(line)


def render_suspects(found: dict) -> None:
    """The suspected label errors: "labelled boxes, looks like soda_cans, 99%"."""
    if not found.get("checked"):
        return
    images = found.get("images") or []
    line = f"suspected label errors: {len(images)}"
    if "accuracy_without" in found and images:
        line += (f"; accuracy without them {percent_ci(found['accuracy_without'], found['accuracy_without_ci'])} "
                 f"on {found['evaluated_without']} images")
    out.print(Text(line, style="bold"))
    for entry in images:
        out.print(Text.assemble(("? ", "bold yellow"), entry["path"],
                                f"  labelled {entry['label']}, looks like {entry['looks_like']}, {entry['confidence']:.0%}"))


def render_training(summary: dict) -> None:
    """rcyc train's summary: the model, the held-out figures with their interval, suspects, the upload."""
    from ..evaluate.session import gate_figures

    manifest = summary["manifest"]
    out.print(f"trained {manifest['name']} {manifest['version']} → {summary['out']}"
              + (" (interrupted: the best epoch so far)" if summary.get("interrupted") else ""))
    if "eval" in summary:
        held = summary["eval"]
        out.print(f"held-out accuracy {percent_ci(held['accuracy'], held.get('accuracy_ci'))} on {held['evaluated']} images, "
                  f"macro F1 {held['macro_f1']:.3f}")
        if held.get("copies_of_training_images"):
            out.print(f"[yellow]{held['copies_of_training_images']} held-out image(s) are copies of training images "
                      "(re-encoded or resized): left out of these figures[/yellow]")
    found = summary.get("suspects") or {}
    if found.get("checked"):
        render_suspects(found)
        if found.get("images") and not found.get("excluded"):
            out.print("[dim]check them; --exclude-suspects trains without them[/dim]")
    elif found.get("note"):
        warning(found["note"])
    uploaded = summary.get("upload")
    if uploaded:
        out.print(f"uploaded {uploaded['name']} {uploaded['version']}: " + ("promoted" if uploaded["promoted"] else "NOT promoted"))
        for line in gate_figures(uploaded["gate"]) if uploaded.get("gate") else []:
            out.print(f"  {line}")
        for reason in uploaded["gate_reasons"]:
            warning(f"not promoted: {reason}")
    out.print(f"[dim]next: rcyc eval DATA_DIR --model {summary['out']} --against current[/dim]")
