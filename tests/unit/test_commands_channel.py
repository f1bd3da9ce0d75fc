"""`/incident note` and `/incident postmortem publish` parsed (the incident-channel verbs)."""

from __future__ import annotations

import pytest

from router.commands import (
    CommandError,
    NoteCommand,
    PostmortemPublishCommand,
    parse_command,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("note Rolled back deploy 1234", NoteCommand(text="Rolled back deploy 1234")),
    ('note "db failover done" INC-20260105-2',
     NoteCommand(text="db failover done", incident="INC-20260105-2")),
    ("note it&amp;s &lt;fine&gt;", NoteCommand(text="it&s <fine>")),
    ("postmortem publish", PostmortemPublishCommand()),
    ("post-mortem publish INC-20260105-2", PostmortemPublishCommand(incident="INC-20260105-2")),
])
def test_parsed(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("note", "Give the note in quotes."),
    ("postmortem", "Use /incident postmortem publish."),
    ("postmortem draft", "Use /incident postmortem publish."),
    ("note a=b", "Unknown option a=b."),
])
def test_mistakes_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(text)
    assert err.value.problem == problem
