"""rcyc side by side with AWS SAM CLI on the same function image, interleaved A/B (issue 12).

    DOCKER_HOST=unix:///var/run/rcyc-docker.sock .venv/bin/python benchmarks/sam.py \\
        --base-image rcyc/python-base:bookworm --ca-bundle /etc/ssl/certs/ca-certificates.crt \\
        --markdown docs/benchmarks.md

Two rows:

- one-shot: the whole `sam local invoke` command against the whole `rcyc invoke-local --runtime docker
  --no-stack` command (wall time from process start to exit), alternating which goes first each round;
- warm: `sam local start-lambda --warm-containers EAGER` against rcyc's warm stack (`rcyc local up
  --runtime docker -n 1`), both called by the same boto3 Lambda client code, invokes alternating.

Every answer must be the function's five-way result, or the benchmark stops.

SAM CLI 1.170.0 is installed in a venv of its own under rcyc's cache (`<cache>/rcyc/bench/sam-venv`),
never in the project's venv, and patched (benchmarks/sam_host_network.py) to run its containers with host
networking: stock SAM publishes the emulator's port on a bridge network, which an engine started with
`--bridge=none` does not have. SAM never reaches AWS here: throwaway keys, empty config files, every AWS
endpoint (its start-up STS call included) at a moto server on 127.0.0.1, telemetry off, its weekly version
check marked as done, and a proxy on a closed loopback port for anything else. No figure here is asserted
by any test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import sam_host_network  # noqa: E402
from rcyc_cli import paths  # noqa: E402
from rcyc_cli.cloud import aws  # noqa: E402
from rcyc_cli.defaults import DEFAULT_BASE_IMAGE, DEFAULT_FUNCTION, LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY  # noqa: E402
from rcyc_cli.local.emulator import rie  # noqa: E402
from rcyc_cli.local.emulator.s3 import EmbeddedS3  # noqa: E402
from rcyc_cli.model_source import resolve_model  # noqa: E402
from rcyc_core import LABELS, events  # noqa: E402

SAM_VERSION = "1.170.0"
BUCKET = "rcyc-bench"
IMAGE = ROOT / "fixtures" / "images" / "soda_cans" / "soda_cans_0.jpg"
KEY = f"images/{IMAGE.name}"
RCYC = Path(sys.executable).with_name("rcyc")
# Keys only ever sent to 127.0.0.1 (moto, the emulators); never anyone's own.
THROWAWAY = {"AWS_ACCESS_KEY_ID": "rcyc-bench", "AWS_SECRET_ACCESS_KEY": "rcyc-bench-not-a-secret"}
CLOSED_PROXY = "http://127.0.0.1:9"  # the discard port, nothing listens: a request that is not for 127.0.0.1 fails here


class BenchError(RuntimeError):
    pass


def summary(values: list[float]) -> dict:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]

    return {"n": len(values), "median": round(statistics.median(values), 1), "min": round(ordered[0], 1),
            "max": round(ordered[-1], 1), "p50": round(pct(50), 1), "p95": round(pct(95), 1)}


class StsCalls(logging.Handler):
    """Counts the STS calls (``POST /``) the moto server logs: SAM's start-up GetCallerIdentity lands here."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if '"POST / HTTP' in record.getMessage():
            self.count += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rcyc_revision() -> str:
    """The commit rcyc ran at, and whether its code had uncommitted changes (what `rcyc build` and the one-shot built)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "rcyc_cli", "lambda", "Dockerfile"], capture_output=True, text=True).stdout.strip()
    return f"{head} with uncommitted changes to its code" if dirty else head


def check_answer(answer: dict, who: str) -> str:
    """The function's five-way result for the one image, or BenchError. Returns the label."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not results or len(results) != 1 or answer.get("errors"):
        raise BenchError(f"{who} did not answer with one result: {json.dumps(answer)[:600]}")
    entry = results[0]
    if set(entry.get("scores", {})) != set(LABELS) or entry.get("label") not in LABELS or not entry.get("key", "").endswith(IMAGE.name):
        raise BenchError(f"{who} answered without the five-way scores for {KEY}: {json.dumps(entry)[:600]}")
    return entry["label"]


