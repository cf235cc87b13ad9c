"""How fast ``rcyc classify --local`` backfills a prefix, against ``rcyc invoke-local DIR`` on the same images,
and how long a resume with nothing to do takes: whole commands, each interleaved round by round with its
reference, so a shared machine's load hits both alike (the ratios are per round; the load average is printed).

Rows:
  throughput  `rcyc classify s3://…/photos/ --local -c 2 --force` against `rcyc invoke-local DIR -c 2` on the
              same IMAGES images (the fixture drawings), events of 16, a warm stack of 2 process instances;
  resume      `rcyc classify --local` over RESUME_KEYS keys whose results the current model already made
              (nothing to do), against the same command over 1 such key (what any run costs: the interpreter,
              boto3, the stack's clients) and `python -c "import boto3"`; per 1,000 keys, whole command and
              what the keys add beyond the one-key run.
  on paper    what the same job would do on AWS Lambda at concurrency 100, from the measured duration per
              invocation (billed ms), with the cost.

Runs on a fresh clone: the emulator is found in the user's cache or installed there (benchmarks/common.py),
the stack is a private one (its own cache directory, stopped at the end).

    .venv/bin/python benchmarks/classify.py --rounds 5 --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import figures, image_folder, interleaved, load, own_bytecode_cache, use_private_cache  # noqa: E402

PYTHON = sys.executable
BUCKET = "bench-classify"
BATCH = 16


def rcyc(*args: str) -> list[str]:
    return [PYTHON, "-m", "rcyc_cli.main", *args]


def run(command: list[str]) -> tuple[float, str]:
    """Wall seconds of a whole command, and its stdout; a failure ends the benchmark."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr.decode()[-800:]}")
    return elapsed, done.stdout.decode()


def seed(work: Path, images: int, resume_keys: int) -> Path:
    """The stack's S3: IMAGES drawings under photos/, RESUME_KEYS under resume/ and one under one/; the same
    IMAGES drawings in a local folder (returned) for invoke-local."""
    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
    from rcyc_cli.local.stack import client as stack

    running = stack.find()
    s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    s3.create_bucket(Bucket=BUCKET)
    folder = work / "photos"
    for prefix, paths in (("photos", image_folder(folder, images)), ("resume", image_folder(work / "resume", resume_keys)),
                          ("one", image_folder(work / "one", 1))):
        for path in paths:
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=path.read_bytes())
    return folder


def throughput(folder: Path, images: int, rounds: int) -> dict:
    billed: list[float] = []

    def classify() -> float:
        seconds, out = run(rcyc("classify", f"s3://{BUCKET}/photos/", "--local", "-c", "2", "--batch-size", str(BATCH),
                                "--force", "--json"))
        summary = json.loads(out)
        if summary["classified"] != images or summary["errors"]:
            raise SystemExit(f"classify did not classify every image: {summary}")
        if summary.get("billed_ms") and summary.get("invocations"):
            billed.append(summary["billed_ms"] / summary["invocations"])
        return images / seconds

    def invoke_local() -> float:
        seconds, _ = run(rcyc("invoke-local", str(folder), "-c", "2", "--batch-size", str(BATCH), "--json"))
        return images / seconds

    at_start = load()
    measured = interleaved(rounds, {f"classify --local -c 2 --force, {images} keys": classify,
                                    f"invoke-local DIR -c 2, the same {images} images": invoke_local})
    first, second = measured
    ratios = [a / b for a, b in zip(measured[first], measured[second])]
    return {"rows": {name: {**figures(values), "unit": "images/s"} for name, values in measured.items()},
            "classify / invoke-local DIR (per round)": figures(ratios, 2), "load": [at_start, load()],
            "billed_ms_per_invocation": figures(billed[-rounds:] or [0.0])}


def resume(resume_keys: int, rounds: int) -> dict:
    for prefix in ("resume", "one"):  # the runs that make the results
        run(rcyc("classify", f"s3://{BUCKET}/{prefix}/", "--local", "-c", "2", "--json"))

    def nothing_to_do(prefix: str, keys: int):
        def measure() -> float:
            seconds, out = run(rcyc("classify", f"s3://{BUCKET}/{prefix}/", "--local", "-c", "2", "--json"))
            summary = json.loads(out)
            if summary["done_before"] != keys or summary["classified"]:
                raise SystemExit(f"the resume was not a resume with nothing to do: {summary}")
            return seconds * 1000
        return measure

    at_start = load()
    big, one, boto = (f"classify --local, nothing to do, {resume_keys} keys", "classify --local, nothing to do, 1 key",
                      'python -c "import boto3"')
    measured = interleaved(rounds, {big: nothing_to_do("resume", resume_keys), one: nothing_to_do("one", 1),
                                    boto: lambda: run([PYTHON, "-c", "import boto3"])[0] * 1000})
    per_thousand = [ms * 1000 / resume_keys for ms in measured[big]]
    added = [(ms - base) * 1000 / (resume_keys - 1) for ms, base in zip(measured[big], measured[one])]
    rows = {name: {**figures(values), "unit": "ms"} for name, values in measured.items()}
    rows[f"{big}, per 1,000 keys (whole command)"] = {**figures(per_thousand), "unit": "ms"}
    rows[f"{big}, what the keys add beyond the 1-key run, per 1,000 keys"] = {**figures(added), "unit": "ms"}
    return {"rows": rows, "load": [at_start, load()]}


