"""An endpoint that is not S3 but says 200 (a web server, a captive portal, a proxy's page) is an error, not a
write that succeeded, a bucket that is there, or an object whose bytes are an HTML page."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rcyc_cli.cloud.aws import aws_call, s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_core.errors import AwsError
from tests.cli import run

OPERATIONS = {"head_bucket": {}, "put_object": {"Key": "models/current.json", "Body": b"{}"},
              "get_object": {"Key": "models/current.json"}, "list_objects_v2": {}, "get_public_access_block": {}}
READ_AND_WRITE = ("head_bucket", "put_object", "get_object", "list_objects_v2")
PAGE = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>"


class WebServer(BaseHTTPRequestHandler):
    """Every request: 200 and the same page (what a wrong --s3-endpoint-url often is)."""

    def _page(self, body: bool = True) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if body:
            self.wfile.write(PAGE)

    do_GET = do_PUT = do_POST = do_DELETE = _page

    def do_HEAD(self):
        self._page(body=False)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """``handler`` on a free 127.0.0.1 port, stopped when the block ends: its address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def web_server():
    with serving(WebServer) as address:
        yield address


@pytest.mark.parametrize("operation, kwargs", [(name, OPERATIONS[name]) for name in READ_AND_WRITE])
def test_a_200_without_s3s_headers_is_one_error_naming_the_endpoint_settings(web_server, operation, kwargs):
    s3 = s3_client(web_server, LOCAL_REGION, LOCAL_CREDENTIALS)
    with pytest.raises(AwsError) as caught:
        aws_call(f"{operation} s3://bucket", getattr(s3, operation), Bucket="bucket", **kwargs)
    assert caught.value.kind == "NotS3"
    assert "without any of S3's headers" in str(caught.value) and "--s3-endpoint-url" in caught.value.hint


def test_invoke_local_against_a_web_server_says_so_instead_of_no_current_model(web_server, tmp_path):
    from tests.conftest import IMAGES

    result = run("invoke-local", "--no-stack", "--s3-endpoint-url", web_server, IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == 5, result.output
    assert "without any of S3's headers" in result.stderr and "no current model" not in result.stderr
    assert "Traceback" not in result.output


class Redirecting(BaseHTTPRequestHandler):
    """Every request: a redirect (http to https, a proxy's login page), with or without a request id."""

    with_request_id = False

    def _redirect(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(302 if self.with_request_id else 301)
        self.send_header("Location", "https://127.0.0.1:9/login")
        if self.with_request_id:
            self.send_header("x-amz-request-id", "0123456789ABCDEF")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _redirect

    def log_message(self, *args):
        pass


@pytest.fixture(params=[False, True], ids=["no-request-id", "request-id"])
def redirecting_server(request):
    with serving(type("Handler", (Redirecting,), {"with_request_id": request.param})) as address:
        yield address


@pytest.mark.parametrize("operation, kwargs", [(name, OPERATIONS[name]) for name in READ_AND_WRITE])
def test_a_redirect_that_is_not_s3s_is_one_error_not_a_recursion(redirecting_server, operation, kwargs):
    """botocore follows an S3 redirect by asking the bucket's region (HeadBucket); redirected too, it asked again
    until RecursionError, a traceback."""
    s3 = s3_client(redirecting_server, LOCAL_REGION, LOCAL_CREDENTIALS)
    with pytest.raises(AwsError) as caught:
        aws_call(f"{operation} s3://bucket", getattr(s3, operation), Bucket="bucket", **kwargs)
    assert caught.value.kind == "NotS3" and "https://127.0.0.1:9/login" in str(caught.value)


def test_s3s_own_redirect_and_a_google_cloud_storage_answer_pass():
    from types import SimpleNamespace

    from rcyc_cli.cloud.aws import _require_s3_answer

    head_bucket = SimpleNamespace(name="HeadBucket")
    _require_s3_answer({"status_code": 301, "headers": {"x-amz-bucket-region": "eu-west-1", "x-amz-request-id": "1"}},
                       operation_model=head_bucket)
    _require_s3_answer({"status_code": 200, "headers": {"x-goog-generation": "1", "x-guploader-uploadid": "u"}})
    _require_s3_answer({"status_code": 304, "headers": {}})


def test_upload_image_against_a_redirect_exits_5_without_a_traceback(redirecting_server, monkeypatch):
    from tests.conftest import IMAGES

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", redirecting_server)
    monkeypatch.setenv("AWS_REGION", LOCAL_REGION)
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name.upper(), value)
    result = run("upload-image", IMAGES / "boxes" / "boxes_0.jpg")
    assert result.exit_code == 5, result.output
    assert "redirect" in result.stderr and "Traceback" not in result.output


class BehindACdn(WebServer):
    """A web site behind CloudFront: its page with CloudFront's x-amz-cf-* headers (on every answer it relays)."""

    def end_headers(self):
        self.send_header("x-amz-cf-id", "l3mLe0bEXAMPLE==")
        self.send_header("x-amz-cf-pop", "FRA56-P1")
        super().end_headers()


class HtmlWithRequestId(WebServer):
    """A page with an S3-like request id (an S3 website endpoint's index page): no API answer is an HTML page."""

    def end_headers(self):
        self.send_header("x-amz-request-id", "0123456789ABCDEF")
        super().end_headers()


@pytest.mark.parametrize("site, operation", [(BehindACdn, name) for name in OPERATIONS] + [
    # with S3's own request id, the page decides: an answer with no body, or an object's bytes (any page), is S3's
    (HtmlWithRequestId, "list_objects_v2"), (HtmlWithRequestId, "get_public_access_block")])
def test_an_html_site_with_amz_headers_is_not_s3_either(site, operation):
    """botocore parses an HTML page as an empty listing (a prefix with no images, exit 0) or a write that was done."""
    with serving(site) as address:
        s3 = s3_client(address, LOCAL_REGION, LOCAL_CREDENTIALS)
        with pytest.raises(AwsError) as caught:
            aws_call(f"{operation} s3://bucket", getattr(s3, operation), Bucket="bucket", **OPERATIONS[operation])
        assert caught.value.kind == "NotS3"


def test_an_empty_html_typed_write_answer_as_moto_server_gives_passes():
    from types import SimpleNamespace

    from rcyc_cli.cloud.aws import _require_s3_answer

    _require_s3_answer({"status_code": 200, "body": b"", "headers": {"Content-Type": "text/html; charset=utf-8",
                                                                      "x-amz-request-id": "1"}},
                       operation_model=SimpleNamespace(name="PutObject"))
