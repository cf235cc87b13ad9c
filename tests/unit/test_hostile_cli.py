"""The hostile harness: every command x every option (and argument) given hostile values of its type, every
path option x hostile places, every rcyc.toml key and environment variable x a wrong type. Classes, not
cases: the commands and their parameters are enumerated from the CLI itself, so a new option is attacked
the day it is added.

Each case asserts what a user may rely on (README): the exit status is one of the documented ones and never
1 (a traceback); a failure is exactly one ``error:`` line and a ``hint:`` line (exit 7, "finished with
records in error", lists them with the results instead); no control character reaches the terminal; nothing in the sandbox
changed except the output the case named; no process and no temporary file is left behind.

Everything runs in-process (click's CliRunner) against nothing real: AWS endpoints point at a closed
loopback port, the emulator and the Docker engine are missing, so a command that gets past its checks
fails fast instead of doing work. The fast profile (make test) tries one hostile value per parameter,
rotating through the values; the full profile (CI=true, RCYC_HYPOTHESIS=full) tries every value.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rcyc_cli.main import cli
from tests.conftest import FULL_PROPERTIES, IMAGES, LABELS, MODELS

README_STATUSES = {0, 2, 3, 4, 5, 6, 7, 8, 9}  # the README's table; 1 is a traceback, 130/129/143 signals
IMAGE = IMAGES / "soda_cans" / "soda_cans_0.jpg"

NUMBERS = ["nan", "inf", "-inf", "1e400", "99999999999999999999999", "-99999999999999999999999", "-1", "0", "",
           "1" * 5000, "\x1b[2J", "\udcff"]
# (No NUL: an argument or an environment variable cannot hold one; rcyc.toml can, and is attacked with it.)
TEXTS = ["", " ", "x" * 5000, "\x1b]0;owned\x07\x1b[2J", "a\nb", "\udcff\udcfe", "../../../etc/passwd", "-", "%s%n{0}"]
# "a-device" is a null device made in the sandbox (never the machine's /dev/null: a regression that wrote
# through the output check would replace it, as root).
PLACES = ["missing-dir/file", "a-directory", "a-fifo", "a-device", "/proc/version", "read-only/file", "full-disk/file"]

# The least each command needs to get past click (positional parameters by name); {image}, {data}, {empty},
# {model}, {new} are filled per sandbox. A hostile value replaces one of these, or comes as an extra option.
BASES: dict[str, dict[str, str | list[str]]] = {
    "predict": {"images": ["{image}"]},
    "invoke-local": {"images": ["{image}"], "--no-stack": []},
    "eval": {"data_dir": "{data}"},
    "classify": {"uri": "s3://bucket/photos/"},
    "local up": {},
    "local status": {},
    "local down": {},
    "build": {},
    "rie path": {},
    "doctor": {"--security": "bucket"},  # the audit only: the plain doctor runs TensorFlow's self-check
    "upload-model": {"path": "{model}"},
    "upload-image": {"images": ["{image}"]},
    "deploy": {},
    "invoke": {"keys": ["photo.jpg"]},
    "event": {"shape": "s3"},
    "models list": {},
    "models promote": {"name": "model", "version": "1"},
    "models import": {"source": "s3://bucket/jobs/model.tar.gz"},
    "train": {"data_dir": "{empty}", "--out": "{new}"},
}
NOT_ATTACKED = {"rie install"}  # it downloads the emulator: its only input is the environment (below)


def commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found += commands(command, path + " ") if isinstance(command, click.Group) else [(path, command)]
    return found


def hostile_values(param: click.Parameter) -> list[str]:
    if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
        return NUMBERS
    if isinstance(param.type, click.Path):
        return PLACES + TEXTS
    return TEXTS


def parameter_classes() -> list[tuple[str, str]]:
    classes = []
    for path, command in commands():
        if path in NOT_ATTACKED:
            continue
        assert path in BASES, f"the harness has no base for rcyc {path}: add one to BASES"
        classes += [(path, param.name) for param in command.params
                    if not getattr(param, "is_flag", False) and param.name not in ("help",)]
    return classes


CLASSES = parameter_classes()


def chosen(values: list[str], index: int) -> list[str]:
    """Every value in the full profile; one per class otherwise, rotating so that the classes together
    still cover every value."""
    return values if FULL_PROPERTIES else [values[index % len(values)]]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder with the inputs and hostile places, AWS at a closed port, no emulator, no engine."""
    root = tmp_path / "sandbox"
    root.mkdir()
    data = root / "data"
    for label in LABELS:
        (data / label).mkdir(parents=True)
        shutil.copy(IMAGES / label / f"{label}_0.jpg", data / label)
    (root / "empty").mkdir()
    (root / "a-directory").mkdir()
    os.mkfifo(root / "a-fifo")
    try:
        os.mknod(root / "a-device", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        os.symlink("/dev/null", root / "a-device")  # not root: the real one cannot be replaced either
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",
           "AWS_RETRY_MODE": "standard", "RCYC_RIE": str(root / "no-emulator"), "RCYC_KEEP_WARM": "0",
           "DOCKER_HOST": f"unix://{root / 'no-engine.sock'}", "TMPDIR": str(temp), "COLUMNS": "200"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("RCYC_CONFIG", "RCYC_MODEL", "RCYC_BUCKET", "AWS_PROFILE", "RCYC_STACK_IDLE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(root)
    mounts = []
    for name, options in (("read-only", "ro,size=64k"), ("full-disk", "size=16k")):
        (root / name).mkdir()
        if _mount(root / name, options):
            mounts.append(root / name)
            if name == "full-disk":
                with contextlib.suppress(OSError), open(root / name / "filler", "wb") as filler:
                    filler.write(b"\0" * 64 * 1024)
        else:
            (root / name).chmod(0o555)  # not root: a read-only folder is refused all the same
    yield {"root": root, "temp": temp, "image": IMAGE, "data": data, "empty": root / "empty",
           "model": MODELS["softmax"], "new": root / "new-model"}
    for mount in mounts:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _mount(directory: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                          capture_output=True).returncode == 0


def arguments(command_path: str, places: dict, vary: str | None = None, value: str | None = None) -> list[str]:
    command = dict(commands())[command_path]
    base = {key: value for key, value in BASES[command_path].items()}
    args = command_path.split()
    options: list[str] = []
    positional = {param.name: param for param in command.params if isinstance(param, click.Argument)}
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.name == vary:
                args.append(value)
            elif param.name in base:
                given = base[param.name]
                args += [_fill(v, places) for v in (given if isinstance(given, list) else [given])]
    for key, given in base.items():
        if key.startswith("-"):
            options += [key] + ([_fill(given, places)] if isinstance(given, str) else [])
    if vary is not None and vary not in positional:
        param = next(p for p in command.params if p.name == vary)
        options += [param.opts[0], value]
    return args + options


def _fill(text: str, places: dict) -> str:
    return text.format(**{k: v for k, v in places.items() if isinstance(v, Path)})


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed) with its type, size and modification time."""
    seen = {}
    for directory, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(directory, name)
            info = path.lstat()
            seen[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
    return seen


def children() -> set[int]:
    """Processes whose parent is this test process."""
    mine, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == mine and fields[0] != "Z":
                    found.add(int(entry.name))
    return found


def attack(places: dict, args: list[str], output: str | None = None, input: str | None = None):
    """Run rcyc with ``args`` in the sandbox and check every invariant; returns the result."""
    root, temp = places["root"], places["temp"]
    before, before_children = snapshot(root), children()
    result = CliRunner().invoke(cli, args, input=input, catch_exceptions=True)
    shown = f"rcyc {' '.join(ascii(a)[:60] for a in args)}"
    assert not (result.exception and not isinstance(result.exception, SystemExit)), \
        f"{shown}: a traceback ({type(result.exception).__name__}: {str(result.exception)[:300]})"
    assert result.exit_code in README_STATUSES, f"{shown}: exit {result.exit_code}\n{result.stderr}"
    if result.exit_code == 7:  # finished; the records in error are listed with the others' results
        assert "✗" in result.stdout or '"errors"' in result.stdout, f"{shown}: exit 7 without the errors listed"
    elif result.exit_code != 0:
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, f"{shown}: {len(errors)} error: lines\n{result.stderr}"
        assert any(line.startswith("hint:") for line in lines), f"{shown}: no hint: line\n{result.stderr}"
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.stderr), f"{shown}: a control character reached stderr"
    after = snapshot(root)
    allowed = {output} if output else set()
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    changed -= {name for name in changed if any(name == a or name.startswith(a + "/") for a in allowed)}
    assert not changed, f"{shown}: changed outside its output: {sorted(changed)[:5]}"
    assert not list(temp.iterdir()), f"{shown}: left temporary files {sorted(p.name for p in temp.iterdir())[:5]}"
    assert children() <= before_children, f"{shown}: left processes {children() - before_children}"
    return result


def _output_name(command_path: str, name: str, value: str) -> str | None:
    """The sandbox entry a case may create: an output option's target."""
    if name in ("report_path", "output", "out") and not value.startswith("/"):
        return value
    return None


@pytest.mark.parametrize("command_path,name", CLASSES, ids=[f"{c}:{n}" for c, n in CLASSES])
def test_every_parameter_survives_hostile_values_of_its_type(sandbox, command_path, name):
    command = dict(commands())[command_path]
    param = next(p for p in command.params if p.name == name)
    values = hostile_values(param)
    for value in chosen(values, CLASSES.index((command_path, name))):
        filled = value if value.startswith("/") or value not in PLACES else value
        output = _output_name(command_path, name, value)
        attack(sandbox, arguments(command_path, sandbox, name, filled), output)


OUTPUT_OPTIONS = [("eval", ["{data}"], "--report", "report.html"),
                  ("classify", ["s3://bucket/photos/"], "--output", "out.jsonl"),
                  ("train", ["{empty}", "--out", "{new}"], "--report", "report.html"),
                  ("train", ["{empty}"], "--out", "model")]


@pytest.mark.parametrize("command,base,option,_name", OUTPUT_OPTIONS, ids=[f"{c}{o}" for c, _, o, _n in OUTPUT_OPTIONS])
@pytest.mark.parametrize("place", PLACES)
def test_every_output_option_refuses_a_place_it_must_not_write_before_any_work(sandbox, command, base, option, _name, place):
    """Exit 3 (never 0 with the file replaced, never a traceback), nothing written, and before any work:
    no listing, no stack, no training."""
    if option == "--out" and place in ("a-directory", "full-disk/file"):
        return  # an empty folder is a fine --out; and one fits on a full disk (the model's files fail as written)
    args = [*command.split(), *(_fill(a, sandbox) for a in base), option, place]
    original = Path(place).stat().st_mtime_ns if place.startswith("/") else None
    result = attack(sandbox, args)
    if place.startswith("full-disk"):
        assert result.exit_code in (3, 4), result.stderr
    else:
        assert result.exit_code == 3, result.stderr
        assert option in result.stderr.splitlines()[-2], result.stderr
    if original is not None:
        assert Path(place).stat().st_mtime_ns == original


def test_eval_report_is_written_atomically_and_only_there(sandbox):
    result = attack(sandbox, ["eval", str(sandbox["data"]), "--report", "report.html"], output="report.html")
    assert result.exit_code == 0, result.stderr
    assert (sandbox["root"] / "report.html").read_text().startswith("<!")
    # over an existing regular file: replaced whole, nothing beside it
    result = attack(sandbox, ["eval", str(sandbox["data"]), "--report", "report.html"], output="report.html")
    assert result.exit_code == 0


def test_eval_report_on_a_full_disk_is_one_line_and_leaves_no_part_file(sandbox, monkeypatch):
    """ENOSPC while the report is written (injected, so it holds where no tmpfs can be mounted)."""
    import errno

    from rcyc_cli import outputs

    real = outputs.os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(outputs.os, "fdopen", lambda fd, *a, **k: Full(real(fd, *a, **k)))
    result = attack(sandbox, ["eval", str(sandbox["data"]), "--report", "report.html"])
    assert result.exit_code == 3 and "No space left" in result.stderr
    assert not (sandbox["root"] / "report.html").exists()


CONFIG_VALUES = ["1", "1e400", "-1", "nan", "inf", '""', "[1, 2]", "{a = 1}", "true", '"\\u001b[2J"', "1.5", '"a\\u0000b"',
                 '"' + "x" * 3000 + '"']


def config_keys() -> list[str]:
    keys = set()
    for _path, command in commands():
        keys |= {p.name for p in command.params if not isinstance(p, click.Argument) and p.name != "help"}
    return sorted(keys)


@pytest.mark.parametrize("key", config_keys())
def test_every_rcyc_toml_key_of_a_wrong_type_is_one_line(sandbox, key):
    index = config_keys().index(key)
    for value in chosen(CONFIG_VALUES, index):
        (sandbox["root"] / "rcyc.toml").write_text(f"{key} = {value}\n")
        try:
            for command in ("predict", "eval", "local status"):
                attack(sandbox, arguments(command, sandbox))
        finally:
            (sandbox["root"] / "rcyc.toml").unlink()


ENVIRONMENT = ["RCYC_STACK_IDLE_SECONDS", "RCYC_KEEP_WARM", "RCYC_MODEL", "RCYC_BACKEND", "RCYC_BUCKET", "RCYC_RUNTIME",
               "RCYC_FLAVOR", "RCYC_CONFIG", "RCYC_CACHE_HOME", "RCYC_RIE", "RCYC_FUNCTION", "RCYC_CA_BUNDLE", "AWS_REGION"]
ENV_VALUES = ["abc", "-5", "nan", "1e400", "", "\x1b[2J", "/dev/null", "a-fifo", "a-directory", "x" * 3000]


@pytest.mark.parametrize("variable", ENVIRONMENT)
def test_every_environment_variable_of_a_wrong_type_is_one_line(sandbox, monkeypatch, variable):
    index = ENVIRONMENT.index(variable)
    for value in chosen(ENV_VALUES, index):
        if variable == "RCYC_CACHE_HOME" and not value.strip():
            continue  # empty means the user's own cache (~/.cache): never touched by a test
        monkeypatch.setenv(variable, value)
        for command in ("predict", "invoke-local", "local status", "classify"):
            args = arguments(command, sandbox)
            if command == "invoke-local" and variable == "RCYC_STACK_IDLE_SECONDS":
                args = [a for a in args if a != "--no-stack"] + ["--keep-warm"]
            attack(sandbox, args, output=value if variable == "RCYC_CACHE_HOME" else None)


def test_the_harness_covers_every_command():
    attacked = {path for path, _ in CLASSES}
    every = {path for path, _ in commands()} - NOT_ATTACKED
    assert every - attacked <= {"local status", "local down", "rie install"}, every - attacked
    print(f"\nhostile harness: {len(CLASSES)} parameter classes x "
          f"{'every value' if FULL_PROPERTIES else 'one value each'}, {len(OUTPUT_OPTIONS) * len(PLACES)} output places, "
          f"{len(config_keys())} rcyc.toml keys, {len(ENVIRONMENT)} environment variables")
