"""No secret in any log line, DLQ reason, delivery result or metric, on any path.

Every receiver is driven through success, 5xx, 429, a 400 that goes to the DLQ, replay, and
a dead host; the fakes echo the secrets back in their error bodies, as careless vendors do.
"""

from __future__ import annotations

import base64
import logging
import socket

import pytest
from prometheus_client import generate_latest

from router.delivery.outbox import MemoryOutbox
from router.model import NotificationKind
from tests.fakes.alertapi import FakeAlertApi
from tests.fakes.base import FakeVendor
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import WEBHOOK_PATH, FakeSlack
from tests.fakes.statuspage import FakeStatuspage
from tests.fakes.teams import PATH as TEAMS_PATH
from tests.fakes.teams import FakeTeams
from tests.fakes.webhook import PATH as HOOK_PATH
from tests.fakes.webhook import FakeWebhookConsumer
from tests.unit.delivery.conftest import FAST_RETRY, Build, Serve, notification, receiver_config

PD_KEY = "PDROUTINGKEY0123456789abcdef0123"
GENIE = "genie-key-aaaa-bbbb-cccc-dddddddddddd"
JSM_KEY = "jsm-key-1111-2222-3333-444444444444"
BOT = "xoxb-9999-8888-BOTTOKENSECRET"
SIG = "TeamsSasSignatureSecret0123456789"
HOOK_TOKEN = "hooktokensecret0123"
WHSEC = "whsec_" + base64.b64encode(b"secret-bytes-secret-bytes-32byt").decode()
SP_KEY = "statuspage-oauth-key-5555666677778888"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_secret_leaks_on_any_path(
    serve: Serve, harness: Build, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pd, og, jsm = FakePagerDuty(PD_KEY), FakeAlertApi(GENIE), FakeAlertApi(
        JSM_KEY, prefix="/jsm/ops/integration/v2/alerts")
    slack_hook, slack_bot, teams = FakeSlack(), FakeSlack(BOT), FakeTeams(SIG)
    hook, sp = FakeWebhookConsumer(WHSEC), FakeStatuspage(SP_KEY, "pg1")
    urls = {name: await serve(f.app()) for name, f in {
        "pd": pd, "og": og, "jsm": jsm, "slack_hook": slack_hook, "slack_bot": slack_bot,
        "teams": teams, "hook": hook, "sp": sp}.items()}
    slack_webhook_url = f"{urls['slack_hook']}{WEBHOOK_PATH}"
    teams_url = f"{urls['teams']}{TEAMS_PATH}?api-version=2016-06-01&sv=1.0&sig={SIG}"
    hook_url = f"{urls['hook']}{HOOK_PATH}?token={HOOK_TOKEN}"
    dead_url = f"http://127.0.0.1:{free_port()}/services/T1/B1/DEADHOOKSECRET0123"
    secrets = [PD_KEY, GENIE, JSM_KEY, BOT, SIG, HOOK_TOKEN, WHSEC, SP_KEY, slack_webhook_url,
               WEBHOOK_PATH, teams_url, hook_url, dead_url, "DEADHOOKSECRET0123",
               "XXXXSECRETXXXX", WHSEC.removeprefix("whsec_")]

    retry = {**FAST_RETRY, "max_attempts": 3}
    fast = {"per_second": 0}
    configs = [
        receiver_config(type="pagerduty", name="pd", routing_key=PD_KEY,
                        url=f"{urls['pd']}/v2/enqueue", retry=retry, rate_limit=fast),
        receiver_config(type="opsgenie", name="og", api_key=GENIE, api_url=urls["og"],
                        retry=retry, rate_limit=fast),
        receiver_config(type="jsm", name="jsm", api_key=JSM_KEY, api_url=urls["jsm"],
                        retry=retry, rate_limit=fast),
        receiver_config(type="slack", name="slack_hook", webhook_url=slack_webhook_url,
                        retry=retry, rate_limit=fast),
        receiver_config(type="slack", name="slack_bot", bot_token=BOT, channel="C1",
                        api_url=f"{urls['slack_bot']}/api", retry=retry, rate_limit=fast),
        receiver_config(type="teams", name="teams", webhook_url=teams_url, retry=retry,
                        rate_limit=fast),
        receiver_config(type="webhook", name="hook", url=hook_url, secrets=[WHSEC],
                        retry=retry, rate_limit=fast),
        receiver_config(type="statuspage", name="sp", page_id="pg1", api_key=SP_KEY,
                        api_url=f"{urls['sp']}/v1", retry=retry, rate_limit=fast),
        receiver_config(type="slack", name="dead", webhook_url=dead_url, retry=retry,
                        rate_limit=fast),
    ]
    # Each fake echoes its own receiver's secrets back in its error bodies.
    own: dict[FakeVendor, list[str]] = {
        pd: [PD_KEY], og: [GENIE], jsm: [JSM_KEY], slack_bot: [BOT],
        slack_hook: [slack_webhook_url, WEBHOOK_PATH, "XXXXSECRETXXXX"],
        teams: [teams_url, SIG], hook: [hook_url, HOOK_TOKEN, WHSEC], sp: [SP_KEY],
    }
    fakes = list(own)
    for f, mine in own.items():
        echo = " ".join(mine)
        f.fail(500, body=f"oops {echo}")
        f.fail(429, headers={"Retry-After": "0"}, body=f"slow down {echo}")
        f.fail(400, body=f"bad request {echo}")
    slack_bot.fail(200, body='{"ok":false,"error":"invalid_auth ' + BOT + '"}')

    outbox = MemoryOutbox()
    h = await harness(*configs, outbox=outbox)
    for c in configs:
        h.add(notification(receiver=c.name, group="a"),
              notification(receiver=c.name, group="b"),
              notification(NotificationKind.RESOLVE, receiver=c.name, group="b"))
    await h.dispatcher.wait_idle()
    dead_letters = await outbox.list()
    assert {d.receiver for d in dead_letters} == {c.name for c in configs}

    for f in fakes:
        f.heal()
    await h.dispatcher.replay()
    await h.dispatcher.wait_idle()

    text = "\n".join([
        caplog.text,
        *(r.getMessage() for r in caplog.records),
        *(d.reason for d in dead_letters),
        *(d.model_dump_json() for d in await outbox.list()),
        generate_latest(h.registry).decode(),
        *(repr(c) for c in configs), *(str(c) for c in configs),
    ])
    assert "dead-lettered" in caplog.text and "retrying" in caplog.text
    # The receiver and the notification are structured fields of the line, not only its text.
    dead = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert dead and all(getattr(r, "receiver", None) and getattr(r, "notification_id", None)
                        for r in dead)
    leaked = [s for s in secrets if s in text]
    assert leaked == []
    # Only the dead host is left in the DLQ after the replay.
    assert {d.receiver for d in await outbox.list()} == {"dead"}
