"""The rcyc command line: the root group, config loading and the one error boundary. The commands live in
``commands/``: each only parses options, calls one function of the library, and renders.

Heavy modules (boto3, numpy, LiteRT, moto, TensorFlow) are imported inside the commands that need them,
so `rcyc --help` stays fast.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import math
import os
import signal
import sys
import threading

import click

from rcyc_core.errors import RcycError

from . import __version__, leftovers
from .commands import all_commands
from .commands.options import plain_text_everywhere
from .config import read_config
from .exit_status import ExitStatus, for_error

_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENFILE}
_PATH_ERRNOS = {errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO}  # a path given that cannot be one


class RcycGroup(click.Group):
    """The one error boundary: expected failures become one error: line, one hint: line and the exit status
    of their kind (exit_status.py, README); anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context):
        COMMAND_RUNNING.set()
        try:
            return self._failures_told(ctx)
        except KeyboardInterrupt as exc:
            self._interrupted(ctx, exc)
        finally:
            COMMAND_RUNNING.clear()

    def _failures_told(self, ctx: click.Context):
        try:
            return self._stop_wins(ctx)
        except click.UsageError as exc:
            # A bad option value or an unknown option: the same one error: line and hint: line as any
            # other expected failure, with click's exit status 2.
            from .render import console

            command = exc.ctx.command_path if exc.ctx else "rcyc"
            console.error(exc.format_message(), f"See: {command} --help")
            ctx.exit(exc.exit_code)
        except RcycError as exc:
            self._fail(ctx, exc)
        except OSError as exc:
            if exc.errno not in _ENVIRONMENT_ERRNOS and exc.errno not in _PATH_ERRNOS:
                self._unexpected(ctx, exc)
            self._machine_refused(ctx, exc)
        except Exception as exc:
            self._unexpected(ctx, exc)

    def _stop_wins(self, ctx: click.Context):
        """The command; a failure raised while Ctrl-C (or SIGTERM/SIGHUP) unwound is that stop again."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            interrupt = _interrupt_behind(exc)
            if interrupt is None:
                raise
            raise interrupt from None

    @staticmethod
    def _interrupted(ctx: click.Context, exc: KeyboardInterrupt):
        from .render import console

        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        console.error(stop_message(signum))
        ctx.exit(stop_status(signum))

    @staticmethod
    def _fail(ctx: click.Context, exc: RcycError):
        from .render import console

        console.log_lines(getattr(exc, "logs", None) or [])
        console.error(exc.message, exc.hint)
        ctx.exit(for_error(exc))

    @classmethod
    def _unexpected(cls, ctx: click.Context, exc: Exception):
        """A boto3/botocore failure no call site translated (the credential chain fails inside any call): the
        same one line as every AWS error. Anything else is a bug and keeps its traceback."""
        from .cloud.aws import is_aws_failure, translate

        if not is_aws_failure(exc):
            raise exc
        cls._fail(ctx, translate("AWS", exc))

    @staticmethod
    def _machine_refused(ctx: click.Context, exc: OSError):
        """The machine refused (a full disk, a read-only or unwritable place, a path that cannot be one)
        somewhere no error of ours names it: still one line with its cause."""
        from .files import shown
        from .render import console

        where = f" ({shown(exc.filename)[:200]})" if exc.filename else ""
        if exc.errno in _PATH_ERRNOS:
            console.error(f"{exc.strerror or exc}{where}", "Check the path given.")
            ctx.exit(ExitStatus.BAD_INPUT)
        console.error(f"{exc.strerror or exc}{where}", "Free some space, or fix the permissions of that place.")
        ctx.exit(ExitStatus.MISSING_PREREQ)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM/SIGHUP) during whose unwinding ``exc`` was raised: a signal can land inside
    any library call, and a clean-up (a progress display stopped half-started, a socket closed twice) may
    then fail in its own way. The user asked to stop: that is what is told, with its status, not a
    traceback. click's own exit (a status chosen on purpose) is not such a failure."""
    seen = set()
    while exc is not None and id(exc) not in seen and not isinstance(exc, click.exceptions.Exit):
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc = exc.__context__
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds exactly as Ctrl-C does (every ``finally`` and ExitStack stops what it
    started), then exits 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum, self.name = signum, signal.Signals(signum).name


STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STILL_STOPPING = b"rcyc: still stopping what it started (kill -9 abandons it, and leaves it behind)\n"
# Set while the group runs the command (RcycGroup.invoke). Outside it (click parsing the arguments, writing
# --help, closing the root context's resources once the command is over) a stop raises SystemExit with its
# status: a KeyboardInterrupt there would reach click, which says "Aborted!" and exits 1.
COMMAND_RUNNING = threading.Event()


