"""One exception family for expected failures.

Each carries a short ``kind`` (used as the ``error`` field of result entries), a one-line message, a
hint and the CLI exit code it maps to. Anything that is not an ``RcycError`` is a bug.
"""

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_MISSING_PREREQ = 4
EXIT_AWS = 5
EXIT_FUNCTION_FAILED = 6
EXIT_RECORD_ERRORS = 7
EXIT_FINDINGS = 8  # rcyc doctor --security found problems


class RcycError(Exception):
    kind = "Error"
    exit_code = EXIT_BAD_INPUT
    hint = ""

    def __init__(self, message: str, hint: str | None = None, kind: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        return str(self)


class InputError(RcycError):
    """A file, event or option the user gave is unusable."""

    kind = "InvalidInput"
    exit_code = EXIT_BAD_INPUT


class ImageError(InputError):
    """Bytes that cannot become a model input (not an image, empty, too many pixels)."""

    kind = "InvalidImage"


class EventError(InputError):
    kind = "InvalidEvent"
    hint = 'An S3 event looks like {"Records": [{"s3": {"bucket": {"name": "B"}, "object": {"key": "K"}}}]}.'


class ModelError(InputError):
    """A model that is neither layout, or whose files do not match its manifest."""

    kind = "InvalidModel"


class PrerequisiteError(RcycError):
    kind = "MissingPrerequisite"
    exit_code = EXIT_MISSING_PREREQ


class AwsError(RcycError):
    kind = "AwsError"
    exit_code = EXIT_AWS


class FunctionError(RcycError):
    """The function itself failed (handler exception, timeout, emulator crash)."""

    kind = "FunctionError"
    exit_code = EXIT_FUNCTION_FAILED
