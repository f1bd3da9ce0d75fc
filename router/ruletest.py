"""`incident-router test-rules FILE...`: unit tests for classification rules.

Like `promtool test rules`: a test file lists cases, each an input (an Alertmanager webhook
payload, a CloudWatch alarm message, or plain alert fields) and the classification expected for
every alert it produces. Only the fields given are compared. Failures print a diff naming the
file and the case; the run passes when every case in every file passes. Format: docs/rules.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from router.config import Config, ConfigError, load_config
from router.model import Alert, Status
from router.rules import RuleError, RuleSet, load_rules
from router.sources.alertmanager import parse_alertmanager
from router.sources.base import Rejected
from router.sources.cloudwatch import parse_alarm_message
from router.sources.generic import fingerprint_of

# A fixed clock, so group keys and anything time-derived are the same on every run.
RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
INPUTS = ("alert", "alertmanager", "cloudwatch")
EXPECT_FIELDS = (
    "severity", "team", "service", "runbook_url", "dashboard_url", "receivers", "group_key",
    "rule", "labels",
)
_FILE_KEYS = ("rules_dir", "cases")
_CASE_KEYS = ("name", *INPUTS, "expect")
_ALERT_KEYS = ("name", "source", "status", "labels", "annotations", "value", "fingerprint")


class CaseError(Exception):
    """A test file or case that cannot be run as written."""


def run_rule_tests(
    files: list[Path], config: Config, out: TextIO, *, check_receivers: bool = True
) -> bool:
    """Run every case of every file, write a report to `out`; True when all pass."""
    rulesets: dict[Path, RuleSet | RuleError] = {}
    total = failed = 0
    for path in files:
        try:
            doc = _load_test_file(path)
        except CaseError as exc:
            out.write(f"FAIL {path}: {exc}\n")
            failed += 1
            continue
        rules_dir = (path.parent / doc.get("rules_dir", ".")).resolve()
        if rules_dir not in rulesets:
            try:
                rulesets[rules_dir] = load_rules(rules_dir, config, check_receivers=check_receivers)
            except RuleError as exc:
                rulesets[rules_dir] = exc
        loaded = rulesets[rules_dir]
        if isinstance(loaded, RuleError):
            out.write(f"FAIL {path}: the rules in {rules_dir} do not load:\n")
            out.writelines(f"  {line}\n" for line in loaded.problems)
            failed += 1
            continue
        file_failed = 0
        cases = doc["cases"]
        for i, case in enumerate(cases):
            total += 1
            report = _run_case(path, i, case, loaded)
            if report:
                file_failed += 1
                out.write(report)
        failed += file_failed
        if not file_failed:
            out.write(f"ok   {path}: {len(cases)} case{'s' if len(cases) != 1 else ''} passed\n")
    if failed:
        out.write(f"test-rules: FAILED ({failed} failing of {total} cases in {len(files)} "
                  f"file{'s' if len(files) != 1 else ''})\n")
    else:
        out.write(f"test-rules: all {total} cases passed in {len(files)} "
                  f"file{'s' if len(files) != 1 else ''}\n")
    return failed == 0


def _load_test_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CaseError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise CaseError("expected a mapping with a 'cases' list")
    for key in raw:
        if key not in _FILE_KEYS:
            raise CaseError(f"unknown top-level key {key!r} (expected one of: "
                            f"{', '.join(_FILE_KEYS)})")
    if not isinstance(raw.get("rules_dir", "."), str):
        raise CaseError("rules_dir: expected a path relative to this file")
    return raw


def _case_name(i: int, case: Any) -> str:
    name = case.get("name") if isinstance(case, dict) else None
    return f"case {name!r}" if isinstance(name, str) and name else f"cases[{i}]"


def _run_case(path: Path, i: int, case: Any, ruleset: RuleSet) -> str:
    """'' when the case passes, else the report to print."""
    label = f"{path}: {_case_name(i, case)}"
    try:
        alerts, expects = _prepare(case, ruleset.config)
    except CaseError as exc:
        return f"FAIL {label}: {exc}\n"
    lines = []
    for n, (alert, expect) in enumerate(zip(alerts, expects, strict=True), start=1):
        got = ruleset.classify(alert)
        diff = diff_classification(expect, got)
        if diff:
            lines.append(f"FAIL {label}, alert {n} of {len(alerts)} ({alert.name}) "
                         f"(- expected, + got):\n")
            lines.extend(diff)
    return "".join(lines)


def _prepare(case: Any, config: Config) -> tuple[list[Alert], list[dict[str, Any]]]:
    if not isinstance(case, dict):
        raise CaseError("expected a mapping with an input and 'expect'")
    for key in case:
        if key not in _CASE_KEYS:
            raise CaseError(f"unknown key {key!r} (expected one of: {', '.join(_CASE_KEYS)})")
    given = [k for k in INPUTS if k in case]
    if len(given) != 1:
        raise CaseError(f"give exactly one input: {', '.join(INPUTS)}")
    kind = given[0]
    alerts = INPUT_PARSERS[kind](case[kind], config)
    if not alerts:
        raise CaseError(f"the {kind} input produced no alerts")
    expect = case.get("expect")
    listed: list[Any] = expect if isinstance(expect, list) else [expect] * len(alerts)
    if len(listed) != len(alerts):
        raise CaseError(f"'expect' lists {len(listed)} results but the input produced "
                        f"{len(alerts)} alerts")
    expects: list[dict[str, Any]] = []
    for e in listed:
        if not isinstance(e, dict) or not e:
            raise CaseError("expect: expected a mapping of fields to compare")
        expects.append(e)
        for key in e:
            if key not in EXPECT_FIELDS:
                raise CaseError(f"expect: unknown field {key!r} (expected one of: "
                                f"{', '.join(EXPECT_FIELDS)})")
    return alerts, expects


# --- inputs ------------------------------------------------------------------------------------


def alert_from_fields(spec: Any, config: Config) -> list[Alert]:
    """Plain alert fields: name (required), source, status, labels, annotations, value."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise CaseError("alert: expected a mapping with at least 'name'")
    for key in spec:
        if key not in _ALERT_KEYS:
            raise CaseError(f"alert: unknown key {key!r} (expected one of: "
                            f"{', '.join(_ALERT_KEYS)})")
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (spec.get("annotations") or {}).items()}
    try:
        alert = Alert(
            source=spec.get("source", "generic"),
            fingerprint=spec.get("fingerprint") or fingerprint_of(spec["name"], labels),
            status=Status(spec.get("status", "firing")),
            name=spec["name"],
            labels=labels,
            annotations=annotations,
            value=spec.get("value"),
            starts_at=RECEIVED_AT,
            ends_at=RECEIVED_AT if spec.get("status") == "resolved" else None,
            received_at=RECEIVED_AT,
            runbook_url=annotations.get("runbook_url"),
        )
    except ValueError as exc:  # pydantic's ValidationError and bad Status values
        raise CaseError(f"alert: {exc}".splitlines()[0]) from None
    return [alert]