def stop_message(signum: int) -> str:
    if signum == signal.SIGINT:
        return "interrupted; everything rcyc started has been stopped"
    return f"stopped by {signal.Signals(signum).name}; everything rcyc started has been stopped"


def stop_status(signum: int) -> int:
    return ExitStatus.INTERRUPTED if signum == signal.SIGINT else 128 + signum


def stop_like_ctrl_c(loading_guard=None) -> None:
    """SIGINT (Ctrl-C) raises KeyboardInterrupt, SIGTERM and SIGHUP raise ``Terminated``, in the main thread.
    Once one has, every further one only says that the clean-up is under way: a second Ctrl-C (people press
    it twice) or a SIGTERM after it no longer cuts short the clean-up the first asked for (instances
    stopped, a shared bucket's run prefix removed). A signal ignored when rcyc starts (nohup) stays ignored.
    ``loading_guard``, the console script's Ctrl-C handler while the CLI loads (``entry``), is replaced too:
    left in place, a Ctrl-C mid-run said "it had started nothing yet" and skipped every clean-up that answers
    a stop (a KeyboardInterrupt), such as the notice that a SageMaker job being followed keeps running."""

    def stopping(signum, frame):
        with contextlib.suppress(OSError):
            os.write(2, STILL_STOPPING)

    def handler(signum, frame):
        ours = [other for other in STOPS if signal.getsignal(other) is handler]
        if not COMMAND_RUNNING.is_set():
            # Nothing of the command's is running, so nothing to unwind, and a further stop is this same one:
            # ignored for good (this may land inside leave_quickly itself, before it could ignore them).
            _ignore(ours)
            with contextlib.suppress(OSError):
                os.write(2, f"error: {stop_message(signum)}\n".encode())
            raise SystemExit(stop_status(signum))
        for other in ours:
            signal.signal(other, stopping)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    for signum in STOPS:
        current = signal.getsignal(signum)
        if current is signal.SIG_DFL or (loading_guard is not None and current is loading_guard) or (
                signum == signal.SIGINT and current is signal.default_int_handler):
            signal.signal(signum, handler)


def load_config(ctx: click.Context) -> None:
    """rcyc.toml (or RCYC_CONFIG) in the lowest place of: flags > environment > config file > defaults.
    Its top-level keys are option names (bucket = "...", model = "...") applied to every command that has
    that option, subcommands of groups (rcyc models promote, rcyc local up) included."""
    settings = read_config()  # an unreadable file is an InputError: one error: and hint: line, exit 3
    settings = {key.replace("-", "_"): value for key, value in settings.items() if not isinstance(value, dict)}
    ctx.default_map = _defaults_for(ctx.command, settings)


def _defaults_for(command: click.Command, settings: dict) -> dict:
    """click's default_map for ``command``: its own options' values, and a nested map per subcommand. A
    value of the wrong kind (``model = 5``) is refused here, naming the file."""
    from .config import config_path

    defaults = {}
    for param in command.params:
        if param.name not in settings:
            continue
        defaults[param.name] = _config_value(param, settings[param.name], config_path())
    for name, sub in getattr(command, "commands", {}).items():
        defaults[name] = _defaults_for(sub, settings)
    return defaults


# The commands that load TensorFlow or LiteRT in this process, whose C++ logs rcyc_cli.quiet filters.
LOADS_NATIVE_LOGGERS = {"predict", "eval", "train", "doctor", "upload-model", "models"}


def _config_value(param: click.Parameter, value, path) -> object:
    """``value`` checked as the option itself would check it on the command line (a flag takes true or
    false, a number must be in its range and finite, a path or name a string); else InputError naming the file."""
    from rcyc_core.errors import InputError

    textual = isinstance(param.type, (click.Path, click.Choice, click.types.StringParamType))
    flag = getattr(param, "is_flag", False)
    wanted = "true or false" if flag else ("a string" if textual else "a single value")
    problem = None
    if isinstance(value, (list, dict)) or (flag and not isinstance(value, bool)) or (textual and not isinstance(value, str)):
        problem = f"is not {wanted}"
    elif isinstance(value, str) and ("\0" in value or len(value) > 4096):
        problem = "holds a NUL character" if "\0" in value else "is too long"
    elif isinstance(param.type, click.types.IntParamType) and (isinstance(value, bool) or not isinstance(value, int)):
        problem = "is not a whole number"
    elif isinstance(value, float) and not math.isfinite(value):
        problem = "is not a finite number"
    else:
        try:
            param.type.convert(value, param, None)
        except click.BadParameter as exc:
            problem = exc.message.rstrip(".")
        except (TypeError, ValueError, OverflowError) as exc:
            problem = f"is not usable ({exc})"
    if problem:
        kind = "a whole number" if isinstance(param.type, click.types.IntParamType) else param.type.name
        example = f"{param.name} = true" if flag else f'{param.name} = "..."' if textual else f"{param.name} = <{kind}>"
        raise InputError(f"{path}: {param.name} = {value!r}: {problem}", hint=f"Write it as {example} (or remove it).")
    return value


