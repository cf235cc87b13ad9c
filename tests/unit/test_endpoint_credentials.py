"""An endpoint URL carrying a user name or password (``http://user:secret@host``): S3 and Lambda never use it,
and the URL is repeated in --json ("s3_endpoint"), error lines and logs. Refused as a usage error before any
work, on every endpoint option and its environment variables, and the secret is never repeated."""

from __future__ import annotations

import pytest

from tests.cli import run

SECRET = "hunter2-not-a-real-one"


@pytest.mark.parametrize("args, env", [
    (["invoke-local", "x.jpg", "--s3-endpoint-url", f"http://user:{SECRET}@127.0.0.1:9"], {}),
    (["invoke-local", "x.jpg", "--endpoint-url", f"http://user:{SECRET}@127.0.0.1:9"], {}),
    (["invoke-local", "x.jpg"], {"AWS_ENDPOINT_URL_S3": f"http://user:{SECRET}@127.0.0.1:9"}),
    (["invoke-local", "x.jpg"], {"RCYC_LOCAL_S3_ENDPOINT": f"http://{SECRET}@127.0.0.1:9"}),
    (["invoke", "k.jpg", "--lambda-endpoint-url", f"https://user:{SECRET}@127.0.0.1:9"], {}),
    (["invoke-local", "x.jpg", "--s3-endpoint-url", f"http://user:{SECRET}@[::1"], {}),  # not even a URL
])
def test_a_url_with_credentials_is_refused_without_repeating_them(args, env):
    result = run(*args, env=env)
    assert result.exit_code == 2, result.output
    assert SECRET not in result.output and "...@" in result.output
