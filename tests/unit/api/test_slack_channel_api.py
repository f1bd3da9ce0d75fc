"""The incident channel through a running router and the fake Slack: a declared SEV2 gets its
channel; the Events API (signed like every Slack request) turns a :pushpin: reaction into a
timeline note with the message's text; `/incident note` typed in the channel (whatever its name
became) notes on that incident; publishing the post-mortem from Slack or the REST API posts it
to the channel once (a second request is 409 / "already published")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import RouterClient
from tests.fakes.slack import Channel, FakeSlack
from tests.incidentkit import (
    SLACK_SECRET,
    declare,
    slack_headers,
    slash_body,
    wait_incident,
    wait_until,
)

BOT = "xoxb-channel-api-test"


async def router(router_client: RouterClient, aiohttp_server: Any,
                 fake: FakeSlack) -> TestClient:
    url = str((await aiohttp_server(fake.app())).make_url("")).rstrip("/")
    return await router_client({
        "receivers": [{"name": "bot", "type": "slack", "bot_token": BOT, "channel": "C0ALERTS",
                       "api_url": f"{url}/api"}],
        "default_receivers": ["bot"],
        "slack": {"signing_secret": SLACK_SECRET},
        "incidents": {"slack_channels": {"receiver": "bot", "min_severity": "SEV2",
                                         "users": {"alice": "U0ALICE"}}},
    })


def event_body(event: dict[str, Any], kind: str = "event_callback") -> bytes:
    return json.dumps({"token": "x", "team_id": "T1", "type": kind, "event": event,
                       "event_id": "Ev1", "event_time": 1}).encode()


def signed(body: bytes) -> dict[str, str]:
    return {**slack_headers(body), "Content-Type": "application/json"}


def reaction(channel: str, ts: str, emoji: str = "pushpin") -> dict[str, Any]:
    return {"type": "reaction_added", "user": "U0BOB", "reaction": emoji, "item_user": "U0BOB",
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": "1700000000.1"}


async def opened_channel(fake: FakeSlack) -> Channel:
    async def probe() -> Channel | None:
        found = next(iter(fake.channels.values()), None)
        return found if found is not None and found.pins else None

    channel: Channel = await wait_until(probe, "the incident channel with its pinned summary")
    return channel


async def slash(client: TestClient, text: str, channel: Channel) -> str:
    # Renamed by someone: the channel id (recorded by the receiver) still finds the incident.
    body = slash_body(text, user_id="U0BOB", channel_name="renamed", channel_id=channel.id)
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["text"])


def notes(incident: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["actor"], e["text"]) for e in incident["timeline"] if e["kind"] == "note"]


async def test_url_verification_and_forged_events(router_client: RouterClient,
                                                  aiohttp_server: Any) -> None:
    client = await router(router_client, aiohttp_server, FakeSlack(BOT))
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdx"}).encode()
    resp = await client.post("/slack/events", data=body, headers=signed(body))
    assert resp.status == 200 and (await resp.json()) == {"challenge": "3eZbrw1aBm2rZgRNFdx"}
    forged = {**slack_headers(body, secret="not-the-secret"), "Content-Type": "application/json"}
    assert (await client.post("/slack/events", data=body, headers=forged)).status == 401
    bad = b"{not json"
    assert (await client.post("/slack/events", data=bad, headers=signed(bad))).status == 400


async def test_reaction_and_slash_note_become_timeline_entries(
    router_client: RouterClient, aiohttp_server: Any, tmp_path: Path
) -> None:
    fake = FakeSlack(BOT)
    fake.add_user("U0ALICE")
    client = await router(router_client, aiohttp_server, fake)
    incident = await declare(client, title="Checkout is down", severity="SEV2",
                             commander="alice")
    channel = await opened_channel(fake)
    assert channel.name == incident["channel"].lstrip("#")
    assert "U0ALICE" in channel.members  # the commander, mapped by slack_channels.users

    ts = fake.say(channel.id, "Rolled back deploy 1234, errors dropping", "U0BOB")
    body = event_body(reaction(channel.id, ts))
    resp = await client.post("/slack/events", data=body, headers=signed(body))
    assert resp.status == 200 and (await resp.json())["incident_id"] == incident["id"]
    # Slack retries the event, and another emoji or channel is not a note.
    assert (await client.post("/slack/events", data=body, headers=signed(body))).status == 200
    for other in (reaction(channel.id, ts, "eyes"), reaction("C0OTHER", ts)):
        b = event_body(other)
        answer = await (await client.post("/slack/events", data=b, headers=signed(b))).json()
        assert answer["status"] == "ignored"

    said = await slash(client, 'note "Paged the database team"', channel)
    assert incident["id"] in said and "noted on the timeline (the incident of this channel)" in said
    done = await wait_incident(client, incident["id"], lambda i: len(notes(i)) == 2,
                               "two notes")
    assert notes(done) == [("slack:U0BOB", "Rolled back deploy 1234, errors dropping"),
                           ("slack:U0BOB", "Paged the database team")]


async def test_postmortem_publish_from_slack_and_the_api(
    router_client: RouterClient, aiohttp_server: Any
) -> None:
    fake = FakeSlack(BOT)
    client = await router(router_client, aiohttp_server, fake)
    incident = await declare(client, title="Checkout is down", severity="SEV2")
    channel = await opened_channel(fake)
    path = f"/api/v1/incidents/{incident['id']}/postmortem/publish"
    early = await client.post(path, json={})
    assert early.status == 409
    assert "not resolved yet" in (await early.json())["error"]
    assert "not resolved yet" in await slash(client, "postmortem publish", channel)

    assert (await client.post(f"/api/v1/incidents/{incident['id']}/resolve",
                              json={"message": "rolled back"})).status == 202
    await wait_incident(client, incident["id"], lambda i: i["status"] == "resolved", "resolved")
    said = await slash(client, "postmortem publish", channel)
    assert "publishing the post-mortem" in said

    def posted() -> list[dict[str, Any]]:
        return [m for m in fake.posts_in(channel.id) if "Post-mortem" in str(m.get("text"))]

    (post,) = await wait_until(posted, "the post-mortem in the channel")
    assert f"{incident['id']}" in post["text"] and "Checkout is down" in post["text"]
    done = await wait_incident(client, incident["id"],
                               lambda i: bool(i["details"].get("postmortem_published")),
                               "published")
    assert done["postmortem_done"] is True
    again = await client.post(path, json={"actor": "alice"})
    assert again.status == 409 and "already published" in (await again.json())["error"]
    assert "already published" in await slash(client, "postmortem publish", channel)
