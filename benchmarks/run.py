"""rcyc's benchmark suite: how fast the local function is, per runtime and flavour, against the baseline
that reloads its model on every invocation. Prints a table, writes JSON and a Markdown table.

    .venv/bin/python benchmarks/run.py                                   # process runtime, slim + keras, baseline
    .venv/bin/python benchmarks/run.py --runtimes process,docker --base-image rcyc/python-base:bookworm \\
        --ca-bundle /etc/ssl/certs/ca-certificates.crt --markdown docs/benchmarks.md

Everything runs on 127.0.0.1 (embedded S3, emulator processes or containers with host networking).
No figure here is asserted by any test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rcyc_cli import image as function_image  # noqa: E402
from rcyc_cli.cloud import aws, store  # noqa: E402
from rcyc_cli.files import keyed_by_name  # noqa: E402
from rcyc_cli.defaults import DEFAULT_BASE_IMAGE, DEFAULT_REPOSITORY, LOCAL_CREDENTIALS, IMAGES_PREFIX, LOCAL_REGION, POINTER_KEY  # noqa: E402
from rcyc_cli.local.emulator import rie  # noqa: E402
from rcyc_cli.local.emulator.pool import Pool, run_keys  # noqa: E402
from rcyc_cli.function_spec import FunctionSpec  # noqa: E402
from rcyc_cli.local.emulator.launcher import FunctionLauncher  # noqa: E402
from rcyc_cli.local.emulator.s3 import EmbeddedS3  # noqa: E402
from rcyc_cli.local.emulator.sandbox import ProcessSandbox  # noqa: E402
from rcyc_cli.model_source import resolve_model  # noqa: E402
from rcyc_cli.reporting import Reporter  # noqa: E402
from rcyc_core import events  # noqa: E402

BUCKET = "rcyc-bench"
IMAGES = sorted((ROOT / "fixtures" / "images").glob("[a-z]*_*/*.jpg")) or sorted((ROOT / "fixtures" / "images").glob("*/*.jpg"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def peak_memory_mb(sandbox) -> float | None:
    """The function instance's peak resident memory: VmHWM of the runtime process, or the container's
    cgroup peak."""
    pid = getattr(sandbox, "runtime_pid", None)
    if pid:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    container = getattr(sandbox, "container", None)
    if container is not None:
        stats = container.stats(stream=False)["memory_stats"]
        peak = stats.get("max_usage") or stats.get("usage")
        return round(peak / 1e6, 1) if peak else None
    return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.s3_server = EmbeddedS3().start()
        self.s3 = aws.s3_client(self.s3_server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        manifest, directory = resolve_model(args.model)
        self.s3_server.seed_model(BUCKET, manifest, directory, POINTER_KEY)
        self.model = manifest
        pairs = keyed_by_name(IMAGES, IMAGES_PREFIX)
        store.put_images(self.s3, BUCKET, pairs)
        self.keys = [key for _, key in pairs]
        self.rie = rie.locate()

    def factory(self, runtime: str, flavor: str, baseline: bool = False):
        env = {"AWS_ENDPOINT_URL_S3": self.s3_server.endpoint_url, "RCYC_MODEL_BUCKET": BUCKET}
        if flavor == "keras":
            env["RCYC_BACKEND"] = "keras"
        if baseline:
            return lambda index: ProcessSandbox(self.rie, env, handler="baseline_app.handler", function_dir=ROOT / "benchmarks",
                                                name=f"bench-baseline-{index}")
        spec = FunctionSpec(runtime=runtime, flavor=flavor, base_image=self.args.base_image, ca_bundle=self.args.ca_bundle)
        launcher = FunctionLauncher(spec, Reporter(status=lambda m: print(f"  {m}", file=sys.stderr)))
        return launcher.sandbox_factory(env)

    def measure(self, name: str, runtime: str, flavor: str, baseline: bool = False) -> dict:
        print(f"== {name}", file=sys.stderr, flush=True)
        factory = self.factory(runtime, flavor, baseline)
        one = events.make_event(BUCKET, [self.keys[0]])
        colds = []
        for i in range(self.args.cold_runs):
            sandbox = factory(i)
            started = time.perf_counter()
            try:
                sandbox.start()
                sandbox.invoke(one)
                colds.append((time.perf_counter() - started) * 1000)
            finally:
                sandbox.stop()

        pool = Pool(factory, 2).start(warm=True)
        try:
            calls = self.args.baseline_calls if baseline else self.args.warm_calls
            walls = [pool.invoke(one)[0].wall_ms for _ in range(calls)]
            batch = events.make_event(BUCKET, (self.keys * 2)[:16])
            batch_ms = [pool.invoke(batch)[0].wall_ms / 16 for _ in range(max(3, calls // 20))]
            keys = (self.keys * 8)[: self.args.throughput_images]
            throughput = {}
            for instances in (1, 2):
                run = run_keys(lambda e: pool.invoke(e)[0], BUCKET, keys, batch_size=1 if baseline else 16, concurrency=instances)
                assert len(run.response["results"]) == len(keys), "records lost"
                throughput[instances] = round(run.images_per_second, 1)
            memory = max(filter(None, (peak_memory_mb(i.sandbox) for i in pool.instances)), default=None)
        finally:
            pool.stop()
        row = {
            "name": name, "runtime": runtime, "flavor": flavor,
            "cold_start_ms_median": round(statistics.median(colds), 1),
            "warm_p50_ms": round(pct(walls, 50), 2), "warm_p95_ms": round(pct(walls, 95), 2), "warm_calls": len(walls),
            "batch16_per_image_ms": round(statistics.median(batch_ms), 2),
            "throughput_1_instance": throughput[1], "throughput_2_instances": throughput[2],
            "peak_memory_mb": memory,
        }
        if runtime == "docker":
            row.update(self.image_size(flavor))
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row

    def image_size(self, flavor: str) -> dict:
        client = function_image.engine()
        image = client.images.get(f"{DEFAULT_REPOSITORY}:local-{flavor}")
        total, own = function_image.image_layers(client, image.id, self.args.base_image or DEFAULT_BASE_IMAGE)
        return {"image_mb": round(total / 1e6, 1), "own_layers_mb": round(own / 1e6, 1)}

    def close(self):
        self.s3_server.stop()


def cli_help_ms(repeats: int = 10) -> float:
    rcyc = Path(sys.executable).with_name("rcyc")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([str(rcyc), "--help"], check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


COLUMNS = [("name", "configuration"), ("cold_start_ms_median", "cold start ms (median of 5)"),
           ("warm_p50_ms", "warm p50 ms"), ("warm_p95_ms", "warm p95 ms"), ("batch16_per_image_ms", "per image in a 16-batch ms"),
           ("throughput_1_instance", "images/s, 1 instance"), ("throughput_2_instances", "images/s, 2 instances"),
           ("peak_memory_mb", "peak memory MB"), ("image_mb", "image MB"), ("own_layers_mb", "own layers MB")]


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "–")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="process")
    parser.add_argument("--flavors", default="slim,keras")
    parser.add_argument("--model", type=Path, default=ROOT / "fixtures" / "models" / "fixture-psu")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-calls", type=int, default=200)
    parser.add_argument("--baseline-calls", type=int, default=20)
    parser.add_argument("--throughput-images", type=int, default=96)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--base-image")
    parser.add_argument("--ca-bundle", type=Path)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    bench = Bench(args)
    rows = []
    try:
        for runtime in args.runtimes.split(","):
            for flavor in args.flavors.split(","):
                rows.append(bench.measure(f"{runtime} / {flavor}", runtime, flavor))
        if not args.no_baseline:
            rows.append(bench.measure("baseline: reload per invocation (process / keras)", "process", "keras", baseline=True))
    finally:
        bench.close()
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            "python": platform.python_version(), "model": f"{bench.model.name} ({bench.model.layout})",
            "rcyc_help_ms_median": cli_help_ms(), "date": time.strftime("%Y-%m-%d")}
    result = {"meta": meta, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(rows, meta)
    print(json.dumps(meta, indent=2))
    print(table)
    if args.markdown:
        args.markdown.write_text(f"# Benchmarks\n\nMachine: {meta['machine']}, Python {meta['python']}, {meta['date']}. "
                                 f"Model: {meta['model']}. `rcyc --help`: {meta['rcyc_help_ms_median']} ms (median of 10).\n\n"
                                 f"{table}\nReproduce: `{' '.join(['.venv/bin/python', 'benchmarks/run.py', *sys.argv[1:]])}`\n")


if __name__ == "__main__":
    main()
