"""The router's own log: JSON and logfmt lines carry the structured fields passed with
`extra=` or bound with `log_context`, and nothing else from `extra`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from router.logs import FIELDS, LogFormat, log_context, setup_logging


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A buffer that `setup` points setup_logging's handler at; the root logger restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO(), logging.getLogger("router.test")
    root.handlers[:] = handlers
    root.setLevel(level)


def setup(buf: io.StringIO, level: str, fmt: LogFormat) -> None:
    """setup_logging as the CLI calls it, its stderr handler then redirected into `buf`."""
    setup_logging(level, fmt)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buf)


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_json_line_carries_the_extra_fields(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = captured
    setup(buf, "INFO", "json")
    log.warning("delivery failed", extra={"receiver": "slack", "incident": "INC-20261127-0001",
                                          "notification_id": "n-1", "token": "s3cret"})
    (line,) = lines(buf)
    entry = json.loads(line)
    assert entry["msg"] == "delivery failed"
    assert entry["level"] == "warning"
    assert entry["logger"] == "router.test"
    assert entry["receiver"] == "slack"
    assert entry["incident"] == "INC-20261127-0001"
    assert entry["notification_id"] == "n-1"
    # Only the known structured fields: an arbitrary extra never reaches the output.
    assert "token" not in entry and "s3cret" not in line
    assert "source" not in entry and "request_id" not in entry


def test_context_fields_apply_to_every_line_in_the_block(
        captured: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = captured
    setup(buf, "INFO", "json")
    with log_context(request_id="req-7", source="alertmanager"):
        log.info("accepted")
        with log_context(receiver="pagerduty"):
            log.info("inner", extra={"source": "generic"})  # extra= wins over the context
        log.info("after inner")
    log.info("outside")
    entries = [json.loads(line) for line in lines(buf)]
    assert [(e.get("request_id"), e.get("source"), e.get("receiver")) for e in entries] == [
        ("req-7", "alertmanager", None),
        ("req-7", "generic", "pagerduty"),
        ("req-7", "alertmanager", None),
        (None, None, None),
    ]


def test_context_follows_tasks_started_inside_the_block(
        captured: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = captured
    setup(buf, "INFO", "json")

    async def main() -> None:
        async def work() -> None:
            log.info("in task")
        with log_context(request_id="req-9"):
            task = asyncio.create_task(work())
        await task

    asyncio.run(main())
    assert json.loads(lines(buf)[0])["request_id"] == "req-9"


def test_unknown_context_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log fields \\['url'\\]"), log_context(url="x"):
        pass


@pytest.mark.parametrize(("value", "written"), [
    ("slack", "receiver=slack"),
    ("two words", 'receiver="two words"'),
    ('say "hi"', 'receiver="say \\"hi\\""'),
    ("a=b", 'receiver="a=b"'),
    ("line\nbreak", 'receiver="line\\nbreak"'),
    ("", 'receiver=""'),
])
def test_logfmt_quotes_what_would_break_a_pair(
        captured: tuple[io.StringIO, logging.Logger], value: str, written: str) -> None:
    buf, log = captured
    setup(buf, "INFO", "logfmt")
    log.info("sent", extra={"receiver": value})
    (line,) = lines(buf)
    assert line.endswith(" msg=sent " + written)
    assert line.startswith("ts=") and " level=info logger=router.test " in line


def test_logfmt_exception_stays_on_one_line(captured: tuple[io.StringIO, logging.Logger]) -> None:
    buf, log = captured
    setup(buf, "INFO", "logfmt")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"notification_id": "n-2"})
    (line,) = lines(buf)
    assert 'msg=failed notification_id=n-2 exc_type=RuntimeError exc="Traceback' in line
    assert "RuntimeError: boom" in line


@pytest.mark.parametrize("fmt", ["json", "logfmt"])
def test_level_filters_lines(captured: tuple[io.StringIO, logging.Logger],
                             fmt: LogFormat) -> None:
    buf, log = captured
    setup(buf, "warning", fmt)
    log.info("quiet")
    log.error("loud")
    assert len(lines(buf)) == 1 and "loud" in lines(buf)[0]


def test_documented_fields() -> None:
    assert FIELDS == ("source", "request_id", "receiver", "incident", "notification_id",
                      "status", "reason", "remote")

