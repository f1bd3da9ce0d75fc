"""Slash command text, Slack form bodies and button clicks into command models."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from router.commands import (
    USAGE,
    AckCommand,
    ActionCommand,
    Command,
    CommandError,
    CreateCommand,
    HelpCommand,
    LeadCommand,
    PageCommand,
    ResolveCommand,
    StatusCommand,
    UpdateCommand,
    command_event,
    parse_command,
    parse_interaction,
    parse_slash_request,
)
from router.model import Severity
from router.sources.base import Rejected

INC = "INC-20260105-3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('create "Checkout returns 500s" SEV2',
         CreateCommand(title="Checkout returns 500s", severity=Severity.SEV2)),
        ("create \u201cCheckout returns 500s\u201d sev1",  # Slack's curly quotes, lower case
         CreateCommand(title="Checkout returns 500s", severity=Severity.SEV1)),
        ('create SEV3 "Search is slow"', CreateCommand(title="Search is slow",
                                                       severity=Severity.SEV3)),
        ("create Search is slow SEV3", CreateCommand(title="Search is slow",
                                                     severity=Severity.SEV3)),
        ('declare "It\'s down, don\'t panic" SEV1',  # apostrophes are not quotes
         CreateCommand(title="It's down, don't panic", severity=Severity.SEV1)),
        ('create "R&amp;D wiki &lt;down&gt;" SEV4',  # Slack's HTML escapes
         CreateCommand(title="R&D wiki <down>", severity=Severity.SEV4)),
        ('create "say \\"hi\\"" SEV4', CreateCommand(title='say "hi"', severity=Severity.SEV4)),
        ('update "Rolled back the deploy"', UpdateCommand(message="Rolled back the deploy")),
        ('update "Found it" status=identified',
         UpdateCommand(message="Found it", status="identified")),
        ("update \u201cFix deployed\u201d status=Monitoring severity=sev3",
         UpdateCommand(message="Fix deployed", status="monitoring", severity=Severity.SEV3)),
        (f'update {INC} "Still looking"', UpdateCommand(message="Still looking", incident=INC)),
        ("update still looking into it", UpdateCommand(message="still looking into it")),
        ('resolve "Fixed by rollback"', ResolveCommand(message="Fixed by rollback")),
        ("resolve", ResolveCommand()),
        (f"resolve {INC.lower()}", ResolveCommand(incident=INC)),
        ("page @payments", PageCommand(target="payments")),
        ("page payments", PageCommand(target="payments")),
        ("page <@U024BE7LH|bob>", PageCommand(target="bob", target_kind="user",
                                              slack_id="U024BE7LH")),
        ("page <@U024BE7LH>", PageCommand(target="U024BE7LH", target_kind="user",
                                          slack_id="U024BE7LH")),
        ("page <!subteam^SAZ94GDB8|@payments-oncall>",
         PageCommand(target="payments-oncall", target_kind="team", slack_id="SAZ94GDB8")),
        (f"page @dba {INC}", PageCommand(target="dba", incident=INC)),
        ("ack", AckCommand()),
        (f"acknowledge {INC}", AckCommand(incident=INC)),
        ("status", StatusCommand()),
        (f"STATUS {INC}", StatusCommand(incident=INC)),
        ("lead @alice", LeadCommand(person="alice")),
        (f"lead <@U0ALICE|alice> {INC}", LeadCommand(person="alice", incident=INC)),
        ("lead comms @bob", LeadCommand(person="bob", role="comms_lead")),
        ('action "Add a canary stage" @bob due 2026-12-10',
         ActionCommand(text="Add a canary stage", owner="bob", due=date(2026, 12, 10))),
        (f'action "Alert on p99" {INC}', ActionCommand(text="Alert on p99", incident=INC)),
        ("help", HelpCommand()),
        ("help me please", HelpCommand()),
        ("", HelpCommand()),
        ("   ", HelpCommand()),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("open the pod bay doors", "Unknown command 'open'"),
        ('"create" x SEV1', "Unknown command 'create'"),
        ('create "DB down"', "Give one severity: SEV1, SEV2, SEV3 or SEV4."),
        ('create "DB down" SEV5', "Give one severity"),
        ('create "DB down" SEV1 SEV2', "Give only one severity."),
        ("create SEV1", "Give the title in quotes."),
        ('create "DB down" SEV1 "again"', "Put the title in one pair of quotes."),
        ('create "DB down" now SEV1', "Unexpected 'now' after the title."),
        ('create "DB down SEV1', 'A quote is not closed: end the text with ".'),
        ("update", "Give the message in quotes."),
        ('update "x" status=fixed', "Unknown status 'fixed'"),
        ('update "x" severity=high', "Unknown severity 'high'"),
        ('update "x" owner=me', "Unknown option owner=me (allowed: status, severity)."),
        ('resolve "x" status=resolved', "Unknown option status=resolved."),
        (f"resolve {INC} INC-20260105-4", "Name at most one incident id."),
        ("page", "Page exactly one team or user"),
        ("page @a @b", "Page exactly one team or user"),
        ('page "payments team"', "Page exactly one team or user"),
        ("page @", "Cannot page '@'"),
        ("ack now", "/incident ack takes no 'now'."),
        ("lead", "Name one person, e.g. /incident lead @alice"),
        ("lead @a @b", "Name one person"),
        ("action fix it", "Give the action item in quotes"),
        ('action "x" due tomorrow', "Due date 'tomorrow' is not YYYY-MM-DD."),
        ("status please", "/incident status takes no 'please'."),
    ],
)
def test_bad_input_explains_and_lists_usage(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(text)
    assert info.value.problem.startswith(problem)
    assert info.value.message.endswith(USAGE)
    assert '/incident create "<title>" SEV1|SEV2|SEV3|SEV4' in info.value.message


def slash_body(**fields: str) -> bytes:
    base = {"token": "deprecated", "team_id": "T0001", "team_domain": "acme",
            "channel_id": "C2147483705", "channel_name": "inc-20260105-checkout",
            "user_id": "U2147483697", "user_name": "alice", "command": "/incident",
            "text": 'update "Rolled back" status=monitoring',
            "response_url": "https://hooks.slack.com/commands/1234/5678",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0", "api_app_id": "A123"}
    return urlencode({**base, **fields}).encode()


def test_parse_slash_request() -> None:
    req = parse_slash_request(slash_body())
    assert (req.command, req.user_id, req.user_name, req.channel_id, req.channel_name) == (
        "/incident", "U2147483697", "alice", "C2147483705", "inc-20260105-checkout")
    assert req.response_url == "https://hooks.slack.com/commands/1234/5678"
    assert parse_command(req.text) == UpdateCommand(message="Rolled back", status="monitoring")
    # Curly quotes survive form encoding.
    req = parse_slash_request(slash_body(text="create \u201cDB down\u201d SEV1"))
    assert parse_command(req.text) == CreateCommand(title="DB down", severity=Severity.SEV1)
    assert parse_slash_request(slash_body(text="")).text == ""


@pytest.mark.parametrize(
    "body", [b"", b"command=%2Fincident&text=status", b"user_id=U1", b"\xff\xfe"])
def test_parse_slash_request_malformed(body: bytes) -> None:
    with pytest.raises(Rejected) as info:
        parse_slash_request(body)
    assert info.value.status == 400


def click(action_id: str = "incident_ack", value: str | None = INC, **extra: Any) -> bytes:
    action: dict[str, Any] = {
        "type": "button", "action_id": action_id, "block_id": f"incident:{INC}",
        "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
        "action_ts": "1767600000.123456"}
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T9TK3CUKW", "domain": "acme"},
        "user": {"id": "UA8RXUSPL", "username": "bob", "name": "bob", "team_id": "T9TK3CUKW"},
        "api_app_id": "AABA1ABCD",
        "container": {"type": "message", "message_ts": "1767599999.000200",
                      "channel_id": "CBR2V3XEX", "is_ephemeral": False},
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "channel": {"id": "CBR2V3XEX", "name": "incidents"},
        "message": {"ts": "1767599999.000200", "text": "SEV1 checkout down", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/AABA1ABCD/1232321423432/D09sSasdasdAS9",
        "actions": [action],
        **extra,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.mark.parametrize(
    ("body", "command"),
    [
        (click("incident_ack"), AckCommand(incident=INC)),
        (click("incident_resolve"), ResolveCommand(incident=INC)),
        (click("incident_ack", value="inc-20260105-3"), AckCommand(incident=INC)),
        # A group key (incident not opened yet) is passed through as is.
        (click("incident_ack", value="alertname=DiskFull|db"),
         AckCommand(incident="alertname=DiskFull|db")),
    ],
)
def test_parse_interaction(body: bytes, command: AckCommand | ResolveCommand) -> None:
    it = parse_interaction(body)
    assert it.command == command
    assert (it.user_id, it.user_name, it.channel_id, it.message_ts) == (
        "UA8RXUSPL", "bob", "CBR2V3XEX", "1767599999.000200")
    assert it.response_url is not None and it.action_ts == "1767600000.123456"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"payload=", 400),
        (urlencode({"payload": "{not json"}).encode(), 400),
        (urlencode({"payload": "[1]"}).encode(), 400),
        (click(actions=[]), 400),
        (click(user={}), 400),
    ],
)
def test_parse_interaction_malformed(body: bytes, status: int) -> None:
    with pytest.raises(Rejected) as info:
        parse_interaction(body)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (click("incident_snooze"), "Unknown button 'incident_snooze'."),
        (click(value=None), "The button carries no incident"),
        (click(type="view_submission"), "Unsupported interaction type 'view_submission'."),
    ],
)
def test_parse_interaction_not_ours(body: bytes, problem: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_interaction(body)
    assert info.value.problem.startswith(problem)


AT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_command_event() -> None:
    ev = command_event(parse_command('update "Found it" status=identified'),  # type: ignore[arg-type]
                       "slack:U1", AT, incident_id="INC-20260105-1", group_key="g")
    assert (ev.command, ev.incident_id, ev.group_key, ev.actor, ev.at) == (
        "update", "INC-20260105-1", "g", "slack:U1", AT)
    assert ev.args == {"message": "Found it", "status": "identified"}
    # The command's own incident wins over the context.
    ev = command_event(AckCommand(incident=INC), "slack:U1", AT, incident_id="INC-20260105-1")
    assert (ev.command, ev.incident_id, ev.args) == ("ack", INC, {})
    ev = command_event(ResolveCommand(incident="k1"), "pd:P1", AT)
    assert (ev.incident_id, ev.group_key) == (None, "k1")
    ev = command_event(CreateCommand(title="DB down", severity=Severity.SEV1), "api", AT)
    assert ev.args == {"title": "DB down", "severity": "SEV1"}
    ev = command_event(PageCommand(target="bob", target_kind="user", slack_id="U9"), "x", AT)
    assert ev.args == {"target": "bob", "target_kind": "user", "slack_id": "U9"}
