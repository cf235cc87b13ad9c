"""Real local stand-ins for the cloud: moto's HTTP server (S3, IAM, STS, ECR API, Lambda API) and the CNCF
distribution registry (Debian's docker-registry) with htpasswd basic auth. Each binds a free 127.0.0.1
port, keeps its files in its own temp directory, and is stopped by its own handle."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rcyc_cli.local.emulator.ports import free_port, wait_for_port

def set_faults(running, spec: dict) -> tuple[int, dict]:
    """(status, answer) of setting the local stack's fault switch (``/rcyc/faults``) to ``spec``."""
    request = urllib.request.Request(running.endpoint_url + "/rcyc/faults", data=json.dumps(spec).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash ($2b$, as htpasswd -B writes) through the system's crypt(3) (libxcrypt)."""
    salt_chars = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    salt = "$2b$05$" + "".join(secrets.choice(salt_chars) for _ in range(22))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # Python <= 3.12

        hashed = crypt.crypt(password, salt)
    except ImportError:
        import ctypes
        import ctypes.util

        libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        libcrypt.crypt.restype = ctypes.c_char_p
        result = libcrypt.crypt(password.encode(), salt.encode())
        hashed = result.decode() if result else None
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this system's crypt(3) has no bcrypt")
    return hashed


class LocalRegistry:
    """docker-registry serve CONFIG on 127.0.0.1:<free port>, filesystem storage, htpasswd auth."""

    def __init__(self, username: str = "rcyc", password: str | None = None):
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.port: int | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LocalRegistry":
        self.workdir = Path(tempfile.mkdtemp(prefix="rcyc-registry-"))
        self.port = free_port()
        (self.workdir / "htpasswd").write_text(f"{self.username}:{bcrypt_hash(self.password)}\n")
        (self.workdir / "storage").mkdir()
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.workdir / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: {secrets.token_hex(16)}\n"
            f"auth:\n  htpasswd:\n    realm: rcyc-test\n    path: {self.workdir / 'htpasswd'}\n"
        )
        self.log = open(self.workdir / "registry.log", "wb")
        return self._serve()

    def _serve(self) -> "LocalRegistry":
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.workdir / "config.yml")], stdout=self.log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            wait_for_port(self.port, 15, alive=lambda: self.process.poll() is None)
        except Exception:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """Cut the registry off at once (SIGKILL), keeping its storage, port and config for restart()."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> "LocalRegistry":
        return self._serve()

    def basic_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class MotoServer:
    """moto's real HTTP server (all services) on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url: str | None = None
        self.running = False

    def start(self) -> "MotoServer":
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False



def point_aws_at(monkeypatch, endpoint_url: str, tmp_path) -> None:
    """boto3 (and rcyc) pointed at a local moto server with throwaway credentials: nothing of the user's
    AWS configuration (profile, files, endpoints, rcyc's own bucket and function settings) is used."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rcyc-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rcyc-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "RCYC_BUCKET", "RCYC_FUNCTION"):
        monkeypatch.delenv(name, raising=False)


def seed_bucket(s3, bucket: str, manifest, model_dir) -> None:
    """A private bucket holding the model, named by the pointer, through the S3 API (rcyc's own upload path),
    for an S3 that a test started apart from rcyc."""
    from rcyc_cli.cloud import buckets, store
    from rcyc_cli.defaults import LOCAL_REGION

    buckets.ensure_private_bucket(s3, bucket, LOCAL_REGION)
    store.put_model(s3, bucket, manifest, model_dir)


@contextlib.contextmanager
def private_stack(cache: Path, rie_path: Path, bucket: str, instances: int = 2):
    """A warm stack of ``instances`` process instances in a cache directory of its own (RCYC_CACHE_HOME, for
    this process and what it starts), with ``bucket`` created in its S3: (the running stack, a boto3 client of
    its S3). Stopped, and the environment put back, when the block ends, also on failure."""
    from rcyc_cli.cloud.aws import s3_client
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
    from rcyc_cli.function_spec import FunctionSpec
    from rcyc_cli.local.stack import client as stack

    saved = {name: os.environ.get(name) for name in ("RCYC_CACHE_HOME", "RCYC_RIE")}
    os.environ["RCYC_CACHE_HOME"], os.environ["RCYC_RIE"] = str(cache), str(rie_path)
    try:
        running = stack.up(stack.StackConfig(function=FunctionSpec(runtime="process"), instances=instances))
        s3 = s3_client(running.state.s3_endpoint, LOCAL_REGION, LOCAL_CREDENTIALS)
        s3.create_bucket(Bucket=bucket)
        yield running, s3
    finally:
        stack.down()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
