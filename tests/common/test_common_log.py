"""The one log helper: fields survive kopf's plain, full and JSON formats and logfmt."""

from __future__ import annotations

import io
import json
import logging

import pytest
from kopf._core.actions.loggers import LogFormat, ObjectJsonFormatter, ObjectTextFormatter

from queueworker.common.log import LogfmtFormatter, log_event


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"qwtest.{id(formatter)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


@pytest.mark.parametrize("fmt", [LogFormat.PLAIN, LogFormat.FULL])
def test_fields_survive_kopf_text_formats(fmt: LogFormat) -> None:
    logger, out = _capture(ObjectTextFormatter(fmt.value))
    log_event(logger, "scaled", qw="default/gpu", **{"from": 1, "to": 3}, reason="backlog 40")
    line = out.getvalue().strip()
    assert line.endswith('scaled qw=default/gpu from=1 to=3 reason="backlog 40"')


def test_fields_are_json_keys_in_kopf_json_format() -> None:
    logger, out = _capture(ObjectJsonFormatter())
    # "name" and "msg" clash with LogRecord attributes: they are kept under a prefix.
    log_event(logger, "scaled", qw="default/gpu", replicas=3, name="x", msg="y")
    record = json.loads(out.getvalue())
    assert record["qw"] == "default/gpu"
    assert record["replicas"] == 3
    assert record["field_name"] == "x"
    assert record["field_msg"] == "y"


def test_logfmt_formatter_keeps_event_and_fields_apart() -> None:
    logger, out = _capture(LogfmtFormatter())
    log_event(logger, "job.failed", level=logging.WARNING, id="1700000000000-1", error='a "b"')
    line = out.getvalue().strip()
    assert " level=warning " in line
    assert 'event=job.failed id=1700000000000-1 error="a \\"b\\""' in line


def test_plain_records_still_format() -> None:
    logger, out = _capture(LogfmtFormatter())
    logger.info("started %s", "now")
    assert 'event="started now"' in out.getvalue()


def test_disabled_level_builds_nothing() -> None:
    logger, out = _capture(LogfmtFormatter())
    log_event(logger, "noise", level=logging.DEBUG, big=object())
    assert out.getvalue() == ""
