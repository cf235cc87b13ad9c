"""Cold and warm figures of one local function instance (process runtime, or docker with --runtime docker).

    .venv/bin/python benchmarks/invoke_local.py [--warm 50] [--model fixtures/models/fixture-psu] [--json out.json]

Starts the embedded S3 and one sandbox, invokes once cold and N times warm with a one-image event, and
prints the emulator's REPORT figures and the client-side round trip. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rcyc_cli import rie, s3 as s3ops  # noqa: E402
from rcyc_cli.invoke_local import Options, choose_runtime, make_sandbox  # noqa: E402
from rcyc_cli.local import LOCAL_CREDENTIALS, LOCAL_REGION, EmbeddedS3  # noqa: E402
from rcyc_cli.models import resolve_model  # noqa: E402
from rcyc_core import events  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--model", type=Path, default=ROOT / "fixtures/models/fixture-psu")
    parser.add_argument("--runtime", default="process", choices=["process", "docker"])
    parser.add_argument("--base-image")
    parser.add_argument("--ca-bundle", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    image = ROOT / "fixtures/images/soda_cans/soda_cans_0.jpg"
    options = Options([image], model=args.model, runtime=args.runtime, base_image=args.base_image, ca_bundle=args.ca_bundle)
    manifest, model_dir = resolve_model(args.model)
    server = EmbeddedS3().start()
    sandbox = None
    try:
        s3 = s3ops.client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        s3ops.ensure_private_bucket(s3, options.bucket, LOCAL_REGION)
        s3ops.upload_model(s3, options.bucket, manifest, model_dir)
        [(path, key)] = s3ops.image_keys([image])
        s3ops.upload_images(s3, options.bucket, [(path, key)])
        env = {"AWS_ENDPOINT_URL_S3": server.endpoint_url, "RCYC_MODEL_BUCKET": options.bucket}
        sandbox = make_sandbox(options, choose_runtime(args.runtime, lambda m: None), rie.locate(), env, lambda m: None)
        started = time.perf_counter()
        sandbox.start()
        event = events.make_event(options.bucket, [key])
        cold = sandbox.invoke(event)
        cold_total_ms = (time.perf_counter() - started) * 1000
        warm = [sandbox.invoke(event) for _ in range(args.warm)]
    finally:
        if sandbox:
            sandbox.stop()
        server.stop()

    durations = [w.report.duration_ms for w in warm]
    walls = [w.wall_ms for w in warm]
    figures = {
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "runtime": args.runtime,
        "model": f"{manifest.name} ({manifest.layout})",
        "cold": {"init_ms": cold.report.init_ms, "duration_ms": cold.report.duration_ms, "round_trip_ms": round(cold.wall_ms, 1),
                 "start_to_first_answer_ms": round(cold_total_ms, 1)},
        "warm": {"invokes": len(warm), "any_init": any(w.report.cold for w in warm),
                 "duration_ms_p50": percentile(durations, 50), "duration_ms_p95": percentile(durations, 95),
                 "round_trip_ms_p50": round(percentile(walls, 50), 2), "round_trip_ms_p95": round(percentile(walls, 95), 2),
                 "round_trip_ms_mean": round(statistics.fmean(walls), 2)},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
