"""Slack slash commands and button clicks, parsed into command models. Pure, no I/O.

`/incident <verb> ...` text becomes one of the frozen command models below (or `CommandError`,
whose message is shown to the user and ends with the usage). A `block_actions` click on the
Acknowledge / Resolve buttons becomes the same `AckCommand` / `ResolveCommand`, so the engine
sees one shape whatever the channel. `command_event` turns a mutating command into the log's
`CommandEvent`.

Text rules: double quotes group words (straight `"` and Slack's curly “ ” „); single quotes and
apostrophes are ordinary characters (so `don't` works). A bare `INC-YYYYMMDD-N` names the
incident; without it the caller supplies the incident from context (the channel). Slack escapes
`&`, `<`, `>` as HTML entities and sends mentions as `<@U123|name>` / `<!subteam^S123|@team>`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import orjson
from pydantic import Field

from router.model import CommandEvent, Frozen, Severity
from router.sources.base import Rejected

INCIDENT_ID = re.compile(r"INC-\d{8}-\d+")
UpdateStatus = Literal["investigating", "identified", "monitoring"]
UPDATE_STATUSES: tuple[str, ...] = ("investigating", "identified", "monitoring")

USAGE = """\
Usage:
  /incident create "<title>" SEV1|SEV2|SEV3|SEV4
  /incident update "<message>" [status=investigating|identified|monitoring] [severity=SEV2]
  /incident resolve ["<message>"]
  /incident ack
  /incident page @team|@user
  /incident lead [comms] @user
  /incident action "<action item>" [@owner] [due YYYY-MM-DD]
  /incident note <text>
  /incident postmortem publish
  /incident status
  /incident help
Add an incident id (INC-20260105-1) to act on an incident from outside its channel."""


class CommandError(ValueError):
    """Input a person typed wrong; `message` says what and how to fix it (with the usage)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.message = f"{problem}\n{USAGE}"
        super().__init__(self.message)


class _Command(Frozen):
    # The incident id (INC-...) or group key the command is about; None: from context.
    incident: str | None = None


class CreateCommand(_Command):
    verb: Literal["create"] = "create"
    title: str = Field(min_length=1)
    severity: Severity


class UpdateCommand(_Command):
    verb: Literal["update"] = "update"
    message: str = Field(min_length=1)
    status: UpdateStatus | None = None
    severity: Severity | None = None


class ResolveCommand(_Command):
    verb: Literal["resolve"] = "resolve"
    message: str | None = None


class AckCommand(_Command):
    verb: Literal["ack"] = "ack"


class PageCommand(_Command):
    verb: Literal["page"] = "page"
    target: str = Field(min_length=1)  # team or user name, without "@"
    # "user"/"team" when Slack said so (a mention); None for plain "@name": check teams first.
    target_kind: Literal["user", "team"] | None = None
    slack_id: str | None = None  # U... or S... from a Slack mention


class LeadCommand(_Command):
    """`/incident lead @alice` names the incident commander; `/incident lead comms @bob` the
    communications lead."""

    verb: Literal["lead"] = "lead"
    person: str = Field(min_length=1)
    role: Literal["commander", "comms_lead"] = "commander"


class ActionCommand(_Command):
    """`/incident action "<text>" @owner due 2026-12-10`: a post-mortem action item."""

    verb: Literal["action"] = "action"
    text: str = Field(min_length=1)
    owner: str | None = None
    due: date | None = None


class NoteCommand(_Command):
    """`/incident note <text>`: a line on the incident's timeline."""

    verb: Literal["note"] = "note"
    text: str = Field(min_length=1)


class PostmortemPublishCommand(_Command):
    """`/incident postmortem publish`: to the incident channel and the status page."""

    verb: Literal["postmortem"] = "postmortem"


class StatusCommand(_Command):
    verb: Literal["status"] = "status"


class HelpCommand(_Command):
    verb: Literal["help"] = "help"


Command = Annotated[
    CreateCommand | UpdateCommand | ResolveCommand | AckCommand | PageCommand | LeadCommand
    | ActionCommand | NoteCommand | PostmortemPublishCommand | StatusCommand | HelpCommand,
    Field(discriminator="verb"),
]
MutatingCommand = (CreateCommand | UpdateCommand | ResolveCommand | AckCommand | PageCommand
                   | LeadCommand | ActionCommand | NoteCommand | PostmortemPublishCommand)

