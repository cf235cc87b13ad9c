"""One ``rcyc train`` run: read the labelled folder, train, evaluate the held-out images with the new
model through the function's own core, and (with --upload) publish it, promoted only if it is not
significantly worse than the current model on those same images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..defaults import DEFAULT_EPOCHS, DEFAULT_MODEL_NAME, DEFAULT_SEED, DEFAULT_VAL_SPLIT, MIN_PER_CLASS
from ..reporting import SILENT, Reporter


@dataclass
class TrainOptions:
    data_dir: Path
    out: Path
    name: str = DEFAULT_MODEL_NAME
    version: str | None = None
    epochs: int = DEFAULT_EPOCHS
    fine_tune: bool = False
    val_split: float = DEFAULT_VAL_SPLIT
    seed: int = DEFAULT_SEED
    report_path: Path | None = None
    upload: bool = False
    bucket: str | None = None
    region: str | None = None
    exclude_suspects: bool = False
    min_per_class: int = MIN_PER_CLASS  # the promotion gate's floor


def run_training(options: TrainOptions, report: Reporter = SILENT) -> dict:
    from ..config import eval_label_mapping
    from ..dataset import Dataset, LabelledImage, load_dataset
    from ..evaluate import evaluate, provenance, write_report
    from ..evaluate.targets import in_process
    from .pipeline import train

    dataset = load_dataset(options.data_dir, eval_label_mapping())
    report.status(f"training on {len(dataset.images)} images of {options.data_dir} (held out: {options.val_split:.0%})")
    summary = train(dataset.images, options.out, name=options.name, version=options.version, seed=options.seed,
                    epochs=options.epochs, fine_tune=options.fine_tune, val_split=options.val_split,
                    progress=lambda stage, done, total, info: report.stage(stage, done, total),
                    exclude_suspects=options.exclude_suspects, data_dir=options.data_dir)
    held_out = Dataset(dataset.root, [LabelledImage(Path(path), label) for path, label in summary["held_out_images"]])
    if held_out.images:
        report.status(f"evaluating the new model on the {len(held_out.images)} held-out images")
        # A held-out photo that is a re-encoded copy of a training photo is not held out: eval's leakage rule.
        recorded = provenance.load(Path(options.out))
        seen = provenance.match([recorded], ((held_out.relative(i.path), i.path) for i in held_out.images))
        evaluation = evaluate(held_out, in_process(options.out, report), str(options.out), seen=seen,
                              provenance_checked=recorded is not None)
        summary["eval"] = {key: evaluation[key] for key in ("accuracy", "accuracy_ci", "confusion_matrix", "evaluated", "broken")}
        summary["eval"]["evaluated"] = evaluation["leakage"]["unseen"]
        summary["eval"]["copies_of_training_images"] = evaluation["leakage"]["seen"]
        summary["eval"]["macro_f1"] = evaluation["metrics"]["macro"]["f1"]
        if options.report_path:
            write_report(evaluation, options.report_path)
            summary["report"] = str(options.report_path)
    if options.upload:
        summary["upload"] = _publish(options, held_out, report)
    summary["out"] = str(options.out)
    return summary


def _publish(options: TrainOptions, held_out, report: Reporter) -> dict:
    """Upload unpromoted; promote only when the promotion gate passes on the held-out images (enough of them
    per class, and not significantly worse than the current model: ``evaluate.session.promotion_gate``)."""
    from ..cloud import models
    from ..evaluate.session import promotion_gate

    uploaded = models.upload_model(options.out, options.bucket, promote=False, region=options.region, report=report)
    decision = promotion_gate(options.bucket, str(options.out), held_out, options.region, report,
                              options.min_per_class)
    if not decision["failed"]:
        models.promote_model(options.bucket, uploaded["name"], uploaded["version"], options.region, report)
    return {**uploaded, "promoted": not decision["failed"], "gate_reasons": decision["reasons"], "gate": decision}