# --- SAM in a venv of its own -------------------------------------------------------------------------------------

def ensure_sam(venv: Path) -> tuple[Path, bool]:
    """SAM CLI SAM_VERSION in ``venv`` (made if missing), with the host-network patch. Returns (sam, patched now)."""
    sam, python = venv / "bin" / "sam", venv / "bin" / "python"
    if not sam.is_file():
        print(f"installing AWS SAM CLI {SAM_VERSION} into {venv} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"aws-sam-cli=={SAM_VERSION}"], check=True)
    found = subprocess.run([str(python), "-c", "import os, samcli; print(samcli.__version__); print(os.path.dirname(samcli.__file__))"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    if found[0] != SAM_VERSION:
        raise BenchError(f"{venv} holds SAM CLI {found[0]}, not {SAM_VERSION}: remove that venv and run again")
    changed = sam_host_network.apply(Path(found[1]).parent / "samcli" / "local" / "docker" / "container.py")
    return sam, changed


def sam_environment(work: Path, moto: str, docker_host: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAM_")) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    (work / "aws-config").write_text("")
    (work / "aws-credentials").write_text("")
    app_dir = work / "sam-app"  # SAM's own metadata: telemetry off, the weekly PyPI version check marked as done
    app_dir.mkdir(exist_ok=True)
    (app_dir / "metadata.json").write_text(json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time() + 86400 * 365}))
    env.update(THROWAWAY)
    env.update({
        "AWS_DEFAULT_REGION": LOCAL_REGION, "AWS_REGION": LOCAL_REGION,
        "AWS_CONFIG_FILE": str(work / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws-credentials"),
        "AWS_ENDPOINT_URL": moto, "AWS_ENDPOINT_URL_STS": moto, "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0", "__SAM_CLI_APP_DIR": str(app_dir), "DOCKER_HOST": docker_host,
        "HTTP_PROXY": CLOSED_PROXY, "HTTPS_PROXY": CLOSED_PROXY, "http_proxy": CLOSED_PROXY, "https_proxy": CLOSED_PROXY,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    return env


def write_template(work: Path, function: str, tag: str, moto: str) -> Path:
    template = work / "template.yaml"
    template.write_text(f"""\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  {function}:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: {tag}
      Timeout: 180
      MemorySize: 1024
      Environment:
        Variables:
          RCYC_MODEL_BUCKET: {BUCKET}
          AWS_ENDPOINT_URL_S3: {moto}
""")
    return template


def sam_containers(docker_host: str, function: str) -> list[str]:
    done = subprocess.run(["docker", "-H", docker_host, "ps", "-aq", "--filter", f"label=sam.cli.function.name={function}"],
                          capture_output=True, text=True)
    return done.stdout.split()


def image_id(docker_host: str, tag: str) -> str:
    return subprocess.run(["docker", "-H", docker_host, "image", "inspect", "-f", "{{.Id}}", tag],
                          capture_output=True, text=True).stdout.strip()


def remove_sam_containers(docker_host: str, function: str) -> int:
    ids = sam_containers(docker_host, function)
    if ids:
        subprocess.run(["docker", "-H", docker_host, "rm", "-f", *ids], capture_output=True)
    return len(ids)


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --- the runs ------------------------------------------------------------------------------------------------------

def timed(command: list[str], env: dict, cwd: Path, who: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise BenchError(f"{who} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    text = done.stdout.strip()
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:  # SAM prints the function's answer as its last stdout line
        answer = json.loads(text.splitlines()[-1]) if text else None
    return ms, check_answer(answer, who)


def lambda_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("lambda", endpoint_url=endpoint, region_name=LOCAL_REGION,
                        aws_access_key_id=THROWAWAY["AWS_ACCESS_KEY_ID"], aws_secret_access_key=THROWAWAY["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=300, connect_timeout=5))


def invoke(client, function: str, event: dict, who: str) -> tuple[float, str]:
    payload = json.dumps(event)
    started = time.perf_counter()
    reply = client.invoke(FunctionName=function, Payload=payload)
    body = reply["Payload"].read()
    ms = (time.perf_counter() - started) * 1000
    if reply.get("FunctionError"):
        raise BenchError(f"{who} answered a function error: {body[:600]!r}")
    return ms, check_answer(json.loads(body), who)


def first_answer(client, function: str, event: dict, who: str, process: subprocess.Popen | None, deadline: float) -> float:
    """Invoke until the first five-way answer; returns when it came (perf_counter)."""
    from botocore.exceptions import BotoCoreError, ClientError

    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BenchError(f"{who} exited {process.returncode} before answering: {last}")
        try:
            invoke(client, function, event, who)
            return time.perf_counter()
        except (BotoCoreError, ClientError, OSError) as exc:
            last = exc
            time.sleep(0.2)
    raise BenchError(f"{who} did not answer in time: {last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="one-shot rounds, each running both commands (default 7)")
    parser.add_argument("--invokes", type=int, default=50, help="warm invokes per tool (default 50)")
    parser.add_argument("--base-image", default=os.environ.get("RCYC_BASE_IMAGE", DEFAULT_BASE_IMAGE))
    parser.add_argument("--ca-bundle", default=os.environ.get("RCYC_CA_BUNDLE"))
    parser.add_argument("--tag", default="rcyc-function:bench-slim", help="the image both tools run")
    parser.add_argument("--parts", default="oneshot,warm", help="oneshot, warm or both (default)")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST"), required=not os.environ.get("DOCKER_HOST"))
    parser.add_argument("--markdown", type=Path, help="append a section to this Markdown file (docs/benchmarks.md)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    machine = {"arch": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
               "date": datetime.date.today().isoformat(), "sam": SAM_VERSION, "load_start": load(), "rcyc": rcyc_revision()}
    sam, patched_now = ensure_sam(paths.cache_dir() / "bench" / "sam-venv")
    rie_path = str(rie.locate())  # before RCYC_CACHE_HOME is pointed elsewhere below
    build = [str(RCYC), "build", "--tag", args.tag, "--base-image", args.base_image]
    options = ["--base-image", args.base_image, "--rie", rie_path]
    if args.ca_bundle:
        build += ["--ca-bundle", args.ca_bundle]
        options += ["--ca-bundle", args.ca_bundle]
    base_env = dict(os.environ, DOCKER_HOST=args.docker_host)
    subprocess.run(build + ["--json"], env=base_env, check=True, capture_output=True)

    work = Path(tempfile.mkdtemp(prefix="rcyc-sam-bench-"))
    function = f"RcycBench{secrets.token_hex(4)}"  # SAM labels its containers with it: ours are found by it alone
    moto = EmbeddedS3().start()
    sts_calls = StsCalls()
    logging.getLogger("werkzeug").addHandler(sts_calls)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    logging.getLogger("werkzeug").propagate = False
    s3 = aws.s3_client(moto.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
    manifest, model_dir = resolve_model(None)
    moto.seed_model(BUCKET, manifest, model_dir, POINTER_KEY)
    s3.upload_file(str(IMAGE), BUCKET, KEY)
    event = events.make_event(BUCKET, [KEY])
    (work / "event.json").write_text(json.dumps(event))
    template = write_template(work, function, args.tag, moto.endpoint_url)
    env_sam = sam_environment(work, moto.endpoint_url, args.docker_host)
    sam_flags = ["--skip-pull-image", "--docker-network", "host", "--container-host", "127.0.0.1",
                 "--container-host-interface", "127.0.0.1"]
    commands = {
        "sam_invoke": [str(sam), "local", "invoke", "-t", str(template), "-e", str(work / "event.json"), *sam_flags, function],
        "rcyc_invoke": [str(RCYC), "invoke-local", str(IMAGE), "--runtime", "docker", "--no-stack", *options, "--json"],
        "sam_start_lambda": [str(sam), "local", "start-lambda", "-t", str(template), "--warm-containers", "EAGER",
                             *sam_flags, "-p", "PORT", "--host", "127.0.0.1"],
        "rcyc_local_up": [str(RCYC), "local", "up", "--runtime", "docker", "-n", "1", *options],
    }
    env_oneshot = dict(base_env, RCYC_CACHE_HOME=str(work / "rcyc-oneshot"))
    env_stack = dict(base_env, RCYC_CACHE_HOME=str(work / "rcyc-stack"))
    result: dict = {"machine": machine, "image": args.tag, "base_image": args.base_image, "patched_now": patched_now}
    sam_process = stack_up = sam_log = None
    try:
        if "oneshot" in parts:
            rebuilt = []

            def rcyc_once() -> tuple[float, str]:
                # invoke-local builds the image from the checkout each run (a cache hit unless its code changed):
                # count the runs where it did change, as other people's edits land in a shared checkout.
                tag = f"{args.tag.split(':')[0]}:local-slim"
                before = image_id(args.docker_host, tag)
                answer = timed(commands["rcyc_invoke"], env_oneshot, ROOT, "rcyc invoke-local")
                rebuilt.append(image_id(args.docker_host, tag) != before)
                return answer

            runs = {"sam": lambda: timed(commands["sam_invoke"], env_sam, work, "sam local invoke"), "rcyc": rcyc_once}
            first = {who: round(run()[0], 1) for who, run in runs.items()}  # SAM builds its emulator image here: not counted
            times: dict[str, list[float]] = {"sam": [], "rcyc": []}
            labels = set()
            load_before = load()
            for index in range(args.rounds):
                for who in (("sam", "rcyc") if index % 2 == 0 else ("rcyc", "sam")):
                    ms, label = runs[who]()
                    times[who].append(ms)
                    labels.add(label)
                print(f"one-shot round {index + 1}/{args.rounds}: sam {times['sam'][-1]:.0f} ms, rcyc {times['rcyc'][-1]:.0f} ms", file=sys.stderr)
            if len(labels) != 1:
                raise BenchError(f"the two tools gave different labels: {sorted(labels)}")
            result["oneshot"] = {"sam": summary(times["sam"]), "rcyc": summary(times["rcyc"]), "first_run_ms": first,
                                 "samples_ms": {who: [round(x, 1) for x in values] for who, values in times.items()},
                                 "label": labels.pop(), "load_before": load_before, "load_after": load(),
                                 "sts_calls_at_moto": sts_calls.count, "rcyc_rebuilt": sum(rebuilt[1:]),
                                 "paired_rcyc_minus_sam_ms": summary([r - q for q, r in zip(times["sam"], times["rcyc"])]),
                                 "rounds_rcyc_slower": sum(r > q for q, r in zip(times["sam"], times["rcyc"]))}
            sts_calls.count = 0

        if "warm" in parts:
            port = free_port()
            commands["sam_start_lambda"][commands["sam_start_lambda"].index("PORT")] = str(port)
            deadline = time.monotonic() + 300
            started = time.perf_counter()
            sam_log = open(work / "sam-start-lambda.log", "w")
            sam_process = subprocess.Popen(commands["sam_start_lambda"], env=env_sam, cwd=work, stdout=sam_log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            sam_client = lambda_client(f"http://127.0.0.1:{port}")
            sam_ready = first_answer(sam_client, function, event, "sam local start-lambda", sam_process, deadline) - started

            started = time.perf_counter()
            stack_up = True
            subprocess.run(commands["rcyc_local_up"] + ["--json"], env=env_stack, cwd=ROOT, check=True, capture_output=True, timeout=300)
            status = json.loads(subprocess.run([str(RCYC), "local", "status", "--json"], env=env_stack, cwd=ROOT, check=True,
                                               capture_output=True, text=True).stdout)
            stack_s3 = aws.s3_client(status["s3_endpoint"], LOCAL_REGION, LOCAL_CREDENTIALS)
            stack_bucket = status.get("bucket") or "recycle-able-image"
            stack_s3.upload_file(str(IMAGE), stack_bucket, KEY)
            stack_event = events.make_event(stack_bucket, [KEY])
            rcyc_client = lambda_client(status["endpoint"])
            rcyc_ready = first_answer(rcyc_client, DEFAULT_FUNCTION, stack_event, "rcyc local up", None, time.monotonic() + 300) - started

            clients = {"sam": (sam_client, function, event), "rcyc": (rcyc_client, DEFAULT_FUNCTION, stack_event)}
            for who, (client, name, body) in clients.items():  # one more each before measuring
                invoke(client, name, body, who)
            times = {"sam": [], "rcyc": []}
            load_before = load()
            for index in range(args.invokes):
                for who in (("sam", "rcyc") if index % 2 == 0 else ("rcyc", "sam")):
                    client, name, body = clients[who]
                    times[who].append(invoke(client, name, body, f"{who} warm")[0])
            result["warm"] = {"sam": summary(times["sam"]), "rcyc": summary(times["rcyc"]),
                              "samples_ms": {who: [round(x, 1) for x in values] for who, values in times.items()},
                              "ready_ms": {"sam": round(sam_ready * 1000), "rcyc": round(rcyc_ready * 1000)},
                              "load_before": load_before, "load_after": load(), "sts_calls_at_moto": sts_calls.count,
                              "over_500_ms": {who: sum(x > 500 for x in values) for who, values in times.items()}}
    except BaseException:
        print(f"the benchmark's files and SAM's log are kept in {work}", file=sys.stderr)
        raise
    finally:
        if sam_process is not None:
            stop_group(sam_process)
        if sam_log is not None:
            sam_log.close()
        left = remove_sam_containers(args.docker_host, function)
        if left:
            print(f"removed {left} container(s) SAM left behind", file=sys.stderr)
        if stack_up:
            subprocess.run([str(RCYC), "local", "down"], env=env_stack, cwd=ROOT, capture_output=True, timeout=120)
        moto.stop()
    result["machine"]["load_end"] = load()
    display = {name: " ".join(word if not word.startswith(str(work)) else "$WORK" + word[len(str(work)):] for word in command)
               for name, command in commands.items()}
    result["commands"] = display
    print(json.dumps(result, indent=2))
    if args.markdown:
        write_markdown(args.markdown, result, args)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def write_markdown(path: Path, result: dict, args) -> None:
    m = result["machine"]

    def show(command: str) -> str:  # no machine's paths in the docs
        out = command.replace(str(ROOT) + "/", "").replace(str(RCYC), ".venv/bin/rcyc")
        for word in out.split():
            if "/sam-venv/bin/sam" in word:
                out = out.replace(word, "sam")
            elif "aws-lambda-rie" in word:
                out = out.replace(word, "RIE")
        return out

    lines = [f"\n## rcyc and AWS SAM CLI on the same image ({m['date']})\n",
             f"Machine: {m['arch']}, {m['cores']} cores, Python {m['python']}; load average (1, 5, 15 min) "
             f"{m['load_start']} at the start, {m['load_end']} at the end. The machine is shared with other jobs, "
             f"so the absolute figures wander; both tools ran interleaved (alternating), so they saw the same load. "
             f"rcyc at {m['rcyc']}; SAM CLI {m['sam']}; image `{result['image']}` (base `{result['base_image']}`, slim), built once by "
             f"`rcyc build` and run by both.\n",
             "| what | SAM CLI | rcyc |", "|---|---|---|"]
    if "oneshot" in result:
        o = result["oneshot"]
        lines.append(f"| one-shot, whole command, ms: median (min-max), n={o['sam']['n']} each | "
                     f"{o['sam']['median']} ({o['sam']['min']}-{o['sam']['max']}) | {o['rcyc']['median']} ({o['rcyc']['min']}-{o['rcyc']['max']}) |")
        lines.append(f"| one-shot, the first run (not counted), ms | {o['first_run_ms']['sam']} | {o['first_run_ms']['rcyc']} |")
        lines.append(f"| one-shot runs that rebuilt the image (the shared checkout changed) | – | {o['rcyc_rebuilt']} |")
        gap, paired = o["rcyc"]["median"] - o["sam"]["median"], o["paired_rcyc_minus_sam_ms"]
        lines.insert(2, f"One-shot: rcyc was slower than SAM in {o['rounds_rcyc_slower']} of {paired['n']} rounds; the "
                        f"median of the per-round differences (rcyc - SAM) is {paired['median']:+.0f} ms, the medians "
                        f"differ by {gap:+.0f} ms ({gap / o['sam']['median'] * 100:+.0f}%).\n")
    if "warm" in result:
        w = result["warm"]
        lines.append(f"| warm, per boto3 invoke, ms: p50 / p95 (min-max), n={w['sam']['n']} each | "
                     f"{w['sam']['p50']} / {w['sam']['p95']} ({w['sam']['min']}-{w['sam']['max']}) | "
                     f"{w['rcyc']['p50']} / {w['rcyc']['p95']} ({w['rcyc']['min']}-{w['rcyc']['max']}) |")
        lines.append(f"| warm: invokes over 500 ms | {w['over_500_ms']['sam']} | {w['over_500_ms']['rcyc']} |")
        lines.append(f"| warm: from the start command to the first answer, ms (one sample) | {w['ready_ms']['sam']} | {w['ready_ms']['rcyc']} |")
    sts = [f"{result[part]['sts_calls_at_moto']} during the {part} part" for part in ("oneshot", "warm") if part in result]
    c = result["commands"]
    lines += ["", "Commands (`$WORK` is the benchmark's temp dir: `template.yaml` for one `PackageType: Image` function "
              "with `ImageUri` the image above, `Timeout: 180`, `MemorySize: 1024`, `RCYC_MODEL_BUCKET` and "
              "`AWS_ENDPOINT_URL_S3` at a moto server on 127.0.0.1 that holds the fixture model and the image; "
              "`event.json` the S3 event for the image):", "",
              f"- one-shot SAM: `{show(c['sam_invoke'])}`",
              f"- one-shot rcyc: `{show(c['rcyc_invoke'])}` (this also starts its own embedded S3 and uploads the model "
              "and the image, which SAM's run finds ready in moto; `--rie RIE` names the emulator `rcyc rie install` "
              "keeps, because the benchmark gives rcyc a cache of its own)",
              f"- warm SAM: `{show(c['sam_start_lambda'])}`, then boto3 `invoke` of the function at that port",
              f"- warm rcyc: `{show(c['rcyc_local_up'])}` (its own `RCYC_CACHE_HOME`), then the same boto3 code at "
              "`rcyc local status --json` → `endpoint`, function `rcyc-function`",
              "",
              "SAM runs with throwaway keys, empty AWS config files, `AWS_DEFAULT_REGION=us-east-1`, `AWS_ENDPOINT_URL` "
              "and `AWS_ENDPOINT_URL_STS` at the moto server (SAM calls STS `GetCallerIdentity` as each command starts; "
              f"moto answered {', '.join(sts)}), `SAM_CLI_TELEMETRY=0`, its "
              "weekly version check marked as done, and HTTP(S) proxies on a closed loopback port, so nothing leaves "
              "127.0.0.1. Stock SAM cannot run on this machine: it publishes every container's emulator port (8080) "
              "on a bridge network, and this engine has none (`--bridge=none`; host networking only). "
              "`benchmarks/sam_host_network.py` patches `Container.create` in SAM's "
              "`samcli/local/docker/container.py` (in the benchmark's own venv only): `network_mode=\"host\"`, no "
              "published ports, and `--runtime-interface-emulator-address 127.0.0.1:<the port SAM invokes>` "
              "`--runtime-api-address 127.0.0.1:<another free port>` right after `/var/rapid/aws-lambda-rie` in "
              "the entrypoint. SAM's own work is unchanged (its emulator wrapper image, its start-up calls, its "
              "container per `sam local invoke`).",
              "",
              "SAM's warm outliers all take 1.0-1.1 s, which matches a wait in its own code: after each answer "
              "`Container.wait_for_result` waits up to 1 s for its log-streaming thread "
              "(`self._logs_thread_event.wait(timeout=1)`); the networking patch does not touch that path.",
              "",
              f"Reproduce: `DOCKER_HOST=unix:///var/run/rcyc-docker.sock .venv/bin/python benchmarks/sam.py "
              f"--rounds {args.rounds} --invokes {args.invokes} --base-image {args.base_image}"
              + (f" --ca-bundle {args.ca_bundle}" if args.ca_bundle else "") + " --markdown docs/benchmarks.md`", ""]
    with open(path, "a") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, sam_host_network.PatchError) as exc:
        sys.exit(f"error: {exc}")
