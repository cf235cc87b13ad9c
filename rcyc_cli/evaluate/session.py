"""One ``rcyc eval`` run: load the labelled folder, resolve the model(s) (local or in the bucket), run
them through the chosen path, and apply the gate."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from rcyc_core.errors import InputError

from ..defaults import DEFAULT_EVAL_VIA, MIN_PER_CLASS
from ..files import shown
from ..reporting import SILENT, Reporter
from . import targets
from .compare import gate
from .metrics import Metrics
from .run import evaluate


"""The promotion gate's floor of evidence: held-out (unseen) images per class below which no model is promoted.
With 20 images one mistake moves a class's recall by 5 points; the 95% interval of a 90% accuracy on 100
images is still about 83-94%."""


@dataclass
class EvalOptions:
    data_dir: Path  # or a Dataset already loaded (train's held-out images)
    model: str | None = None
    against: str | None = None
    via: str = DEFAULT_EVAL_VIA
    bucket: str | None = None
    region: str | None = None
    min_accuracy: float | None = None
    gate_against: bool = False  # --no-worse-than: `against` is also a bar the model must clear


def run_eval(options: EvalOptions, report: Reporter = SILENT) -> dict:
    from ..config import eval_label_mapping
    from ..dataset import Dataset, load_dataset
    from ..cloud.fetch import local_or_bucket
    from . import provenance

    dataset = options.data_dir if isinstance(options.data_dir, Dataset) else load_dataset(options.data_dir, eval_label_mapping())
    model_dir = local_or_bucket(options.model, options.bucket, options.region, report.status)
    against_dir = local_or_bucket(options.against, options.bucket, options.region, report.status) if options.against else None
    # What the models here were trained on: those images are left out of every figure (leakage).
    recorded = [provenance.load(model_dir)] + ([provenance.load(against_dir)] if options.against else [])
    seen = {}
    if any(recorded):
        report.status("checking the images against what the model(s) trained on")
        seen = provenance.match(recorded, ((dataset.relative(i.path), i.path) for i in dataset.images))
    with contextlib.ExitStack() as stack:
        def classifier(directory):
            if options.via == "emulator":
                return targets.through_emulator(directory, stack, report=report)
            return targets.in_process(directory, report)

        report.status(f"evaluating on {len(dataset.images)} images ({options.via})")
        result = evaluate(dataset, classifier(model_dir), options.model or "default", report.done,
                          against=classifier(against_dir) if options.against else None,
                          against_name=options.against or "", seen=seen, provenance_checked=any(recorded))
    result["leakage"]["invalid_records"] = sum(p["invalid"] for p in recorded if p)
    if not result["evaluated"]:  # an accuracy over no image is no answer: an error, not 0.0% and exit 0
        first = result["broken"][0] if result["broken"] else {}
        raise InputError(f"none of the {result['images']} images of {shown(options.data_dir)} could be classified "
                         f"(the first, {shown(first.get('path', '?'))}: {first.get('error', '?')})",
                         hint="Check that they are images (JPEG, PNG, ...) the model can read.")
    answered = {p["path"] for p in result["predictions"]}
    repeated = provenance.copies((name, i.path) for i in dataset.images if (name := dataset.relative(i.path)) in answered)
    result["duplicates"] = {"copies": len(repeated), "images": [{"path": k, "same_as": v} for k, v in repeated.items()]}
    reasons = gate(Metrics.from_dict(result["metrics"]), options.min_accuracy,
                   no_worse_than=Metrics.from_dict(result["against"]["metrics"]) if options.gate_against else None,
                   comparison=result["against"]["comparison"] if options.gate_against else None)
    leakage = result["leakage"]
    if leakage["seen"] and not leakage["unseen"]:  # images were evaluated, but none the model had not trained on
        reasons = [r if r != "no image could be evaluated" else
                   f"every one of the {leakage['seen']} evaluated images was in the model's training set: no unseen "
                   "image to measure" for r in reasons]
    result["via"] = options.via
    result["gate"] = {"min_accuracy": options.min_accuracy, "no_worse_than": options.against if options.gate_against else None,
                      "failed": bool(reasons), "reasons": reasons}
    return result


def promotion_gate(bucket: str, candidate: str, data_dir, region: str | None = None, report: Reporter = SILENT,
                   min_per_class: int = MIN_PER_CLASS) -> dict:
    """The one gate before the pointer moves (``models promote --eval``, ``train --upload``, ``models import
    --promote``; ``upload-model`` has none): the candidate (NAME/VERSION in the bucket, or a local model directory) on held-out labelled
    photos (a folder, or a loaded Dataset), against the current model when there is one. It fails when

    - the evidence is thin: fewer than ``min_per_class`` evaluated images the candidate never trained on in
      some class (checked even with no current model: a first model is promoted on evidence too), or
    - the candidate is significantly worse than the current model on the same images (exact McNemar, the
      eval gate).

    A current model that cannot be read (the pointer names a missing or broken version) is no current model:
    the floor still holds, and ``note`` says why nothing was compared.

    Returns the decision with its figures: ``failed``, ``reasons``, ``min_per_class``, ``per_class`` (images
    per class), ``images``, ``accuracy`` / ``accuracy_ci`` and ``current_accuracy`` / ``current_accuracy_ci``
    (95% Wilson intervals, on the images both answered), ``p_value``, ``more_images_needed``, ``note``."""
    from rcyc_core.errors import ModelError

    from ..cloud import store
    from ..cloud.aws import Aws
    from ..cloud.fetch import fetch_model

    if min_per_class < 1:
        raise ValueError("min_per_class must be at least 1")
    current, unreadable = None, None
    if store.read_pointer(Aws(region).client("s3"), bucket) is not None:
        try:
            current = fetch_model("current", bucket, region, report)
        except ModelError as exc:  # a pointer to a missing or broken version: there is nothing to be worse than
            unreadable = f"the current model cannot be read ({exc}), so there is nothing to compare with"
    has_current = current is not None
    result = run_eval(EvalOptions(data_dir, candidate, str(current) if has_current else None, "predict", bucket, region,
                                  gate_against=has_current), report)
    # The floor counts distinct photos the candidate never trained on: copies of one photo are not more evidence.
    copies = {d["path"] for d in result["duplicates"]["images"]}
    per_class = {label: sum(1 for p in result["predictions"] if p["true"] == label and not p.get("seen")
                            and p["path"] not in copies) for label in result["metrics"]["per_class"]}
    reasons = list(result["gate"]["reasons"])
    thin = [f"{label} {n}" for label, n in per_class.items() if n < min_per_class]
    if thin:
        reasons.insert(0, f"too little held-out evidence: {', '.join(thin)} image(s), at least {min_per_class} per "
                          f"class needed")
    decision = {"failed": bool(reasons), "reasons": reasons, "min_per_class": min_per_class, "per_class": per_class,
                "seen_left_out": result["leakage"]["seen"], "copies_left_out": len(copies)}
    if has_current:
        comparison = result["against"]["comparison"]
        decision.update(images=comparison["images"], accuracy=comparison["accuracy_a"],
                        accuracy_ci=comparison["accuracy_a_ci"], current_accuracy=comparison["accuracy_b"],
                        current_accuracy_ci=comparison["accuracy_b_ci"], p_value=comparison["mcnemar"]["p_value"],
                        more_images_needed=comparison["mcnemar"]["more_images_needed"], note=comparison["mcnemar"]["note"])
    else:
        decision.update(images=result["metrics"]["support"], accuracy=result["accuracy"], accuracy_ci=result["accuracy_ci"],
                        current_accuracy=None, current_accuracy_ci=None, p_value=None, more_images_needed=None,
                        note=unreadable or "no current model to compare with")
    return decision


def gate_import(imported: dict, bucket: str, data_dir, region: str | None = None, report: Reporter = SILENT,
                min_per_class: int = MIN_PER_CLASS) -> dict:
    """``models import --promote --eval``: the :func:`promotion_gate` on a model ``cloud.imports.import_model``
    uploaded, then the pointer moved to it only if the gate passed. Fills the import's ``gate``, ``promoted``
    and (promoted) ``current``; ``gate["failed"]``: the caller exits 9."""
    from ..cloud import models

    gate = promotion_gate(bucket, f"{imported['name']}/{imported['version']}", Path(data_dir), region, report, min_per_class)
    imported["gate"] = gate
    if not gate["failed"]:
        imported["current"] = models.promote_model(bucket, imported["name"], imported["version"], region, report)["current"]
        imported["promoted"] = True
    return imported


def _percent(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" + (f" (95% CI {interval[0]:.1%}-{interval[1]:.1%})" if interval else "")


def gate_figures(decision: dict) -> list[str]:
    """The figures behind a :func:`promotion_gate` decision, as lines for the terminal."""
    lines = [f"held-out images per class: {', '.join(f'{k} {v}' for k, v in decision['per_class'].items())} "
             f"(at least {decision['min_per_class']} needed)",
             f"candidate accuracy {_percent(decision['accuracy'], decision['accuracy_ci'])} on {decision['images']} images"]
    if decision.get("current_accuracy") is not None:
        lines.append(f"current accuracy {_percent(decision['current_accuracy'], decision['current_accuracy_ci'])}; "
                     f"exact McNemar p = {decision['p_value']:.3g}")
    else:
        lines.append(decision.get("note") or "")
    return lines
