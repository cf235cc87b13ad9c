"""What a repeat delivery costs: one SQS batch of N images through the real emulator (process runtime) with
a results prefix, delivered once (every image fetched and predicted, each result stored), then again with
the ETags S3 puts in its events (stored results answer: no image read), and again without them (one
conditional GET per image, answered 304). Prints the emulator's billed duration of each, median of R runs.

    .venv/bin/python benchmarks/redelivery.py --images 32 --repeats 5

Everything runs on 127.0.0.1 (embedded S3, emulator processes). No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lambda"))

from rcyc_cli.cloud import aws  # noqa: E402
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY  # noqa: E402
from rcyc_cli.local.emulator.launcher import FunctionLauncher, FunctionSpec  # noqa: E402
from rcyc_cli.local.emulator.s3 import EmbeddedS3  # noqa: E402
from rcyc_cli.model_source import resolve_model  # noqa: E402
from rcyc_core import events  # noqa: E402

BUCKET = "rcyc-bench"
IMAGES = sorted((ROOT / "fixtures" / "images").glob("[a-z]*_*/*.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    manifest, model_dir = resolve_model(None)
    server = EmbeddedS3().start()
    pool = None
    try:
        s3 = aws.s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        figures: dict[str, list[float]] = {"first delivery": [], "again, with ETags": [], "again, without ETags": []}
        for _ in range(args.repeats):
            prefix = f"results-{uuid.uuid4().hex[:8]}/"  # a fresh store: the first delivery does all the work
            if pool is not None:
                pool.stop()
            server.seed_model(BUCKET, manifest, model_dir, POINTER_KEY)
            pool = FunctionLauncher(FunctionSpec(runtime="process", timeout=120)).start(
                server.endpoint_url, BUCKET, refresh_seconds=60, results_prefix=prefix)
            sandbox = pool.instances[0].sandbox
            sandbox.invoke({"warmup": True})
            keys = [f"images/{i}-{IMAGES[i % len(IMAGES)].name}" for i in range(args.images)]
            etags = {k: s3.put_object(Bucket=BUCKET, Key=k, Body=IMAGES[i % len(IMAGES)].read_bytes())["ETag"].strip('"')
                     for i, k in enumerate(keys)}
            with_etags = events.make("sqs", BUCKET, keys, etags=etags)
            for name, event in (("first delivery", with_etags), ("again, with ETags", with_etags),
                                ("again, without ETags", events.make("sqs", BUCKET, keys))):
                invocation = sandbox.invoke(event)
                assert len(invocation.response["results"]) == args.images, invocation.response["errors"][:1]
                figures[name].append(invocation.report.duration_ms)
        print(f"{args.images} images per SQS batch, median of {args.repeats} (emulator duration, ms):")
        for name, values in figures.items():
            print(f"  {name:<22} {statistics.median(values):8.1f}   (min {min(values):.1f}, max {max(values):.1f})")
    finally:
        if pool is not None:
            pool.stop()
        server.stop()


if __name__ == "__main__":
    main()
