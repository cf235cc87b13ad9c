"""The AWS side's foundations: one boto3 session per command, and one translator that turns every
botocore/boto3 failure into a one-line ``AwsError`` with a hint.

Credentials (the AWS chain's, the ECR token, a registry password) are never printed, logged or put in an
error message or in JSON. boto3 is imported inside the functions that use it, so ``rcyc --help`` stays fast.
"""

from __future__ import annotations

import os
import re
from typing import Callable

from rcyc_core.errors import AwsError, InputError, RcycError
from rcyc_core.s3 import client_error_code


HINTS = {
    "AccessDenied": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "AccessDeniedException": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "UnauthorizedOperation": "The credentials lack a permission rcyc needs: docs/cloud.md lists them per command.",
    "InvalidAccessKeyId": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "InvalidClientTokenId": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "UnrecognizedClientException": "The access key is not known to AWS: check AWS_PROFILE / aws configure.",
    "SignatureDoesNotMatch": "The secret key does not match the access key: check AWS_PROFILE / aws configure.",
    "ExpiredToken": "The session token has expired: log in again (aws sso login, or new keys).",
    "ExpiredTokenException": "The session token has expired: log in again (aws sso login, or new keys).",
    "UnauthorizedException": "The AWS SSO login has expired: log in again (aws sso login).",
    "KMS.AccessDeniedException": "The bucket's KMS key refuses these credentials: allow kms:GenerateDataKey and kms:Decrypt on it.",
    "InvalidBucketName": "S3 bucket names are 3-63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit.",
    "PermanentRedirect": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "AuthorizationHeaderMalformed": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "IllegalLocationConstraintException": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "301": "The bucket is in another region: pass --region (or AWS_REGION) with the bucket's region.",
    "NoSuchBucket": "Check the bucket name (--bucket / RCYC_BUCKET); upload-model and upload-image create it.",
    "BucketAlreadyExists": "Bucket names are global: pick another --bucket.",
    "RepositoryNotFoundException": "rcyc deploy creates the repository; check --repository and --region.",
    "ResourceNotFoundException": "Check the name and the region (--region); rcyc deploy creates the function.",
    "NoSuchEntity": "Check the name; rcyc deploy creates the role.",
    "TooManyRequestsException": "AWS is throttling: wait a moment and run the command again.",
    "ThrottlingException": "AWS is throttling: wait a moment and run the command again.",
}

THROTTLED_HINT = "AWS is throttling: wait a moment and run the command again."
EXPIRED_HINT = "The session token has expired: log in again (aws sso login, or new keys)."
SERVER_HINT = ("The service failed on its side (or AWS_ENDPOINT_URL is not an AWS endpoint): run the command again in a "
               "moment; if it persists, check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>.")
# Codes that come with the HTTP status only (a HEAD, an HTML page from a proxy or a wrong endpoint).
STATUS_HINTS = {
    "400": "S3 answers 400 without a reason when the session token has expired: log in again (aws sso login, or new "
           "keys); otherwise the request names something AWS cannot parse (check the names given).",
    "404": "Nothing of that name answers there: check the name, the region (--region / AWS_REGION) and any endpoint "
           "override (AWS_ENDPOINT_URL).",
    "429": THROTTLED_HINT,
    "503": THROTTLED_HINT,
    "SlowDown": THROTTLED_HINT,
    "Throttling": THROTTLED_HINT,
    "RequestLimitExceeded": THROTTLED_HINT,
}
REFRESH_EXPIRED = "refreshed credentials are still expired"
CREDENTIALS_HINT = "Configure them (aws configure, AWS_PROFILE, aws sso login) or use a local endpoint (AWS_ENDPOINT_URL)."
SSO_HINT = "The AWS SSO login has expired or is missing: log in again (aws sso login, with the same --profile / AWS_PROFILE)."
NETWORK_HINT = "Check the network, the region (--region / AWS_REGION) and any endpoint override (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3)."
WRITE_DENIED_HINT = ("S3 refused the write: the credentials lack s3:PutObject on that prefix, or a bucket policy, a KMS key "
                     "policy or an organisation SCP denies it (docs/cloud.md lists the permissions per command).")

