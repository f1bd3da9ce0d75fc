"""GET /api/v1/oncall: who is on call per schedule, now or at a given time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RouterClient
from tests.incidentkit import AUTH, TOKEN

ONCALL: dict[str, Any] = {
    "oncall": {
        "schedules": [
            {"name": "primary", "time_zone": "Europe/Berlin", "rotation": "weekly",
             "users": ["alice", "bob"], "start": "2026-01-05T09:00:00",
             "overrides": [{"user": "carol", "start": "2026-01-20T00:00:00+01:00",
                            "end": "2026-01-21T00:00:00+01:00"}]},
            {"name": "managers", "rotation": "daily", "users": ["mgr1", "mgr2"],
             "start": "2026-01-05T00:00:00"},
        ],
        "escalation_policies": [
            {"name": "checkout", "levels": [
                {"targets": [{"schedule": "primary"}], "delay": "15m"},
                {"targets": [{"schedule": "managers"}, {"user": "dave"}], "delay": "15m"},
            ]},
        ],
        "services": {"checkout": {"escalation_policy": "checkout", "team": "payments"}},
    },
}


@pytest.mark.parametrize(
    ("at", "primary", "managers"),
    [
        ("2026-01-05T08:00:00Z", "alice", "mgr1"),  # 09:00 Berlin: the first hand-off
        ("2026-01-12T07:59:59Z", "alice", "mgr2"),  # one second before the weekly hand-off
        ("2026-01-12T08:00:00Z", "bob", "mgr2"),  # at the hand-off the incoming person
        ("2026-01-12T09:00:00+01:00", "bob", "mgr2"),  # the same instant, other offset
        ("2026-01-20T12:00:00Z", "carol", "mgr2"),  # override wins
    ],
)
async def test_who_is_on_call_at_a_given_time(router_client: RouterClient, at: str,
                                              primary: str, managers: str) -> None:
    client = await router_client(ONCALL)
    resp = await client.get("/api/v1/oncall", params={"at": at})
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    users = {s["schedule"]: s["user"] for s in data["schedules"]}
    assert users == {"primary": primary, "managers": managers}
    [policy] = data["escalation_policies"]
    assert [lv["users"] for lv in policy["levels"]] == [[primary], [managers, "dave"]]
    assert [lv["delay_seconds"] for lv in policy["levels"]] == [900, 900]


async def test_the_answer_says_until_when(router_client: RouterClient) -> None:
    client = await router_client(ONCALL)
    resp = await client.get("/api/v1/oncall", params={"at": "2026-01-06T12:00:00Z"})
    primary = (await resp.json())["data"]["schedules"][0]
    assert primary == {"schedule": "primary", "user": "alice", "time_zone": "Europe/Berlin",
                       "until": "2026-01-12T08:00:00Z"}


async def test_now_by_default(router_client: RouterClient) -> None:
    client = await router_client(ONCALL)
    resp = await client.get("/api/v1/oncall")
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert {s["schedule"] for s in data["schedules"]} == {"primary", "managers"}


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("2026-01-05T09:00:00", "has no time zone offset"),
        ("yesterday", "is not an RFC 3339 time"),
    ],
)
async def test_a_bad_time_is_a_400_that_says_why(router_client: RouterClient, at: str,
                                                 message: str) -> None:
    client = await router_client(ONCALL)
    resp = await client.get("/api/v1/oncall", params={"at": at})
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_tokens_protect_the_oncall_api(router_client: RouterClient) -> None:
    client = await router_client({**ONCALL, "api": {"tokens": [TOKEN]}})
    assert (await client.get("/api/v1/oncall")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.get("/api/v1/oncall", headers=wrong)).status == 401
    assert (await client.get("/api/v1/oncall", headers=AUTH)).status == 200


async def test_no_schedules_is_an_empty_answer(router_client: RouterClient) -> None:
    client = await router_client()
    data = (await (await client.get("/api/v1/oncall")).json())["data"]
    assert data["schedules"] == [] and data["escalation_policies"] == []
