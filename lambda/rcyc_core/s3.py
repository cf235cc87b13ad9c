"""S3 access shared by the function and the CLI: the function's client, and S3's error codes in one place."""

from __future__ import annotations

from .errors import AwsError, ModelError, RcycError

# The codes S3 answers for "there is no such object/bucket" (HEAD requests carry only the status).
NOT_FOUND_CODES = ("NoSuchKey", "NoSuchBucket", "404", "NotFound")
NOT_MODIFIED_CODES = ("304", "NotModified")


def make_s3_client(workers: int = 8):
    # botocore's own client: the S3 client boto3 would make (same credential chain, region and endpoint
    # settings) without importing boto3 and its transfer manager, which cost each cold start ~50 ms.
    from botocore.config import Config as BotoConfig
    from botocore.session import get_session

    session = get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_http_date)
    # Short timeouts and few retries: a record whose object cannot be fetched should become an error
    # well inside the function's timeout, not hang the whole invocation.
    return session.create_client(
        "s3",
        config=BotoConfig(
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=workers,
        ),
    )


def _http_date(value: str):
    """A response's timestamp, as botocore's own parser gives it (an aware datetime). Every GetObject carries a
    Last-Modified header; parsing it with dateutil was about 0.07 ms of the ~0.65 ms of client CPU each image's
    GET costs. The standard library reads that HTTP date; anything else goes to botocore's parser."""
    from email.utils import parsedate_to_datetime

    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:  # not an HTTP date, or one with no zone ("-0000")
        from botocore.utils import parse_timestamp

        return parse_timestamp(value)
    return parsed


def client_error_code(exc: Exception) -> str | None:
    """The error code of a botocore ClientError (None for any other exception)."""
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code")


def model_read_error(exc: Exception, where: str, what: str) -> RcycError:
    """A failed read of a model object (pointer, manifest, file) as one of rcyc's errors."""
    code = client_error_code(exc)
    if code in NOT_FOUND_CODES:
        return ModelError(f"the {what} {where} does not exist", kind="ModelUnavailable", hint="Run rcyc upload-model.")
    if code:
        return AwsError(f"S3 refused to read the {what} {where}: {code}", kind=code)
    return AwsError(f"cannot reach S3 for the {what} {where}: {type(exc).__name__}", kind="S3Unreachable")


def object_read_error(exc: Exception, where: str) -> RcycError:
    """A failed read of an image object: the error that record carries in the result."""
    code = client_error_code(exc)
    if code in NOT_FOUND_CODES:
        return RcycError(f"{where} does not exist", kind="NoSuchKey")
    if code:
        return RcycError(f"S3 refused {where}: {code}", kind=code)
    if _refused_before_sending(exc):
        # No request was made (an invalid bucket name, a key that is not UTF-8): the same record fails the
        # same way every time, so it is the record's fault, never worth a retry.
        return RcycError(f"cannot fetch {where}: {type(exc).__name__}: {str(exc)[:160]}", kind="InvalidRecord")
    return RcycError(f"cannot fetch {where}: {type(exc).__name__}", kind="S3Unreachable")


def _refused_before_sending(exc: Exception) -> bool:
    from botocore.exceptions import ParamValidationError

    return isinstance(exc, (ParamValidationError, UnicodeError))
