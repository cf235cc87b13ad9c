"""Finding and installing the AWS Lambda Runtime Interface Emulator.

The real binary ships inside the aws-sam-cli wheel (samcli/local/rapid/aws-lambda-rie-<arch>); ``rcyc rie
install`` downloads that pinned wheel without dependencies, extracts the one member for this machine,
checks its sha256 and keeps it in the user cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rcyc_core.errors import PrerequisiteError

from ...paths import cache_dir

SAM_VERSION = "1.170.0"
SHA256 = {
    "x86_64": "6b1e686e62ab2baf5759c412c4864276ef2a88b094fca53ec070637ccba9b9a5",
    "arm64": "ec2e5d09633d853834c008b1ef264bf834b258a94d551d2b2074966494b39a21",
}
INSTALL_HINT = "Run `rcyc rie install`, or pass --rie PATH / set RCYC_RIE to an aws-lambda-rie binary."


def arch() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise PrerequisiteError(f"no Lambda emulator build for this CPU ({machine})", hint="Use an x86_64 or arm64 machine.")


def installed_path() -> Path:
    return cache_dir() / "rie" / f"aws-lambda-rie-{SAM_VERSION}-{arch()}"


def candidates(explicit: str | None = None):
    """Where the emulator may be, in the order rcyc looks: (source, path), found lazily (the samcli lookup
    costs ~15 ms and is rarely needed)."""
    if explicit:
        yield "--rie", Path(explicit).expanduser()
    if os.environ.get("RCYC_RIE"):
        yield "RCYC_RIE", Path(os.environ["RCYC_RIE"]).expanduser()
    yield "~/.aws-lambda-rie", Path.home() / ".aws-lambda-rie" / "aws-lambda-rie"
    yield "rcyc rie install", installed_path()
    spec = importlib.util.find_spec("samcli")
    if spec and spec.submodule_search_locations:
        rapid = Path(list(spec.submodule_search_locations)[0]) / "local" / "rapid"
        yield "samcli package", rapid / f"aws-lambda-rie-{arch()}"


def locate(explicit: str | None = None) -> Path:
    for source, path in candidates(explicit):
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()  # run from the sandbox's own folder: a relative path would name nothing there
        if source in ("--rie", "RCYC_RIE"):
            # An explicit choice that is wrong is an error, not a reason to silently use another binary.
            raise PrerequisiteError(f"the emulator given by {source} ({path}) is not an executable file", hint=INSTALL_HINT)
    raise PrerequisiteError("the AWS Lambda Runtime Interface Emulator is not installed", hint=INSTALL_HINT)


def install(force: bool = False) -> Path:
    """Fetch the pinned aws-sam-cli wheel (no dependencies), extract and verify the emulator."""
    target = installed_path()
    if target.is_file() and not force and _sha256(target) == SHA256[arch()]:
        return target
    member = f"samcli/local/rapid/aws-lambda-rie-{arch()}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                   "--quiet", "-d", tmp, f"aws-sam-cli=={SAM_VERSION}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise PrerequisiteError(f"could not download aws-sam-cli {SAM_VERSION}: {last}", hint="Check the network and pip's index settings.")
        wheel = next(Path(tmp).glob("aws_sam_cli-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[arch()]:
        raise PrerequisiteError(f"the emulator in aws-sam-cli {SAM_VERSION} has sha256 {digest}, expected {SHA256[arch()]}",
                                hint="The package index served a different file; do not use it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.chmod(0o755)
    os.replace(partial, target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
