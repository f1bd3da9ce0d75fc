"""Alerts per status over the Kafka alerts view, kept as its values change (what intake's
active-alert cap reads every second)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from router.backends.kafka.backend import _StatusTotals


def view(*statuses: str) -> bytes:
    """An alerts-view value: the group's alerts (only `status` is read)."""
    at = datetime(2026, 12, 5, tzinfo=UTC).isoformat()
    return orjson.dumps([{"status": s, "fingerprint": f"fp-{i}", "starts_at": at}
                         for i, s in enumerate(statuses)])


def test_totals_follow_each_groups_latest_value() -> None:
    totals = _StatusTotals()
    totals.change("g1", view("firing", "firing"))
    totals.change("g2", view("firing", "resolved"))
    assert totals.totals == {"firing": 3, "resolved": 1}
    totals.change("g1", view("firing", "resolved"))  # a new version replaces the old
    assert totals.totals == {"firing": 2, "resolved": 2}
    totals.change("g2", None)  # tombstone: the group left the view
    assert totals.totals == {"firing": 1, "resolved": 1}
    totals.change("g3", None)  # an unknown group's tombstone changes nothing
    totals.change("g1", None)
    assert totals.totals == {"firing": 0, "resolved": 0}
