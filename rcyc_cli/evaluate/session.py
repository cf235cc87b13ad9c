"""One ``rcyc eval`` run: load the labelled folder, resolve the model(s) (local or in the bucket), run
them through the chosen path, and apply the gate."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from rcyc_core.errors import InputError

from ..files import shown
from ..reporting import SILENT, Reporter
from . import targets
from .compare import gate
from .metrics import Metrics
from .run import evaluate


@dataclass
class EvalOptions:
    data_dir: Path
    model: str | None = None
    against: str | None = None
    via: str = "predict"
    bucket: str | None = None
    region: str | None = None
    min_accuracy: float | None = None
    gate_against: bool = False  # --no-worse-than: `against` is also a bar the model must clear


def run_eval(options: EvalOptions, report: Reporter = SILENT) -> dict:
    from ..config import eval_label_mapping
    from ..dataset import load_dataset
    from ..cloud.fetch import local_or_bucket

    dataset = load_dataset(options.data_dir, eval_label_mapping())
    model_dir = local_or_bucket(options.model, options.bucket, options.region, report.status)
    against_dir = local_or_bucket(options.against, options.bucket, options.region, report.status) if options.against else None
    with contextlib.ExitStack() as stack:
        def classifier(directory):
            if options.via == "emulator":
                return targets.through_emulator(directory, stack, report=report)
            return targets.in_process(directory, report)

        report.status(f"evaluating on {len(dataset.images)} images ({options.via})")
        result = evaluate(dataset, classifier(model_dir), options.model or "default", report.done,
                          against=classifier(against_dir) if options.against else None,
                          against_name=options.against or "")
    if not result["evaluated"]:  # an accuracy over no image is no answer: an error, not 0.0% and exit 0
        first = result["broken"][0] if result["broken"] else {}
        raise InputError(f"none of the {result['images']} images of {shown(options.data_dir)} could be classified "
                         f"(the first, {shown(first.get('path', '?'))}: {first.get('error', '?')})",
                         hint="Check that they are images (JPEG, PNG, ...) the model can read.")
    reasons = gate(Metrics.from_dict(result["metrics"]), options.min_accuracy,
                   no_worse_than=Metrics.from_dict(result["against"]["metrics"]) if options.gate_against else None,
                   comparison=result["against"]["comparison"] if options.gate_against else None)
    result["via"] = options.via
    result["gate"] = {"min_accuracy": options.min_accuracy, "no_worse_than": options.against if options.gate_against else None,
                      "failed": bool(reasons), "reasons": reasons}
    return result


def promotion_gate(bucket: str, candidate: str, data_dir: Path, region: str | None = None, report: Reporter = SILENT) -> dict:
    """``models promote --eval``: the candidate (NAME/VERSION in the bucket) against the current model on the
    same labelled photos; failed when it is significantly worse (the eval gate). With no current model
    there is nothing to be worse than."""
    from ..cloud import store
    from ..cloud.aws import Aws

    if store.read_pointer(Aws(region).client("s3"), bucket) is None:
        return {"failed": False, "reasons": [], "images": 0, "accuracy": None, "current_accuracy": None, "p_value": None,
                "note": "no current model to compare with"}
    result = run_eval(EvalOptions(data_dir, candidate, "current", "predict", bucket, region, gate_against=True), report)
    comparison = result["against"]["comparison"]
    return {"failed": result["gate"]["failed"], "reasons": result["gate"]["reasons"], "images": comparison["images"],
            "accuracy": comparison["accuracy_a"], "current_accuracy": comparison["accuracy_b"],
            "p_value": comparison["mcnemar"]["p_value"], "more_images_needed": comparison["mcnemar"]["more_images_needed"]}