_CODE_IN_MESSAGE = re.compile(r"An error occurred \(([^)]+)\)(?: when calling the (\w+) operation)?: ?(.*)", re.S)


def read_timeout(default: float) -> float:
    """Seconds to wait for an answer: RCYC_AWS_TIMEOUT when set (a slow link, or a test's fault endpoint)."""
    from ..config import env_seconds

    # a finite number above 0: botocore raises a bare ValueError on 0 or -1, and NaN or inf fails every socket
    return env_seconds("RCYC_AWS_TIMEOUT", default, minimum=0.1, maximum=3600)


def client_config(read: float = 60, connect: float = 5, attempts: int = 3, **extra):
    """The one botocore Config of rcyc's clients: standard retries (``attempts`` in total), timeouts."""
    from botocore.config import Config

    return Config(retries={"total_max_attempts": attempts, "mode": "standard"}, connect_timeout=connect,
                  read_timeout=read_timeout(read), **extra)


NOT_S3_HINT = ("Something other than S3 answered (a web server, a proxy's page): check --s3-endpoint-url, "
               "AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and any proxy settings.")


class NotAnS3Answer(Exception):
    """A success that carries none of S3's ``x-amz-*`` headers (AWS, moto and the S3-compatible servers send a
    request id with every answer; Google Cloud Storage's XML API its ``x-goog-*`` ones): a web server or a
    proxy's page said 200. botocore would take it as a PutObject or HeadBucket that succeeded, or as an object
    whose bytes are that page. Or a redirect that is not S3's: botocore follows an S3 redirect by asking the
    bucket's region with a HeadBucket, and a web server (http to https, a login page) redirects that one too,
    so botocore asked again until Python's recursion limit."""


S3_HEADER_PREFIXES = ("x-amz", "x-goog")
CDN_HEADER_PREFIX = "x-amz-cf-"  # CloudFront's (x-amz-cf-id, -pop): on every answer it relays, a web site's too
REDIRECTS = (301, 302, 303, 307, 308)
OBJECT_READS = ("GetObject", "HeadObject")  # an object's own bytes may be an HTML page
HTML_RE = re.compile(rb"\s*<(!doctype\s+html|html[\s>])", re.I)


def _require_s3_answer(response_dict: dict, operation_model=None, **_) -> None:
    status, headers = response_dict.get("status_code", 0), response_dict.get("headers", {})
    names = {str(name).lower() for name in headers}
    from_s3 = any(name.startswith(S3_HEADER_PREFIXES) and not name.startswith(CDN_HEADER_PREFIX) for name in names)
    operation, body = getattr(operation_model, "name", ""), response_dict.get("body")
    if 200 <= status < 300 and not from_s3:
        raise NotAnS3Answer(f"the endpoint answered {status} without any of S3's headers")
    if 200 <= status < 300 and operation not in OBJECT_READS and isinstance(body, bytes) and HTML_RE.match(body[:64]):
        raise NotAnS3Answer(f"the endpoint answered {status} with an HTML page, which no S3 {operation or 'request'} answers")
    if status in REDIRECTS and (not from_s3 or (operation == "HeadBucket" and "x-amz-bucket-region" not in names)):
        location = next((value for name, value in headers.items() if str(name).lower() == "location"), "")
        where = f" to {one_line(location, 120)}" if location else ""
        raise NotAnS3Answer(f"the endpoint answered {status} (a redirect{where}), not as S3 redirects (naming the bucket's region)")


def s3_client(endpoint_url: str | None = None, region: str | None = None, credentials: dict | None = None, session=None):
    import boto3

    kwargs = dict(credentials or {})
    s3 = (session or boto3).client("s3", endpoint_url=endpoint_url, region_name=region,
                                   config=client_config(read=30, connect=3), **kwargs)
    s3.meta.events.register("before-parse.s3", _require_s3_answer)
    return s3


