"""How fast ``rcyc classify --local`` backfills a prefix, at concurrency 1 and 2, and what the same job
would do on AWS Lambda at N=100 (on paper, from the measured per-invocation figures, with the cost).

Starts a private warm stack (its own cache directory; stopped at the end), puts IMAGES copies of the
fixture drawings into the stack's S3, and runs the classify library (the same code the command runs) with
--force, so every run classifies every image. Prints JSON; --markdown FILE appends a section.

    .venv/bin/python benchmarks/classify.py --images 200 --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    from benchmarks.common import use_private_cache

    use_private_cache("rcyc-bench-classify-")  # with the emulator named: a fresh cache has none

    from rcyc_cli.classify import cost
    from rcyc_cli.classify.run import ClassifyOptions, classify
    from rcyc_cli.classify.target import local_target
    from rcyc_cli.function_spec import FunctionSpec
    from rcyc_cli.local.stack import client as stack
    from rcyc_cli.reporting import SILENT
    from fixtures.catalog import class_images

    drawings = class_images()
    stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=2))
    try:
        target, s3 = local_target("rcyc-function", 2, SILENT)
        s3.create_bucket(Bucket="bench-photos")
        for n in range(args.images):
            _, path = drawings[n % len(drawings)]
            s3.put_object(Bucket="bench-photos", Key=f"photos/{n:05d}-{path.name}", Body=path.read_bytes())
        rows = {}
        for concurrency in (1, 2):
            rates, per_invoke = [], []
            for _ in range(args.repeats):
                options = ClassifyOptions("s3://bench-photos/photos/", local=True, concurrency=concurrency,
                                          batch_size=args.batch_size, force=True)
                summary = classify(options, target, s3, SILENT)
                assert summary["classified"] == args.images and not summary["errors"], summary
                rates.append(summary["images_per_second"])
                per_invoke.append(summary["billed_ms"] / summary["invocations"])
            rows[concurrency] = {"images_per_second_median": round(statistics.median(rates), 1),
                                 "images_per_second_min": min(rates), "images_per_second_max": max(rates),
                                 "billed_ms_per_invocation_median": round(statistics.median(per_invoke), 1)}
    finally:
        stack.down()

    per_invoke_ms = rows[1]["billed_ms_per_invocation_median"]
    lambda_n = 100
    million = 1_000_000
    invocations = million // args.batch_size
    paper = {
        "concurrency": lambda_n, "batch_size": args.batch_size, "billed_ms_per_invocation": per_invoke_ms,
        "images_per_second": round(lambda_n * args.batch_size / (per_invoke_ms / 1000)),
        "one_million_images_minutes": round(million / (lambda_n * args.batch_size / (per_invoke_ms / 1000)) / 60, 1),
        "one_million_images_cost_usd_1024mb_x86": round(cost.cost(invocations * per_invoke_ms, invocations, 1024), 2),
        "one_million_images_cost_usd_1024mb_arm64": round(cost.cost(invocations * per_invoke_ms, invocations, 1024, "arm64"), 2),
    }
    load = os.getloadavg()[0]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}",
              "date": time.strftime("%Y-%m-%d"), "images": args.images, "local": rows, "lambda_on_paper": paper}
    print(json.dumps(result, indent=2))
    if args.markdown:
        with open(args.markdown, "a") as out:
            out.write(f"\n## rcyc classify --local ({result['date']})\n\n"
                      f"Machine: {result['machine']}. {args.images} images (the fixture drawings), events of "
                      f"{args.batch_size}, a warm stack of 2 process instances, --force, median of {args.repeats}.\n\n"
                      "| concurrency | images/s (median, min-max) | billed ms per invocation (median) |\n|---|---|---|\n")
            for concurrency, row in rows.items():
                out.write(f"| {concurrency} | {row['images_per_second_median']} ({row['images_per_second_min']}-"
                          f"{row['images_per_second_max']}) | {row['billed_ms_per_invocation_median']} |\n")
            out.write(f"\nOn paper, AWS Lambda at concurrency {lambda_n} with the same per-invocation duration "
                      f"({per_invoke_ms} ms for {args.batch_size} images; Lambda's CPU share at 1024 MB is about 0.6 of a "
                      f"core, so expect it slower): about {paper['images_per_second']:,} images/s, a million images in "
                      f"about {paper['one_million_images_minutes']} minutes, costing about "
                      f"${paper['one_million_images_cost_usd_1024mb_x86']} at 1024 MB x86_64 "
                      f"(${paper['one_million_images_cost_usd_1024mb_arm64']} on arm64) at the public on-demand price "
                      f"(GB-seconds plus $0.20 per million requests), S3 requests not included.\n\n"
                      f"Reproduce: `.venv/bin/python benchmarks/classify.py --images {args.images} --markdown docs/benchmarks.md`\n")


if __name__ == "__main__":
    main()
