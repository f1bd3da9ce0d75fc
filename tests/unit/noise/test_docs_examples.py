"""The router.yaml examples in docs/noise.md load with the real config parser and mean what
they say."""

from __future__ import annotations

import re
from typing import Any

import yaml

from router.config import parse_config
from router.noise.business_hours import Calendar, next_opening
from router.noise.windows import MaintenanceWindow, current_span
from tests.conftest import ROOT
from tests.unit.noise.zones import berlin, ny, utc


def doc_sections() -> dict[str, Any]:
    text = (ROOT / "docs" / "noise.md").read_text()
    sections: dict[str, Any] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        doc = yaml.safe_load(block)
        if "route" not in doc:  # Alertmanager's config, not the router's
            for key, value in doc.items():  # a later block may add keys to a section
                old = sections.get(key)
                sections[key] = {**old, **value} if isinstance(old, dict) else value
    return sections


def test_every_router_yaml_example_loads() -> None:
    sections = doc_sections()
    assert {"maintenance_windows", "business_hours", "inhibit_rules",
            "heartbeats", "incidents", "severities", "digest", "tickets"} <= set(sections)
    receivers = [{"name": n, "type": "log"} for n in ("pagerduty", "slack-digest", "jsm")]
    config = parse_config(yaml.safe_dump({**sections, "receivers": receivers}))
    assert config.receiver_problems() == []
    assert [h.name for h in config.heartbeats] == ["prometheus"]
    assert config.business_hours.chat_when_deferred == "quiet"
    assert config.severities.SEV4.route == "digest"
    assert (config.incidents.inhibit_lower_severity, config.incidents.inhibit_at) == (
        True, "SEV1")


def test_window_examples() -> None:
    windows = {w.name: w for w in map(MaintenanceWindow.model_validate,
                                      doc_sections()["maintenance_windows"])}
    assert set(windows) == {"db-patching", "weekend-batch", "datacenter-move"}
    # Sunday 2026-12-06, 03:00 Berlin, is inside 02:00-04:00.
    assert current_span(windows["db-patching"], berlin(2026, 12, 6, 3)) == (
        utc(2026, 12, 6, 1), utc(2026, 12, 6, 3))
    assert windows["weekend-batch"].after == "drop"
    assert current_span(windows["weekend-batch"], ny(2026, 12, 6, 3)) == (
        utc(2026, 12, 6, 3), utc(2026, 12, 6, 9))


def test_calendar_examples() -> None:
    calendars = {c.name: c for c in map(Calendar.model_validate,
                                        doc_sections()["business_hours"]["calendars"])}
    assert set(calendars) == {"payments-eu", "support-us", "night-desk"}
    # Christmas Eve 2026 is a Thursday, Christmas a Friday: the next opening is Monday.
    assert next_opening(calendars["payments-eu"], berlin(2026, 12, 24, 10)) == berlin(
        2026, 12, 28, 9)
