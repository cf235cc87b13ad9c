"""Hostile cases for how rcyc's process ends (main.leave_quickly, main.stop_like_ctrl_c, entry's loading guard),
through the installed console script and ``python -m rcyc_cli.main``, with real signals at chosen phases.

Phases are made deterministic where possible:
- "loading": 25 ms after the interpreter is up (its SIGINT handler is in /proc/PID/status SigCgt), while the
  rcyc command still loads the CLI;
- "blocked on output": stdout is a pipe filled to the brim before rcyc starts, so rcyc's first write blocks
  exactly there (the process waits in pipe_write) until the test reads;
Every process started is stopped by its handle; whatever it started is found by the owner token (reaper).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rcyc_cli.local.emulator import reaper
from tests.conftest import ROOT, need, stops_as_in_a_terminal
from tests.e2e import test_lifecycle as lifecycle

pytestmark = pytest.mark.e2e
CONSOLE_SCRIPT = Path(sys.executable).with_name("rcyc")
IMAGES = ROOT / "fixtures" / "images"
LABELS = ("boxes", "glass_bottles", "soda_cans", "crushed_soda_cans", "plastic_bottles")
ONE_IMAGE = IMAGES / "boxes" / "boxes_0.jpg"
F_SETPIPE_SZ = 1031


def _rie() -> str:
    path = os.environ.get("RCYC_RIE") or str(Path.home() / ".cache/rcyc/rie/aws-lambda-rie-1.170.0-x86_64")
    need(Path(path).exists(), "the Lambda emulator")
    return path


def _mask(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def _bit(signum: int) -> int:
    return 1 << (signum - 1)


def wait_for(condition, timeout: float, what: str):
    return lifecycle.wait_for(condition, timeout, what, poll=0.002)  # phases of a few ms


class Runner:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.cache = tmp_path / "cache"
        self.temp = tmp_path / "tmp"
        self.temp.mkdir()
        self.env = {**os.environ, "RCYC_CACHE_HOME": str(self.cache), "RCYC_RUNTIME": "process", "RCYC_RIE": _rie(),
                    "RCYC_KEEP_WARM": "0", "TMPDIR": str(self.temp), "NO_COLOR": "1"}
        self.started: list[subprocess.Popen] = []

    def start(self, *args, console: bool = True, ignored=(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              env: dict | None = None) -> subprocess.Popen:
        if console:
            need(CONSOLE_SCRIPT.exists(), "the rcyc console script")
        command = [str(CONSOLE_SCRIPT)] if console else [sys.executable, "-m", "rcyc_cli.main"]

        def preexec():
            stops_as_in_a_terminal()
            for signum in ignored:  # nohup (SIGHUP), a background job of a non-interactive shell (SIGINT)
                signal.signal(signum, signal.SIG_IGN)

        process = subprocess.Popen([*command, *map(str, args)], env=env or self.env, cwd=ROOT, stdout=stdout,
                                   stderr=stderr, start_new_session=True, preexec_fn=preexec)  # noqa: PLW1509
        self.started.append(process)
        return process

    def owned(self) -> list[int]:
        saved = os.environ.get("RCYC_CACHE_HOME")
        os.environ["RCYC_CACHE_HOME"] = str(self.cache)
        try:
            return reaper.owned_pids(reaper.cache_tag())
        finally:
            os.environ["RCYC_CACHE_HOME"] = saved if saved is not None else ""

    def leftovers(self) -> list[str]:
        root = self.cache / "rcyc" / "tmp"
        found = [str(p) for p in root.iterdir()] if root.exists() else []
        return found + [str(p) for p in self.temp.iterdir()]

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate()
        saved = os.environ.get("RCYC_CACHE_HOME")
        os.environ["RCYC_CACHE_HOME"] = str(self.cache)
        try:
            reaper.stop_owned(reaper.cache_tag())
            if (self.cache / "rcyc").exists():
                subprocess.run(check=False, args=[sys.executable, "-m", "rcyc_cli.main", "local", "down"], env=self.env, cwd=ROOT,
                               capture_output=True, timeout=120)
        finally:
            os.environ["RCYC_CACHE_HOME"] = saved if saved is not None else ""


@pytest.fixture
def runner(tmp_path):
    tool = Runner(tmp_path)
    try:
        yield tool
    finally:
        tool.stop_all()


def image_folder(tmp_path: Path, copies: int = 1) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for label in LABELS:
        for image in sorted((IMAGES / label).glob("*.jpg")):
            for n in range(copies):
                (folder / f"{n}-{image.name}").write_bytes(image.read_bytes())
    return folder


def eval_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "labelled"
    for label in LABELS:
        (folder / label).mkdir(parents=True)
        for image in (IMAGES / label).glob("*.jpg"):
            (folder / label / image.name).write_bytes(image.read_bytes())
    return folder


def python_is_up(pid: int) -> bool:
    """The interpreter has installed its own SIGINT handler (or entry's guard): Python code runs now."""
    return bool(_mask(pid, "SigCgt") & _bit(signal.SIGINT))


def rcyc_handles(pid: int) -> bool:
    return bool(_mask(pid, "SigCgt") & _bit(signal.SIGTERM))


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    out, err = process.communicate(timeout=timeout)
    return (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def full_pipe() -> tuple[int, int]:
    """A pipe of one page, already full: the first write to its write end blocks until the reader reads."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    return read_end, write_end


def blocked_in_write(pid: int) -> bool:
    """Blocked in write(1, ...) (/proc/PID/syscall: syscall 1, first argument fd 1)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[:2] == ["1", "0x1"]
    except OSError:
        return False


# --- signals ignored at start stay ignored ------------------------------------------------------------------

@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
@pytest.mark.parametrize("ignored", [signal.SIGINT, signal.SIGHUP], ids=["background-job-SIGINT", "nohup-SIGHUP"])
def test_a_signal_ignored_at_start_stays_ignored_mid_run(runner, tmp_path, console, ignored):
    """A non-interactive shell starts `rcyc ... &` with SIGINT ignored, nohup with SIGHUP ignored: that signal
    (sent to the foreground group, or to everyone by a script) must not stop it. The run goes on and answers."""
    folder = image_folder(tmp_path)
    process = runner.start("invoke-local", folder, "-c", "2", "--json", console=console, ignored=(ignored,))
    wait_for(lambda: runner.owned() or process.poll() is not None, 60, "the emulators")
    process.send_signal(ignored)
    out, err = finish(process)
    assert process.returncode == 0, (process.returncode, err)
    assert len(json.loads(out)["results"]) == 20


@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
def test_a_background_job_s_ignored_sigint_stays_ignored_while_loading(runner, console):
    process = runner.start("predict", "--json", ONE_IMAGE, console=console, ignored=(signal.SIGINT,))
    time.sleep(0.03)  # (an ignored SIGINT gets no handler to wait for: neither entry's guard nor Python's)
    process.send_signal(signal.SIGINT)
    out, err = finish(process)
    assert process.returncode == 0, (process.returncode, err)
    assert json.loads(out)["results"][0]["label"] == "boxes"


# --- a stop while the CLI loads -----------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_while_the_cli_loads_exits_with_its_status(runner, signum):
    # (the console script's SIGINT while loading: tests/unit/test_stop_while_loading.py; `python -m` has no
    # loading guard, and before entry runs at all, site's own start-up is no part of rcyc)
    """25 ms after the interpreter is up, while the rcyc command loads the CLI: README's 143 / 129, not death by
    the signal (entry's guard covers SIGTERM and SIGHUP as well as SIGINT)."""
    process = runner.start("predict", "--json", ONE_IMAGE, console=True)
    wait_for(lambda: python_is_up(process.pid) or process.poll() is not None, 10, "the interpreter")
    time.sleep(0.025)  # past site's start-up (~10 ms), mid-way through loading the CLI (~45 ms here)
    process.send_signal(signum)
    out, err = finish(process)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum), (process.returncode, err[-800:])
    assert "Traceback" not in err and out == ""


# --- a stop while click parses the root options (outside the group's error boundary) ------------------------

@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
@pytest.mark.parametrize("args", [("--help",), ("--version",)], ids=["help", "version"])
def test_a_ctrl_c_while_the_root_s_own_output_is_written_is_rcyc_s_stop(runner, console, args):
    read_end, write_end = full_pipe()
    try:
        process = runner.start(*args, console=console, stdout=write_end)
        os.close(write_end)
        write_end = -1
        wait_for(lambda: blocked_in_write(process.pid) or process.poll() is not None, 20, "rcyc blocked on stdout")
        assert rcyc_handles(process.pid)
        process.send_signal(signal.SIGINT)
        _out, err = finish(process)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert process.returncode == 130, (process.returncode, err)
    assert "Aborted!" not in err and "Traceback" not in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_predict_s_answer_is_written_to_a_stuck_reader(runner, signum):
    read_end, write_end = full_pipe()
    try:
        process = runner.start("predict", "--json", ONE_IMAGE, stdout=write_end)
        os.close(write_end)
        write_end = -1
        wait_for(lambda: blocked_in_write(process.pid) or process.poll() is not None, 30, "rcyc blocked on stdout")
        process.send_signal(signum)
        _out, err = finish(process)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum), (process.returncode, err)
    assert "Traceback" not in err and "Aborted!" not in err


