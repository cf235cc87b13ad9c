"""The function's S3 client reads timestamps with the standard library's HTTP-date parser (dateutil cost ~11%
of each image's GetObject); whatever it reads, it reads as botocore's own parser does, and fails as it does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from botocore.utils import parse_timestamp
from hypothesis import given, settings
from hypothesis import strategies as st
from rcyc_core.s3 import _http_date, make_s3_client

ZONES = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
MOMENTS = st.datetimes(datetime(1970, 1, 2), datetime(9998, 12, 31), timezones=ZONES).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=300, deadline=None)
@given(MOMENTS, st.booleans())
def test_an_http_date_is_the_moment_botocore_reads(moment, gmt):
    text = format_datetime(moment.astimezone(timezone.utc), usegmt=True) if gmt else format_datetime(moment)
    assert _http_date(text) == parse_timestamp(text) == moment


@pytest.mark.parametrize("text", ["2026-12-07T05:38:01.000Z", "2026-12-07T05:38:01+02:00", "1733550000", "1733550000.5",
                                  "Mon, 07 Dec 2026 05:38:01 -0000", "Mon, 07 Dec 2026 05:38:01", "07 Dec 2026 05:38:01 GMT"])
def test_any_other_timestamp_is_botocores_reading(text):
    ours, theirs = _http_date(text), parse_timestamp(text)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()  # (UTC may be timezone.utc, not tzutc())


@pytest.mark.parametrize("text", ["garbage", "", "Mon, 99 Dec 2026 05:38:01 GMT", "Mon, 07 Foo 2026 05:38:01 GMT",
                                  "Mon, 07 Dec 99999999999 05:38:01 GMT", "\x00", "Mon, 07 Dec 2026 25:61:61 GMT"])
def test_what_botocore_refuses_is_refused_the_same_way(text):
    with pytest.raises(Exception) as theirs:
        parse_timestamp(text)
    with pytest.raises(Exception) as ours:
        _http_date(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_the_function_s_client_uses_it(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = make_s3_client(2)
    parser = client._endpoint._response_parser_factory.create_parser("rest-xml")  # the one each answer is read with
    assert parser._timestamp_parser is _http_date
