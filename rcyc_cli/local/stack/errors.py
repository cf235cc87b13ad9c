"""The Invoke API's error answers, as botocore parses them: a status, the error type in ``X-Amzn-ErrorType``
and a JSON body ``{"Type": "User"|"Service", "Message"|"message": ...}``; and the function's own error object
(``X-Amz-Function-Error: Unhandled``), as Lambda returns it."""

from __future__ import annotations

import json
import re

from rcyc_core.errors import FunctionError

# Which member carries the message, per error shape in AWS's model (botocore reads either).
_MESSAGE_KEY = {"ResourceNotFoundException": "Message", "ServiceException": "Message"}


class ApiError(Exception):
    """An error answer: status, error type (``X-Amzn-ErrorType``), message, and who is at fault."""

    def __init__(self, status: int, error_type: str | None, message: str, fault: str = "User",
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message, self.fault = status, error_type, message, fault
        self.extra = extra or {}

    def body(self) -> bytes:
        if self.error_type is None:  # a gateway-style failure (the fault switch's 502/503): no modeled type
            return json.dumps({"message": self.message}).encode()
        key = _MESSAGE_KEY.get(self.error_type, "message")
        return json.dumps({"Type": self.fault, key: self.message, **self.extra}).encode()


def not_found(what: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"Function not found: {what}")


def invalid_content(message: str) -> ApiError:
    return ApiError(400, "InvalidRequestContentException", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValueException", message)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "RequestTooLargeException",
                    f"Request must be smaller than {limit} bytes for the InvokeFunction operation (got {size})")


def throttled(message: str = "Rate Exceeded.", reason: str = "ConcurrentInvocationLimitExceeded") -> ApiError:
    return ApiError(429, "TooManyRequestsException", message, extra={"Reason": reason})


def service_error(message: str) -> ApiError:
    return ApiError(500, "ServiceException", message, fault="Service")


def fault_error(status: int) -> ApiError:
    note = "injected by the rcyc fault switch"
    if status == 429:
        return throttled(f"Rate Exceeded. ({note})", reason="CallerRateLimitExceeded")
    if status == 500:
        return service_error(f"An internal error occurred ({note})")
    return ApiError(status, None, f"{'Bad Gateway' if status == 502 else 'Service Unavailable'} ({note})", fault="Service")


def error_object(exc: FunctionError) -> dict:
    """The function's error object as Lambda returns it, rebuilt from the FunctionError the sandbox raised.
    A timeout is Lambda's ``Sandbox.Timedout`` with the emulator's own "Task timed out after ..." message."""
    message = exc.message
    if exc.kind == "Timeout" and (match := re.search(r"Task timed out[^)]*", message)):
        return {"errorType": "Sandbox.Timedout", "errorMessage": match[0]}
    prefix = f"the function failed: {exc.kind}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    return {"errorType": exc.kind, "errorMessage": message}

