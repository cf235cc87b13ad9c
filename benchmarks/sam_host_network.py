"""Make AWS SAM CLI run its Lambda containers with host networking, for engines without a bridge network.

Stock SAM publishes the emulator's port 8080 on the default bridge network for every container
(``kwargs["ports"]`` in ``Container.create`` of ``samcli/local/docker/container.py``). An engine started
with ``--bridge=none`` has no bridge, so every ``sam local`` command fails there. This patch, applied to a
SAM installed in a venv of its own (``benchmarks/sam.py`` does it), replaces that block: the container joins
the host's network, nothing is published, and SAM's emulator (``/var/rapid/aws-lambda-rie``) is told to
listen on the loopback port SAM already picked for it (``rapid_port_host``, where SAM sends its invokes)
and to serve the runtime API on another free loopback port.

Idempotent (a marker comment); refuses to touch a file that does not hold the exact block it replaces.

    python benchmarks/sam_host_network.py VENV_SITE_PACKAGES/samcli/local/docker/container.py
"""

from __future__ import annotations

import sys
from pathlib import Path

MARKER = "# rcyc-bench host-network patch"

ORIGINAL = '''\
        kwargs["ports"] = {self.RAPID_PORT_CONTAINER: (self._container_host_interface, self.rapid_port_host)}

        if self._exposed_ports:
            kwargs["ports"].update(
                {
                    container_port: (self._container_host_interface, host_port)
                    for container_port, host_port in self._exposed_ports.items()
                }
            )

        if self._entrypoint:
            kwargs["entrypoint"] = self._entrypoint
'''

PATCHED = f'''\
        {MARKER}: no bridge, no published ports; the emulator listens on loopback ports.
        kwargs["network_mode"] = "host"
        entrypoint = list(self._entrypoint or [])
        if entrypoint[:1] == ["/var/rapid/aws-lambda-rie"]:
            api_port = self.rapid_port_host
            while api_port == self.rapid_port_host:
                api_port = find_free_port(network_interface="127.0.0.1", start=self._start_port_range, end=self._end_port_range)
            entrypoint[1:1] = ["--runtime-interface-emulator-address", f"127.0.0.1:{{self.rapid_port_host}}",
                               "--runtime-api-address", f"127.0.0.1:{{api_port}}"]
        if entrypoint:
            kwargs["entrypoint"] = entrypoint
'''


class PatchError(RuntimeError):
    pass


def container_module(site_packages: Path) -> Path:
    return site_packages / "samcli" / "local" / "docker" / "container.py"


def apply(path: Path) -> bool:
    """Patch ``path`` in place. True if it was changed, False if it already carried the patch."""
    text = path.read_text()
    if MARKER in text:
        if PATCHED not in text:
            raise PatchError(f"{path} carries the marker {MARKER!r} but not this version of the patch; reinstall SAM's venv")
        return False
    if text.count(ORIGINAL) != 1 or "def create(self, context):" not in text or "find_free_port" not in text:
        raise PatchError(
            f"{path} does not look like the container.py this patch was written for (SAM CLI 1.170.0): the block that "
            "publishes the emulator's port in Container.create was not found exactly once; not patching it")
    path.write_text(text.replace(ORIGINAL, PATCHED))
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    try:
        print("patched" if apply(Path(sys.argv[1])) else "already patched")
    except PatchError as exc:
        sys.exit(f"error: {exc}")
