"""How rcyc's process ends (``main.leave_quickly``, ``main.stop_like_ctrl_c`` under the console script): each
case runs in a Python process of its own, with the stop signals at their defaults, and reads its status.

- A Ctrl-C that rcyc handled exits with rcyc's status, also when it landed inside ``exec()`` of a string
  (a dataclass or namedtuple being made) and Python runs rcyc as ``-m``: CPython then keeps a record of an
  unhandled KeyboardInterrupt and ended the process by SIGINT (-2) after it had exited 130.
- A Ctrl-C during Python's own exit, once the command is over, changes nothing: the status is the command's.
  It was -2: Python puts its handlers back to the default before its last collection.
- That last collection is skipped (the objects are frozen out of it): eval's exit took 0.4 s after its report.
- The console script's guard while the CLI loads is replaced by rcyc's own stop handling: a Ctrl-C mid-run said
  "it had started nothing yet" and skipped every clean-up that answers a KeyboardInterrupt.
- A stop while no command runs (click parsing, writing --help, closing the root context) exits with its status
  and one line: as a KeyboardInterrupt it reached click, which said "Aborted!" and exited 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, stops_as_in_a_terminal


def run_module(tmp_path, body: str) -> subprocess.CompletedProcess:
    """``body`` as a module run with ``python -m`` (how the tests and benchmarks run rcyc)."""
    (tmp_path / "leaving_case.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "lambda")])}
    return subprocess.run([sys.executable, "-m", "leaving_case"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60, preexec_fn=stops_as_in_a_terminal)


def test_a_handled_ctrl_c_inside_exec_of_a_string_exits_with_rcyc_s_status(tmp_path):
    done = run_module(tmp_path, """
        import os, signal, sys
        from rcyc_cli.main import COMMAND_RUNNING, leave_quickly, stop_like_ctrl_c

        stop_like_ctrl_c()
        COMMAND_RUNNING.set()  # as RcycGroup.invoke does while the command runs
        try:
            exec("os.kill(os.getpid(), signal.SIGINT)\\nimport time\\ntime.sleep(5)")
        except KeyboardInterrupt:
            print("stopped")
        try:
            sys.exit(130)
        finally:
            leave_quickly()
        """)
    assert done.stdout.strip() == "stopped", done.stderr
    assert done.returncode == 130, done.stderr


def test_a_ctrl_c_during_python_s_exit_after_the_command_keeps_the_command_s_status(tmp_path):
    # An exit handler registered first runs last: the interpreter's exit is under way, rcyc's part is done.
    done = run_module(tmp_path, """
        import atexit, os, signal, sys, time
        from rcyc_cli.main import leave_quickly, stop_like_ctrl_c

        atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.5), print("after")))
        stop_like_ctrl_c()
        try:
            sys.exit(7)
        finally:
            leave_quickly()
        """)
    assert done.returncode == 7, done.stderr
    assert done.stdout.strip() == "after" and "Traceback" not in done.stderr


def test_a_thread_still_running_keeps_the_stop_signals_able_to_end_the_process(tmp_path):
    done = run_module(tmp_path, """
        import signal, threading
        from rcyc_cli.main import leave_quickly, stop_like_ctrl_c

        stop_like_ctrl_c()
        release = threading.Event()
        worker = threading.Thread(target=release.wait)
        worker.start()
        leave_quickly()
        print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
        release.set()
        worker.join()
        leave_quickly()
        print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]


def test_leaving_freezes_the_heap_out_of_the_last_collection_and_keeps_an_ignored_signal_ignored(tmp_path):
    done = run_module(tmp_path, """
        import gc, signal
        from rcyc_cli.main import leave_quickly, stop_like_ctrl_c

        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
        stop_like_ctrl_c()
        before = gc.get_freeze_count()
        leave_quickly()
        print(before, gc.get_freeze_count() > 1000, signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True", "True"]


def test_the_console_script_s_loading_guard_gives_way_to_rcyc_s_own_stop_handling(tmp_path):
    done = run_module(tmp_path, """
        import signal
        from rcyc_cli import entry
        from rcyc_cli.main import COMMAND_RUNNING, stop_like_ctrl_c

        signal.signal(signal.SIGINT, entry._interrupted_while_loading)
        stop_like_ctrl_c(entry._interrupted_while_loading)
        COMMAND_RUNNING.set()
        try:
            signal.raise_signal(signal.SIGINT)
            import time
            time.sleep(5)
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        """)
    assert done.stdout.strip() == "KeyboardInterrupt", (done.returncode, done.stderr)
    assert "started nothing yet" not in done.stderr


def test_a_stop_outside_the_command_is_its_status_with_one_line_not_click_s_aborted(tmp_path):
    # (click parsing the arguments, writing --help, closing the root context once the command is over)
    done = run_module(tmp_path, """
        import os, signal, time
        from rcyc_cli.main import leave_quickly, stop_like_ctrl_c

        stop_like_ctrl_c()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            leave_quickly()
        """)
    assert done.returncode == 143, done.stderr
    assert done.stderr == "error: stopped by SIGTERM; everything rcyc started has been stopped\n"


def test_a_stop_while_python_waits_for_a_thread_that_never_ends_ends_the_process_at_once(tmp_path):
    (tmp_path / "leaving_case.py").write_text(textwrap.dedent("""
        import sys, threading
        from rcyc_cli.main import leave_quickly, stop_like_ctrl_c

        stop_like_ctrl_c()
        threading.Thread(target=threading.Event().wait).start()  # never ends: Python's exit waits for it
        print("over", flush=True)
        try:
            sys.exit(0)
        finally:
            leave_quickly()
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "lambda")])}
    process = subprocess.Popen([sys.executable, "-m", "leaving_case"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=tmp_path, preexec_fn=stops_as_in_a_terminal)
    try:
        assert process.stdout.readline().strip() == "over"
        import time

        time.sleep(0.3)  # in Python's exit, waiting for the thread
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert err == "error: interrupted; everything rcyc started has been stopped\n"
