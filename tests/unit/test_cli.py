"""The command line: check-config names the file, the key path and the problem."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

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
        ("server: [oops\n", "(top level): invalid YAML at line 5, column 1"),
        ("severities: {SEV1: {ack_sla: soon}}\n", "severities.SEV1.ack_sla: Value error, "
         "invalid duration 'soon'"),
    ],
)
def test_check_config_reports_file_key_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {ROOT / 'rules'}\nrunbooks_dir: {ROOT / 'runbooks'}\n"
                    "receivers: [{name: log, type: log}]\n"
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


def write_router_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {ROOT / 'rules'}\nrunbooks_dir: {ROOT / 'runbooks'}\n{text}")
    return path


def test_check_config_effective_prints_the_merged_policy_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_router_yaml(tmp_path, (
        "receivers:\n"
        "  - {name: log, type: log}\n"
        "  - {name: pd, type: pagerduty, routing_key: R0UTINGKEY0123456789abcdef}\n"
        "  - {name: hook, type: webhook, url: 'https://hooks.example.com/T0/secret-path'}\n"
        "default_receivers: [log]\n"
        "severities: {SEV1: {receivers: [pd]}}\n"))
    assert main(["check-config", "--config", str(path), "--effective"]) == 0
    out = capsys.readouterr().out
    assert "R0UTINGKEY" not in out and "secret-path" not in out
    doc = yaml.safe_load(out)  # stdout is one YAML document; the summary is a comment
    assert out.startswith(f"# {path}: ok (")
    assert doc["severities"]["SEV1"] == {
        "description": "Critical: customer-facing outage or data loss",
        "ack_sla": "15m", "resolve_sla": "1h", "response": "page_everyone",
        "receivers": ["pd"], "route": "page", "auto_resolve": True, "update_every": "15m",
        "ack_timeout": "30m", "auto_resolve_after": "4h", "group_wait": "0s",
        "group_interval": "1m", "repeat_interval": "30m",
    }
    assert doc["severities"]["SEV4"]["ack_sla"] is None
    assert doc["receivers"][1]["routing_key"] == "**********"
    assert doc["receivers"][2]["url"] == "**********"


def test_check_config_without_effective_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_router_yaml(tmp_path, "receivers: [{name: log, type: log}]\n")
    assert main(["check-config", "--config", str(path)]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_check_config_refuses_an_unknown_receiver_by_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_router_yaml(tmp_path, "receivers: [{name: log, type: log}]\n"
                                       "incidents: {page_receivers: [nope2]}\n")
    assert main(["check-config", "--config", str(path), "--effective"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"{path}: incidents.page_receivers: unknown receiver 'nope2' "
                            "(known: log)\n")
    assert captured.out == ""


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"incident-router {version('incident-router')}\n"


def test_log_level_rejects_unknown_levels_with_argparse_error(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--config", "x.yaml", "--log-level", "LOUD"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert ("argument --log-level: invalid choice: 'LOUD' (choose from 'DEBUG', 'INFO', "
            "'WARNING', 'ERROR', 'CRITICAL')") in err
    assert "Traceback" not in err

