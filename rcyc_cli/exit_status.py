"""The CLI's exit statuses (documented in the README) and which one each expected failure maps to.

The function's package raises the errors; only the CLI exits, so the statuses live here."""

from __future__ import annotations

from enum import IntEnum

from rcyc_core.errors import AwsError, FunctionError, InputError, PrerequisiteError, RcycError


class ExitStatus(IntEnum):
    OK = 0
    BUG = 1  # a traceback: a bug in rcyc
    USAGE = 2  # click's own: an unknown option, a missing argument
    BAD_INPUT = 3
    MISSING_PREREQ = 4
    AWS = 5
    FUNCTION_FAILED = 6
    RECORD_ERRORS = 7  # the command finished, but some records or images are in "errors"
    FINDINGS = 8  # rcyc doctor --security found problems
    GATE_FAILED = 9  # rcyc eval --min-accuracy / --no-worse-than, models promote --eval: the model falls short
    INTERRUPTED = 130  # Ctrl-C: everything rcyc started has been stopped


# Most specific first: the first class an error is an instance of decides.
_BY_CLASS = (
    (FunctionError, ExitStatus.FUNCTION_FAILED),
    (AwsError, ExitStatus.AWS),
    (PrerequisiteError, ExitStatus.MISSING_PREREQ),
    (InputError, ExitStatus.BAD_INPUT),
)


def for_error(error: RcycError) -> ExitStatus:
    for cls, status in _BY_CLASS:
        if isinstance(error, cls):
            return status
    return ExitStatus.BAD_INPUT
