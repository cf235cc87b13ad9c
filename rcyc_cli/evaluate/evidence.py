"""Make an evaluation's numbers honest: the headline on images the model never trained on, the
suspected label errors, and accuracy with and without them (see docs/eval.md)."""

from __future__ import annotations

from .metrics import compute_metrics, wilson_interval
from .suspects import from_predictions


def _figures(predictions: list[dict]) -> dict:
    right = sum(1 for p in predictions if p["correct"])
    n = len(predictions)
    interval = wilson_interval(right, n)
    return {"evaluated": n, "correct": right, "accuracy": right / n if n else None,
            "accuracy_ci": None if interval is None else list(interval)}


def headline(result: dict, seen: dict[str, dict] | None, checked: bool) -> None:
    """Recompute ``result``'s figures (accuracy, its interval, metrics, confusion matrix, misclassified) over
    the images the model did not train on, mark every prediction ``seen``, and add ``leakage``.

    ``seen``: {path: {"match", "split", "distance"}} from :func:`rcyc_cli.evaluate.provenance.match`;
    ``checked``: whether any model here recorded its training images (else nothing could be checked).
    Images matched to a model's *held-out* images stay in the headline (they were not trained on; they
    chose the best epoch), and are counted in ``leakage.held_out``.
    """
    seen = seen or {}
    predictions = result["predictions"]
    for p in predictions:
        p["seen"] = seen.get(p["path"], {}).get("split") == "train"
    unseen = [p for p in predictions if not p["seen"]]
    # Only answered images count: a broken file the model trained on changes no figure here.
    trained = [{"path": p["path"], **seen[p["path"]]} for p in predictions if p["seen"]]
    result["leakage"] = {
        "checked": checked,
        "seen": len(trained),
        "exact": sum(1 for t in trained if t["match"] == "exact"),
        "near": sum(1 for t in trained if t["match"] == "near"),
        "held_out": sum(1 for p in predictions if seen.get(p["path"], {}).get("split") == "held_out"),
        "unseen": len(unseen),
        "images": trained,
        "all_images": _figures(predictions),
    }
    if not trained:
        result["accuracy_ci"] = result["metrics"]["accuracy_ci"]
        return
    metrics = compute_metrics([p["true"] for p in unseen], [p["predicted"] for p in unseen],
                              [min(1.0, max(0.0, p["confidence"])) for p in unseen]).to_dict()
    result["metrics"] = metrics
    result["confusion_matrix"] = metrics["confusion_matrix"]
    result["accuracy"] = metrics["accuracy"] if unseen else None
    result["accuracy_ci"] = metrics["accuracy_ci"]
    left_out = {t["path"] for t in trained}
    result["misclassified"] = [m for m in result["misclassified"] if m["path"] not in left_out]


def suspects(result: dict) -> None:
    """Add ``suspects``: the suspected label errors among the unseen images (the only out-of-sample
    probabilities), and the accuracy without them."""
    unseen = [p for p in result["predictions"] if not p.get("seen")]
    found = from_predictions(unseen)
    flagged = {s["path"] for s in found["images"]}
    if found["checked"]:
        without = _figures([p for p in unseen if p["path"] not in flagged])
        found.update({"accuracy_without": without["accuracy"], "accuracy_without_ci": without["accuracy_ci"],
                      "evaluated_without": without["evaluated"]})
    result["suspects"] = found


def warnings_for(result: dict) -> list[str]:
    """One line each for what makes the figures less than they seem (stderr, also with --json)."""
    lines = []
    leakage = result.get("leakage") or {}
    if leakage.get("seen"):
        kinds = f"{leakage['exact']} identical, {leakage['near']} re-encoded or resized copies"
        tail = (f"accuracy is on the {leakage['unseen']} unseen images only" if leakage["unseen"]
                else "no image is unseen, so there is no honest accuracy here")
        lines.append(f"{leakage['seen']} of the evaluated images were in the model's training set ({kinds}); {tail}")
    if leakage.get("invalid_records"):
        lines.append(f"{leakage['invalid_records']} of the model's provenance records are malformed and were ignored: "
                     "images it trained on may go unnoticed (was its manifest edited?)")
    found = result.get("suspects") or {}
    if not found.get("checked", True) and found.get("note"):
        lines.append(found["note"])
    return lines
