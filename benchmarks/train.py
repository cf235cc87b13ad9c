"""How long ``rcyc train``'s pipeline takes, stage by stage, and how good the model is on unseen images.

Generates N drawings per label with one seed (the training set), M with another seed (the test set,
never seen in training), trains with ``rcyc_cli.train.train`` and classifies the test set with the
packaged model through rcyc's own inference core (LiteRT backend). By default the backbone and feature
caches start empty (a first run on a machine); ``--cache DIR`` reuses one (later runs).

    .venv/bin/python benchmarks/train.py                       # 100 per label, seeds 1 and 2
    .venv/bin/python benchmarks/train.py --per-label 100 --fine-tune --json

The drawings are synthetic (fixtures/drawings.py), not photos: the accuracy says the pipeline works, not
how well a model would do on real recyclables. No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")




def make(folder: Path, seed: int, per_label: int) -> list[tuple[Path, str]]:
    spec = importlib.util.spec_from_file_location("rcyc_fixture_drawings", ROOT / "fixtures" / "drawings.py")
    drawings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drawings)
    return drawings.write_folder(folder, per_label, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, default=100, help="training drawings per label (seed --train-seed)")
    parser.add_argument("--test-per-label", type=int, default=100, help="test drawings per label (seed --test-seed)")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--fine-tune", action="store_true")
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="backbone/feature cache to use (default: a fresh, empty one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()

    from rcyc_cli.train import train
    from rcyc_core import backends
    from rcyc_core.inference import Classifier, Item
    from rcyc_core.manifest import Manifest

    with tempfile.TemporaryDirectory(prefix="rcyc-train-bench-") as tmp:
        root = Path(tmp)
        mark = time.perf_counter()
        train_set = make(root / "train", args.train_seed, args.per_label)
        test_set = make(root / "test", args.test_seed, args.test_per_label)
        draw_seconds = time.perf_counter() - mark

        def progress(stage, done, total, info):
            if not args.json and (done == total or stage == "head" and done % 10 == 0):
                print(f"  {stage:9s} {done}/{total}", file=sys.stderr, flush=True)

        summary = train(
            train_set,
            root / "model",
            name="bench",
            seed=args.train_seed,
            epochs=args.epochs,
            fine_tune=args.fine_tune,
            fine_tune_epochs=args.fine_tune_epochs,
            cache_root=args.cache or root / "cache",
            progress=progress,
        )
        out = root / "model"
        mark = time.perf_counter()
        manifest = Manifest.load(out)
        classifier = Classifier(manifest, backends.load(manifest, out, "litert"))
        correct = 0
        for start in range(0, len(test_set), 32):
            chunk = test_set[start : start + 32]
            results, errors = classifier.classify([Item(i, None, str(p), p.read_bytes()) for i, (p, _) in enumerate(chunk)])
            assert not errors, errors
            correct += sum(r["label"] == label for r, (_, label) in zip(results, chunk))
        test_seconds = time.perf_counter() - mark
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}

    figures = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "train_images": summary["images"]["used"],
        "train": summary["images"]["train"],
        "held_out": summary["images"]["held_out"],
        "test_images": len(test_set),
        "cache": "warm" if summary["backbone"]["cached"] else "cold",
        "fine_tune": args.fine_tune,
        "seconds": {"draw": round(draw_seconds, 2), **summary["seconds"], "test": round(test_seconds, 2)},
        "features": summary["features"],
        "head_best_epoch": summary["head"]["best_epoch"],
        "val_accuracy": summary["val_accuracy"],
        "test_accuracy": correct / len(test_set),
        "file_bytes": sizes,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"train: {figures['train']} images (+{figures['held_out']} held out), test: {len(test_set)} images of another seed")
    print(f"cache: {figures['cache']}; features computed {summary['features']['computed']}, cached {summary['features']['cached']}")
    for stage, seconds in figures["seconds"].items():
        print(f"  {stage:10s} {seconds:8.2f} s")
    print(f"held-out accuracy {figures['val_accuracy']:.3f}, test accuracy (seed {args.test_seed}) {figures['test_accuracy']:.3f}")
    print("files: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
