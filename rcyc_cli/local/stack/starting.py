"""How the stack's process is started and how its failure to start is told (``client._start``)."""

from __future__ import annotations

from pathlib import Path

from rcyc_core.errors import AwsError, FunctionError, InputError, PrerequisiteError, RcycError


def _compiled_once(environ) -> dict[str, str]:
    """The stack's environment, its Python code compiled once rather than at every start: where the caller
    forbids writing bytecode beside the sources (PYTHONDONTWRITEBYTECODE), the stack keeps it in rcyc's
    cache instead (PYTHONPYCACHEPREFIX), so moto, werkzeug and rcyc are not compiled again (~1 s each start)."""
    env = dict(environ)
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        from ...paths import cache_dir

        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir() / "bytecode")
    return env


def _start_failure(status: int, log_path: Path) -> RcycError:
    """Why a stack exited before it was ready, from its own last ``error:`` line (the cause: no emulator,
    a model that is not there, a full disk), with that error's exit status; the log's tail otherwise."""
    from ...exit_status import ExitStatus

    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    last = max((i for i, line in enumerate(lines) if line.startswith("error: ")), default=None)
    if last is None and (full := _full(log_path.parent)):
        # A full disk: the stack could not even write its log (nor the error that would have said so).
        return PrerequisiteError(f"the local stack did not start: the file system of {log_path.parent} is full "
                                 f"({full})", kind="DiskFull", hint="Free some space there, or point RCYC_CACHE_HOME "
                                 "at a folder with room.")
    cause = lines[last][len("error: "):] if last is not None else (lines[-1] if lines else f"it exited with status {status}")
    after = lines[last + 1] if last is not None and last + 1 < len(lines) else ""
    hint = after[len("hint: "):] if after.startswith("hint: ") else None  # the cause's own hint, then the log
    logs = []  # the cause's own log lines (an emulator's last words), printed by the stack just before it
    for line in reversed(lines[:last] if last is not None else []):
        if not line.startswith("log: "):
            break
        logs.insert(0, line[len("log: "):])
    kinds = {ExitStatus.BAD_INPUT: InputError, ExitStatus.AWS: AwsError, ExitStatus.FUNCTION_FAILED: FunctionError}
    failure = kinds.get(status, PrerequisiteError)(f"the local stack did not start: {cause}",
                                                   hint=f"{hint} (Its log: {log_path})" if hint else f"Its log: {log_path}")
    failure.logs = logs
    return failure


def _full(directory: Path, need: int = 1 << 20) -> str | None:
    """What is left on ``directory``'s file system when it is less than ``need`` bytes, else None."""
    import shutil

    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return None
    return f"{free:,} bytes free" if free < need else None
