"""Incident channels through the `slack` receiver's bot token (`incidents.slack_channels`).

The engine sends the channel receiver notifications whose `details.channel_op` says what to do
(router.engine.incidents.channel): `open` creates the channel (`conversations.create`; on
`name_taken` the name gets a `-2`, `-3`, ... suffix), invites the people (`conversations.invite`,
one user per call so one who is already in does not fail the rest; e-mail addresses resolved
with `users.lookupByEmail`), posts the summary (`chat.postMessage`) and pins it (`pins.add`);
`summary` edits it (`chat.update`) and invites whoever is new; `archive` archives the channel
(`conversations.archive`); `postmortem` posts the published post-mortem.

Every step is recorded in the delivery records before the next one, under the incident id:
the channel (`channel:<id>`, and `channel-id:<C…>` -> incident for the Events API), each
invitation, the summary's ts and its pin. A retry (a 429 with Retry-After, a crash) continues
where it stopped and never creates a second channel. The bot token never appears in a log or
an error: every error text goes through the receiver's redactor.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from router.delivery.http import Http, Redactor
from router.delivery.receivers.slack_api import escape, web_api
from router.delivery.records import DeliveryStore
from router.delivery.render import first_link, truncate
from router.delivery.result import DeliveryResult
from router.model import Notification

log = logging.getLogger(__name__)

OP = "channel_op"
NAME_LIMIT = 80
MAX_SUFFIX = 20  # name, name-2 ... name-20, then give up (permanent)
MESSAGE_LIMIT = 39_000
# Invitations Slack refuses for the person (a wrong id in `users`, a guest account): logged
# and skipped, so one person cannot keep the summary from being posted.
UNINVITABLE = {"user_not_found", "cant_invite", "user_is_restricted",
               "user_is_ultra_restricted"}
# Answers that mean the step is already done.
DONE = {
    "conversations.invite": {"already_in_channel", "cant_invite_self"},
    "pins.add": {"already_pinned"},
    "conversations.archive": {"already_archived"},
}


def channel_name(wanted: str, suffix: int = 1) -> str:
    """Slack's rules: lowercase letters, digits, hyphens and underscores, at most 80 chars;
    `suffix` > 1 is appended (`-2`) within the limit."""
    base = re.sub(r"[^a-z0-9_-]+", "-", wanted.lower().lstrip("#")).strip("-") or "incident"
    tail = f"-{suffix}" if suffix > 1 else ""
    return base[:NAME_LIMIT - len(tail)].rstrip("-") + tail


def _when(value: str) -> str:
    """An ISO time as people read it in the channel (`2026-12-05 16:26 UTC`)."""
    try:
        return f"{datetime.fromisoformat(value).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return value


def summary_text(n: Notification, status_page_url: str | None) -> str:
    """The pinned summary (mrkdwn; every value escaped)."""
    d = n.details
    lines = [f"*{escape(str(d.get('incident_id') or n.incident_id))}* "
             f"[{n.severity.value}] {escape(n.title)}",
             f"*Status:* {escape(str(d.get('status', '')))}",
             f"*Commander:* {escape(str(d.get('commander') or 'unassigned'))}"]
    if d.get("comms_lead"):
        lines.append(f"*Communications lead:* {escape(str(d['comms_lead']))}")
    if d.get("acknowledged_by"):
        lines.append(f"*Acknowledged by:* {escape(str(d['acknowledged_by']))}")
    runbook = first_link(n, "runbook_url")
    lines.append(f"*Runbook:* {escape(runbook)}" if runbook else "*Runbook:* none linked")
    if d.get("on_statuspage") and status_page_url:
        lines.append(f"*Status page:* {escape(status_page_url)}")
    if d.get("next_update"):
        lines.append(f"*Next update:* by {escape(_when(str(d['next_update'])))}")
    if d.get("latest_update"):
        lines.append(f"*Latest update:* {escape(str(d['latest_update']))}")
    if d.get("postmortem_url"):
        lines.append(f"*Post-mortem:* {escape(str(d['postmortem_url']))}")
    elif d.get("postmortem_published"):
        lines.append(f"*Post-mortem:* published {escape(str(d['postmortem_published']))}")
    return truncate("\n".join(lines), 3000)


class ChannelOps:
    """The incident-channel side of one `slack` receiver (bot mode)."""

    def __init__(self, name: str, http: Http, api_url: str, token: SecretStr,
                 store: DeliveryStore, redact: Redactor,
                 status_page_url: str | None = None) -> None:
        self._name = name
        self._http = http
        self._api_url = api_url
        self._token = token
        self._store = store
        self._redact = redact
        self._status_page_url = status_page_url

    async def _call(self, method: str, body: dict[str, Any], *,
                    form: bool = False) -> tuple[DeliveryResult, Any]:
        result, data = await web_api(self._http, self._api_url, self._token, method, body,
                                     self._redact, form=form)
        if not result.ok and result.detail in DONE.get(method, set()):
            return DeliveryResult.delivered(result.status), {}
        return result, data

    async def send(self, n: Notification) -> DeliveryResult:
        op = str(n.details.get(OP))
        incident = n.incident_id or n.group_key
        channel = await self._store.get_ref(self._name, f"channel:{incident}")
        if op == "open":
            if channel is None:
                result, channel = await self._create(n, incident)
                if channel is None:
                    return result
            return await self._fill(n, incident, channel["id"])
        if channel is None:  # never created (or below min_severity): nothing to do
            return DeliveryResult.delivered()
        if op == "summary":
            return await self._fill(n, incident, channel["id"])
        if op == "archive":
            result, _ = await self._call("conversations.archive", {"channel": channel["id"]})
            return result
        if op == "postmortem":
            text = truncate(str(n.details.get("postmortem_text") or ""), MESSAGE_LIMIT)
            result, _ = await self._call("chat.postMessage", {
                "channel": channel["id"], "text": text, "unfurl_links": False})
            return result
        return DeliveryResult.failed("vendor_error", retryable=False,
                                     detail=f"unknown channel_op {op!r}")

    async def _create(self, n: Notification,
                      incident: str) -> tuple[DeliveryResult, dict[str, str] | None]:
        wanted = str(n.details.get("channel_name") or incident)
        private = bool(n.details.get("private"))
        for suffix in range(1, MAX_SUFFIX + 1):
            name = channel_name(wanted, suffix)
            result, data = await self._call("conversations.create",
                                            {"name": name, "is_private": private})
            if result.ok:
                info = data.get("channel") if isinstance(data, dict) else None
                cid = str(info.get("id", "")) if isinstance(info, dict) else ""
                if not cid:
                    return DeliveryResult.failed("server_error", retryable=True,
                                                 detail="no channel id in the answer"), None
                ref = {"id": cid, "name": str(info.get("name") or name)}  # type: ignore[union-attr]
                await self._store.put_ref(self._name, f"channel:{incident}", ref)
                await self._store.put_ref(self._name, f"channel-id:{cid}",
                                          {"incident_id": incident, "group_key": n.group_key})
                return result, ref
            if result.detail != "name_taken":
                return result, None
        return DeliveryResult.failed("vendor_error", retryable=False,
                                     detail=f"name_taken for {MAX_SUFFIX} names"), None

    async def _fill(self, n: Notification, incident: str, cid: str) -> DeliveryResult:
        """Invite whoever is not in yet, then post and pin (or edit) the summary."""
        for user in [str(u) for u in n.details.get("invite") or []]:
            key = f"invited:{incident}:{user}"
            if await self._store.get_ref(self._name, key) is not None:
                continue
            uid: str | None = user
            if "@" in user:
                result, data = await self._call("users.lookupByEmail", {"email": user},
                                                form=True)
                if not result.ok and result.detail != "users_not_found":
                    return result
                found = data.get("user") if isinstance(data, dict) else None
                uid = str(found.get("id")) if isinstance(found, dict) else None
                if uid is None:
                    # The address itself stays out of the log (personal data).
                    log.warning("incident %s: an invitee's e-mail matches no Slack user "
                                "(users_not_found)", incident)
            if uid is not None:
                result, _ = await self._call("conversations.invite",
                                             {"channel": cid, "users": uid})
                if not result.ok and result.detail in UNINVITABLE:
                    log.warning("incident %s: Slack refused to invite %s: %s", incident, uid,
                                result.detail)
                elif not result.ok:
                    return result
            await self._store.put_ref(self._name, key, {"id": uid or ""})
        text = summary_text(n, self._status_page_url)
        summary = await self._store.get_ref(self._name, f"channel-summary:{incident}")
        if summary is None:
            result, data = await self._call("chat.postMessage", {
                "channel": cid, "text": text, "unfurl_links": False})
            if not result.ok:
                return result
            summary = {"ts": str(data.get("ts", ""))}
            await self._store.put_ref(self._name, f"channel-summary:{incident}", summary)
        elif n.details.get(OP) == "summary":
            result, _ = await self._call("chat.update",
                                         {"channel": cid, "ts": summary["ts"], "text": text})
            if not result.ok:
                return result
        if await self._store.get_ref(self._name, f"channel-pin:{incident}") is None:
            result, _ = await self._call("pins.add", {"channel": cid, "timestamp": summary["ts"]})
            if not result.ok:
                return result
            await self._store.put_ref(self._name, f"channel-pin:{incident}", {"ts": summary["ts"]})
        return DeliveryResult.delivered()
