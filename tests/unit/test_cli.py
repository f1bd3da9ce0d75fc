"""The command line: check-config names the file, the key path and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main, new_event_loop
from tests.conftest import ROOT


def test_check_config_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(ROOT / "examples" / "router.yaml")]) == 0
    assert ": ok (" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server: {port: 99999}\n",
         "server.port: Input should be less than or equal to 65535"),
        ("backend: {type: postgres}\n",
         "backend: Input tag 'postgres' found using 'type' does not match any of the expected "
         "tags: 'embedded', 'kafka'"),
        ("sources: {alertmanager: {auth: {type: bearer, tokens: []}}}\n",
         "sources.alertmanager.auth.bearer.tokens: List should have at least 1 item after "
         "validation, not 0"),
        ("receivers: [{name: pd, type: pagerduty, routing_key: '${PD_KEY_UNSET_FOR_TEST}'}]\n",
         "receivers.0.routing_key: environment variable PD_KEY_UNSET_FOR_TEST is not set"),
        ("server: [oops\n", "(top level): invalid YAML at line 4, column 1"),
        ("severities: {SEV1: {ack_sla: soon}}\n", "severities.SEV1.ack_sla: Value error, "
         "invalid duration 'soon'"),
    ],
)
def test_check_config_reports_file_key_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {ROOT / 'rules'}\nreceivers: [{{name: log, type: log}}]\n"
                    + text if "receivers" not in text else f"rules_dir: {tmp_path}\n" + text)
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err, err


def test_check_config_reports_rule_problems(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-bad.yaml").write_text(
        "rules:\n  - name: bad-regex\n    match: {labels: ['job=~\"(\"']}\n"
        "    set: {severity: SEV2}\n")
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {rules}\nreceivers: [{{name: log, type: log}}]\n")
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "10-bad.yaml" in err and "bad-regex" in err, err


@pytest.mark.parametrize(("kind", "module"), [("auto", "uvloop"), ("uvloop", "uvloop"),
                                              ("asyncio", "asyncio")])
def test_serve_runs_on_uvloop_unless_asked_for_asyncio(kind: str, module: str) -> None:
    loop = new_event_loop(kind)
    try:
        assert type(loop).__module__.split(".")[0] == module
    finally:
        loop.close()
