"""Incidents inside the engine: opening, alerts of the group, timers, commands, formatting.

Pure, no I/O. An incident belongs to one group key (single writer): opened when the group
first notifies at or above `incidents.open_at` (once per alert epoch; within the reopen window
of the last incident's resolution, that one reopens), or by a `declare` command (hand-declared
incidents use their own `manual:<uuid>` key and only a person resolves them). Its state is an
`IncidentState` inside the `GroupState`; its `view` is the `router.incidents.Incident` the API
reads. The lifecycle, as a state diagram with what each transition sends, is in
docs/incidents.md.

Timers are absolute deadlines in state (escalation step, ack and resolve SLAs, post-mortem
reminder, forgetting), so a replay or a restart fires each exactly once. Notification ids come
from the incident id, its dedup key and what caused them (escalation step, SLA, command round),
so a replayed batch emits the same ids and the outbox / vendor dedup keys absorb it.

Who hears what (`rc` = the incident's receivers: the group's, or the severity policy's or the
default receivers for a declared incident; `page` = `incidents.page_receivers`):

| event                     | kind        | receivers (dedup key)                                |
|---------------------------|-------------|------------------------------------------------------|
| declare                   | TRIGGER     | rc (incident key)                                    |
| page step / command       | PAGE        | page (`<key>:page-<step>` / `<key>:manual-<n>`)      |
| escalation                | ESCALATE    | rc + sla_receivers, minus page receivers             |
| ack                       | ACKNOWLEDGE | rc (key) + page (every open page key)                |
| update                    | UPDATE      | rc + status page                                     |
| resolve (person / alerts) | RESOLVE     | rc + status page (key) + page (every open page key), |
|                           |             | once each: the group's own resolution round counts   |
| alerts resolve, auto_resolve off | UPDATE | the group's receivers (the incident stays open)   |
| reopen                    | TRIGGER     | the group's round, then a new page                   |
| SLA breach                | SLA_BREACH  | rc + sla_receivers                                   |
| post-mortem due           | REMINDER    | rc + sla_receivers                                   |
| triage (slack_channels)   | TRIGGER     | channel receiver (`<id>:channel`, channel_op open)   |
| summary shown changes     | UPDATE      | channel receiver (channel_op summary)                |
| archive due               | RESOLVE     | channel receiver (channel_op archive)                |
| post-mortem published     | UPDATE      | channel receiver (postmortem) + status page          |

The incident channel (`channel.py`) follows every step of the group: whatever changed an
incident (alerts, a command, a timer), what its pinned summary shows is compared before/after.
"""

from __future__ import annotations

from router.engine.incidents.alerts import after_group
from router.engine.incidents.commands import apply_command, command_target

__all__ = ["after_group", "apply_command", "command_target"]
