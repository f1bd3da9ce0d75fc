"""Runbooks: Markdown rendered to sanitised HTML, names that cannot leave the directory, rules
that link them (`runbook: <name>`), and what check-config says about them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from router import runbooks
from router.cli import main
from router.config import Config, ConfigError, parse_config
from router.model import Alert, Status, utcnow
from router.rules import RuleError, load_rules, runbook_warnings
from router.runtime import build_snapshot
from tests.conftest import ROOT

CONFIG = Config.model_validate({"receivers": [{"name": "log", "type": "log"}]})


# --- rendering and sanitising ------------------------------------------------------------------


def test_markdown_renders_headings_lists_code_and_tables() -> None:
    html = runbooks.render(textwrap.dedent("""\
        # Database failover

        ## Steps

        1. Check **replication lag**.
        2. Promote the replica.

        - one
        - two

        ```sh
        kubectl get pods -n db
        ```

        | Symptom | Fix |
        |---|---|
        | lag | wait |

        See [the dashboard](https://grafana.example.com/d/db).
        """))
    assert "<h1>Database failover</h1>" in html
    assert "<h2>Steps</h2>" in html
    assert "<ol>\n<li>Check <strong>replication lag</strong>.</li>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert "<pre><code>kubectl get pods -n db\n</code></pre>" in html
    assert "<th>Symptom</th>" in html and "<td>wait</td>" in html
    assert ('<a href="https://grafana.example.com/d/db" rel="noopener noreferrer">'
            "the dashboard</a>") in html


@pytest.mark.parametrize(
    ("markdown", "gone"),
    [
        ("Hi\n\n<script>alert('x')</script>\n", ["<script", "alert("]),
        ("[click](javascript:alert(1))\n", ['href="javascript']),
        ('<a href="javascript:alert(1)">click</a>\n', ["javascript:"]),
        ('<img src="/x.png" onerror="alert(1)">\n', ["onerror", "alert("]),
        ('<p style="color:red" onclick="steal()">x</p>\n', ["onclick", "steal(", "style="]),
        ("<iframe src=\"https://evil.example.com\"></iframe>\n", ["<iframe", "evil.example"]),
    ],
)
def test_script_and_dangerous_links_are_removed(markdown: str, gone: list[str]) -> None:
    html = runbooks.render(markdown)
    for bad in gone:
        assert bad not in html, html


def test_names_cannot_leave_the_directory(tmp_path: Path) -> None:
    book = tmp_path / "runbooks"
    book.mkdir()
    (book / "db-failover.md").write_text("# DB\n")
    (tmp_path / "secret.md").write_text("# secret\n")
    (book / "notes.txt").write_text("not a runbook")
    assert runbooks.names(book) == ["db-failover"]
    assert runbooks.read(book, "db-failover") == "# DB\n"
    for name in ("../secret", "..", "db-failover.md", "/etc/passwd", "", "a/b", "notes"):
        assert runbooks.read(book, name) is None, name
    assert runbooks.names(tmp_path / "missing") == []


def test_title_is_the_first_heading_else_the_name() -> None:
    assert runbooks.title("intro\n# API High Error Rate\n## x\n", "api") == "API High Error Rate"
    assert runbooks.title("no heading\n", "api") == "api"


def test_the_shipped_runbook_covers_the_methodology() -> None:
    text = (ROOT / "runbooks" / "api-high-error-rate.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for part in ("Investigate", "Quick fixes", "Roll back", "Escalate", "Communicate"):
        assert any(part in h for h in headings), (part, headings)
    assert "Next update:" in text  # the communication template


# --- rules ---------------------------------------------------------------------------------------


def alert(name: str, value: float | None = None) -> Alert:
    now = utcnow()
    return Alert(source="alertmanager", fingerprint="f1", status=Status.FIRING, name=name,
                 labels={"alertname": name}, value=value, starts_at=now, received_at=now)


def write(tmp_path: Path, rules: str, books: dict[str, str]) -> tuple[Path, Path]:
    rdir, bdir = tmp_path / "rules", tmp_path / "runbooks"
    rdir.mkdir()
    bdir.mkdir()
    (rdir / "10-r.yaml").write_text(textwrap.dedent(rules))
    for name, text in books.items():
        (bdir / name).write_text(text)
    return rdir, bdir


RULES = """\
    rules:
      - name: db-down
        match: {labels: ['alertname="DBDown"']}
        set: {severity: SEV1, runbook: db-failover}
      - name: disk
        match: {labels: ['alertname="DiskFull"']}
        set: {severity: SEV2, runbook: "https://wiki.example.com/disk"}
"""


def test_a_classified_alert_links_the_runbook_under_external_url(tmp_path: Path) -> None:
    rdir, bdir = write(tmp_path, RULES, {"db-failover.md": "# DB\n"})
    config = Config.model_validate({"server": {"external_url": "https://router.example.com/"}})
    rs = load_rules(rdir, config, runbooks_dir=bdir)
    assert rs.classify(alert("DBDown")).runbook_url == \
        "https://router.example.com/runbooks/db-failover"
    assert rs.classify(alert("DiskFull")).runbook_url == "https://wiki.example.com/disk"
    # Without external_url the link is relative to the router.
    rs = load_rules(rdir, Config(), runbooks_dir=bdir)
    assert rs.classify(alert("DBDown")).runbook_url == "/runbooks/db-failover"


def test_the_shipped_error_rate_rules_link_the_shipped_runbook() -> None:
    config = Config.model_validate({"server": {"external_url": "https://ir.example.com"}})
    rs = load_rules(ROOT / "rules", config, runbooks_dir=ROOT / "runbooks")
    for name in ("APIHighErrorRate", "CheckoutHighErrorRate"):
        got = rs.classify(alert(name, value=0.3))
        assert got.runbook_url == "https://ir.example.com/runbooks/api-high-error-rate", name


def test_an_unknown_runbook_is_an_error_naming_the_rule_and_the_directory(
    tmp_path: Path,
) -> None:
    rdir, bdir = write(tmp_path, RULES, {"other.md": "# Other\n"})
    with pytest.raises(RuleError) as err:
        load_rules(rdir, CONFIG, runbooks_dir=bdir)
    assert err.value.problems == [
        f"{rdir / '10-r.yaml'}: rule 'db-down': set.runbook: no runbook 'db-failover' in "
        f"{bdir} (expected db-failover.md; known: other)",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("'../etc/passwd'", "set.runbook: '../etc/passwd' is neither a runbook name (letters, "
         "digits, '-', '_'; a file <name>.md in runbooks_dir) nor an http(s):// URL"),
        ("'javascript:alert(1)'", "set.runbook: 'javascript:alert(1)' is neither a runbook "
         "name (letters, digits, '-', '_'; a file <name>.md in runbooks_dir) nor an "
         "http(s):// URL"),
        ("db-failover, runbook_url: 'https://x.example.com'",
         "set.runbook: give runbook or runbook_url, not both"),
    ],
)
def test_a_runbook_that_is_neither_a_name_nor_a_url_is_refused(
    tmp_path: Path, value: str, problem: str
) -> None:
    rdir, bdir = write(tmp_path, f"rules: [{{name: r, set: {{runbook: {value}}}}}]\n", {})
    with pytest.raises(RuleError) as err:
        load_rules(rdir, CONFIG, runbooks_dir=bdir)
    assert err.value.problems == [f"{rdir / '10-r.yaml'}: rule 'r': {problem}"]


def test_sev1_and_sev2_rules_without_a_runbook_are_warned_about(tmp_path: Path) -> None:
    rdir, _ = write(tmp_path, """\
        rules:
          - name: linked
            match: {labels: ['alertname="A"']}
            set: {severity: SEV1, runbook: a}
          - name: bare-sev1
            match: {labels: ['alertname="B"']}
            set: {severity: SEV1}
          - name: bare-sev2
            match: {labels: ['alertname="C"']}
            set: {severity: SEV2}
          - name: bare-sev3
            match: {labels: ['alertname="D"']}
            set: {severity: SEV3}
          # A continue rule that links a runbook for every alert the next one matches.
          - name: family
            match: {labels: ['alertname=~"E.*"']}
            set: {runbook: a}
            continue: true
          - name: family-sev1
            match: {labels: ['alertname=~"E.*"', 'env="prod"']}
            set: {severity: SEV1}
          # ... but not for an alert it does not match.
          - name: other-family-sev2
            match: {labels: ['alertname=~"F.*"']}
            set: {severity: SEV2}
    """, {})
    rs = load_rules(rdir, CONFIG)
    where = rdir / "10-r.yaml"
    assert runbook_warnings(rs) == [
        f"{where}: rule 'bare-sev1': sets SEV1 but links no runbook "
        "(set runbook: <name> or an http(s):// URL)",
        f"{where}: rule 'bare-sev2': sets SEV2 but links no runbook "
        "(set runbook: <name> or an http(s):// URL)",
        f"{where}: rule 'other-family-sev2': sets SEV2 but links no runbook "
        "(set runbook: <name> or an http(s):// URL)",
    ]


# --- check-config --------------------------------------------------------------------------------


def router_yaml(tmp_path: Path, rdir: Path, bdir: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(f"rules_dir: {rdir}\nrunbooks_dir: {bdir}\n"
                    "receivers: [{name: log, type: log}]\n")
    return path


def test_check_config_warns_about_a_sev1_rule_without_a_runbook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rdir, bdir = write(tmp_path, """\
        rules:
          - name: db-down
            match: {labels: ['alertname="DBDown"']}
            set: {severity: SEV1}
    """, {})
    path = router_yaml(tmp_path, rdir, bdir)
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (1 rules, 1 receivers)\n"
    assert err == (f"warning: {rdir / '10-r.yaml'}: rule 'db-down': sets SEV1 but links no "
                   "runbook (set runbook: <name> or an http(s):// URL)\n")


def test_check_config_refuses_a_runbook_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rdir, bdir = write(tmp_path, RULES, {})
    path = router_yaml(tmp_path, rdir, bdir)
    assert main(["check-config", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"{rdir / '10-r.yaml'}: rule 'db-down': set.runbook: no runbook "
                   f"'db-failover' in {bdir} (expected db-failover.md; known: none)\n")


def test_runbooks_dir_is_resolved_like_rules_dir(tmp_path: Path) -> None:
    rdir, _ = write(tmp_path, RULES, {"db-failover.md": "# DB\n"})
    config = parse_config(f"rules_dir: {rdir.name}\nrunbooks_dir: runbooks\n", "router.yaml",
                          base_dir=str(tmp_path))
    assert config.resolve(config.runbooks_dir) == tmp_path / "runbooks"
    assert build_snapshot(config).warnings == ()
    # The default, `runbooks`, is next to the config file, wherever the rules are.
    elsewhere = tmp_path / "elsewhere"
    moved = parse_config(f"rules_dir: {rdir}\n", "router.yaml", base_dir=str(elsewhere))
    with pytest.raises(ConfigError) as err:
        build_snapshot(moved)
    assert f"no runbook 'db-failover' in {elsewhere / 'runbooks'} " in str(err.value)


def test_the_shipped_example_config_loads_with_its_runbooks() -> None:
    assert main(["check-config", "--config", str(ROOT / "examples" / "router.yaml")]) == 0
