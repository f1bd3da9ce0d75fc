"""check-config refuses noise settings that cannot work, naming the key path."""

from __future__ import annotations

import pytest
import yaml

from router.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"maintenance_windows": [{"name": "w", "matchers": ['env=~"("'],
                                   "start": "2026-01-01T00:00", "end": "2026-01-02T00:00"}]},
         "router.yaml: maintenance_windows.0.matchers: Value error, "),
        ({"heartbeats": [{"name": "hb", "matchers": ["{a"]}]},
         "router.yaml: heartbeats.0.matchers: Value error, bad matcher format: a"),
        ({"inhibit_rules": [{"source_matchers": ['a="b"'], "equal": [""]}]},
         'router.yaml: inhibit_rules.0: Value error, invalid label name "" in equal list'),
        ({"business_hours": {"default": "nope", "calendars": [
            {"name": "berlin", "hours": [{"days": ["mon"], "start": "09:00",
                                          "end": "17:00"}]}]}},
         "router.yaml: business_hours: Value error, default: unknown calendar 'nope' "
         "(known: berlin)"),
        ({"incidents": {"inhibit_at": "SEV5"}},
         "router.yaml: incidents.inhibit_at: Input should be 'SEV1', 'SEV2', 'SEV3' or 'SEV4'"),
        ({"incidents": {"inhibit_lower_severity": "sometimes"}},
         "router.yaml: incidents.inhibit_lower_severity: Input should be a valid boolean"),
    ],
)
def test_noise_config_errors_name_the_key(section: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(section))
    assert str(err.value).startswith(expected)


def test_a_heartbeat_naming_an_unknown_receiver_is_refused() -> None:
    config = parse_config(yaml.safe_dump({
        "receivers": [{"name": "log", "type": "log"}],
        "heartbeats": [{"name": "hb", "receivers": ["pagr"]}]}))
    assert config.receiver_problems() == [
        "router.yaml: heartbeats.0.receivers: unknown receiver 'pagr' (known: log)"]
