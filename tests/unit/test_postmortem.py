"""Post-mortem drafts: durations, SLA verdicts, the timeline table, fallbacks for missing parts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from router.model import Severity
from router.postmortem import (
    ActionItem,
    IncidentUpdate,
    PostmortemAlert,
    PostmortemInput,
    TimelineEntry,
    format_span,
    md_cell,
    render_postmortem,
    sla_checks,
)

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


TIMELINE = [
    TimelineEntry(at=m(2), kind="alert_fired", actor="alertmanager",
                  text="APIHighErrorRate: 31% of requests fail"),
    TimelineEntry(at=m(2), kind="notified", actor="router", text="#inc-20260105-checkout"),
    TimelineEntry(at=m(3), kind="paged", actor="router", text="level 1: alice"),
    TimelineEntry(at=m(18), kind="escalated", actor="router", text="level 2: bob"),
    TimelineEntry(at=m(19), kind="acknowledged", actor="slack:bob", text="Acknowledge button"),
    TimelineEntry(at=m(25), kind="status_update", actor="slack:bob",
                  text="identified | bad deploy 1.4.2"),
    TimelineEntry(at=m(26), kind="severity_change", actor="slack:bob", text="SEV1 -> SEV2"),
    TimelineEntry(at=m(47), kind="resolved", actor="slack:bob", text="rolled back"),
]


def make(**kw: Any) -> PostmortemInput:
    data: dict[str, Any] = {
        "incident_id": "INC-20260105-1", "title": "Checkout returns 500s",
        "severity": Severity.SEV1, "commander": "bob", "service": "checkout",
        "started_at": m(0), "detected_at": m(2), "acknowledged_at": m(19),
        "resolved_at": m(47), "impact": "About 30% of checkouts failed.",
        "alerts": [PostmortemAlert(name="APIHighErrorRate", service="checkout",
                                   started_at=m(0), ended_at=m(45))],
        "timeline": TIMELINE,
        "ack_sla": timedelta(minutes=15), "resolve_sla": timedelta(hours=1),
        **kw,
    }
    return PostmortemInput.model_validate(data)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0 s"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=12), "12 min"),
        (timedelta(minutes=12, seconds=30), "12 min 30 s"),
        (timedelta(hours=1, minutes=5), "1 h 5 min"),
        (timedelta(days=2, hours=3), "2 d 3 h"),
        (timedelta(seconds=-5), "0 s"),
    ],
)
def test_format_span(span: timedelta, text: str) -> None:
    assert format_span(span) == text


@pytest.mark.parametrize(
    ("kw", "ack_sentence", "res_sentence"),
    [
        ({}, "acknowledged after 17 min (SLA 15 min: missed by 2 min)",
         "resolved after 45 min (SLA 1 h: met)"),
        ({"acknowledged_at": m(14)}, "acknowledged after 12 min (SLA 15 min: met)",
         "resolved after 45 min (SLA 1 h: met)"),
        ({"acknowledged_at": m(17)}, "acknowledged after 15 min (SLA 15 min: met)",
         "resolved after 45 min (SLA 1 h: met)"),  # exactly at the SLA counts as met
        ({"resolved_at": m(92)}, "acknowledged after 17 min (SLA 15 min: missed by 2 min)",
         "resolved after 1 h 30 min (SLA 1 h: missed by 30 min)"),
        # Resolving without an acknowledgement counts as acknowledging.
        ({"acknowledged_at": None, "resolved_at": m(10)},
         "acknowledged after 8 min (SLA 15 min: met)", "resolved after 8 min (SLA 1 h: met)"),
        ({"acknowledged_at": None, "resolved_at": None}, "not acknowledged (SLA 15 min)",
         "not resolved (SLA 1 h)"),
        ({"ack_sla": None, "resolve_sla": None}, "acknowledged after 17 min (no SLA)",
         "resolved after 45 min (no SLA)"),
        # Without a detection time the SLA clocks start with the impact.
        ({"detected_at": None}, "acknowledged after 19 min (SLA 15 min: missed by 4 min)",
         "resolved after 47 min (SLA 1 h: met)"),
    ],
)
def test_sla_checks(kw: dict[str, Any], ack_sentence: str, res_sentence: str) -> None:
    ack, res = sla_checks(make(**kw))
    assert (ack.sentence, res.sentence) == (ack_sentence, res_sentence)


def section(doc: str, title: str) -> str:
    m_ = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    assert m_, f"no section {title!r}"
    return m_.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [ln for ln in text.splitlines() if ln.startswith("|")][2:]  # skip header + rule
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def test_structure_and_durations() -> None:
    doc = render_postmortem(make())
    assert doc.startswith("# Post-mortem: Checkout returns 500s (INC-20260105-1)\n")
    headings = re.findall(r"^## (.+)$", doc, re.M)
    assert headings == ["Summary", "Impact", "Timeline", "Root cause and contributing factors",
                        "What went well", "What went wrong", "Action items", "Lessons learned"]
    assert "due 2026-01-07 10:47:00 UTC (48 h after resolution)" in doc
    summary = section(doc, "Summary")
    assert ("lasted 47 min, from 2026-01-05 10:00:00 UTC to 2026-01-05 10:47:00 UTC"
            in summary)
    assert "detected 2 min after it started" in summary
    impact = section(doc, "Impact")
    assert "About 30% of checkouts failed." in impact
    assert "**Duration:** 47 min (2026-01-05 10:00:00 UTC to 2026-01-05 10:47:00 UTC)" in impact
    assert "**Severity:** SEV1 (Critical: customer-facing outage or data loss)" in impact
    assert "APIHighErrorRate on checkout, firing from 2026-01-05 10:00:00 UTC" in impact
    assert "**SLO:**" in impact
    wrong = section(doc, "What went wrong")
    assert "- Acknowledged after 17 min (SLA 15 min: missed by 2 min)." in wrong
    assert "- Escalated 1 time(s) before someone acknowledged." in wrong
    well = section(doc, "What went well")
    assert "- Detected 2 min after the impact started." in well
    assert "- Resolved after 45 min (SLA 1 h: met)." in well


def test_every_timeline_entry_is_a_table_row_in_time_order() -> None:
    # Out of order, but entries with the same time keep their (append) order.
    doc = render_postmortem(make(timeline=TIMELINE[3:] + TIMELINE[:3]))
    rows = table_rows(section(doc, "Timeline"))
    expected = [[e.at.strftime("%Y-%m-%d %H:%M:%S UTC"), e.kind, e.actor or "",
                 e.text.replace("|", "\\|")] for e in TIMELINE]
    assert rows == expected


def test_timeline_cells_stay_on_one_row() -> None:
    entry = TimelineEntry(at=m(5), kind="status_update", actor=None,
                          text="line one\nline | two\\")
    doc = render_postmortem(make(timeline=[entry]))
    assert table_rows(section(doc, "Timeline")) == [
        ["2026-01-05 10:05:00 UTC", "status_update", "", "line one line \\| two\\\\"]]
    assert md_cell(None) == ""


def test_timeline_times_are_utc_whatever_the_input_offset() -> None:
    berlin = datetime(2026, 1, 5, 11, 30, tzinfo=datetime.fromisoformat(
        "2026-01-05T11:30:00+01:00").tzinfo)
    doc = render_postmortem(make(timeline=[TimelineEntry(at=berlin, kind="paged", text="x")]))
    assert table_rows(section(doc, "Timeline"))[0][0] == "2026-01-05 10:30:00 UTC"


def test_root_cause_from_updates_or_to_be_filled() -> None:
    updates = [
        IncidentUpdate(at=m(10), status="investigating", message="Looking at the API"),
        IncidentUpdate(at=m(25), status="identified", message="Bad deploy 1.4.2"),
        IncidentUpdate(at=m(35), status="monitoring", message="Rolled back to 1.4.1"),
    ]
    rc = section(render_postmortem(make(updates=updates)), "Root cause and contributing factors")
    assert "- 2026-01-05 10:25:00 UTC: Bad deploy 1.4.2" in rc
    assert "- 2026-01-05 10:35:00 UTC (monitoring): Rolled back to 1.4.1" in rc
    assert "Looking at the API" not in rc
    assert "### Contributing factors\n\n_To be filled._" in rc

    explicit = make(updates=updates, root_cause="A config flag flipped.",
                    contributing_factors=["No canary", "Alert threshold too high"],
                    mitigation="Rolled back.")
    rc = section(render_postmortem(explicit), "Root cause and contributing factors")
    assert "A config flag flipped." in rc and "Bad deploy" not in rc
    assert "- No canary\n- Alert threshold too high" in rc
    assert "Rolled back." in rc and "Rolled back to 1.4.1" not in rc

    rc = section(render_postmortem(make()), "Root cause and contributing factors")
    assert rc.count("_To be filled._") == 3


def test_action_items_and_lessons() -> None:
    doc = render_postmortem(make())
    assert table_rows(section(doc, "Action items")) == [["_To be filled._", "", "", ""]]
    assert "_To be filled._" in section(doc, "Lessons learned")
    items = [ActionItem(action="Add a canary stage", owner="bob", due="2026-01-19",
                        priority="P1"), ActionItem(action="Lower the | threshold")]
    doc = render_postmortem(make(action_items=items))
    assert table_rows(section(doc, "Action items")) == [
        ["Add a canary stage", "bob", "2026-01-19", "P1"],
        ["Lower the \\| threshold", "", "", ""]]


def test_ongoing_incident_without_extras() -> None:
    doc = render_postmortem(PostmortemInput(
        incident_id="INC-20260105-2", title="Slow search", severity=Severity.SEV4,
        started_at=T0))
    assert "ongoing since 2026-01-05 10:00:00 UTC" in section(doc, "Summary")
    assert "**Alerts:** none attached" in section(doc, "Impact")
    assert "due " not in doc
    assert table_rows(section(doc, "Timeline")) == [["", "_no events recorded_", "", ""]]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        make(started_at=datetime(2026, 1, 5, 10))