# --- stops at the end, and what a normal exit leaves ----------------------------------------------------------

@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
def test_two_stops_in_a_row_mid_run_stop_everything_once(runner, tmp_path, console):
    folder = image_folder(tmp_path, copies=20)
    process = runner.start("invoke-local", folder, "-c", "2", "--batch-size", "1", "--json", console=console)
    wait_for(lambda: len(runner.owned()) >= 4 or process.poll() is not None, 60, "two instances")
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _out, err = finish(process)
    assert process.returncode == 130, (process.returncode, err)
    assert "Traceback" not in err and "everything rcyc started has been stopped" in err
    assert runner.owned() == []
    assert runner.leftovers() == []


@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
def test_ctrl_c_flood_once_eval_s_report_and_json_are_out_keeps_the_command_s_status(runner, tmp_path, console):
    """Ctrl-C pressed again and again from the moment eval's JSON is complete until the process is gone."""
    folder = eval_folder(tmp_path)
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    process = runner.start("eval", folder, "--via", "emulator", "--report", report, "--json", console=console)
    out = b""
    while True:
        chunk = process.stdout.read1(65536)
        if not chunk:
            break
        out += chunk
        try:
            json.loads(out)
            break
        except ValueError:
            continue
    sent = 0
    while process.poll() is None and sent < 5000:
        try:
            process.send_signal(signal.SIGINT)
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.001)
    rest, err = finish(process)
    # 0 (the command's own), or 130 if the stop still caught the clean-up after the answer; never click's
    # "Aborted!" with 1 (README: a bug in rcyc), a traceback or death by SIGINT
    assert process.returncode in (0, 130), (process.returncode, sent, err[-1500:])
    assert "Aborted!" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert json.loads(out + rest.encode())
    assert report.read_text().rstrip().endswith("</html>")
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.html"]  # no .part left
    assert runner.owned() == [] and runner.leftovers() == []


