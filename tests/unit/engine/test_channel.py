"""The incident channel in the engine (incidents.slack_channels) on an injected clock: asked
for at triage at or above min_severity, the summary kept current, archived after resolution
(not before the post-mortem is published while its deadline is ahead), notes, publishing.
Config otherwise as in test_incidents (escalation alice -> bob -> carol, 15 min each)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from router.config import SlackChannelsConfig
from router.engine import Engine
from router.engine.codec import pack, unpack
from router.incidents import TimelineKind
from router.model import Notification, Severity
from tests.unit.engine.test_incidents import CTX, INCIDENTS, KEY, at, command, fire, only_incident

CHANNELS = SlackChannelsConfig(receiver="slack-bot", min_severity=Severity.SEV2,
                               archive_after=timedelta(hours=2),
                               users={"alice": "alice@example.com", "bob": "U0BOB"})
CHAN = CTX.with_(incidents=INCIDENTS.model_copy(update={"slack_channels": CHANNELS}))


def channel_ops(notes: list[Notification]) -> list[str]:
    return [f"{n.kind.value} {n.details['channel_op']}" for n in notes
            if n.receiver == "slack-bot"]


def step(engine: Engine, minute: float, events: list[Any] | None = None) -> list[Notification]:
    return list(engine.apply(events or [], at(minute)).notifications)


@pytest.mark.parametrize(("severity", "opens"), [
    (Severity.SEV1, True), (Severity.SEV2, True), (Severity.SEV3, False)])
def test_a_channel_is_asked_for_at_triage_at_or_above_min_severity(
    severity: Severity, opens: bool
) -> None:
    ctx = CHAN.with_(incidents=CHAN.incidents.model_copy(  # type: ignore[union-attr]
        update={"open_at": Severity.SEV3}))
    engine = Engine(ctx)
    notes = step(engine, 0, [fire(severity)]) + step(engine, 5)  # after the group_wait
    assert channel_ops(notes) == (["trigger open"] if opens else [])


def test_open_names_the_channel_and_invites_the_paged_people() -> None:
    engine = Engine(CHAN)
    (opened,) = [n for n in step(engine, 0, [fire()]) if n.receiver == "slack-bot"]
    inc = only_incident(engine)
    assert opened.dedup_key == f"{inc.view.id}:channel"
    assert opened.details["channel_name"] == inc.view.channel.lstrip("#")
    assert opened.details["invite"] == ["alice@example.com"]  # level 1 paged alice
    assert opened.details["status"] == "investigating"
    assert f"incident channel {inc.view.channel} requested, inviting alice" in [
        e.text for e in inc.view.timeline]
    # Nobody new: no second open on later steps.
    assert channel_ops(step(engine, 1)) == []


def test_the_summary_follows_changes_and_invites_whoever_is_new() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    # Nobody acknowledges: bob is paged at level 2 and invited.
    (escalated,) = [n for n in step(engine, 15) if n.receiver == "slack-bot"]
    assert escalated.details["channel_op"] == "summary"
    assert escalated.details["invite"] == ["alice@example.com", "U0BOB"]
    notes = step(engine, 16, [command("ack", 16, inc_id, actor="slack:U0BOB")])
    (acked,) = [n for n in notes if n.receiver == "slack-bot"]
    assert acked.details["acknowledged_by"] == "slack:U0BOB"
    notes = step(engine, 17, [command("update", 17, inc_id, status="identified",
                                      commander="<@U0CMDR|dana>", message="bad deploy")])
    (updated,) = [n for n in notes if n.receiver == "slack-bot"]
    assert updated.details["status"] == "identified"
    assert updated.details["commander"] == "<@U0CMDR|dana>"
    assert updated.details["latest_update"] == "status identified; commander: <@U0CMDR|dana>; " \
        "bad deploy"
    assert updated.details["invite"] == ["alice@example.com", "U0BOB", "U0CMDR"]
    assert only_incident(engine).invited == ("alice@example.com", "U0BOB", "U0CMDR")


def test_archived_after_resolution_but_not_before_the_postmortem_is_published() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    assert channel_ops(step(engine, 10, [command("resolve", 10, inc_id)])) == ["update summary"]
    assert only_incident(engine).archive_due is not None
    # Two hours later the post-mortem is neither published nor done: it waits for its deadline.
    assert channel_ops(step(engine, 130)) == []
    inc = only_incident(engine)
    assert inc.archive_due == inc.postmortem_due and not inc.channel_archived
    notes = step(engine, 140, [command("postmortem_publish", 140, inc_id, text="# PM")])
    assert channel_ops(notes) == ["update postmortem", "update summary"]
    (posted,) = [n for n in notes if n.details.get("channel_op") == "postmortem"]
    assert posted.details["postmortem_text"] == "# PM"
    # The post goes first; a minute later the channel is archived, once.
    assert channel_ops(step(engine, 141)) == ["resolve archive"]
    assert only_incident(engine).channel_archived
    assert channel_ops(step(engine, 200)) == []


def test_archived_at_the_postmortem_deadline_when_nobody_publishes() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    step(engine, 10, [command("resolve", 10, inc_id)])
    out = channel_ops(step(engine, 10 + 48 * 60))
    assert out == ["resolve archive"]


def test_a_postmortem_marked_done_lets_the_channel_archive_on_time() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    step(engine, 10, [command("resolve", 10, inc_id),
                      command("postmortem_done", 11, inc_id)])
    assert channel_ops(step(engine, 129)) == []
    assert channel_ops(step(engine, 130)) == ["resolve archive"]


def test_publishing_twice_publishes_once_and_before_resolution_not_at_all() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    assert step(engine, 5, [command("postmortem_publish", 5, inc_id, text="# PM")]) == []
    step(engine, 10, [command("resolve", 10, inc_id)])
    first = step(engine, 20, [command("postmortem_publish", 20, inc_id, text="# PM by alice",
                                      public_text="# PM")])
    assert {n.receiver: n.details["postmortem_text"] for n in first
            if n.details.get("postmortem_text")} == {"slack-bot": "# PM by alice", "sp": "# PM"}
    assert step(engine, 21, [command("postmortem_publish", 21, inc_id, text="# PM")]) == []
    inc = only_incident(engine)
    assert inc.view.postmortem_done and inc.view.details["postmortem_published"]
    published = [e for e in inc.view.timeline if e.kind is TimelineKind.POSTMORTEM]
    assert [e.text for e in published] == [
        f"post-mortem published (channel {inc.view.channel}, status page)"]


def test_notes_land_on_the_timeline_once_per_marked_message() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    inc_id = only_incident(engine).view.id
    step(engine, 3, [command("note", 3, inc_id, actor="slack:U0BOB", text="rolled back 1234",
                             ts="1700000000.000200"),
                     command("note", 3, inc_id, actor="slack:U0ALICE", text="rolled back 1234",
                             ts="1700000000.000200"),
                     command("note", 4, inc_id, text="typed with /incident note")])
    notes = [(e.actor, e.text) for e in only_incident(engine).view.timeline
             if e.kind is TimelineKind.NOTE]
    assert notes == [("slack:U0BOB", "rolled back 1234"),
                     ("slack:U1", "typed with /incident note")]


def test_state_before_the_channel_fields_still_decodes() -> None:
    engine = Engine(CHAN)
    step(engine, 0, [fire()])
    state = engine.get(KEY)
    assert state is not None
    raw = state.to_bytes()
    for field in (b'"co":true', b'"ci":["alice@example.com"]'):
        assert field in raw
        raw = raw.replace(b"," + field, b"").replace(field + b",", b"")
    old = unpack(raw, KEY)  # plain JSON of an older version is read too
    assert unpack(pack(old), KEY) == old
    inc = old.incidents[0]
    assert not inc.channel_open and inc.invited == () and inc.archive_due is None
