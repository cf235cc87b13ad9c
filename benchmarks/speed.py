"""Speed against its floor: each rcyc figure interleaved, round by round, with the reference it is judged by,
so a shared machine's load hits both alike (ratios are the result; the load average is printed).

Rows:
  core      the bare inference core (decode + preprocess + LiteRT on bytes in memory, chunks of 32), on one
            core and on two (two processes at once), against in-process `rcyc predict` on one core;
  folder    `rcyc invoke-local DIR -c 2` (whole command, warm stack of 2) against the 2-core floor, the same
            runs timed inside the stack, their CPU per image by process (CLI, stack, emulators, runtimes), and
            the best that CPU allows (the CLI's, then the rest packed on two cores) against the floor;
  classify  `rcyc classify --local -c 2 --force` against `rcyc invoke-local DIR -c 2` on the same images,
            and a resume with nothing to do (whole command) per 1,000 keys;
  start     the first `rcyc invoke-local IMG --json` with no stack running, and a warm one, against
            `python -c "import boto3"`;
  memory    the stack process's RSS after 200 and after --route images routed through it.

    .venv/bin/python benchmarks/speed.py --markdown docs/benchmarks.md

Everything runs with a cache directory of its own; every stack it starts is stopped at the end.
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
sys.path.insert(0, str(ROOT))

from benchmarks.common import figures, image_folder, interleaved, load, own_bytecode_cache, use_private_cache  # noqa: E402

PYTHON = sys.executable
IMAGE = ROOT / "fixtures" / "images" / "soda_cans" / "soda_cans_0.jpg"
BUCKET = "bench-speed"

# A worker for the core and predict rows: load the model, one untimed pass, say "ready", wait for "go" (so
# two workers start together), one timed pass; prints the seconds.
WORKER = r"""
import json, os, sys, time
from pathlib import Path
mode, folder, cpu = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if cpu != "-":
    os.sched_setaffinity(0, {int(cpu)})
from rcyc_cli.model_source import resolve_model
manifest, directory = resolve_model(None)
paths = sorted(folder.glob("*.jpg"))
if mode == "core":
    import numpy as np
    from rcyc_core import backends
    from rcyc_core.preprocess import preprocess
    backend = backends.load(manifest, directory, "litert")
    data = [p.read_bytes() for p in paths]
    def one_pass():
        for start in range(0, len(data), 32):
            backend.run(np.stack([preprocess(d, manifest.input) for d in data[start:start + 32]]))
else:
    from rcyc_cli.predict import Predictor
    predictor = Predictor(manifest, directory, "litert")
    def one_pass():
        assert len(predictor.classify(paths)["results"]) == len(paths)
one_pass()
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
one_pass()
print(json.dumps(time.perf_counter() - started), flush=True)
"""


def rcyc(*args: str) -> list[str]:
    return [PYTHON, "-m", "rcyc_cli.main", *args]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda"), os.environ.get("PYTHONPATH", "")])}


def wall_ms(command: list[str], ok=(0,), outputs: list | None = None) -> float:
    """The command's wall time; its stdout is appended to ``outputs`` when one is given."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env(), cwd=tempfile.gettempdir())
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr.decode()[-800:]}")
    if outputs is not None:
        outputs.append(done.stdout)
    return elapsed


def workers(mode: str, folder: Path, cpus: list[str]) -> float:
    """Seconds of the timed pass (the slowest worker's, when several run at once)."""
    started = [subprocess.Popen([PYTHON, "-c", WORKER, mode, str(folder), cpu], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env(), cwd=tempfile.gettempdir()) for cpu in cpus]
    try:
        for process in started:
            if process.stdout.readline().strip() != "ready":
                raise SystemExit(f"the {mode} worker failed")
        for process in started:
            process.stdin.write("go\n")
            process.stdin.flush()
        return max(json.loads(process.stdout.readline()) for process in started)
    finally:
        for process in started:
            process.kill()
            process.wait()


def core_rows(work: Path, images: int, rounds: int) -> dict:
    folder = work / "core"
    image_folder(folder, images)
    per_image = lambda seconds: seconds * 1000 / images  # noqa: E731
    measured = interleaved(rounds, {
        "core, one core": lambda: per_image(workers("core", folder, ["0"])),
        "rcyc predict (in process), one core": lambda: per_image(workers("predict", folder, ["0"])),
        "core, two processes on two cores": lambda: per_image(workers("core", folder, ["0", "1"]) / 2),
    })
    rows = {name: {**figures(values, 3), "unit": "ms per image"} for name, values in measured.items()}
    ratios = [c / p for c, p in zip(measured["core, one core"], measured["rcyc predict (in process), one core"])]
    return {"rows": rows, "predict / one-core floor (throughput, per round)": figures(ratios, 2)}


