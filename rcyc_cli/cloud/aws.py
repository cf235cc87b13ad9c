"""The AWS side's foundations: one boto3 session per command, and one translator that turns every
botocore/boto3 failure into a one-line ``AwsError`` with a hint.

Credentials (the AWS chain's, the ECR token, a registry password) are never printed, logged or put in an
error message or in JSON. boto3 is imported inside the functions that use it, so ``rcyc --help`` stays fast.
"""

from __future__ import annotations

import os
from typing import Callable

from rcyc_core.errors import AwsError
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



def s3_client(endpoint_url: str | None = None, region: str | None = None, credentials: dict | None = None, session=None):
    import boto3
    from botocore.config import Config

    kwargs = dict(credentials or {})
    return (session or boto3).client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=30),
        **kwargs,
    )



def translate(what: str, exc: Exception) -> AwsError:
    """The one translator: any botocore/boto3 failure of ``what`` as a one-line AwsError with a hint.
    Anything else is a bug and is returned unchanged by ``aws_call`` (it re-raises it)."""
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError)

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AwsError(f"{what}: no AWS credentials", kind="NoCredentials",
                        hint="Configure them (aws configure, AWS_PROFILE) or use a local endpoint (AWS_ENDPOINT_URL).")
    if isinstance(exc, NoRegionError):
        return AwsError(f"{what}: no AWS region", kind="NoRegion", hint="Pass --region or set AWS_REGION (or a profile region).")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        message = (error.get("Message") or "").strip()
        return AwsError(f"{what}: {code}: {message}".rstrip(": "), kind=code, hint=HINTS.get(code, ""))
    if isinstance(exc, EndpointConnectionError):
        return AwsError(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}", kind="Unreachable",
                        hint="Check the network, the region (--region / AWS_REGION) and AWS_ENDPOINT_URL.")
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{what}: {exc}", kind="S3Unreachable", hint="Check --endpoint-url / AWS_ENDPOINT_URL_S3 and the network.")
    raise exc


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
            from botocore.config import Config

            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            if service == "s3":
                self._clients[service] = s3_client(region=self.region, session=self.session)
            else:
                self._clients[service] = self.session.client(service, region_name=self.region, config=config)
        return self._clients[service]

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = aws_call("find the AWS account (sts get-caller-identity)", self.client("sts").get_caller_identity)["Account"]
        return self._account

