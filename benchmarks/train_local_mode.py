"""``rcyc train --local-mode`` (the training image, SageMaker's /opt/ml layout, through the Docker engine)
against ``rcyc train`` on this machine: same drawings, same seed, fresh caches for both. Prints each one's
wall time, the model version and sha256, and the accuracy ``rcyc eval`` gives on another seed's drawings.

    DOCKER_HOST=... .venv/bin/python benchmarks/train_local_mode.py --image rcyc-train:local
    .venv/bin/python benchmarks/train_local_mode.py --base-image IMG --ca-bundle /etc/ssl/certs/ca-certificates.crt

Without ``--image`` the training image is built first (a cache hit when nothing changed; not timed). The
drawings are synthetic (fixtures/drawings.py), not photos. No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def drawings():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rcyc_fixture_drawings", ROOT / "fixtures" / "drawings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rcyc(*args: str, env: dict) -> dict:
    command = [sys.executable, "-m", "rcyc_cli.main", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, default=12)
    parser.add_argument("--test-per-label", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--image", help="a built training image (default: build it)")
    parser.add_argument("--base-image")
    parser.add_argument("--ca-bundle")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rcyc-bench-local-mode-") as tmp:
        tmp = Path(tmp)
        drawings().write_folder(tmp / "data", args.per_label, args.seed)
        drawings().write_folder(tmp / "test", args.test_per_label, args.seed + 1)
        env = {**os.environ, "RCYC_CACHE_HOME": str(tmp / "cache"), "PYTHONPATH": f"{ROOT}:{ROOT / 'lambda'}"}
        image = args.image
        if image is None:
            from rcyc_cli import image as images
            from rcyc_cli.train import container

            image = container.build(images.engine(), base_image=args.base_image, ca_bundle=args.ca_bundle).image_id
        common = ["--seed", str(args.seed), "--epochs", str(args.epochs)]
        runs = {
            "local-mode": ["train", str(tmp / "data"), "--out", str(tmp / "local"), "--local-mode", "--image", image,
                           "--checkpoint-dir", str(tmp / "checkpoints"), *common],
            "rcyc train": ["train", str(tmp / "data"), "--out", str(tmp / "host"), *common],
        }
        figures = {}
        for name, command in runs.items():
            started = time.perf_counter()
            rcyc(*command, env=env)
            seconds = time.perf_counter() - started
            model = command[command.index("--out") + 1]
            evaluation = rcyc("eval", str(tmp / "test"), "--model", model, env=env)
            figures[name] = {"seconds": round(seconds, 1), "version": evaluation["model"]["version"],
                             "sha256": evaluation["model"]["sha256"][:16], "test_accuracy": round(evaluation["accuracy"], 4)}
    for name, row in figures.items():
        print(f"{name:11} {row['seconds']:7.1f} s  version {row['version']}  sha256 {row['sha256']}…  "
              f"test accuracy {row['test_accuracy']:.4f}")
    same = figures["local-mode"]["sha256"] == figures["rcyc train"]["sha256"]
    print("the same model" if same else "different models: accuracy delta "
          f"{abs(figures['local-mode']['test_accuracy'] - figures['rcyc train']['test_accuracy']):.4f}")


if __name__ == "__main__":
    main()
