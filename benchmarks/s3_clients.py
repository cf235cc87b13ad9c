"""What one GetObject of a fixture drawing costs the client, by S3 client, against the embedded S3 in a
process of its own (so this process's CPU is the client's alone): the function's own client (botocore, as
``rcyc_core.s3.make_s3_client`` makes it), and any other client that is importable here (obstore, minio).
Those two are not rcyc's dependencies: this measures what the function's GET would cost with them, the
largest part of the function's CPU per image after the model. Interleaved rounds.

    .venv/bin/python benchmarks/s3_clients.py --rounds 5 --gets 1000

To include the others, install them beside the project for the run, e.g. into a folder of their own on
PYTHONPATH (``pip install --target DIR obstore minio``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lambda"))

from benchmarks.common import DRAWINGS, figures, interleaved, load  # noqa: E402

BUCKET, KEY = "bench", "one.jpg"
SERVER = """
import sys
from rcyc_cli.local.emulator.s3 import EmbeddedS3
s3 = EmbeddedS3().start()
print(s3.endpoint_url, flush=True)
sys.stdin.read()  # until the benchmark closes it
s3.stop()
"""


def clients(endpoint: str) -> dict:
    """name -> a function that GETs the object and returns its bytes."""
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION

    key_id, secret = LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"]
    os.environ.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=LOCAL_REGION,
                      AWS_ENDPOINT_URL_S3=endpoint)
    from rcyc_core.s3 import make_s3_client

    function_client = make_s3_client()
    found = {"botocore (the function's client)": lambda: function_client.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()}
    try:
        import obstore
        from obstore.store import S3Store

        store = S3Store(BUCKET, endpoint=endpoint, region=LOCAL_REGION, access_key_id=key_id,
                        secret_access_key=secret, client_options={"allow_http": True})
        found["obstore"] = lambda: bytes(obstore.get(store, KEY).bytes())
    except ImportError:
        print("obstore is not importable here: not measured", file=sys.stderr)
    try:
        from minio import Minio

        minio = Minio(endpoint.split("//", 1)[1], access_key=key_id, secret_key=secret, secure=False, region=LOCAL_REGION)

        def minio_get() -> bytes:
            answer = minio.get_object(BUCKET, KEY)
            try:
                return answer.read()
            finally:
                answer.close()
                answer.release_conn()

        found["minio"] = minio_get
    except ImportError:
        print("minio is not importable here: not measured", file=sys.stderr)
    return found


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process: a client's own threads too
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=1000)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])})
    try:
        endpoint = server.stdout.readline().strip()
        if not endpoint.startswith("http://127.0.0.1:"):
            raise SystemExit("the embedded S3 did not start")
        found = clients(endpoint)
        from rcyc_cli.cloud.aws import s3_client
        from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION

        body = DRAWINGS[0].read_bytes()
        seed = s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        seed.create_bucket(Bucket=BUCKET)
        seed.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        wall: dict[str, list[float]] = {name: [] for name in found}  # the untimed round's first

        def timed(name: str, get):
            def run() -> float:
                for _ in range(20):  # connections open, code paths warm
                    get()
                spent, started = cpu_seconds(), time.perf_counter()
                for _ in range(args.gets):
                    if get() != body:
                        raise SystemExit(f"{name} read other bytes")
                wall[name].append((time.perf_counter() - started) * 1000 / args.gets)
                return (cpu_seconds() - spent) * 1000 / args.gets
            return run

        measured = interleaved(args.rounds, {name: timed(name, get) for name, get in found.items()})
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                      "load": load(), "gets per round": args.gets,
                      "client CPU ms per GET": {name: figures(values, 3) for name, values in measured.items()},
                      "wall ms per GET (client and server)": {name: figures(values[1:], 3) for name, values in wall.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