def on_paper(per_invoke_ms: float) -> dict:
    from rcyc_cli.classify import cost

    lambda_n, million = 100, 1_000_000
    invocations = million // BATCH
    rate = lambda_n * BATCH / (per_invoke_ms / 1000)
    return {"concurrency": lambda_n, "batch_size": BATCH, "billed_ms_per_invocation": per_invoke_ms,
            "images_per_second": round(rate), "one_million_images_minutes": round(million / rate / 60, 1),
            "one_million_images_cost_usd_1024mb_x86": round(cost.cost(invocations * per_invoke_ms, invocations, 1024), 2),
            "one_million_images_cost_usd_1024mb_arm64": round(cost.cost(invocations * per_invoke_ms, invocations, 1024, "arm64"), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--resume-keys", type=int, default=1000)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    cache = use_private_cache("rcyc-bench-classify-")  # the emulator named (installed when missing): a fresh cache has none
    os.environ["RCYC_RUNTIME"] = "process"
    work = Path(tempfile.mkdtemp(prefix="rcyc-bench-classify-"))
    own_bytecode_cache(work)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds}
    finished = False
    try:
        run(rcyc("local", "up", "-n", "2"))
        folder = seed(work, args.images, args.resume_keys)
        result["throughput"] = throughput(folder, args.images, args.rounds)
        result["resume"] = resume(args.resume_keys, args.rounds)
        finished = True
    finally:
        subprocess.run(rcyc("local", "down"), capture_output=True, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'lambda'}"})
        shutil.rmtree(work, ignore_errors=True)
        if finished:
            shutil.rmtree(cache, ignore_errors=True)
        else:
            print(f"kept the cache directory for its logs: {cache}", file=sys.stderr)
    result["lambda_on_paper"] = on_paper(result["throughput"]["billed_ms_per_invocation"]["median"])
    print(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result, args)


def write_markdown(path: Path, result: dict, args) -> None:
    paper = result["lambda_on_paper"]
    with open(path, "a") as out:
        out.write(f"\n## rcyc classify --local against invoke-local, and a resume ({result['date']})\n\n"
                  f"Machine: {result['machine']}. Whole commands, interleaved round by round with their reference "
                  f"(n rounds after one untimed round); a warm stack of 2 process instances, events of {BATCH}.\n\n")
        for title in ("throughput", "resume"):
            section = result[title]
            out.write(f"### {title} (load average 1, 5, 15 min: {section['load'][0]} at the start, "
                      f"{section['load'][1]} at the end)\n\n| what | median | min | max | n |\n|---|---|---|---|---|\n")
            for name, row in section["rows"].items():
                out.write(f"| {name} ({row['unit']}) | {row['median']} | {row['min']} | {row['max']} | {row['n']} |\n")
            for name, value in section.items():
                if name not in ("rows", "load") and isinstance(value, dict) and "median" in value:
                    out.write(f"\n{name}: median {value['median']} (min {value['min']}, max {value['max']}, n {value['n']})\n")
            out.write("\n")
        out.write(f"On paper, AWS Lambda at concurrency {paper['concurrency']} with the same duration per invocation "
                  f"({paper['billed_ms_per_invocation']} ms for {BATCH} images; Lambda's CPU share at 1024 MB is about 0.6 "
                  f"of a core, so expect it slower): about {paper['images_per_second']:,} images/s, a million images in "
                  f"about {paper['one_million_images_minutes']} minutes, about ${paper['one_million_images_cost_usd_1024mb_x86']} "
                  f"at 1024 MB x86_64 (${paper['one_million_images_cost_usd_1024mb_arm64']} on arm64), S3 requests not "
                  "included.\n\n"
                  f"Reproduce: `.venv/bin/python benchmarks/classify.py --rounds {args.rounds} --images {args.images} "
                  f"--resume-keys {args.resume_keys} --markdown docs/benchmarks.md`\n")


if __name__ == "__main__":
    main()