def one_line(text: str, limit: int = 240) -> str:
    """An error message as one short line: an HTML page (a proxy's, a wrong endpoint's) becomes its title."""
    text = str(text or "")
    if re.search(r"<(!doctype|html)", text, re.I):
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        text = f"an HTML page ({title.group(1).strip()})" if title else "an HTML page, not an AWS answer"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _client_error(what: str, code: str, message: str, operation: str | None = None) -> AwsError:
    if code == "403":  # S3 answers HEAD and some refusals with the status only
        code, message = "AccessDenied", message or "Forbidden"
    message = one_line(message)
    hint = HINTS.get(code) or STATUS_HINTS.get(code) or (SERVER_HINT if code.startswith("5") else "")
    if not hint:
        hint = "AWS refused the request: the message above says why (docs/cloud.md lists the permissions per command)."
    if code in ("AccessDenied", "403") and operation in ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload"):
        hint = WRITE_DENIED_HINT
    return AwsError(f"{what}: {code}: {message}".rstrip(": ").rstrip(), kind=code, hint=hint)


def translate(what: str, exc: BaseException) -> RcycError:
    """The one translator: any botocore/boto3 failure of ``what`` as a one-line error with a hint and the
    exit status of its cause (AwsError: 5; a parameter AWS would refuse: InputError, 3).
    Anything else is a bug: it is re-raised unchanged."""
    from boto3.exceptions import Boto3Error, S3UploadFailedError
    from botocore import exceptions as bx

    if isinstance(exc, RcycError):
        return exc
    if isinstance(exc, NotAnS3Answer):
        return AwsError(f"{what}: {exc}", kind="NotS3", hint=NOT_S3_HINT)
    if (error := _configuration_error(what, exc)) is not None:
        return error
    if isinstance(exc, bx.ParamValidationError):
        detail = " ".join(str(exc).split())
        return InputError(f"{what}: AWS would refuse the request: {detail}", kind="InvalidParameter",
                          hint="Check the names given (bucket, function, repository, keys).")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        return _client_error(what, code, (error.get("Message") or "").strip(), exc.operation_name)
    if isinstance(exc, S3UploadFailedError):
        # boto3's upload_file wraps the ClientError; the code is in its context or its message.
        context = exc.__context__
        if isinstance(context, bx.ClientError):
            return translate(what, context)
        found = _CODE_IN_MESSAGE.search(str(exc))
        if found:
            return _client_error(what, found.group(1), found.group(3).strip(), found.group(2))
        return AwsError(f"{what}: {exc}", kind="S3UploadFailed", hint=WRITE_DENIED_HINT)
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ProxyConnectionError)):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or "AWS"
        return AwsError(f"{what}: cannot reach {where}", kind="Unreachable", hint=NETWORK_HINT)
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError)):
        if isinstance(exc, bx.ReadTimeoutError):
            return AwsError(f"{what}: no answer in time: {one_line(exc)}", kind="Timeout",
                            hint="Run the command again; on a slow link raise RCYC_AWS_TIMEOUT (seconds to wait for an answer).")
        return AwsError(f"{what}: the connection to AWS failed: {one_line(exc)}", kind="ConnectionFailed",
                        hint="Run the command again; if it persists: " + NETWORK_HINT[0].lower() + NETWORK_HINT[1:])
    if isinstance(exc, bx.SSLError):
        return AwsError(f"{what}: TLS failed: {exc}", kind="TlsError",
                        hint="Behind a TLS-intercepting proxy, point AWS_CA_BUNDLE at its CA bundle.")
    if isinstance(exc, bx.WaiterError):
        return AwsError(f"{what}: {exc}", kind="WaitFailed", hint="Look at the resource in the AWS console, then run the command again.")
    if isinstance(exc, (bx.BotoCoreError, Boto3Error)):
        return AwsError(f"{what}: {one_line(exc)}", kind=type(exc).__name__, hint=NETWORK_HINT)
    raise exc


