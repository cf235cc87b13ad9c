"""The one translator: every botocore/boto3 exception type becomes one error line with the exit status and
hint of its cause (never a traceback, never a network hint for a login problem)."""

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as bx

from rcyc_cli.cloud.aws import aws_call, translate
from rcyc_cli.cloud.buckets import validate_bucket_name
from rcyc_cli.exit_status import ExitStatus, for_error
from rcyc_core.errors import InputError


def client_error(code, operation="PutObject", message="Access Denied"):
    return bx.ClientError({"Error": {"Code": code, "Message": message}}, operation)


def s3_upload_failed():
    try:
        try:
            raise client_error("AccessDenied")
        except bx.ClientError as exc:
            raise S3UploadFailedError(f"Failed to upload model.h5 to b/models/m/1/model.h5: {exc}")
    except S3UploadFailedError as outer:
        return outer


CASES = [
    # (exception, exit status, kind, words the message or hint must contain)
    (client_error("AccessDenied"), ExitStatus.AWS, "AccessDenied", ["bucket policy", "KMS"]),
    (s3_upload_failed(), ExitStatus.AWS, "AccessDenied", ["bucket policy", "KMS"]),
    (S3UploadFailedError("Failed to upload a to b/k: An error occurred (KMS.AccessDeniedException) when calling the "
                         "PutObject operation: denied"), ExitStatus.AWS, "KMS.AccessDeniedException", ["KMS"]),
    (bx.NoCredentialsError(), ExitStatus.AWS, "NoCredentials", ["no AWS credentials", "aws configure"]),
    (bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), ExitStatus.AWS, "NoCredentials", ["credentials"]),
    (bx.SSOTokenLoadError(error_msg="Token for https://example.awsapps.com/start does not exist"), ExitStatus.AWS,
     "SsoLoginNeeded", ["aws sso login"]),
    (bx.UnauthorizedSSOTokenError(), ExitStatus.AWS, "SsoLoginNeeded", ["aws sso login"]),
    (bx.TokenRetrievalError(provider="sso", error_msg="expired"), ExitStatus.AWS, "SsoLoginNeeded", ["aws sso login"]),
    (client_error("ExpiredToken", "GetObject", "The provided token has expired."), ExitStatus.AWS, "ExpiredToken", ["aws sso login"]),
    (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ExitStatus.AWS, "Unreachable", ["cannot reach", "network"]),
    (bx.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), ExitStatus.AWS, "Unreachable", ["network"]),
    (bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), ExitStatus.AWS, "Timeout", ["again", "RCYC_AWS_TIMEOUT"]),
    (bx.NoRegionError(), ExitStatus.AWS, "NoRegion", ["--region"]),
    (bx.ProfileNotFound(profile="nope"), ExitStatus.AWS, "BadConfig", ["AWS_PROFILE"]),
    (bx.ParamValidationError(report="Invalid bucket name \"Bad_Bucket!!\""), ExitStatus.BAD_INPUT, "InvalidParameter", ["Bad_Bucket"]),
    (client_error("NoSuchBucket", "HeadBucket", ""), ExitStatus.AWS, "NoSuchBucket", ["--bucket"]),
]


@pytest.mark.parametrize("exc, status, kind, words", CASES, ids=[type(c[0]).__name__ + ":" + c[2] for c in CASES])
def test_each_exception_type_has_its_status_kind_and_hint(exc, status, kind, words):
    error = translate("upload model.h5", exc)
    assert for_error(error) == status and error.kind == kind
    text = error.message + " " + error.hint
    assert "\n" not in error.message and error.hint
    for word in words:
        assert word in text, (word, text)
    if kind == "SsoLoginNeeded":
        assert "network" not in error.hint and "--endpoint-url" not in error.hint


def test_aws_call_raises_the_translation_and_leaves_bugs_alone():
    def refused():
        raise s3_upload_failed()

    with pytest.raises(Exception) as raised:
        aws_call("upload model.h5", refused)
    assert for_error(raised.value) == ExitStatus.AWS and raised.value.kind == "AccessDenied"

    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        aws_call("anything", bug)


@pytest.mark.parametrize("name", ["Bad_Bucket!!", "ab", "a" * 64, "UPPER", "-leading", "trailing-", "two..dots",
                                  "192.168.5.4", "xn--bucket", "sthree-bucket", "bucket-s3alias", "bucket--ol-s3", ""])
def test_invalid_bucket_names_are_bad_input(name):
    with pytest.raises(InputError) as raised:
        validate_bucket_name(name)
    assert raised.value.kind == "InvalidBucketName" and for_error(raised.value) == ExitStatus.BAD_INPUT
    assert "network" not in raised.value.hint


@pytest.mark.parametrize("name", ["recycle-able-image", "abc", "a.b-c.d", "a" * 63, "rcyc-0123456789ab"])
def test_valid_bucket_names_pass(name):
    assert validate_bucket_name(name) == name