def test_normal_exits_leave_no_temp_files_no_children_and_complete_outputs(runner, tmp_path):
    folder = eval_folder(tmp_path)
    images = image_folder(tmp_path)
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    done = subprocess.run(check=False, args=[str(CONSOLE_SCRIPT), "eval", folder, "--via", "emulator", "--report", report, "--json"],
                          env=runner.env, cwd=ROOT, capture_output=True, timeout=180, preexec_fn=stops_as_in_a_terminal)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)
    assert report.read_text().rstrip().endswith("</html>")
    assert runner.owned() == [] and runner.leftovers() == []
    with open(tmp_path / "out" / "answers.json", "wb") as sink:
        done = subprocess.run(check=False, args=[str(CONSOLE_SCRIPT), "invoke-local", images, "-c", "2", "--json"], env=runner.env, cwd=ROOT,
                              stdout=sink, stderr=subprocess.PIPE, timeout=180, preexec_fn=stops_as_in_a_terminal)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((tmp_path / "out" / "answers.json").read_text())["results"]) == 20
    assert runner.owned() == [] and runner.leftovers() == []


@pytest.mark.parametrize("console", [True, False], ids=["rcyc-command", "python-m"])
def test_predict_json_into_a_closed_pipe_and_a_full_disk(runner, console):
    command = [str(CONSOLE_SCRIPT)] if console else [sys.executable, "-m", "rcyc_cli.main"]
    args = [*command, "predict", "--json", str(ONE_IMAGE), str(IMAGES / "soda_cans" / "soda_cans_0.jpg")]
    head = subprocess.run(check=False, args=["bash", "-c", 'set -o pipefail; "$@" | head -c 1; echo " status=${PIPESTATUS[0]}" >&2', "-", *args],
                          env=runner.env, cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=stops_as_in_a_terminal)
    assert "status=0" in head.stderr and "Traceback" not in head.stderr and "Exception ignored" not in head.stderr, head.stderr
    with open("/dev/full", "wb") as full:
        done = subprocess.run(check=False, args=args, env=runner.env, cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                              preexec_fn=stops_as_in_a_terminal)
    assert done.returncode == 4, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
