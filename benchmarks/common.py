"""What every benchmark needs: the emulator for a private cache, the fixture drawings as a folder, and figures
with n, median, min and max."""

from __future__ import annotations

import os
import shutil
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRAWINGS = sorted((ROOT / "fixtures" / "images").glob("*/*_[0-9].jpg"))


def name_the_emulator() -> Path:
    """The emulator in the user's cache (where `rcyc rie install` keeps it; installed there when missing),
    named by RCYC_RIE for this process and what it starts: a private cache directory has none of its own."""
    from rcyc_cli.local.emulator import rie
    from rcyc_core.errors import PrerequisiteError

    try:
        path = rie.locate()
    except PrerequisiteError:
        path = rie.install()
    os.environ["RCYC_RIE"] = str(path)
    return path


def use_private_cache(prefix: str) -> Path:
    """Give this process (and what it starts) a cache directory of its own, so a benchmark's stack is nobody
    else's; the emulator is named first (``name_the_emulator``)."""
    import tempfile

    name_the_emulator()
    cache = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["RCYC_CACHE_HOME"] = str(cache)
    return cache


def own_bytecode_cache(work: Path) -> None:
    """Every command of the run, rcyc's and the references alike, reads its bytecode from one cache of the
    run's own (filled in the untimed first round), as on an installed machine where Python compiled each
    module once: an environment that forbids bytecode (PYTHONDONTWRITEBYTECODE) or a venv installed without
    it would otherwise time the compiling of moto, click and rcyc at every start, not rcyc."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "bytecode")


def image_folder(folder: Path, count: int) -> list[Path]:
    """``count`` copies of the fixture drawings under ``folder`` (names unique, classes mixed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        drawing = DRAWINGS[n % len(DRAWINGS)]
        paths.append(shutil.copy(drawing, folder / f"{n:05d}-{drawing.name}"))
    return [Path(p) for p in paths]


def figures(values: list[float], digits: int = 1) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def interleaved(rounds: int, runs: dict) -> dict[str, list[float]]:
    """Each measurement once per round, in turn (one untimed round first)."""
    out: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(rounds + 1):
        for name, measure in runs.items():
            value = measure()
            if round_:
                out[name].append(value)
    return out


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
