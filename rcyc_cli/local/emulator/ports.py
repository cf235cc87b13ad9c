"""Free loopback ports, and waiting for something to listen on one."""

from __future__ import annotations

import socket
import time

from rcyc_core.errors import FunctionError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def wait_for_port(port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise FunctionError("the emulator exited while starting", kind="EmulatorError",
                                hint="Check the emulator (--rie, RCYC_RIE, or rcyc rie install --force) and what it said, if anything, above.")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise FunctionError(f"the emulator did not listen on 127.0.0.1:{port} within {timeout:.0f} s", kind="EmulatorError",
                        hint="The machine may be overloaded: try again (what the emulator said, if anything, is above).")

