"""The console's silences, maintenance windows, "why it is quiet" and the rendered post-mortem,
over HTTP: a silence made here is the one Alertmanager's API (amtool) sees, and mutes the alert."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from router.api.keys import BACKEND
from router.noise.matchers import parse_matchers
from router.ui.matching import label_test, narrowing
from tests.conftest import RouterClient, read_testdata
from tests.ui.test_guard import RO, RW, TOKENS, log_in

AUTH = {"Authorization": f"Bearer {RW}"}


async def firing_alert(client: TestClient) -> str:
    """Post Alertmanager's DiskFull alerts (db-1, db-2); the key of db-1's."""
    resp = await client.post("/webhooks/alertmanager", headers=AUTH,
                             data=read_testdata("alertmanager", "firing.json"))
    assert resp.status == 200, await resp.text()
    await client.server.app[BACKEND].engine.drained()
    alerts = await client.server.app[BACKEND].current_alerts(limit=10)
    return next(a.key for a in alerts if a.labels.get("instance") == "db-1")


async def api_silences(client: TestClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/v2/silences", headers=AUTH)
    assert resp.status == 200
    found: list[dict[str, Any]] = await resp.json()
    return found


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.mark.parametrize(("matchers", "labels"), [
    ('alertname="DiskFull", instance=~"db-.*"', (("alertname", "DiskFull"),)),
    ('env="prod", team="db"', (("env", "prod"), ("team", "db"))),
    ('instance!="db-1", env=~"prod|stage"', ()),  # nothing the store can narrow by
    ('env=""', ()),  # matches a missing label too
])
def test_a_preview_asks_the_store_for_the_alerts_the_equality_matchers_allow(
        matchers: str, labels: tuple[tuple[str, str], ...]) -> None:
    narrow = narrowing(parse_matchers(matchers))
    assert (narrow.status, narrow.labels) == ("firing", labels)


@pytest.mark.parametrize("matchers", [
    'service=~"api.*"', 'alertname!~"Watchdog"', 'env=~"prod|stage", service!="api-2"',
    'env=""', 'team=~"", service=~"api-1|web"', 'nothing!~"x"',
])
def test_the_preview_s_label_test_answers_as_the_matchers_do(matchers: str) -> None:
    parsed = parse_matchers(matchers)
    test = label_test(parsed)
    label_sets = [{"alertname": a, "service": s, **({"env": e} if e else {})}
                  for a in ("Watchdog", "Up") for s in ("api-1", "api-2", "web")
                  for e in ("prod", "stage", "")]
    for labels in [*label_sets, *label_sets]:  # the second time from what it remembered
        assert test(labels) == parsed.matches(labels), labels


async def test_silence_an_alert_from_its_page_then_expire_it(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    key = await firing_alert(client)
    csrf = await log_in(client)
    page = await (await client.get(f"/ui/alerts/{key}")).text()
    assert "Not quiet" in text(page)
    assert f'href="/ui/silences/new?alert={key.replace(":", "%3A")}"' in page

    form = await (await client.get("/ui/silences/new", params={"alert": key})).text()
    prefilled = unescape(re.search(r'<textarea id="s-matchers"[^>]*>([^<]*)<', form)[1])
    assert prefilled.splitlines() == ['alertname="DiskFull"', 'instance="db-1"',
                                      'severity="warning"', 'team="db"']

    both = {"csrf": csrf, "matchers": 'alertname="DiskFull"\ninstance=~"db-.*"',
            "hours": "2", "comment": "replacing the disk"}
    preview = text(await (await client.post("/ui/silences/preview", data=both)).text())
    assert "Would silence 2 firing alerts" in preview and "DiskFull" in preview
    fields = {**both, "matchers": 'alertname="DiskFull"\ninstance="db-1"'}
    preview = text(await (await client.post("/ui/silences/preview", data=fields)).text())
    assert "Would silence 1 firing alert " in preview
    nothing = {**fields, "matchers": 'alertname="Other"'}
    assert "Would silence 0 firing alerts" in text(
        await (await client.post("/ui/silences/preview", data=nothing)).text())
    assert await api_silences(client) == []  # a preview stores nothing

    resp = await client.post("/ui/silences", data=fields, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    ident = resp.headers["Location"].rsplit("id=", 1)[1]
    [stored] = await api_silences(client)
    assert stored["id"] == ident and stored["status"]["state"] == "active"
    assert stored["createdBy"] == "console:alice" and stored["comment"] == "replacing the disk"
    assert [m["name"] for m in stored["matchers"]] == ["alertname", "instance"]
    ends = datetime.fromisoformat(stored["endsAt"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < ends - datetime.now(UTC) <= timedelta(hours=2)

    page = text(await (await client.get(f"/ui/alerts/{key}")).text())
    assert f"silenced by silence {ident}" in page
    rows = re.findall(r"<tr class=\"firing\">(.*?)</tr>",
                      await (await client.get("/ui/alerts/rows")).text(), re.S)
    marks = {"95% full" in r: "quiet-mark" in r for r in rows}  # the list marks db-1 only
    assert marks == {True: True, False: False}, rows
    listing = await (await client.get("/ui/silences")).text()
    assert f'id="s-{ident}"' in listing.split('id="pending-h"')[0]  # under Active

    resp = await client.post(f"/ui/silences/{ident}/expire", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    [stored] = await api_silences(client)
    assert stored["status"]["state"] == "expired"
    assert "Not quiet" in text(await (await client.get(f"/ui/alerts/{key}")).text())
    listing = await (await client.get("/ui/silences")).text()
    assert f'id="s-{ident}"' in listing.split('id="expired-h"')[1]


async def test_only_regex_matchers_preview_every_firing_alert_they_match(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    await firing_alert(client)
    csrf = await log_in(client)
    cases = {'instance=~"db-.*"': "Would silence 2 firing alerts",
             'instance=~"db-2|web-1"': "Would silence 1 firing alert ",
             'alertname!~"DiskFull"': "Would silence 0 firing alerts",
             'severity=~"warn.*"\ninstance!="db-2"': "Would silence 1 firing alert "}
    for matchers, expect in cases.items():
        resp = await client.post("/ui/silences/preview", data={
            "csrf": csrf, "matchers": matchers, "hours": "1", "comment": "x"})
        assert resp.status == 200 and expect in text(await resp.text()), matchers


def am(fingerprint: str, hours: tuple[int, int | None] = (13, None),
       **labels: str) -> dict[str, Any]:
    """An Alertmanager alert from `hours[0]` o'clock, resolved at `hours[1]` if given."""
    start, end = hours
    return {"status": "firing" if end is None else "resolved", "labels": labels,
            "annotations": {}, "fingerprint": fingerprint,
            "startsAt": f"2026-11-27T{start}:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if end is None else f"2026-11-27T{end}:00:00Z"}


async def fire(client: TestClient, *alerts: dict[str, Any]) -> None:
    resp = await client.post("/webhooks/alertmanager", headers=AUTH, json={
        "version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
        "alerts": list(alerts)})
    assert resp.status == 200, await resp.text()
    await client.server.app[BACKEND].engine.drained()


async def test_an_alert_page_names_the_firing_alert_that_inhibits_it(
        router_client: RouterClient) -> None:
    client = await router_client({**TOKENS, "inhibit_rules": [
        {"source_matchers": ['alertname="NodeDown"'], "target_matchers": ['alertname="DiskFull"'],
         "equal": ["instance"]},
        {"source_matchers": ['severity=~"crit.*"'],  # no equality: the store tests labels
         "target_matchers": ['alertname="DiskFull"'], "equal": ["team"]}]})
    db1 = await firing_alert(client)
    db2 = db1.replace("1a30ba71cca2921f", "2b41cb82ddb3a320")
    await log_in(client)

    async def why(key: str) -> str:
        page = text(await (await client.get(f"/ui/alerts/{key}")).text())
        api = await client.get("/api/v2/alerts", headers=AUTH)
        by_api = {a["fingerprint"]: a["status"]["inhibitedBy"] for a in await api.json()}
        found = re.search(r"inhibited by the firing alert (\S+)", page)
        # The page's answer is the API's, which looks at every firing alert.
        assert by_api[key.split(":", 1)[1]] == ([found[1]] if found else []), page
        return found[1] if found else ("Not quiet" if "Not quiet" in page else page)

    await fire(client, am("down2", alertname="NodeDown", instance="db-2"),
               am("critweb", alertname="Outage", severity="critical", team="web"),
               am("critdb", (11, 12), alertname="Outage", severity="critical", team="db"))
    assert (await why(db1), await why(db2)) == ("Not quiet", "down2")
    await fire(client, am("critdb", alertname="Outage", severity="critical", team="db"))
    assert (await why(db1), await why(db2)) == ("critdb", "down2")  # the first rule first
    # The list marks them from the alerts it shows; the DiskFull alerts in a batch of their
    # own, with a silence that could mute them by their severity but does not.
    resp = await client.post("/api/v2/silences", headers=AUTH, json={
        "matchers": [{"name": "severity", "value": "warning", "isRegex": False},
                     {"name": "team", "value": "db", "isRegex": False, "isEqual": False}],
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "createdBy": "amtool", "comment": "not DiskFull"})
    assert resp.status == 200
    await client.server.app[BACKEND].engine.drained()
    rows = re.findall(r'<tr class="firing">(.*?)</tr>',
                      await (await client.get("/ui/alerts/rows")).text(), re.S)
    marks = sorted((re.search(r">(\w+)</a>", r)[1],  # type: ignore[index]
                    m[1] if (m := re.search(r'quiet-mark">(\w+)<', r)) else "") for r in rows)
    assert marks == [("DiskFull", "inhibited"), ("DiskFull", "inhibited"), ("NodeDown", ""),
                     ("Outage", ""), ("Outage", "")]
    await fire(client, am("down2", (13, 14), alertname="NodeDown", instance="db-2"))
    assert (await why(db1), await why(db2)) == ("critdb", "critdb")


async def test_a_bad_silence_is_refused_with_the_reason(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    csrf = await log_in(client)
    cases = {
        'env="prod"\nnot a matcher': "matcher on line 2: bad matcher format: not a matcher",
        'env=~".*"': "at least one matcher must not match the empty string",
        'instance=~"("': "matcher on line 1:",
        "\n": "matchers:",
    }
    for matchers, reason in cases.items():
        resp = await client.post("/ui/silences", data={"csrf": csrf, "matchers": matchers,
                                                       "hours": "1", "comment": "x"})
        assert resp.status == 400, matchers
        assert reason in text(await resp.text()), (matchers, text(await resp.text()))
    resp = await client.post("/ui/silences", data={"csrf": csrf, "matchers": 'a="b"',
                                                   "hours": "0", "comment": ""})
    assert resp.status == 400
    page = text(await resp.text())
    assert "hours: Input should be greater than 0" in page and "comment:" in page
    assert await api_silences(client) == []


async def test_a_read_only_login_previews_but_cannot_silence_or_expire(
        router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    await firing_alert(client)
    resp = await client.post("/api/v2/silences", headers=AUTH, json={
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False}],
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "createdBy": "amtool", "comment": "from amtool"})
    ident = (await resp.json())["silenceID"]
    csrf = await log_in(client, RO)
    listing = await (await client.get("/ui/silences")).text()
    assert "from amtool" in listing and 'class="expire"' not in listing
    assert "New silence" not in listing
    fields = {"csrf": csrf, "matchers": 'alertname="DiskFull"', "hours": "1", "comment": "x"}
    preview = await client.post("/ui/silences/preview", data=fields)
    assert preview.status == 200 and "Would silence 2 firing alerts" in text(await preview.text())
    assert (await client.post("/ui/silences", data=fields)).status == 403
    assert (await client.post(f"/ui/silences/{ident}/expire", data={"csrf": csrf})).status == 403
    # and without the CSRF token, not even a read-write login
    await log_in(client)
    assert (await client.post(f"/ui/silences/{ident}/expire", data={})).status == 403
    assert [s["status"]["state"] for s in await api_silences(client)] == ["active"]


async def test_maintenance_windows_are_listed_open_or_not(router_client: RouterClient) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client = await router_client({**TOKENS, "maintenance_windows": [
        {"name": "db-patching", "matchers": ['team="db"'],
         "start": (now - timedelta(hours=1)).isoformat(),
         "end": (now + timedelta(hours=1)).isoformat()},
        {"name": "sunday-batch", "matchers": ['team="data"'], "cron": "0 2 * * sun",
         "duration": "2h", "after": "drop"},
    ]})
    key = await firing_alert(client)  # team="db": inside db-patching
    await log_in(client)
    rows = re.findall(r"<tr>(.*?)</tr>", (await (await client.get("/ui/silences")).text())
                      .split("<tbody>")[-1], re.S)
    patching, batch = (text(r) for r in rows)
    assert "db-patching" in patching and "open until" in patching
    assert "sunday-batch" in batch and "closed" in batch and "0 2 * * sun" in batch
    assert "drop" in batch
    page = text(await (await client.get(f"/ui/alerts/{key}")).text())
    assert "maintenance in maintenance window db-patching" in page


async def test_the_post_mortem_is_rendered_and_sanitised(router_client: RouterClient) -> None:
    client = await router_client(TOKENS)
    resp = await client.post("/api/v1/incidents", headers=AUTH, json={
        "title": "Checkout <script>alert(1)</script> down", "severity": "SEV2"})
    ident = (await resp.json())["data"]["id"]
    await client.server.app[BACKEND].engine.drained()
    await log_in(client)
    page = await (await client.get(f"/ui/incidents/{ident}/postmortem")).text()
    article = page.split('id="postmortem-text">')[1].split("</article>")[0]
    assert "<h1>Post-mortem: Checkout" in article and "<h2>Timeline</h2>" in article
    assert "<table>" in article and "<th>Severity</th>" in article
    assert "<script>" not in page.replace('<script src="/ui/static/console.js', "")
    download = await client.get(f"/ui/incidents/{ident}/postmortem.md")
    assert download.headers["Content-Type"].startswith("text/markdown")
    assert (await download.text()).startswith("# Post-mortem: Checkout <script>")