_VERBS = {
    "create": "create", "declare": "create", "new": "create",
    "update": "update",
    "resolve": "resolve",
    "ack": "ack", "acknowledge": "ack",
    "page": "page",
    "lead": "lead",
    "action": "action",
    "note": "note",
    "postmortem": "postmortem", "post-mortem": "postmortem",
    "status": "status",
    "help": "help",
}

# --- tokenising -------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))  # &amp; last: "&amp;lt;" -> "&lt;"
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_TEAM_MENTION = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|@?([^>]*))?>")
_OPTION = re.compile(r"([a-z_]+)=(.*)", re.DOTALL)


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Split on whitespace outside double quotes; (token, was_quoted). `\\"` is a literal quote
    inside quotes. An unclosed quote is an error."""
    text = text.translate(_QUOTES)
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == '"':
            buf: list[str] = []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    i += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise CommandError("A quote is not closed: end the text with \".")
            out.append(("".join(buf), True))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            out.append((text[i:j], False))
            i = j
    return out


def _severity(value: str) -> Severity | None:
    try:
        return Severity(value.upper())
    except ValueError:
        return None


class _Args:
    """Tokens after the verb, sorted into incident id, options, free words and quoted text."""

    def __init__(self, tokens: list[tuple[str, bool]]) -> None:
        self.incident: str | None = None
        self.options: dict[str, str] = {}
        self.quoted: list[str] = []
        self.words: list[str] = []
        for tok, quoted in tokens:
            if quoted:
                self.quoted.append(_unescape(tok).strip())
            elif INCIDENT_ID.fullmatch(tok.upper()):
                if self.incident is not None:
                    raise CommandError("Name at most one incident id.")
                self.incident = tok.upper()
            elif m := _OPTION.fullmatch(tok):
                self.options[m.group(1)] = _unescape(m.group(2)).strip('"')
            else:
                self.words.append(tok)

    def text(self, what: str, *, required: bool) -> str | None:
        """The quoted text, or the free words when nothing is quoted."""
        if len(self.quoted) > 1:
            raise CommandError(f"Put the {what} in one pair of quotes.")
        if self.quoted and self.words:
            raise CommandError(f"Unexpected {' '.join(self.words)!r} after the {what}.")
        value = self.quoted[0] if self.quoted else _unescape(" ".join(self.words)).strip()
        if required and not value:
            raise CommandError(f"Give the {what} in quotes.")
        return value or None

    def no_options(self, *allowed: str) -> None:
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            raise CommandError(f"Unknown option {unknown[0]}={self.options[unknown[0]]}{hint}.")

    def nothing_else(self, verb: str) -> None:
        self.no_options()
        extra = self.words + [f'"{q}"' for q in self.quoted]
        if extra:
            raise CommandError(f"/incident {verb} takes no {' '.join(extra)!r}.")


# --- slash command text -----------------------------------------------------------------------


def parse_command(text: str) -> Command:
    """Parse the text after `/incident` into a command; `CommandError` says what is wrong."""
    tokens = _tokens(text)
    if not tokens:
        return HelpCommand()
    head, quoted = tokens[0]
    verb = None if quoted else _VERBS.get(head.lower())
    if verb is None:
        raise CommandError(f"Unknown command {head!r}.")
    args = _Args(tokens[1:])
    inc = args.incident
    if verb == "help":
        return HelpCommand()
    if verb == "create":
        args.no_options()
        sev = [s for w in args.words if (s := _severity(w)) is not None]
        args.words = [w for w in args.words if _severity(w) is None]
        if len(sev) != 1:
            raise CommandError("Give one severity: SEV1, SEV2, SEV3 or SEV4."
                               if not sev else "Give only one severity.")
        title = args.text("title", required=True)
        assert title is not None
        return CreateCommand(title=title, severity=sev[0], incident=inc)
    if verb == "update":
        args.no_options("status", "severity")
        status = args.options.get("status")
        if status is not None and status.lower() not in UPDATE_STATUSES:
            raise CommandError(f"Unknown status {status!r}: use {', '.join(UPDATE_STATUSES)} "
                               "(or /incident resolve).")
        sev_text = args.options.get("severity")
        severity = _severity(sev_text) if sev_text is not None else None
        if sev_text is not None and severity is None:
            raise CommandError(f"Unknown severity {sev_text!r}: use SEV1, SEV2, SEV3 or SEV4.")
        message = args.text("message", required=True)
        assert message is not None
        return UpdateCommand.model_validate({
            "message": message, "status": status.lower() if status else None,
            "severity": severity, "incident": inc})
    if verb == "resolve":
        args.no_options()
        return ResolveCommand(message=args.text("message", required=False), incident=inc)
    if verb == "page":
        return _page(args, inc)
    if verb == "lead":
        return _lead(args, inc)
    if verb == "action":
        return _action(args, inc)
    if verb == "ack":
        args.nothing_else("ack")
        return AckCommand(incident=inc)
    if verb == "note":
        args.no_options()
        note = args.text("note", required=True)
        assert note is not None
        return NoteCommand(text=note, incident=inc)
    if verb == "postmortem":
        if [w.lower() for w in args.words] != ["publish"] or args.quoted or args.options:
            raise CommandError("Use /incident postmortem publish.")
        return PostmortemPublishCommand(incident=inc)
    args.nothing_else("status")
    return StatusCommand(incident=inc)


def _action(args: _Args, incident: str | None) -> ActionCommand:
    args.no_options("due")
    if len(args.quoted) != 1:
        raise CommandError('Give the action item in quotes, e.g. /incident action '
                           '"Add a canary stage" @alice due 2026-12-10.')
    words = list(args.words)
    due_text = args.options.get("due")
    if "due" in [w.lower() for w in words]:
        at = [w.lower() for w in words].index("due")
        if at + 1 >= len(words):
            raise CommandError("Give the due date after 'due', e.g. due 2026-12-10.")
        due_text = words[at + 1]
        del words[at:at + 2]
    due = None
    if due_text is not None:
        try:
            due = date.fromisoformat(due_text)
        except ValueError:
            raise CommandError(f"Due date {due_text!r} is not YYYY-MM-DD.") from None
    if len(words) > 1:
        raise CommandError("Name at most one owner, e.g. @alice.")
    owner = None
    if words:
        m = _USER_MENTION.fullmatch(words[0])
        owner = (m.group(2) or m.group(1)) if m else _unescape(words[0]).removeprefix("@")
    return ActionCommand(text=args.quoted[0], owner=owner or None, due=due, incident=incident)


def _lead(args: _Args, incident: str | None) -> LeadCommand:
    args.no_options()
    words = list(args.words)
    role: Literal["commander", "comms_lead"] = "commander"
    if words and words[0].lower() in ("comms", "communications"):
        role, words = "comms_lead", words[1:]
    if args.quoted or len(words) != 1:
        raise CommandError("Name one person, e.g. /incident lead @alice or "
                           "/incident lead comms @bob.")
    word = words[0]
    if m := _USER_MENTION.fullmatch(word):
        person = m.group(2) or m.group(1)
    else:
        person = _unescape(word).removeprefix("@")
    if not person or "<" in person or ">" in person:
        raise CommandError(f"Cannot make {word!r} the lead: name a person like @alice.")
    return LeadCommand(person=person, role=role, incident=incident)


def _page(args: _Args, incident: str | None) -> PageCommand:
    args.no_options()
    if args.quoted or len(args.words) != 1:
        raise CommandError("Page exactly one team or user, e.g. /incident page @payments.")
    word = args.words[0]
    if m := _USER_MENTION.fullmatch(word):
        return PageCommand(target=m.group(2) or m.group(1), target_kind="user",
                           slack_id=m.group(1), incident=incident)
    if m := _TEAM_MENTION.fullmatch(word):
        return PageCommand(target=m.group(2) or m.group(1), target_kind="team",
                           slack_id=m.group(1), incident=incident)
    name = _unescape(word).removeprefix("@")
    if not name or "<" in name or ">" in name:
        raise CommandError(f"Cannot page {word!r}: name a team or user like @payments.")
    return PageCommand(target=name, incident=incident)


# --- Slack request bodies ---------------------------------------------------------------------


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Rejected(400, "malformed_form", "body is not UTF-8 form data") from None
    return {k: v[0] for k, v in pairs.items()}


class SlashRequest(Frozen):
    """The fields of a slash-command POST the router uses."""

    command: str
    text: str
    user_id: str
    user_name: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    team_id: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None


def parse_slash_request(body: bytes) -> SlashRequest:
    """Parse the form body of a slash command (after the signature check)."""
    form = _form(body)
    if not form.get("command") or not form.get("user_id"):
        raise Rejected(400, "malformed_form", "slash command form lacks command or user_id")
    return SlashRequest(
        command=form["command"], text=form.get("text", ""), user_id=form["user_id"],
        **{k: form.get(k) or None for k in ("user_name", "channel_id", "channel_name",
                                            "team_id", "response_url", "trigger_id")},
    )


ACK_ACTION = "incident_ack"
RESOLVE_ACTION = "incident_resolve"


class Interaction(Frozen):
    """A button click on an incident message, as a command plus who clicked where."""

    command: AckCommand | ResolveCommand
    user_id: str
    user_name: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    response_url: str | None = None
    action_ts: str | None = None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _opt(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_interaction(body: bytes) -> Interaction:
    """Parse a `block_actions` POST (form field `payload` with JSON) into an Interaction.

    Malformed bodies are `Rejected` (400); a well-formed click on something that is not ours is
    a `CommandError` (answer 200 with the message, Slack shows it to the user)."""
    raw = _form(body).get("payload")
    if not raw:
        raise Rejected(400, "malformed_form", "interaction body lacks the payload field")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Rejected(400, "malformed_json", "interaction payload is not JSON") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed_json", "interaction payload is not a JSON object")
    if payload.get("type") != "block_actions":
        raise CommandError(f"Unsupported interaction type {str(payload.get('type'))!r}.")
    user = _dict(payload.get("user"))
    user_id = _opt(user.get("id"))
    actions = payload.get("actions")
    if not user_id or not isinstance(actions, list) or not actions:
        raise Rejected(400, "invalid_shape", "block_actions payload lacks user.id or actions")
    action = _dict(actions[0])
    action_id, value = _opt(action.get("action_id")), _opt(action.get("value"))
    if action_id not in (ACK_ACTION, RESOLVE_ACTION):
        raise CommandError(f"Unknown button {action_id!r}.")
    if not value:
        raise CommandError("The button carries no incident; use /incident in its channel.")
    incident = value.upper() if INCIDENT_ID.fullmatch(value.upper()) else value
    command: AckCommand | ResolveCommand = (
        AckCommand(incident=incident) if action_id == ACK_ACTION
        else ResolveCommand(incident=incident)
    )
    container = _dict(payload.get("container"))
    channel = _dict(payload.get("channel"))
    return Interaction(
        command=command,
        user_id=user_id,
        user_name=_opt(user.get("username")) or _opt(user.get("name")),
        channel_id=_opt(container.get("channel_id")) or _opt(channel.get("id")),
        message_ts=_opt(container.get("message_ts")) or _opt(_dict(payload.get("message")).get(
            "ts")),
        response_url=_opt(payload.get("response_url")),
        action_ts=_opt(action.get("action_ts")),
    )


# --- into the log -----------------------------------------------------------------------------


def command_event(
    command: MutatingCommand,
    actor: str,
    at: datetime,
    *,
    incident_id: str | None = None,
    group_key: str | None = None,
) -> CommandEvent:
    """The log event for a mutating command. The command's own `incident` (an INC id or a group
    key) wins over the ids the caller found from context."""
    if command.incident is not None:
        if INCIDENT_ID.fullmatch(command.incident):
            incident_id = command.incident
        else:
            group_key = command.incident
    args = command.model_dump(mode="json", exclude={"verb", "incident"}, exclude_none=True)
    return CommandEvent(command=command.verb, incident_id=incident_id, group_key=group_key,
                        actor=actor, at=at, args=args)