class ProcessCpu:
    """CPU seconds spent by the warm stack's process, its emulators and their runtimes (the function's own
    processes), from /proc/PID/stat (in clock ticks, 10 ms here), and by this process's waited children (the
    CLI runs)."""

    def __init__(self, stack_pid: int):
        emulators = _children(stack_pid)
        self.groups = {"stack": [stack_pid], "emulators": emulators,
                       "runtimes": [pid for emulator in emulators for pid in _children(emulator)]}

    def read(self) -> dict[str, float]:
        import resource

        spent = {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {**spent, "CLI": children.ru_utime + children.ru_stime}


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def folder_rows(work: Path, images: int, rounds: int) -> dict:
    from rcyc_cli.local.stack import client as stack

    folder = work / "folder"
    image_folder(folder, images)
    outputs: list[bytes] = []
    cpu, spent = ProcessCpu(stack.find().state.pid), []

    def folder_run() -> float:
        before = cpu.read()
        seconds = wall_ms(rcyc("invoke-local", str(folder), "-c", "2", "--batch-size", "16", "--json"), outputs=outputs) / 1000
        after = cpu.read()
        spent.append({name: after[name] - before[name] for name in after})
        return images / seconds

    measured = interleaved(rounds, {
        f"invoke-local {images} images -c 2 --batch-size 16, warm": folder_run,
        "the 2-core floor (core, two processes)": lambda: 2 * images / workers("core", folder, ["0", "1"]),
    })
    names = list(measured)
    ratios = [a / b for a, b in zip(measured[names[0]], measured[names[1]])]
    # Where the rest of the command's time goes: the same runs timed by the stack itself, from its first event
    # to its last answer (the command's own start, its posts and its output are outside it).
    inside = [images / json.loads(out)["invocation"]["seconds"] for out in outputs[1:]]  # the untimed round's first
    rows = {name: {**figures(values), "unit": "images/s"} for name, values in measured.items()}
    rows["the same runs inside the stack (first event to last answer)"] = {**figures(inside), "unit": "images/s"}
    # Where the CPU goes, per image, over the timed runs together (the ticks are too coarse for one run's stack)
    timed = spent[1:]
    per_image = {name: round(sum(run[name] for run in timed) * 1000 / (images * len(timed)), 2) for name in timed[0]}
    # The best this command could do at these CPU costs: the CLI's CPU is spent while the stack has nothing to
    # do (before its images arrive, after the answer), so it adds to the wall time; the stack's, the emulators'
    # and the runtimes' CPU at best fills both of the floor's two cores, with no wait between them.
    cli = sum(run["CLI"] for run in timed) / len(timed)
    rest = sum(run[name] for run in timed for name in run if name != "CLI") / len(timed)
    best = images / (cli + rest / 2)
    return {"rows": rows, "folder / 2-core floor (per round)": figures(ratios, 2),
            "inside the stack / 2-core floor (per round)": figures([a / b for a, b in zip(inside, measured[names[1]])], 2),
            f"CPU ms per image, by process, over the {len(timed)} timed runs": per_image,
            "at best at these CPU costs (the CLI's CPU, then the rest packed on 2 cores) / 2-core floor":
                round(best / statistics.median(measured[names[1]]), 2)}


def classify_rows(work: Path, images: int, resume_keys: int, rounds: int) -> dict:
    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
    from rcyc_cli.local.stack import client as stack

    folder = work / "classify"
    paths = image_folder(folder, images)
    running = stack.find()
    s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    s3.create_bucket(Bucket=BUCKET)
    for path in paths:
        s3.put_object(Bucket=BUCKET, Key=f"photos/{path.name}", Body=path.read_bytes())
    for n, path in enumerate(image_folder(work / "resume", resume_keys)):
        s3.put_object(Bucket=BUCKET, Key=f"resume/{path.name}", Body=path.read_bytes())
    classify = rcyc("classify", f"s3://{BUCKET}/photos/", "--local", "-c", "2", "--batch-size", "16", "--force", "--json")
    measured = interleaved(rounds, {
        f"classify --local -c 2 --force, {images} keys": lambda: images / (wall_ms(classify) / 1000),
        f"invoke-local {images} images -c 2": lambda: images / (wall_ms(
            rcyc("invoke-local", str(folder), "-c", "2", "--batch-size", "16", "--json")) / 1000),
    })
    names = list(measured)
    ratios = [a / b for a, b in zip(measured[names[0]], measured[names[1]])]
    wall_ms(rcyc("classify", f"s3://{BUCKET}/resume/", "--local", "-c", "2", "--json"))  # the run that makes the results
    resume = interleaved(rounds, {
        f"classify --local, nothing to do, {resume_keys} keys, per 1,000 keys": lambda: wall_ms(
            rcyc("classify", f"s3://{BUCKET}/resume/", "--local", "-c", "2", "--json")) * 1000 / resume_keys,
        'python -c "import boto3"': lambda: wall_ms([PYTHON, "-c", "import boto3"]),
    })
    rows = {name: {**figures(values), "unit": "images/s"} for name, values in measured.items()}
    rows.update({name: {**figures(values), "unit": "ms"} for name, values in resume.items()})
    return {"rows": rows, "classify / invoke-local DIR (per round)": figures(ratios, 2)}


def start_rows(rounds: int) -> dict:
    def first() -> float:
        elapsed = wall_ms(rcyc("invoke-local", str(IMAGE), "--json"))
        wall_ms(rcyc("local", "down"))
        return elapsed

    measured = interleaved(rounds, {
        "first invoke-local IMG --json, no stack running": first,
        'python -c "import boto3"': lambda: wall_ms([PYTHON, "-c", "import boto3"]),
    })
    wall_ms(rcyc("local", "up", "-n", "2"))
    warm = interleaved(rounds, {
        "invoke-local IMG --json, warm stack": lambda: wall_ms(rcyc("invoke-local", str(IMAGE), "--json")),
        'python -c "import boto3" (warm rounds)': lambda: wall_ms([PYTHON, "-c", "import boto3"]),
    })
    boto3_first, boto3_warm = measured['python -c "import boto3"'], warm['python -c "import boto3" (warm rounds)']
    return {"rows": {**{n: {**figures(v), "unit": "ms"} for n, v in measured.items()},
                     **{n: {**figures(v), "unit": "ms"} for n, v in warm.items()}},
            "first / import boto3 (per round)": figures([a / b for a, b in zip(measured[list(measured)[0]], boto3_first)], 2),
            "warm / import boto3 (per round)": figures([a / b for a, b in zip(warm[list(warm)[0]], boto3_warm)], 2)}


def memory_rows(work: Path, route: int) -> dict:
    """The stack process's RSS after 200 routed images and after ``route``, the images sent as invoke-local
    runs of 200 (uploaded into its S3, invoked in events of 16, removed again)."""
    from rcyc_cli.local.stack import client as stack

    folder = work / "memory"
    image_folder(folder, 200)
    pid = stack.find().state.pid

    def rss_mb() -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("no VmRSS")

    command = rcyc("invoke-local", str(folder), "-c", "2", "--batch-size", "16", "--json")
    wall_ms(command)
    after = {200: rss_mb()}
    for done in range(400, route + 1, 200):
        wall_ms(command)
        if done % 2000 == 0 or done == route:
            after[done] = rss_mb()
    return {"rss_mb_after_images": {n: round(mb, 1) for n, mb in after.items()},
            "growth": f"{(after[max(after)] / after[200] - 1) * 100:+.1f}% from 200 to {max(after)} images"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=200, help="images for the core and folder rows")
    parser.add_argument("--classify-images", type=int, default=400)
    parser.add_argument("--resume-keys", type=int, default=1000)
    parser.add_argument("--route", type=int, default=10000, help="images routed for the memory row")
    parser.add_argument("--only", default="core,folder,classify,start,memory")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    only = set(args.only.split(","))
    use_private_cache("rcyc-bench-speed-")
    os.environ["RCYC_RUNTIME"] = "process"
    work = Path(tempfile.mkdtemp(prefix="rcyc-speed-"))
    own_bytecode_cache(work)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_at_start": load(), "sections": {}}
    sections = result["sections"]
    try:
        if "start" in only:
            sections["start"] = start_rows(args.rounds)  # first: it needs no stack running
        wall_ms(rcyc("local", "up", "-n", "2"))
        if "core" in only:
            sections["core"] = core_rows(work, args.images, args.rounds)
        if "folder" in only:
            sections["folder"] = folder_rows(work, args.images, max(3, args.rounds))
        if "classify" in only:
            sections["classify"] = classify_rows(work, args.classify_images, args.resume_keys, max(3, args.rounds))
        if "memory" in only:
            wall_ms(rcyc("local", "down"))  # a fresh stack: its growth, not the earlier rows'
            wall_ms(rcyc("local", "up", "-n", "2"))
            sections["memory"] = memory_rows(work, args.route)
    finally:
        subprocess.run(rcyc("local", "down"), capture_output=True, env=env())
        shutil.rmtree(work, ignore_errors=True)
    result["load_at_end"] = load()
    print(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result, args)


def write_markdown(path: Path, result: dict, args) -> None:
    with open(path, "a") as out:
        out.write(f"\n## Speed against its floor ({result['date']})\n\nMachine: {result['machine']}; load average "
                  f"(1, 5, 15 min) {result['load_at_start']} at the start, {result['load_at_end']} at the end (the "
                  "run's own load included). Each figure ran interleaved, round by round, with its reference; the ratios "
                  "are per round. Runtime: process.\n\n")
        for title, section in result["sections"].items():
            out.write(f"### {title}\n\n")
            if "rows" in section:
                out.write("| what | median | min | max | n |\n|---|---|---|---|---|\n")
                for name, row in section["rows"].items():
                    out.write(f"| {name} ({row['unit']}) | {row['median']} | {row['min']} | {row['max']} | {row['n']} |\n")
            for name, value in section.items():
                if name != "rows":
                    text = (f"median {value['median']} (min {value['min']}, max {value['max']}, n {value['n']})"
                            if isinstance(value, dict) and "median" in value else json.dumps(value))
                    out.write(f"\n{name}: {text}\n")
            out.write("\n")
        out.write(f"Reproduce: `.venv/bin/python benchmarks/speed.py --rounds {args.rounds} --images {args.images} "
                  f"--classify-images {args.classify_images} --resume-keys {args.resume_keys} --route {args.route} "
                  f"--only {','.join(result['sections'])} --markdown docs/benchmarks.md`\n")


if __name__ == "__main__":
    main()
