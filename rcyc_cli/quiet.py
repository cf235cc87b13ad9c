"""Third-party log noise off the user's stderr (unless --verbose).

TensorFlow, LiteRT and abseil log from C++ straight to file descriptor 2, before any Python logging setting
can apply ("INFO: Created TensorFlow Lite XNNPACK delegate", abseil's "I0000 ..." lines, "WARNING: All log
messages before absl::InitializeLog() ...", oneDNN's notice). So for the commands that load them, fd 2
becomes a pipe read by a thread that drops those lines and forwards every other one; Python's own
``sys.stderr`` (rich's progress bars, errors) keeps writing to the real stderr, terminal or not.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|INFO: Initialized TensorFlow Lite runtime"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"  # abseil/TSL info and warning lines
    rb"|.*oneDNN custom operations are on"
    rb"|.*This TensorFlow binary is optimized to use available CPU instructions"
    rb"|.*To enable the following instructions"
    rb"|.*Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|.*computation placer already registered"
    rb"|.*TF-TRT Warning"
    rb"|.*Could not find cuda drivers"
    rb"|.*external/local_xla/)"
)


class Diagnostics:
    """sys.stderr for a command: a reader of its diagnostics that went away (`rcyc ... 2>&1 | head`) drops
    them (``drop_stream``) instead of ending the command with click's or rich's exit 1 from any write
    (click.echo, print, rich); the command goes on and ends with its own status."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            drop_stream(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            drop_stream(self._stream)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def drop_stream(stream) -> None:
    """The reader of ``stream`` went away: its descriptor now points at /dev/null, so no later write (nor the
    interpreter's last flush) fails on the closed pipe."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


@contextlib.contextmanager
def native_noise_filtered():
    """While open, lines matching NOISE that native code writes to fd 2 are dropped; the rest pass."""
    try:
        sys.stderr.flush()
        if sys.stderr.fileno() != 2:
            raise ValueError("sys.stderr is not fd 2")
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # Python's stderr is elsewhere (a test runner captures it)
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr = sys.stderr
    sys.stderr = Diagnostics(os.fdopen(os.dup(real), "w", buffering=1, errors="backslashreplace",
                                       encoding=getattr(python_stderr, "encoding", None) or "utf-8"))

    def forward() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not NOISE.match(line):
                    with contextlib.suppress(OSError):  # nobody reads stderr any more: still drained, dropped
                        os.write(real, line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        finally:
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(real, 2)  # closes the pipe's last write end: the thread reads to the end and stops
            thread.join(timeout=2)  # a child that inherited fd 2 may hold the pipe open: do not wait for it
            os.close(real)
