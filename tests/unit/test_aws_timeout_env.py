"""RCYC_AWS_TIMEOUT is a finite number of seconds above 0, or one error line naming it (exit 3): 0 and -1 were
a bare ValueError from botocore (a traceback, exit 1), NaN and inf a confusing "HTTP Client raised an
unhandled exception" at the first call."""

from __future__ import annotations

import pytest
from rcyc_core.errors import InputError

from rcyc_cli.cloud import aws


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "1e30", "abc", "3601"])
def test_a_timeout_that_is_no_usable_duration_is_refused_naming_the_variable(value, monkeypatch):
    monkeypatch.setenv("RCYC_AWS_TIMEOUT", value)
    with pytest.raises(InputError, match="RCYC_AWS_TIMEOUT"):
        aws.client_config()


@pytest.mark.parametrize("value, seconds", [("", 60.0), ("0.5", 0.5), ("30", 30.0), (" 3600 ", 3600.0)])
def test_a_usable_timeout_is_used(value, seconds, monkeypatch):
    monkeypatch.setenv("RCYC_AWS_TIMEOUT", value)
    assert aws.client_config().read_timeout == seconds
