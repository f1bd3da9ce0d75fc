"""The incident-communication templates and their per-receiver overrides."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from pydantic import ValidationError

from router.delivery.receivers.log import LogConfig
from router.delivery.render import Renderer, context, truncate, truncate_bytes
from router.model import NotificationKind, Severity
from tests.unit.delivery.conftest import notification


def test_initial_notification() -> None:
    msg = Renderer().render(notification())
    assert msg.headline == "[SEV2] DiskFull on db-1"
    assert msg.body.splitlines() == [
        "Status: Investigating",
        "Impact: Disk almost full on db-1",
        "Started: 2026-11-27 10:00 UTC",
        "Incident: INC-g1",
        "Alerts:",
        "- DiskFull: Disk almost full on db-1",
        "Next update: by 2026-11-27 11:00 UTC",
    ]


def test_update_with_root_cause_mitigation_and_eta() -> None:
    msg = Renderer().render(notification(NotificationKind.UPDATE, details={
        "status": "identified", "root_cause": "log rotation disabled",
        "mitigation": "rotated logs by hand", "eta": "11:30 UTC", "next_update": "11:15 UTC",
    }))
    assert msg.headline == "[SEV2] DiskFull on db-1 (Update)"
    assert msg.body.splitlines() == [
        "Status: Identified",
        "Impact: Disk almost full on db-1",
        "Root cause: log rotation disabled",
        "Mitigation: rotated logs by hand",
        "ETA: 11:30 UTC",
        "Next update: 11:15 UTC",
    ]


def test_update_before_the_cause_is_known() -> None:
    body = Renderer().render(notification(NotificationKind.UPDATE)).body
    assert "Root cause: Under investigation" in body
    assert "Mitigation" not in body
    assert "ETA: Not yet known" in body


def test_acknowledgement_names_who() -> None:
    msg = Renderer().render(notification(NotificationKind.ACKNOWLEDGE,
                                         details={"actor": "alice"}))
    assert msg.headline.endswith("(Acknowledged)")
    assert "Acknowledged by alice." in msg.body


def test_resolution() -> None:
    msg = Renderer().render(notification(NotificationKind.RESOLVE, details={
        "root_cause": "log rotation disabled", "resolution": "re-enabled logrotate"}))
    assert msg.headline == "[SEV2] Resolved: DiskFull on db-1"
    assert msg.body.splitlines() == [
        "Status: Resolved",
        "Duration: 42m (from 2026-11-27 10:00 UTC to 2026-11-27 10:42 UTC)",
        "Impact: Disk almost full on db-1",
        "Root cause: log rotation disabled",
        "Resolution: re-enabled logrotate",
        "Post-mortem: A post-mortem will be shared within 48 hours (by 2026-11-29 10:42 UTC).",
    ]


@pytest.mark.parametrize(("severity", "next_update"), [
    (Severity.SEV1, "by 2026-11-27 10:30 UTC"), (Severity.SEV3, "by 2026-11-27 14:00 UTC"),
    (Severity.SEV4, "when there is news"),
])
def test_next_update_follows_the_severity_cadence(severity: Severity, next_update: str) -> None:
    body = Renderer().render(notification(severity=severity)).body
    assert f"Next update: {next_update}" in body


def test_inline_override_per_kind_wins_over_template_name() -> None:
    r = Renderer({"update": "U {{ title }}", "acknowledge": "ACK {{ note }}"})
    assert r.render(notification(NotificationKind.UPDATE)).headline == "U DiskFull on db-1"
    assert r.render(notification(NotificationKind.ACKNOWLEDGE)).headline == "ACK Acknowledged."
    assert r.render(notification()).headline == "[SEV2] DiskFull on db-1"


def test_file_override(tmp_path: Path) -> None:
    path = tmp_path / "initial.txt"
    path.write_text("PAGE {{ severity }} {{ title }}\nsee {{ runbook_url }}\n")
    msg = Renderer({"initial": str(path)}).render(notification())
    assert (msg.headline, msg.body) == ("PAGE SEV2 DiskFull on db-1",
                                        "see https://runbooks.example.net/disk")


def test_a_template_gets_only_what_it_reads_and_each_value_matches_the_full_context() -> None:
    # Rendering computes just the variables a template reads; an override that includes
    # another template gets them all.
    n = notification(NotificationKind.RESOLVE, details={"postmortem": "PM-1", "level": 2})
    full = context(n)
    r = Renderer({"resolve": "{{ postmortem }} {{ duration }} {{ level }} {{ details.level }}",
                  "update": "{% include 'update.j2' %}"})
    assert r.render(n).headline == f"PM-1 {full['duration']} 2 2"
    assert r.render(notification(NotificationKind.UPDATE)).headline == (
        "[SEV2] DiskFull on db-1 (Update)")
    assert context(n, ["duration", "level"]) == {"duration": full["duration"], "level": 2}


def test_an_override_naming_an_unknown_variable_raises_a_template_error() -> None:
    # At delivery the sink turns this into a `template_error` dead letter.
    r = Renderer({"initial": "{{ titel }}"})
    with pytest.raises(jinja2.UndefinedError):
        r.render(notification())


@pytest.mark.parametrize(("templates", "error"), [
    ({"bogus": "x {{ title }}"}, "unknown template 'bogus'"),
    ({"initial": "{{ title "}, "template 'initial': line 1"),
    ({"initial": "/nonexistent/tmpl.j2"}, "cannot read file"),
])
def test_bad_overrides_fail_at_config_load(templates: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        LogConfig(name="log", templates=templates)


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("hello", 10, "hello"), ("hello world", 5, "hell…"), ("abc", 0, ""), ("abc", 1, "…"),
])
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("héllo", 100, "héllo"), ("ééééé", 6, "é…"), ("aéé", 4, "a…"), ("aé", 4, "aé"),
])
def test_truncate_bytes_never_splits_a_character(text: str, limit: int, expected: str) -> None:
    out = truncate_bytes(text, limit)
    assert out == expected and len(out.encode()) <= limit


def test_an_override_reads_an_alert_as_attributes_or_as_the_dict_it_is() -> None:
    # The alerts are dicts whose keys are attributes too (router.delivery.render.AlertView):
    # every way a template may read them gives what the plain dict gave.
    r = Renderer({"initial": (
        "{% for a in alerts %}{{ a.name }}|{{ a['summary'] }}|{{ a.labels.instance }}|"
        "{{ a['labels']['alertname'] }}|{{ a.status }}|{{ a.value }}|"
        "{{ a.items() | map('first') | sort | join(',') }}|{{ a | tojson }}{% endfor %}")})
    assert r.render(notification()).headline == (
        "DiskFull|Disk almost full on db-1|db-1|DiskFull|firing|None|"
        "labels,name,status,summary,value|"
        '{"labels": {"alertname": "DiskFull", "instance": "db-1"}, "name": "DiskFull", '
        '"status": "firing", "summary": "Disk almost full on db-1", "value": null}')
    assert context(notification(), ["alerts"])["alerts"] == [{
        "name": "DiskFull", "status": "firing", "summary": "Disk almost full on db-1",
        "labels": {"alertname": "DiskFull", "instance": "db-1"}, "value": None}]