def alerts_from_alertmanager(payload: Any, config: Config) -> list[Alert]:
    try:
        return parse_alertmanager(orjson.dumps(payload), RECEIVED_AT)
    except Rejected as exc:
        raise CaseError(f"alertmanager: {exc.message}") from None


def alerts_from_cloudwatch(message: Any, config: Config) -> list[Alert]:
    """The alarm message (the JSON inside SNS `Message`: a CloudWatch alarm or an EventBridge
    alarm state-change event), as a mapping or as its JSON text."""
    text = message if isinstance(message, str) else orjson.dumps(message).decode()
    try:
        return parse_alarm_message(text, config.sources.cloudwatch, RECEIVED_AT)
    except Rejected as exc:
        raise CaseError(f"cloudwatch: {exc.message}") from None


INPUT_PARSERS: dict[str, Callable[[Any, Config], list[Alert]]] = {
    "alert": alert_from_fields,
    "alertmanager": alerts_from_alertmanager,
    "cloudwatch": alerts_from_cloudwatch,
}


# --- comparison --------------------------------------------------------------------------------


def _normalise(key: str, value: Any) -> Any:
    if key == "receivers" and isinstance(value, list | tuple):
        return [str(v) for v in value]
    if key == "labels" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if value is None:
        return None
    return str(value)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def diff_classification(expect: dict[str, Any], got: Alert) -> list[str]:
    """Lines `  - field: expected` / `  + field: got` for every field that differs."""
    lines = []
    for key in EXPECT_FIELDS:
        if key not in expect:
            continue
        want = _normalise(key, expect[key])
        have = _normalise(key, getattr(got, key))
        if key == "labels" and isinstance(want, dict):
            # Labels compare as a subset: only the labels the test names.
            have = {k: have[k] for k in want if k in have}
        if want != have:
            lines.append(f"  - {key}: {_show(want)}\n")
            lines.append(f"  + {key}: {_show(have)}\n")
    return lines


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="router config (receivers, severity policy); without it, receiver "
                             "names in rules are not checked")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="rule test files (rules/*.test.yaml)")


def main(config_path: str | Path | None, files: Sequence[Path], out: TextIO | None = None) -> int:
    """`incident-router test-rules [--config PATH] FILE...`: 0 when every case passes, else 1.

    Without a config, the default severity policy applies and receiver names are not checked.
    """
    out = out or sys.stdout
    if config_path is None:
        config, check_receivers = Config(), False
    else:
        try:
            config, check_receivers = load_config(config_path), True
        except ConfigError as exc:
            out.write(f"test-rules: {exc}\n")
            return 1
    ok = run_rule_tests(list(files), config, out, check_receivers=check_receivers)
    return 0 if ok else 1


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incident-router test-rules")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return main(args.config, args.files)


if __name__ == "__main__":
    raise SystemExit(cli())
