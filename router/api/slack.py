"""Slack app endpoints: `/incident` slash commands, the Acknowledge / Resolve buttons, and
the Events API (`reaction_added` with the note emoji in an incident channel: a timeline note).

Each request is checked against the app's signing secret on the raw body (stale or forged: 401
and nothing changes), then answered at once, well inside Slack's 3 seconds: a mutating command is
appended to the log as a `CommandEvent` (the engine applies it and the incident's Slack thread
shows the result) and the answer only says what was accepted. A command without an incident id
acts on the incident whose channel it was typed in, else on the most recent open incident, and
the answer says which one it picked.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal
from uuid import uuid4

import orjson
from aiohttp import web

from router.api.incidents import (
    LOOKUP_LIMIT,
    OPEN,
    append,
    command,
    find_incident,
    is_open,
    publish_args,
    publish_refusal,
    resolve_page_target,
)
from router.api.keys import BACKEND, HTTP, RUNTIME
from router.api.webhooks import error_response, json_response, read_body
from router.backends.base import Backend
from router.commands import (
    USAGE,
    AckCommand,
    ActionCommand,
    CommandError,
    CreateCommand,
    HelpCommand,
    Interaction,
    LeadCommand,
    NoteCommand,
    PageCommand,
    PostmortemPublishCommand,
    ResolveCommand,
    StatusCommand,
    UpdateCommand,
    parse_command,
    parse_interaction,
    parse_slash_request,
)
from router.config import Config, SlackAppConfig
from router.delivery.http import Http, Redactor
from router.delivery.receivers.slack import SlackConfig
from router.delivery.receivers.slack_api import escape, web_api
from router.incidents import Command, Incident, TimelineKind
from router.signatures import verify_slack
from router.sources.base import Rejected

log = logging.getLogger(__name__)

ResponseType = Literal["ephemeral", "in_channel"]


def reply(text: str, response_type: ResponseType = "ephemeral") -> web.Response:
    return json_response(200, {"response_type": response_type, "text": text})


async def _verified(request: web.Request) -> tuple[Config, SlackAppConfig, bytes] | web.Response:
    config = request.app[RUNTIME].snapshot.config
    if config.slack is None:
        return error_response(404, "the Slack app is not configured (slack.signing_secret)")
    try:
        body = await read_body(request, config.server.max_body_bytes)
        verify_slack(config.slack.signing_secret.get_secret_value(), request.headers, body,
                     time.time())
    except Rejected as exc:
        log.info("Slack request refused: %s", exc.message)
        return error_response(exc.status, exc.message)
    return config, config.slack, body


def _allowed(slack: SlackAppConfig, user_id: str, user_name: str | None) -> bool:
    users = slack.allowed_users
    return not users or user_id in users or (user_name is not None and user_name in users)


def _label(incident: Incident) -> str:
    return f"{incident.id} ({escape(incident.title)})"


# --- which incident ----------------------------------------------------------------------------


async def channel_incident(backend: Backend, config: Config,
                           channel_id: str | None) -> Incident | None:
    """The incident whose channel (incidents.slack_channels) has this Slack id: the channel
    receiver recorded it when it created the channel."""
    channels = config.incidents.slack_channels
    if channels is None or not channel_id:
        return None
    ref = await backend.records.get_ref(channels.receiver, f"channel-id:{channel_id}")
    return await find_incident(backend, ref["incident_id"]) if ref else None


async def pick_incident(backend: Backend, ref: str | None, channel_name: str | None,
                        config: Config | None = None,
                        channel_id: str | None = None) -> tuple[Incident | None, str]:
    """The incident a command is about, and how it was picked (for the answer)."""
    if ref is not None:
        found = await find_incident(backend, ref)
        return found, f"no incident {escape(ref)}" if found is None else "named in the command"
    if config is not None and (by_id := await channel_incident(backend, config,
                                                              channel_id)) is not None:
        return by_id, "the incident of this channel"
    if channel_name:
        name = channel_name.lstrip("#")
        for i in await backend.incidents(limit=LOOKUP_LIMIT):
            if i.channel.lstrip("#") == name:
                return i, "the incident of this channel"
    open_ = await backend.incidents(status=OPEN, limit=1)  # newest first
    if not open_:
        return None, "no open incident; name one with its id (INC-YYYYMMDD-N)"
    return open_[0], "the most recent open incident (this channel is no incident's channel)"


def status_text(incident: Incident) -> str:
    lines = [
        f"*{incident.id}* [{incident.severity.value}] {escape(incident.title)}",
        f"Status: {incident.status.value}",
        f"Commander: {escape(incident.commander or 'unassigned')}",
        f"Channel: {escape(incident.channel)}",
        f"Opened: {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if incident.acknowledged_at is not None:
        lines.append(f"Acknowledged: {incident.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC")
    elif incident.escalation_level is not None:
        lines.append(f"Not acknowledged; paging escalation level {incident.escalation_level + 1}")
    if incident.resolved_at is not None:
        lines.append(f"Resolved: {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
    updates = [e for e in incident.timeline if e.kind is TimelineKind.STATUS_UPDATE]
    if updates:
        lines.append(f"Latest update: {escape(updates[-1].text)}")
    return "\n".join(lines)


# --- slash commands ----------------------------------------------------------------------------


async def commands(request: web.Request) -> web.Response:
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    config, slack, body = checked
    try:
        slash = parse_slash_request(body)
    except Rejected as exc:
        return error_response(exc.status, exc.message)
    if not _allowed(slack, slash.user_id, slash.user_name):
        return reply("You are not allowed to run /incident commands (slack.allowed_users).")
    try:
        cmd = parse_command(slash.text)
    except CommandError as exc:
        return reply(escape(exc.message))
    if isinstance(cmd, HelpCommand):
        return reply(escape(USAGE))
    backend = request.app[BACKEND]
    actor = f"slack:{slash.user_id}"

    if isinstance(cmd, CreateCommand):
        group_key = f"manual:{uuid4().hex}"
        event = command(Command.DECLARE, None, actor,
                        {"title": cmd.title, "severity": cmd.severity.value},
                        group_key=group_key)
        if (await append(backend, [event])) is not None:
            return _unavailable()
        return reply(f"<@{slash.user_id}> declared a {cmd.severity.value} incident: "
                     f"{escape(cmd.title)}. It opens in a moment with its own channel name "
                     "and thread.", "in_channel")

    incident, how = await pick_incident(backend, cmd.incident, slash.channel_name, config,
                                        slash.channel_id)
    if incident is None:
        return reply(f"Nothing to act on: {how}.")
    if isinstance(cmd, StatusCommand):
        return reply(f"{status_text(incident)}\n_({how})_")
    after = (ActionCommand, NoteCommand, PostmortemPublishCommand)  # post-mortems come after
    if not is_open(incident) and not isinstance(cmd, after):
        return reply(f"{_label(incident)} is already resolved ({how}).")
    if isinstance(cmd, PostmortemPublishCommand):
        if (refusal := publish_refusal(incident)) is not None:
            return reply(f"{escape(refusal)} ({how}).")
        name, args = Command.POSTMORTEM_PUBLISH, publish_args(incident, config)
        said = "publishing the post-mortem to this channel and the status page"
    elif isinstance(cmd, NoteCommand):
        name, args, said = Command.NOTE, {"text": cmd.text}, "noted on the timeline"
    elif isinstance(cmd, PageCommand):
        kind = resolve_page_target(config, cmd.target, cmd.target_kind)
        if kind == "team" and config.oncall.policy_for_team(cmd.target) is None:
            return reply(f"No escalation policy for team {escape(cmd.target)}: no service in "
                         "oncall.services is owned by it.")
        name, args = Command.PAGE, {"target": cmd.target, "target_kind": kind}
        said = f"paging {kind} {escape(cmd.target)}"
    elif isinstance(cmd, UpdateCommand):
        name = Command.UPDATE
        args = cmd.model_dump(mode="json", exclude={"verb", "incident"}, exclude_none=True)
        said = "posting the update"
    elif isinstance(cmd, ActionCommand):
        name = Command.ACTION
        args = cmd.model_dump(mode="json", exclude={"verb", "incident"}, exclude_none=True)
        said = "adding the action item"
    elif isinstance(cmd, LeadCommand):
        name, args = Command.UPDATE, {cmd.role: cmd.person}
        what = "incident commander" if cmd.role == "commander" else "communications lead"
        said = f"{escape(cmd.person)} is the {what}"
    elif isinstance(cmd, ResolveCommand):
        name = Command.RESOLVE
        args = cmd.model_dump(mode="json", exclude={"verb", "incident"}, exclude_none=True)
        said = "resolving it"
    else:
        assert isinstance(cmd, AckCommand)
        name, args, said = Command.ACK, {}, "acknowledging it"
    if (await append(backend, [command(name, incident, actor, args)])) is not None:
        return _unavailable()
    return reply(f"<@{slash.user_id}> on {_label(incident)}: {said} ({how}).", "in_channel")


def _unavailable() -> web.Response:
    # Slack shows non-200 answers as a generic failure; say it plainly instead.
    return reply("The router cannot take commands right now; try again in a few seconds.")


# --- buttons -----------------------------------------------------------------------------------


async def interactions(request: web.Request) -> web.Response:
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    _, slack, body = checked
    try:
        click: Interaction = parse_interaction(body)
    except CommandError as exc:
        return reply(escape(exc.problem))
    except Rejected as exc:
        return error_response(exc.status, exc.message)
    if not _allowed(slack, click.user_id, click.user_name):
        return reply("You are not allowed to act on incidents (slack.allowed_users).")
    backend = request.app[BACKEND]
    ref = click.command.incident
    assert ref is not None  # parse_interaction refuses buttons without a value
    incident = await find_incident(backend, ref)
    if incident is None:
        return reply("This incident is not known to the router any more.")
    if not is_open(incident):
        return reply(f"{_label(incident)} is already resolved.")
    actor = f"slack:{click.user_id}"
    name = Command.ACK if isinstance(click.command, AckCommand) else Command.RESOLVE
    if name is Command.ACK and incident.acknowledged_at is not None:
        return reply(f"{_label(incident)} is already acknowledged.")
    args: dict[str, Any] = {}
    if (await append(backend, [command(name, incident, actor, args)])) is not None:
        return _unavailable()
    done = "acknowledged" if name is Command.ACK else "resolved"
    return reply(f"<@{click.user_id}> {done} {_label(incident)}.", "in_channel")


# --- Events API --------------------------------------------------------------------------------


def _ignored(reason: str) -> web.Response:
    # 200 so Slack does not retry an event the router has no use for.
    return json_response(200, {"status": "ignored", "reason": reason})


async def _message_text(request: web.Request, config: Config, receiver: str, channel: str,
                        ts: str) -> str | None:
    """The text of the message `ts` of `channel`, read with the channel receiver's bot token
    (`conversations.history`, latest=ts inclusive, limit 1)."""
    bot = next((r for r in config.receivers if r.name == receiver), None)
    if not isinstance(bot, SlackConfig) or bot.bot_token is None:
        return None
    http = Http.of(request.app[HTTP], bot)
    redact = Redactor([bot.bot_token.get_secret_value()])
    result, data = await web_api(http, bot.api_url, bot.bot_token, "conversations.history",
                                 {"channel": channel, "latest": ts, "inclusive": "true",
                                  "limit": 1}, redact, form=True)
    if not result.ok:
        log.warning("Slack note: conversations.history failed: %s", result.detail)
        return None
    for m in data.get("messages") or []:
        if isinstance(m, dict) and str(m.get("ts")) == ts:
            return str(m.get("text") or "")
    return None


async def events(request: web.Request) -> web.Response:
    """`url_verification` answers the challenge; `reaction_added` with the note emoji on a
    message of an incident channel puts the message on the incident's timeline."""
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    config, slack, body = checked
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_response(400, "the event is not JSON")
    if not isinstance(payload, dict):
        return error_response(400, "the event is not a JSON object")
    if payload.get("type") == "url_verification":
        return json_response(200, {"challenge": str(payload.get("challenge") or "")})
    event = payload.get("event")
    channels = config.incidents.slack_channels
    if payload.get("type") != "event_callback" or not isinstance(event, dict):
        return _ignored("not an event callback")
    if channels is None:
        return _ignored("incidents.slack_channels is not configured")
    raw_item = event.get("item")
    item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
    if (event.get("type") != "reaction_added" or event.get("reaction") != channels.note_emoji
            or item.get("type") != "message"):
        return _ignored(f"only reaction_added with :{channels.note_emoji}: on a message")
    user, channel, ts = (str(event.get("user") or ""), str(item.get("channel") or ""),
                         str(item.get("ts") or ""))
    if not user or not channel or not ts:
        return error_response(400, "reaction_added lacks user, item.channel or item.ts")
    if not _allowed(slack, user, None):
        return _ignored("user not in slack.allowed_users")
    backend = request.app[BACKEND]
    incident = await channel_incident(backend, config, channel)
    if incident is None:
        return _ignored("not an incident channel")
    text = await _message_text(request, config, channels.receiver, channel, ts)
    args = {"text": text or f"(message {ts}: its text could not be read)", "ts": ts}
    if (await append(backend, [command(Command.NOTE, incident, f"slack:{user}", args)])
            is not None):
        return error_response(503, "the router cannot take commands right now",
                              **{"Retry-After": "5"})
    return json_response(200, {"status": "accepted", "incident_id": incident.id})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/slack/commands", commands)
    app.router.add_post("/slack/interactions", interactions)
    app.router.add_post("/slack/events", events)
