"""The function image in a container, as a sandbox: host networking, the host's pinned emulator mounted
in and run as the entrypoint on free loopback ports, with the image's entry script as its child."""

from __future__ import annotations

import threading
from pathlib import Path

from rcyc_core.errors import FunctionError

from ...defaults import DEFAULT_MEMORY, DEFAULT_TIMEOUT
from ...invocation import Invocation
from .ports import free_port, wait_for_port
from .sandbox import Sandbox, function_environment, owner_identity


class ContainerSandbox(Sandbox):
    """The function image in a container with host networking; the host's pinned emulator is mounted in
    and run as the entrypoint on free loopback ports, with the image's entry script as its child."""

    runtime = "docker"
    RIE_IN_CONTAINER = "/opt/rcyc/aws-lambda-rie"

    def __init__(self, client, image: str, rie: Path, env: dict[str, str], timeout: int = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY,
                 name: str = "rcyc-local"):
        self.client, self.image, self.rie = client, image, Path(rie)
        self.timeout, self.memory, self.name, self.extra_env = timeout, memory, name, env
        self.container = None
        self._log_thread: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._log_chunks: list[bytes] = []

    def start(self, ready_timeout: float = 20.0) -> "ContainerSandbox":
        # Sandboxes that could not be removed (their engine stopped under them) are removed now.
        for stale in self.client.containers.list(all=True, filters={"label": "rcyc.sandbox", "status": "exited"}):
            stale.remove(force=True)
        self.port = free_port()
        entrypoint = [
            self.RIE_IN_CONTAINER,
            "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
            "--runtime-api-address", f"127.0.0.1:{free_port()}",
            "/usr/local/bin/rcyc-entry",
        ]
        env = function_environment(self.name, self.timeout, self.memory, self.extra_env)
        from ... import leftovers
        from ...image import engine_gone

        # a marker while the container may exist: if this process is killed, any next command removes it
        self._marker = leftovers.container_marker(self.extra_env.get("RCYC_OWNER", "") or self.name)
        self._marker.__enter__()

        try:
            self.container = self.client.containers.run(
                self.image, command=["app.handler"], entrypoint=entrypoint, environment=env, detach=True,
                network_mode="host", volumes={str(self.rie.resolve()): {"bind": self.RIE_IN_CONTAINER, "mode": "ro"}},
                labels={"rcyc.sandbox": self.name, "rcyc.owner": self.extra_env.get("RCYC_OWNER", ""),
                        **{f"rcyc.{k.lower()}": v for k, v in owner_identity().items()}}, mem_limit=f"{self.memory}m",
            )
        except Exception as exc:  # docker.errors.* or a broken connection: one line, not a traceback
            if hasattr(exc, "explanation"):
                raise FunctionError(f"the engine could not start the function container: {exc.explanation}",
                                    kind="ContainerError", hint="Check the image (rcyc build) and the engine's log.") from None
            raise engine_gone(exc, "while starting the function container") from None

        def alive() -> bool:
            try:
                self.container.reload()
            except Exception:
                return False
            return self.container.status in ("created", "running")

        self._start_log_stream()
        try:
            wait_for_port(self.port, ready_timeout, alive=alive)
        except FunctionError as exc:
            exc.logs = self.read_log().decode("utf-8", "replace").splitlines()[-20:]
            raise
        return self

    def alive(self) -> bool:
        if self.container is None:
            return False
        try:
            self.container.reload()
        except Exception:  # the engine lost it
            return False
        return self.container.status in ("created", "running")

    def _start_log_stream(self) -> None:
        if self._log_thread is None and self.container is not None:
            self._log_thread = threading.Thread(target=self._follow_log, args=(self.container,), daemon=True,
                                                name=f"log-{self.name}")
            self._log_thread.start()

    def read_new_log(self) -> bytes:
        """What arrived on the container's log stream since the last call. One follow-stream per container,
        read by a thread of its own from the start (so the REPORT line is there as soon as it is written),
        instead of fetching the whole log through the API on every invoke."""
        self._start_log_stream()
        with self._log_lock:
            data, self._log_chunks = b"".join(self._log_chunks), []
        return data

    def _follow_log(self, container) -> None:
        try:
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
                with self._log_lock:
                    self._log_chunks.append(chunk)
        except Exception:  # the container or the engine went away: the stream ends
            pass

    def read_log(self) -> bytes:
        try:
            return self.container.logs(stdout=True, stderr=True) if self.container else b""
        except Exception:  # the engine is gone: there is no log to read any more
            return b""

    def invoke(self, event: object) -> Invocation:
        from ...image import answers, engine_gone

        try:
            answer = super().invoke(event)
            answer.report.memory_enforced = True  # the container's memory limit is --memory
            return answer
        except FunctionError as exc:
            if exc.kind == "EmulatorError" and not answers(self.client):
                raise engine_gone(exc, "during the invocation") from None
            raise

    def stop(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:  # already gone (engine restarted, removed by hand)
                pass
            self.container = None
        if getattr(self, "_marker", None) is not None:
            self._marker.__exit__(None, None, None)
            self._marker = None

