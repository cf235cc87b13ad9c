"""What a newcomer waits for: `make demo` on a fresh clone, N times, each phase timed by its own make target
(venv + uv, the runtime lock, the emulator, the first invoke-local), with the venv's size, whether
TensorFlow got in, and the load average before each run (the machine may be shared). With
--installer pip the runtime lock is installed by pip instead of uv (same lock, same flags), for the
comparison.

    python3 benchmarks/fresh_demo.py --runs 3
    python3 benchmarks/fresh_demo.py --runs 3 --installer pip

Package caches (uv's, pip's, the emulator's) are the user's own, as on a real second clone; every run
gets its own stack (RCYC_CACHE_HOME in a temp dir) and stops it at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = [("venv+uv", ".venv/bin/uv"), ("runtime lock", ".venv/.runtime"), ("emulator", "setup"), ("invoke-local", "demo")]


def _du_mb(path: Path) -> float:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def one_run(installer: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="rcyc-fresh-") as tmp:
        clone = Path(tmp) / "rcyc"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "RCYC_CACHE_HOME": str(Path(tmp) / "cache")}
        # The emulator binary is the user's download, not part of a fresh clone's cost.
        rie_cache = Path(os.environ.get("RCYC_CACHE_HOME", Path.home() / ".cache")) / "rcyc" / "rie"
        if rie_cache.is_dir():
            shutil.copytree(rie_cache, Path(tmp) / "cache" / "rcyc" / "rie")
        if installer == "pip":
            env["UV_INSTALL"] = ".venv/bin/pip install --disable-pip-version-check --quiet --no-deps --require-hashes"
        load = os.getloadavg()[0]
        times = {}
        try:
            for name, target in PHASES:
                args = ["make", "-s", target] + ([f"UV_INSTALL={env['UV_INSTALL']}"] if "UV_INSTALL" in env else [])
                t0 = time.perf_counter()
                subprocess.run(args, cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name] = time.perf_counter() - t0
        finally:
            subprocess.run([str(clone / ".venv/bin/rcyc"), "local", "down"], env=env, capture_output=True)
        tf = subprocess.run([str(clone / ".venv/bin/python"), "-c", "import importlib.util as u; print(bool(u.find_spec('tensorflow')))"],
                            capture_output=True, text=True).stdout.strip()
        return {"times": times, "total": sum(times.values()), "venv_mb": _du_mb(clone / ".venv"), "tensorflow": tf, "load": load}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--installer", choices=["uv", "pip"], default="uv")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        r = one_run(args.installer)
        runs.append(r)
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in r["times"].items())
        print(f"run {i + 1}: {r['total']:.1f} s ({phases}); venv {r['venv_mb']:.0f} MB; TensorFlow installed: "
              f"{r['tensorflow']}; load average before {r['load']:.2f}", flush=True)
    med = statistics.median(r["total"] for r in runs)
    install = statistics.median(r["times"]["runtime lock"] for r in runs)
    print(f"median of {len(runs)} ({args.installer}): make demo {med:.1f} s, of which the runtime lock install "
          f"{install:.1f} s ({100 * install / med:.0f}%); min {min(r['total'] for r in runs):.1f} s, "
          f"max {max(r['total'] for r in runs):.1f} s; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
