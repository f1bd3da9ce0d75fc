"""The public post-mortem (the status page's): the story without people or internals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.model import Severity
from router.postmortem import (
    TO_BE_FILLED,
    ActionItem,
    IncidentUpdate,
    PostmortemInput,
    TimelineEntry,
    render_public_postmortem,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_public_postmortem_tells_the_story_without_people() -> None:
    inp = PostmortemInput(
        incident_id="INC-20260302-1", title="Checkout errors", severity=Severity.SEV1,
        commander="carol", started_at=T0, resolved_at=T0 + timedelta(minutes=42),
        users_affected="8% of checkouts", root_cause="A bad deploy of the payment gateway",
        updates=[IncidentUpdate(at=T0 + timedelta(minutes=30), status="monitoring",
                                message="Rolled back; watching")],
        timeline=[TimelineEntry(at=T0, kind="paged", actor="router", text="paged alice")],
        action_items=[ActionItem(action="Add a canary stage", owner="bob", due="2026-03-10"),
                      ActionItem(action="Alert on 5xx per region", status="done")],
        authors=["carol"])
    assert render_public_postmortem(inp) == (
        "# Checkout errors\n\n"
        "**Impact:** from 2026-03-02 09:00:00 UTC to 2026-03-02 09:42:00 UTC (42 min).\n"
        "**Who was affected:** 8% of checkouts\n\n"
        "**What happened:** A bad deploy of the payment gateway\n"
        "**How we fixed it:** Rolled back; watching\n\n"
        "**What we are doing so it does not happen again:**\n"
        "- Add a canary stage\n"
        "- Alert on 5xx per region (done)\n")


def test_what_is_not_known_yet_says_so() -> None:
    inp = PostmortemInput(incident_id="INC-1", title="Slow", severity=Severity.SEV2,
                          started_at=T0)
    text = render_public_postmortem(inp)
    assert f"**What happened:** {TO_BE_FILLED}" in text and "Impact" not in text
