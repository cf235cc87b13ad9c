"""Finding and stopping what rcyc started, even when the rcyc process that started it is gone (``kill -9``).

Every sandbox (emulator and the runtime it runs) carries ``RCYC_OWNER=<token>`` in its environment; the
token starts with a tag of the cache directory (``RCYC_CACHE_HOME``), so a stack, its stale-state check
and the tests each see only their own. Environments of processes are read from ``/proc`` (Linux): only
processes of this user can be read, so nothing of anyone else's is ever signalled.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
import uuid
from pathlib import Path

from ...paths import cache_dir

OWNER_VARIABLE = "RCYC_OWNER"


def cache_tag() -> str:
    """A short tag of this cache directory: the first part of every owner token made under it."""
    return "rcyc-" + hashlib.sha256(str(cache_dir().resolve()).encode()).hexdigest()[:12]


def new_owner(kind: str) -> str:
    return f"{cache_tag()}-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owned_pids(prefix: str) -> list[int]:
    """Processes whose environment has ``RCYC_OWNER`` starting with ``prefix`` (a token, or a cache tag)."""
    needle = f"{OWNER_VARIABLE}={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")) and not _zombie(entry):
            found.append(int(entry.name))
    return found


def _zombie(entry: Path) -> bool:
    try:
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _environment(pid: int) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


def _alive_as(pid: int, started: str) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (and not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and fields[19] == started
    except (OSError, IndexError):
        return False


def sweep_orphans() -> int:
    """Stop the sandboxes of this cache whose owning rcyc process is gone (killed with -9 before its
    runtime could watch it: an emulator that never served a request has no runtime yet). Returns how many."""
    orphans = []
    for pid in owned_pids(cache_tag()):
        env = _environment(pid)
        owner, started = env.get(b"RCYC_OWNER_PID"), env.get(b"RCYC_OWNER_START")
        if owner and started and not _alive_as(int(owner), started.decode()):
            orphans.append(env[OWNER_VARIABLE.encode()].decode())
    for token in set(orphans):
        stop_owned(token)
    return len(orphans)


def sweep_orphan_containers(client) -> int:
    """Remove the containers of this cache whose owning rcyc process is gone (labels ``rcyc.owner``,
    ``rcyc.rcyc_owner_pid``, ``rcyc.rcyc_owner_start``). Returns how many."""
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": "rcyc.owner"}):
            labels = container.labels or {}
            pid, started = labels.get("rcyc.rcyc_owner_pid"), labels.get("rcyc.rcyc_owner_start")
            if str(labels.get("rcyc.owner", "")).startswith(cache_tag()) and pid and started \
                    and not _alive_as(int(pid), started):
                container.remove(force=True)
                removed += 1
    except Exception:  # noqa: BLE001 - the engine went away: nothing more to sweep there
        pass
    return removed


def stop_owned(prefix: str, grace: float = 2.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds, every process owned by ``prefix``. Returns how many."""
    pids = owned_pids(prefix)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while (pids := owned_pids(prefix)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pids:
            break
    return len(pids)


def remove_owned_containers(prefix: str) -> None:
    """Containers labelled with an owner token starting with ``prefix``, removed when an engine answers."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return
    try:
        from ... import image

        client = image.engine()
        for container in client.containers.list(all=True, filters={"label": "rcyc.owner"}):
            if str(container.labels.get("rcyc.owner", "")).startswith(prefix):
                container.remove(force=True)
    except Exception:  # noqa: BLE001 - no engine: no containers of ours can be running there either
        pass
