"""What a user waits for: whole rcyc commands timed from process start to exit, interleaved A/B against an
earlier checkout of rcyc (--before DIR, e.g. a `git worktree` of the commit to compare with), with median,
min, max and n. Rows: `rcyc --help`; a warm `invoke-local IMG --json` against `python -c "import boto3"`;
a one-shot `invoke-local --no-stack`; a folder of images through a warm stack against in-process
`rcyc predict`; and the warm stack's per-invoke overhead over many calls (first and last calls' p50).

    git worktree add ../rcyc-before 6dccde8
    .venv/bin/python benchmarks/latency.py --before ../rcyc-before --markdown docs/benchmarks.md

Every stack it starts has a cache directory of its own and is stopped at the end (also on failure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
IMAGE = ROOT / "fixtures" / "images" / "soda_cans" / "soda_cans_0.jpg"


class Side:
    """One version of rcyc: how to run its CLI, with a cache (and so a stack) of its own."""

    def __init__(self, name: str, checkout: Path | None, work: Path):
        self.name, self.checkout = name, checkout
        self.cache = work / f"cache-{name}"
        self.env = {**os.environ, "RCYC_CACHE_HOME": str(self.cache), "RCYC_RUNTIME": "process", "RCYC_KEEP_WARM": "0"}
        if checkout is not None:  # an older checkout: its packages first on the path (run from outside this tree)
            self.env["PYTHONPATH"] = f"{checkout}{os.pathsep}{checkout / 'lambda'}"

    def command(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "rcyc_cli.main", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, cwd=tempfile.gettempdir())
        if check and done.returncode not in (0, 7):
            raise SystemExit(f"{self.name}: rcyc {' '.join(args)} failed ({done.returncode}): {done.stderr[-600:]}")
        return done


def wall(command: list[str], env: dict, cwd: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 7):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-600:]}")
    return seconds


def interleaved(commands: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, dict]:
    """Each command once per round, in turn, for ``runs`` rounds (after one untimed warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    cwd = tempfile.gettempdir()
    for round_ in range(runs + 1):
        for name, (command, env) in commands.items():
            seconds = wall(command, env, cwd)
            if round_:
                times[name].append(seconds * 1000)
    return {name: {"median_ms": round(statistics.median(ms), 1), "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1),
                   "n": len(ms)} for name, ms in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the rcyc version to compare with")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--calls", type=int, default=10000, help="invokes for the per-invoke overhead row")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from benchmarks.common import name_the_emulator

    name_the_emulator()  # each side's cache is fresh: the emulator is named for both
    work = Path(tempfile.mkdtemp(prefix="rcyc-latency-"))
    # One bytecode cache for every command of the run, both sides and the references (filled in the untimed
    # first round): an environment that forbids bytecode, or a venv installed without it, would otherwise
    # time the compiling of click, moto and rcyc at every start (benchmarks/speed.py does the same).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "bytecode")
    sides = [Side("after", None, work)] + ([Side("before", args.before.resolve(), work)] if args.before else [])
    folder = work / "images"
    folder.mkdir()
    drawings = sorted((ROOT / "fixtures" / "images").glob("*/*_[0-9].jpg"))
    for n in range(args.images):
        shutil.copy(drawings[n % len(drawings)], folder / f"{n:04d}-{drawings[n % len(drawings)].name}")
    rows: dict[str, dict] = {}
    try:
        rows["rcyc --help"] = interleaved({s.name: (s.command("--help"), s.env) for s in sides}, args.runs)
        for side in sides:
            side.run("local", "up", "-n", "2")
        warm = {f"rcyc invoke-local IMG --json, warm stack ({s.name})": (s.command("invoke-local", str(IMAGE), "--json"), s.env)
                for s in sides}
        warm['python -c "import boto3"'] = ([PYTHON, "-c", "import boto3"], os.environ)
        warm['python -c "pass"'] = ([PYTHON, "-c", "pass"], os.environ)
        rows["warm invoke-local"] = interleaved(warm, args.runs)
        folder_runs = {f"invoke-local {args.images} images -c 2 --batch-size 16, warm stack ({s.name})":
                       (s.command("invoke-local", str(folder), "-c", "2", "--batch-size", "16", "--json"), s.env) for s in sides}
        folder_runs[f"rcyc predict {args.images} images (in-process)"] = (sides[0].command("predict", str(folder), "--json"), sides[0].env)
        rows["a folder of images"] = interleaved(folder_runs, max(3, args.runs // 3))
        for figures in rows["a folder of images"].values():
            figures["images_per_second"] = round(args.images / (figures["median_ms"] / 1000), 1)
        rows["per-invoke overhead"] = overhead(sides[0], args.calls)
        for side in sides:
            side.run("local", "down", check=False)
        rows["one-shot invoke-local"] = interleaved(
            {f"rcyc invoke-local IMG --json --no-stack ({s.name})": (s.command("invoke-local", str(IMAGE), "--json", "--no-stack"), s.env)
             for s in sides}, max(3, args.runs // 2))
    finally:
        for side in sides:
            side.run("local", "down", check=False)
        shutil.rmtree(work, ignore_errors=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                         f"load {os.getloadavg()[0]:.1f}", "date": time.strftime("%Y-%m-%d"), "rows": rows}
    print(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result, args)


def overhead(side: Side, calls: int) -> dict:
    """p50 of the first and the last 200 of ``calls`` one-image invokes through the stack (the process runtime)."""
    code = (
        "import json, sys, time\n"
        "try:\n"
        "    from rcyc_cli.local.stack import client as stack\n"
        "except ImportError:  # a checkout from before the local/ split\n"
        "    from rcyc_cli.local import stack\n"
        "from rcyc_core import events\n"
        "running = stack.find()\n"
        "s3_key = 'bench/one.jpg'\n"
        "from rcyc_cli.cloud.aws import s3_client\n"
        "from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION\n"
        "s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)\n"
        f"s3.put_object(Bucket=running.state.bucket, Key=s3_key, Body=open({str(IMAGE)!r}, 'rb').read())\n"
        "event = events.make_event(running.state.bucket, [s3_key])\n"
        "walls = []\n"
        f"for _ in range({calls}):\n"
        "    started = time.perf_counter(); running.invoke(event); walls.append((time.perf_counter() - started) * 1000)\n"
        "print(json.dumps(walls))\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=side.env, cwd=tempfile.gettempdir())
    if done.returncode:
        raise SystemExit(f"overhead run failed: {done.stderr[-600:]}")
    walls = json.loads(done.stdout)
    window = min(200, len(walls) // 2)
    return {f"first {window} of {calls}": {"p50_ms": round(statistics.median(walls[:window]), 2)},
            f"last {window} of {calls}": {"p50_ms": round(statistics.median(walls[-window:]), 2)}}


def write_markdown(path: Path, result: dict, args) -> None:
    with open(path, "a") as out:
        out.write(f"\n## What a user waits for ({result['date']})\n\nMachine: {result['machine']} (shared with other "
                  f"jobs while measured). Whole commands, process start to exit, interleaved round by round, after one "
                  f"untimed round; `after` is this checkout, `before` the one given with --before. Runtime: process.\n\n")
        for title, rows in result["rows"].items():
            out.write(f"### {title}\n\n| what | median | min | max | n |\n|---|---|---|---|---|\n")
            for name, figures in rows.items():
                if "median_ms" in figures:
                    extra = f" ({figures['images_per_second']} images/s)" if "images_per_second" in figures else ""
                    out.write(f"| {name}{extra} | {figures['median_ms']} ms | {figures['min_ms']} ms | {figures['max_ms']} ms | "
                              f"{figures['n']} |\n")
                else:
                    out.write(f"| {name} | p50 {figures['p50_ms']} ms | | | |\n")
            out.write("\n")
        before = f" --before {args.before}" if args.before else ""
        out.write(f"Reproduce: `.venv/bin/python benchmarks/latency.py{before} --runs {args.runs} --images {args.images} "
                  f"--calls {args.calls} --markdown docs/benchmarks.md`\n")


if __name__ == "__main__":
    main()