@click.group(cls=RcycGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rcyc")
@click.option("--verbose", is_flag=True, envvar="RCYC_VERBOSE", help="Let TensorFlow and the libraries log as they like. [env RCYC_VERBOSE]")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """rcyc: build, run, deploy and query the recyclable-item classifier on AWS Lambda.

    \b
    Start here:
      rcyc predict IMAGE...        classify files in-process (no AWS, no Docker)
      rcyc invoke-local [IMAGE...] the same through the real Lambda emulator and a local S3
      rcyc doctor                  what is installed, what is missing, and how to fix it
    """
    for stream in (sys.stdout, sys.stderr):
        # a name that is not UTF-8 (a file name's undecodable bytes) is printed escaped, never a traceback
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    from .quiet import Diagnostics

    if not isinstance(sys.stderr, Diagnostics):
        sys.stderr = Diagnostics(sys.stderr)
    if verbose:
        os.environ["RCYC_VERBOSE"] = "1"  # read where TensorFlow is imported (rcyc_core.backends.import_keras)
    elif ctx.invoked_subcommand in LOADS_NATIVE_LOGGERS:
        from .quiet import native_noise_filtered

        ctx.with_resource(native_noise_filtered())
    keep_loopback_off_proxies()
    sweep_leftovers()  # what a killed rcyc left (temp files, sandboxes, containers) goes with any next command
    load_config(ctx)


def sweep_leftovers() -> int:
    from .local.emulator import reaper

    return leftovers.sweep(reaper.sweep_orphans, reaper.sweep_orphan_containers)


def keep_loopback_off_proxies() -> None:
    """rcyc's local servers are on 127.0.0.1: behind a corporate HTTP(S)_PROXY, requests to them must not
    go through the proxy (urllib and botocore both honour NO_PROXY)."""
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h]
        missing = [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        if missing:
            os.environ[name] = ",".join(hosts + missing)


for _command in all_commands():
    cli.add_command(_command)
plain_text_everywhere(cli)


def main(loading_guard=None) -> None:
    stop_like_ctrl_c(loading_guard)
    try:
        cli(prog_name="rcyc")
    finally:
        leave_quickly()


def leave_quickly() -> None:
    """The command is over: what is left is Python's own exit.

    Its last garbage collection walks every object the command made: 0.4 s after eval's report (the modules
    of LiteRT, numpy and cleanlab), ~10 ms after a warm invoke-local. Nothing of rcyc's waits on it (what it
    started is stopped, and its files closed, in finally blocks), so those objects are frozen out of it and
    left to the operating system.

    A stop signal during that exit is ignored: nothing is left to stop, and Python's exit puts its handlers
    back to the default, so a late Ctrl-C ended rcyc by SIGINT instead of with its own status. A signal ignored
    from the start stays ignored."""
    gc.freeze()
    stopped = any(getattr(signal.getsignal(signum), "__name__", "") == "stopping" for signum in STOPS)
    if stopped:
        # A stop that landed inside exec() of a string (a dataclass or a namedtuple being made, as imports do)
        # leaves CPython's record of an unhandled KeyboardInterrupt set, though rcyc handled it: under
        # `python -m`, the process then ends by SIGINT after its exit (-2, not 130). Any exec() of a string
        # clears that record.
        exec("pass")
    ours = [signum for signum in STOPS if getattr(signal.getsignal(signum), "__module__", None) == __name__]
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        # Python waits for the command's last threads first: a stop then ends the process at once (the command
        # is over, so nothing is left to unwind, and a thread that never ends cannot hold it), and the stop
        # signals are ignored from the exit callbacks on, which run once the threads are done.
        for signum in ours:
            signal.signal(signum, _leave_now)
        atexit.register(_ignore, ours)
    else:
        _ignore(ours)


def _ignore(signals: list[int]) -> None:
    for signum in signals:
        signal.signal(signum, signal.SIG_IGN)


def _leave_now(signum, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"error: {stop_message(signum)}\n".encode())
    os._exit(stop_status(signum))


if __name__ == "__main__":
    main()
