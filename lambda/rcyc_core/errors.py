"""One exception family for expected failures.

Each carries a short ``kind`` (used as the ``error`` field of result entries), a one-line message, a
hint. The CLI maps each class to its exit status (``rcyc_cli.exit_status``); the function never exits.
Anything that is not an ``RcycError`` is a bug.
"""

class RcycError(Exception):
    kind = "Error"
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


class AwsError(RcycError):
    kind = "AwsError"


class FunctionError(RcycError):
    """The function itself failed (handler exception, timeout, emulator crash)."""

    kind = "FunctionError"
