"""rcyc eval in the terminal: the headline, per-class figures, the confusion matrix, what went wrong."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from rcyc_core.labels import LABELS

from ..files import shown
from .console import out, warning

SHORT = {"boxes": "box", "glass_bottles": "glass", "soda_cans": "can", "crushed_soda_cans": "crushed", "plastic_bottles": "plastic"}


def _model(model: dict) -> str:
    return shown(f"{model.get('name', '?')} {model.get('version', '')}".strip())


def render_evaluation(result: dict) -> None:
    metrics = result["metrics"]
    rate = result.get("images_per_second")
    out.print(Text.assemble(("accuracy ", "bold"), (f"{result['accuracy']:.1%}", "bold green"),
                            f"  macro F1 {metrics['macro']['f1']:.3f}  ECE {metrics['ece'] or 0:.3f}  "
                            f"{result['evaluated']} of {result['images']} images  "
                            f"model {_model(result['model'])}  via {result.get('via', 'predict')}"
                            + (f"  {rate:.1f} images/s" if rate else "")))
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
    for entry in result["broken"]:
        out.print(Text.assemble(("✗ ", "bold red"), shown(entry["path"]), f"  {entry['error']}: {shown(entry['message'])}"))
    if "against" in result:
        comparison = result["against"]["comparison"]
        test = comparison["mcnemar"]
        out.print(Text.assemble(("against ", "bold"), _model(result["against"]["model"]),
                                f": accuracy {comparison['accuracy_b']:.1%} (delta {comparison['accuracy_delta']:+.1%}), "
                                f"{len(comparison['disagreements'])} images answered differently; "
                                f"exact McNemar p = {test['p_value']:.3g}" + (f"; {test['note']}" if test.get("note") else "")))
    if result.get("report"):
        out.print(Text(f"report: {shown(result['report'])}", style="cyan"))
    for reason in result["gate"]["reasons"]:
        warning(f"gate: {reason}")
