"""The function's structured log: one JSON line per event on stdout (CloudWatch in AWS, the emulator's log locally)."""

from __future__ import annotations

import json
import sys


def log(event: str, **fields) -> None:
    print(json.dumps({"rcyc": event, **fields}, default=str), file=sys.stdout, flush=True)
