"""The embedded S3, per GetObject of a fixture drawing through boto3 (as the function fetches its images):
moto's all-services dispatcher (what rcyc served first), moto's S3 app alone (what it served next), and the
embedded S3 itself (``local/emulator/s3.py``: a plain GET answered from the store, on a connection kept open
for the next one, ``s3_get.py``). Interleaved rounds in one process; CPU is this process's (client and server
threads together).

    .venv/bin/python benchmarks/s3_server.py --rounds 7 --gets 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lambda"))

from benchmarks.common import DRAWINGS, figures, load  # noqa: E402


def serve(app) -> tuple[str, object]:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--gets", type=int, default=300)
    args = parser.parse_args()
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
    from rcyc_cli.local.emulator.s3 import EmbeddedS3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    embedded = EmbeddedS3().start()
    servers = {"all services (moto's dispatcher)": serve(DomainDispatcherApplication(create_backend_app)),
               "S3 alone (moto's S3 app)": serve(create_backend_app("s3")),
               "the embedded S3 (plain GETs from the store, kept connections)": (embedded.endpoint_url, embedded)}
    body = DRAWINGS[0].read_bytes()
    clients = {}
    for name, (endpoint, _) in servers.items():
        clients[name] = s3_client(endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
    clients[next(iter(clients))].create_bucket(Bucket="bench")  # one moto store behind both
    clients[next(iter(clients))].put_object(Bucket="bench", Key="one.jpg", Body=body)
    cpu = {name: [] for name in servers}
    wall = {name: [] for name in servers}
    for round_ in range(args.rounds + 1):
        for name, client in clients.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(args.gets):
                client.get_object(Bucket="bench", Key="one.jpg")["Body"].read()
            if round_:  # the first round warms both up
                cpu[name].append((time.process_time() - cpu_started) * 1000 / args.gets)
                wall[name].append((time.perf_counter() - started) * 1000 / args.gets)
    for _, server in list(servers.values())[:2]:
        server.shutdown()
    embedded.stop()
    names = list(servers)
    ratio = [b / a for a, b in zip(cpu[names[0]], cpu[names[1]])]
    plain = [c / b for b, c in zip(cpu[names[1]], cpu[names[2]])]
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                      "load": load(), "gets_per_round": args.gets,
                      "cpu_ms_per_get": {n: figures(v, 3) for n, v in cpu.items()},
                      "wall_ms_per_get": {n: figures(v, 3) for n, v in wall.items()},
                      "cpu_s3_alone / cpu_all_services (per round)": figures(ratio, 2),
                      "cpu_embedded / cpu_s3_alone (per round)": figures(plain, 2)}, indent=2))


if __name__ == "__main__":
    main()
