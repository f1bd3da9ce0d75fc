"""Keyset pages over rows held in memory (the Kafka backend's views), and the cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from router.backends.kafka.backend import KafkaBackend
from router.backends.pages import InvalidCursor, SortKey, decode_cursor, encode_cursor, page_of
from router.config import KafkaBackendConfig
from router.engine.state import EngineContext
from router.incidents import Incident, IncidentStatus
from router.metrics import EngineMetrics
from router.model import Severity

Row = tuple[float, str]


def key(row: Row) -> SortKey:
    return row


def walk(rows: list[Row], limit: int) -> list[list[Row]]:
    pages, cursor = [], None
    while True:
        page = page_of(rows, key, "rows", limit, cursor)
        assert page.total == len(rows)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize(("rows", "limit", "pages"), [
    ([], 10, [[]]),
    ([(1.0, "a")], 1, [[(1.0, "a")]]),
    ([(1.0, "a"), (2.0, "b")], 1, [[(2.0, "b")], [(1.0, "a")]]),
    # Ties on the time: the id orders them, descending.
    ([(1.0, "a"), (1.0, "c"), (1.0, "b")], 2, [[(1.0, "c"), (1.0, "b")], [(1.0, "a")]]),
    # Exactly one page full: no cursor to an empty page.
    ([(1.0, "a"), (2.0, "b")], 2, [[(2.0, "b"), (1.0, "a")]]),
])
def test_pages_newest_first_without_gaps_or_repeats(rows: list[Row], limit: int,
                                                    pages: list[list[Row]]) -> None:
    assert walk(rows, limit) == pages


def test_a_cursor_names_its_list() -> None:
    cursor = encode_cursor("incidents", (1.5, "INC-1"))
    assert decode_cursor("incidents", cursor) == (1.5, "INC-1")
    with pytest.raises(InvalidCursor):
        decode_cursor("alerts", cursor)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WzEsMiwzXQ", "WyJyb3dzIiwxXQ"])
def test_a_cursor_not_handed_out_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="cursor is not one this list handed out"):
        decode_cursor("rows", cursor)


def incident(n: int, opened: datetime, resolved: bool = False) -> Incident:
    return Incident(
        id=f"INC-20260302-{n}", group_key=f"manual:{n}", title=f"Incident {n}",
        severity=Severity.SEV3, status=IncidentStatus.RESOLVED if resolved
        else IncidentStatus.INVESTIGATING, opened_at=opened,
        resolved_at=opened if resolved else None, channel="#incidents",
    )


async def test_the_kafka_backend_pages_its_incident_view() -> None:
    backend = KafkaBackend(KafkaBackendConfig(bootstrap_servers=["127.0.0.1:1"]),
                           EngineContext(), EngineMetrics(CollectorRegistry()))
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for n in range(25):
        i = incident(n, t0 + timedelta(minutes=n // 5), resolved=n % 2 == 0)
        backend.engine.on_incident(i.id, i.model_dump_json().encode(), 0, n)

    seen: list[str] = []
    cursor = None
    while True:
        page = await backend.incident_page(limit=7, cursor=cursor)
        assert page.total == 25
        seen += [i.id for i in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert len(seen) == len(set(seen)) == 25
    assert seen[:5] == [f"INC-20260302-{n}" for n in (24, 23, 22, 21, 20)]
    open_page = await backend.incident_page(status="open", limit=100)
    assert open_page.total == 12 and all(i.resolved_at is None for i in open_page.items)