def is_aws_failure(exc: BaseException) -> bool:
    """A failure of boto3/botocore/s3transfer (or of the credential chain) that no call site translated:
    the CLI's boundary turns it into one line too."""
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("botocore", "boto3", "s3transfer") or isinstance(exc, NotAnS3Answer) or (
        isinstance(exc, RuntimeError) and REFRESH_EXPIRED in str(exc))


def _configuration_error(what: str, exc: BaseException) -> AwsError | None:
    """The failures of this machine's AWS setup (credentials, SSO, region, profile), before any request."""
    from botocore import exceptions as bx

    if isinstance(exc, RuntimeError) and REFRESH_EXPIRED in str(exc):
        # botocore's refreshable credentials (credential_process, SSO, assume-role) that come back expired
        return AwsError(f"{what}: the AWS credentials were refreshed but are still expired", kind="ExpiredCredentials",
                        hint="Log in again (aws sso login), or fix the profile's credential_process so it returns fresh credentials.")
    if isinstance(exc, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.SSOError, bx.TokenRetrievalError)):
        return AwsError(f"{what}: the AWS SSO token is expired or missing", kind="SsoLoginNeeded", hint=SSO_HINT)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return AwsError(f"{what}: no AWS credentials", kind="NoCredentials", hint=CREDENTIALS_HINT)
    if isinstance(exc, bx.CredentialRetrievalError):
        return AwsError(f"{what}: cannot get AWS credentials: {one_line(exc)}", kind="CredentialRetrievalError",
                        hint="The profile's credential source failed (credential_process, SSO, assume-role): run it by hand "
                        "to see why, or log in again (aws sso login).")
    if isinstance(exc, bx.NoRegionError):
        return AwsError(f"{what}: no AWS region", kind="NoRegion", hint="Pass --region or set AWS_REGION (or a profile region).")
    if isinstance(exc, bx.ProfileNotFound):
        return AwsError(f"{what}: {exc}", kind="BadConfig", hint="Check AWS_PROFILE and ~/.aws/config.")
    return None


def aws_call(what: str, call: Callable, *args, **kwargs):
    """Run one boto3 call; its failures become one-line AwsErrors with a hint (``translate``)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        raise translate(what, exc) from None


def get_or_none(what: str, call, missing: tuple[str, ...], **kwargs):
    """A read whose "not found" error codes mean None; any other failure is an AwsError."""
    try:
        return call(**kwargs)
    except Exception as exc:
        if client_error_code(exc) in missing:
            return None
        raise translate(what, exc) from None


class Aws:
    """One boto3 session: the standard credential chain and region (AWS_PROFILE, AWS_REGION, ...);
    endpoints from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> as boto3 reads them."""

    def __init__(self, region: str | None = None):
        import boto3

        region = region or os.environ.get("AWS_REGION") or None
        try:
            self.session = boto3.session.Session(region_name=region)
        except Exception as exc:  # ProfileNotFound and friends
            raise AwsError(f"cannot load the AWS configuration: {exc}", kind="BadConfig",
                           hint="Check AWS_PROFILE and ~/.aws/config.") from None
        if not self.session.region_name:
            raise AwsError("no AWS region is set", kind="NoRegion", hint="Pass --region or set AWS_REGION (or a profile region).")
        self.region = self.session.region_name
        self._clients: dict[str, object] = {}
        self._account: str | None = None

    def client(self, service: str):
        if service not in self._clients:
            config = client_config()
            try:
                if service == "s3":
                    self._clients[service] = s3_client(region=self.region, session=self.session)
                else:
                    self._clients[service] = self.session.client(service, region_name=self.region, config=config)
            except ValueError as exc:  # botocore says "Invalid endpoint: ..." for a malformed AWS_ENDPOINT_URL
                raise AwsError(f"cannot make the {service} client: {exc}", kind="BadConfig",
                               hint="Check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> (a URL such as http://127.0.0.1:5001).") from None
            except Exception as exc:
                raise translate(f"make the {service} client", exc) from None
        return self._clients[service]

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = aws_call("find the AWS account (sts get-caller-identity)", self.client("sts").get_caller_identity)["Account"]
        return self._account

