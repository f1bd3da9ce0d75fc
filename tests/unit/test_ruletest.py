"""`incident-router test-rules`: passing files exit 0; wrong expectations fail with a diff."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path

import pytest

from router.ruletest import cli, main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TESTS = sorted((ROOT / "rules").glob("*.test.yaml"))

RULES = """
rules:
  - name: api-sev1
    match: {source: alertmanager, labels: ['alertname="APIHighErrorRate"']}
    value: {op: ">", threshold: 0.20, unit: ratio}
    set: {severity: SEV1, team: api, service: api, receivers: [log],
          runbook_url: https://runbooks.example.com/api, group_by: [alertname, env]}
  - name: api-sev2
    match: {source: alertmanager, labels: ['alertname="APIHighErrorRate"']}
    value: {op: ">", threshold: 5%, unit: ratio}
    set: {severity: SEV2, team: api, service: api, labels: {tier: frontend}}
"""

AM_PAYLOAD = textwrap.indent(textwrap.dedent("""\
    alertmanager:
      version: "4"
      status: firing
      alerts:
        - status: firing
          labels: {alertname: APIHighErrorRate, env: prod}
          annotations: {value: "0.07"}
          startsAt: "2026-01-01T00:00:00Z"
          fingerprint: "aa"
        - status: firing
          labels: {alertname: APIHighErrorRate, env: staging}
          annotations: {value: "0.30"}
          startsAt: "2026-01-01T00:00:00Z"
          fingerprint: "bb"
"""), "    ")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text("receivers: [{name: log, type: log}]\n", encoding="utf-8")
    return path


def setup(tmp_path: Path, tests: str, rules: str = RULES) -> Path:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "api.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    test_file = rules_dir / "api.test.yaml"
    test_file.write_text(textwrap.dedent(tests), encoding="utf-8")
    return test_file


def run(config: Path | None, *files: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = main(config, list(files), out)
    return code, out.getvalue()


def test_shipped_rule_tests_pass(config_file: Path) -> None:
    assert [p.name for p in SHIPPED_TESTS] == [
        "10-api-error-rate.test.yaml", "20-cloudwatch.test.yaml",
        "90-alertmanager-severity.test.yaml",
    ]
    code, out = run(config_file, *SHIPPED_TESTS)
    assert code == 0, out
    last = out.splitlines()[-1]
    assert last.startswith("test-rules: all ") and last.endswith(" cases passed in 3 files")
    assert "FAIL" not in out


def test_shipped_rule_tests_pass_without_a_config() -> None:
    code, out = run(None, *SHIPPED_TESTS)
    assert code == 0, out


def test_passing_file(tmp_path: Path, config_file: Path) -> None:
    test_file = setup(tmp_path, "cases:\n  - name: both alerts of one payload\n"
                      + AM_PAYLOAD + textwrap.indent(textwrap.dedent("""\
        expect:
          - {severity: SEV2, rule: api-sev2, labels: {tier: frontend},
             group_key: APIHighErrorRate|api}
          - {severity: SEV1, rule: api-sev1, receivers: [log],
             group_key: APIHighErrorRate|staging}
      - name: exactly 5% is not above 5%
        alert: {name: APIHighErrorRate, source: alertmanager, value: 0.05}
        expect: {severity: SEV3, rule: null, team: null}
    """), "  "))
    code, out = run(config_file, test_file)
    assert (code, out) == (
        0, f"ok   {test_file}: 2 cases passed\ntest-rules: all 2 cases passed in 1 file\n"
    )


def test_wrong_expectation_fails_with_a_diff(tmp_path: Path, config_file: Path) -> None:
    test_file = setup(tmp_path, """
        cases:
          - name: 7% is SEV1
            alert: {name: APIHighErrorRate, source: alertmanager, value: 0.07}
            expect:
              severity: SEV1
              team: api
              receivers: [pagerduty]
              runbook_url: https://runbooks.example.com/api
              labels: {tier: backend}
          - name: 30% is SEV1
            alert: {name: APIHighErrorRate, source: alertmanager, value: 0.30}
            expect: {severity: SEV1}
    """)
    code, out = run(config_file, test_file)
    assert code == 1
    assert out == (
        f"FAIL {test_file}: case '7% is SEV1', alert 1 of 1 (APIHighErrorRate) "
        "(- expected, + got):\n"
        "  - severity: SEV1\n"
        "  + severity: SEV2\n"
        "  - runbook_url: https://runbooks.example.com/api\n"
        "  + runbook_url: null\n"
        "  - receivers: [pagerduty]\n"
        "  + receivers: []\n"
        "  - labels: {tier: backend}\n"
        "  + labels: {tier: frontend}\n"
        "test-rules: FAILED (1 failing of 2 cases in 1 file)\n"
    )


def test_cli_exit_codes(tmp_path: Path, config_file: Path) -> None:
    good = setup(tmp_path, """
        cases:
          - alert: {name: Other}
            expect: {severity: SEV3}
    """)
    assert cli(["--config", str(config_file), str(good)]) == 0
    good.write_text("cases:\n  - alert: {name: Other}\n    expect: {severity: SEV4}\n")
    assert cli(["--config", str(config_file), str(good)]) == 1


def test_each_failing_alert_of_a_payload_is_named(tmp_path: Path, config_file: Path) -> None:
    test_file = setup(tmp_path, "cases:\n  - name: both SEV1\n" + AM_PAYLOAD
                      + "    expect: {severity: SEV1}\n")
    code, out = run(config_file, test_file)
    assert code == 1
    assert out.splitlines()[:3] == [
        f"FAIL {test_file}: case 'both SEV1', alert 1 of 2 (APIHighErrorRate) "
        "(- expected, + got):",
        "  - severity: SEV1",
        "  + severity: SEV2",
    ]


def test_cloudwatch_input(tmp_path: Path, config_file: Path) -> None:
    test_file = setup(tmp_path, """
        cases:
          - name: 23.4% error rate
            cloudwatch:
              AlarmName: web-5xx-rate
              AWSAccountId: "123456789012"
              NewStateValue: ALARM
              NewStateReason: "Threshold Crossed: 1 datapoint [23.4 (01/01/26 00:00:00)] was
                greater than the threshold (5.0)."
              StateChangeTime: "2026-01-01T00:00:30.000+0000"
              AlarmArn: arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-5xx-rate
              Trigger: {MetricName: ErrorRate, Namespace: Web, Statistic: AVERAGE,
                        Dimensions: [], Period: 60, EvaluationPeriods: 1,
                        ComparisonOperator: GreaterThanThreshold, Threshold: 5.0}
            expect: {severity: SEV1, rule: web, group_key: web-5xx-rate|web}
    """, rules="""
        rules:
          - name: web
            match: {source: cloudwatch, labels: ['namespace="Web"']}
            value: {op: ">", threshold: 20, unit: percent}
            set: {severity: SEV1, service: web}
    """)
    code, out = run(config_file, test_file)
    assert code == 0, out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("- expect: {severity: SEV1}",
         "cases[0]: give exactly one input: alert, alertmanager, cloudwatch"),
        ("- {name: two, alert: {name: A}, cloudwatch: {}, expect: {severity: SEV1}}",
         "case 'two': give exactly one input: alert, alertmanager, cloudwatch"),
        ("- {name: c, alert: {name: A}, expect: {owner: me}}",
         "case 'c': expect: unknown field 'owner' (expected one of: severity, team, service, "
         "runbook_url, dashboard_url, receivers, group_key, rule, labels)"),
        ("- {name: c, alert: {name: A}}", "case 'c': expect: expected a mapping of fields to "
         "compare"),
        ("- {name: c, alert: {name: A}, expect: [{severity: SEV1}, {severity: SEV2}]}",
         "case 'c': 'expect' lists 2 results but the input produced 1 alerts"),
        ("- {name: c, alert: {name: A, colour: red}, expect: {severity: SEV1}}",
         "case 'c': alert: unknown key 'colour' (expected one of: name, source, status, labels, "
         "annotations, value, fingerprint)"),
        ("- {name: c, alert: {labels: {}}, expect: {severity: SEV1}}",
         "case 'c': alert: expected a mapping with at least 'name'"),
        ("- {name: c, alertmanager: {version: '3', status: firing, alerts: []}, "
         "expect: {severity: SEV1}}",
         "case 'c': alertmanager: invalid payload: version: Value error, unsupported webhook "
         "payload version '3', expected '4'"),
        ("- {name: c, alertmanager: {version: '4', status: firing, alerts: []}, "
         "expect: {severity: SEV1}}",
         "case 'c': the alertmanager input produced no alerts"),
        ("- {name: c, when: now, alert: {name: A}, expect: {severity: SEV1}}",
         "case 'c': unknown key 'when' (expected one of: name, alert, alertmanager, cloudwatch, "
         "expect)"),
    ],
)
def test_case_errors_fail_the_run(
    tmp_path: Path, config_file: Path, case: str, message: str
) -> None:
    test_file = setup(tmp_path, f"cases:\n  {case}\n")
    code, out = run(config_file, test_file)
    assert code == 1
    assert out.splitlines()[0] == f"FAIL {test_file}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: 3\n", "expected a mapping with a 'cases' list"),
        ("cases: []\ntests: []\n", "unknown top-level key 'tests' (expected one of: rules_dir, "
         "cases)"),
        ("cases: [\n", "invalid YAML at line 2, column 1: expected the node content, but "
         "found '<stream end>'"),
    ],
)
def test_bad_test_files(tmp_path: Path, config_file: Path, text: str, message: str) -> None:
    test_file = setup(tmp_path, text)
    code, out = run(config_file, test_file)
    assert code == 1
    assert out.splitlines()[0] == f"FAIL {test_file}: {message}"


def test_rules_that_do_not_load_fail_the_file(tmp_path: Path, config_file: Path) -> None:
    test_file = setup(tmp_path, "cases: [{alert: {name: A}, expect: {severity: SEV3}}]\n",
                      rules="rules: [{name: r, set: {receivers: [pager]}}]\n")
    code, out = run(config_file, test_file)
    assert code == 1
    rules_dir = test_file.parent
    assert out.splitlines()[:2] == [
        f"FAIL {test_file}: the rules in {rules_dir} do not load:",
        f"  {rules_dir / 'api.yaml'}: rule 'r': set.receivers: unknown receiver 'pager' "
        "(known: log)",
    ]


def test_rules_dir_is_relative_to_the_test_file(tmp_path: Path, config_file: Path) -> None:
    setup(tmp_path, "cases: []\n")
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    test_file = tests_dir / "api.test.yaml"
    test_file.write_text(textwrap.dedent("""
        rules_dir: ../rules
        cases:
          - alert: {name: APIHighErrorRate, source: alertmanager, value: 0.5}
            expect: {severity: SEV1, rule: api-sev1}
    """))
    code, out = run(config_file, test_file)
    assert code == 0, out


def test_unusable_config(tmp_path: Path) -> None:
    bad = tmp_path / "router.yaml"
    bad.write_text("receivers: 3\n")
    code, out = run(bad, *SHIPPED_TESTS)
    assert code == 1
    assert out.startswith(f"test-rules: {bad}: receivers: ")


def test_copied_shipped_rules_with_one_wrong_expectation(
    tmp_path: Path, config_file: Path
) -> None:
    # The acceptance check: a deliberately wrong expectation fails with a diff.
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for p in (ROOT / "rules").glob("*.yaml"):
        shutil.copy(p, rules_dir / p.name)
    test_file = rules_dir / "10-api-error-rate.test.yaml"
    text = test_file.read_text()
    test_file.write_text(text.replace("    expect: {severity: SEV2}\n",
                                      "    expect: {severity: SEV1}\n", 1))
    code, out = run(config_file, test_file)
    assert code == 1
    assert (
        f"FAIL {test_file}: case 'just above 5% is SEV2', alert 1 of 1 (APIHighErrorRate) "
        "(- expected, + got):\n  - severity: SEV1\n  + severity: SEV2\n"
    ) in out
