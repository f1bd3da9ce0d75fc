"""tools/k8s_checks.py passes on the shipped tree and fails on deliberately broken copies of
it: a template that does not render, a manifest Kubernetes would reject, a value off the
chart's schema, an alerting rule with a syntax error, a Dockerfile hadolint rejects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tools" / "k8s_checks.py"


@pytest.fixture(scope="module")
def helm() -> str:
    """The cached helm binary (built once by the checker if missing)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import k8s_checks
    finally:
        sys.path.pop(0)
    return k8s_checks.ensure_helm(None)


def run_checks(root: Path, helm: str, *steps: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), "--root", str(root), "--helm", helm, "--only", *steps],
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the checker looks at, free to break."""
    for d in ("helm", "deploy", "rules", "docs"):
        shutil.copytree(ROOT / d, tmp_path / d)
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


CHART = Path("helm/incident-router")


def test_shipped_tree_passes_every_check(helm: str) -> None:
    proc = run_checks(ROOT, helm, "hadolint", "helm", "kubernetes", "prometheus", "grafana",
                      "alertmanager", "docker", "docs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all deployment checks passed" in proc.stdout
    # The operator's and Gateway API's CRDs cannot be validated offline: skipped by name,
    # never silently; the documented install renders none of them.
    assert "skip  operator-values: ServiceMonitor" in proc.stdout
    assert "skip  operator-values: PrometheusRule" in proc.stdout
    assert "skip  operator-values: HTTPRoute" in proc.stdout
    assert "skip  embedded-values" not in proc.stdout
    assert ("ok    docs/deployment.md block 1: helm install incident-router "
            "helm/incident-router/ci/embedded-values.yaml with the documented Secrets: "
            "incident-router check-config") in proc.stdout


def test_template_that_does_not_render_fails(tree: Path, helm: str) -> None:
    edit(tree / CHART / "templates/service.yaml", "spec:", "spec:\n  {{- if }}")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "FAIL  helm lint embedded-values" in proc.stdout


def test_manifest_kubernetes_rejects_fails(tree: Path, helm: str) -> None:
    # Renders fine, but Deployment has no `spec.replicass`.
    edit(tree / CHART / "templates/deployment.yaml", "  revisionHistoryLimit: 5",
         "  revisionHistoryLimit: 5\n  replicass: 2")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "FAIL  embedded-values: Deployment/ir-incident-router is not valid" in proc.stdout
    assert "replicass" in proc.stdout


def test_value_off_the_schema_fails(tree: Path, helm: str) -> None:
    edit(tree / CHART / "ci/kafka-values.yaml", "replicaCount: 3", 'replicaCount: "three"')
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "FAIL  helm lint kafka-values" in proc.stdout
    assert "replicaCount" in proc.stdout


def test_embedded_scenario_with_three_replicas_fails(tree: Path, helm: str) -> None:
    edit(tree / CHART / "ci/embedded-values.yaml", "replicaCount: 1", "replicaCount: 3")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "needs backend.type=kafka" in proc.stdout


def test_router_config_the_router_rejects_fails(tree: Path, helm: str) -> None:
    # Valid for the chart's schema (config is free-form) but not for the router.
    edit(tree / CHART / "ci/embedded-values.yaml", "  default_receivers: [slack]\n",
         "  default_receivers: [slack]\n  severites: {}\n")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "FAIL  embedded-values: incident-router check-config" in proc.stdout
    assert "severites" in proc.stdout


def test_alerting_rule_with_syntax_error_fails(tree: Path, helm: str) -> None:
    edit(tree / "deploy/prometheus/rules/incident-router.rules.yml",
         'expr: up{job="incident-router"} == 0', 'expr: up{job="incident-router" == 0')
    proc = run_checks(tree, helm, "prometheus")
    assert proc.returncode == 1
    assert "FAIL  promtool check rules" in proc.stdout


def test_chart_copy_of_alerting_rules_must_follow(tree: Path, helm: str) -> None:
    edit(tree / "deploy/prometheus/rules/incident-router.rules.yml", "for: 2m", "for: 3m")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert "PrometheusRule differs" in proc.stdout
    assert "files/prometheus-rules.yml is not a copy" in proc.stdout


def test_broken_alertmanager_config_fails(tree: Path, helm: str) -> None:
    edit(tree / "deploy/alertmanager/alertmanager.yml", "receiver: incident-router-direct",
         "receiver: nobody")
    proc = run_checks(tree, helm, "alertmanager")
    assert proc.returncode == 1
    assert "FAIL  amtool check-config" in proc.stdout


def test_dockerfile_hadolint_rejects_fails(tree: Path, helm: str) -> None:
    edit(tree / "Dockerfile", "FROM ${PYTHON_IMAGE} AS runtime",
         "FROM ${PYTHON_IMAGE} AS runtime\nRUN apt-get update && apt-get install -y curl")
    proc = run_checks(tree, helm, "hadolint")
    assert proc.returncode == 1
    assert "DL3008" in proc.stdout


DASHBOARD = Path("deploy/grafana/incident-router.json")


def test_dashboard_query_prometheus_refuses_fails(tree: Path, helm: str) -> None:
    edit(tree / DASHBOARD, "sum(incident_router_engine_consumer_lag{",
         "sum(incident_router_engine_consumer_lag{{")
    proc = run_checks(tree, helm, "grafana")
    assert proc.returncode == 1
    assert "FAIL  deploy/grafana/incident-router.json: queries Prometheus refuses" in proc.stdout
    assert "panel 'Engine lag' A" in proc.stdout


def test_dashboard_metric_the_router_does_not_export_fails(tree: Path, helm: str) -> None:
    # Valid PromQL, so only the name check can catch it.
    edit(tree / DASHBOARD, "process_resident_memory_bytes{", "process_resident_memory{")
    proc = run_checks(tree, helm, "grafana")
    assert proc.returncode == 1
    assert "metrics the router does not export" in proc.stdout
    assert "process_resident_memory\n" in proc.stdout + "\n"


def test_alerting_rule_on_a_metric_the_router_does_not_export_fails(tree: Path, helm: str) -> None:
    edit(tree / "deploy/prometheus/rules/incident-router.rules.yml",
         "max by (job, instance) (incident_router_engine_consumer_lag) > 100",
         "max by (job, instance) (incident_router_engine_lag) > 100")
    proc = run_checks(tree, helm, "prometheus")
    assert proc.returncode == 1
    assert "metrics the router does not export" in proc.stdout
    assert "incident_router_engine_lag" in proc.stdout


DOC = Path("docs/deployment.md")


def test_documented_secret_without_a_key_the_values_need_fails(tree: Path, helm: str) -> None:
    # What the issue reproduced: the doc's Secret lacked PAGERDUTY_ROUTING_KEY.
    edit(tree / DOC, " \\\n  --from-literal=PAGERDUTY_ROUTING_KEY=", " ")
    proc = run_checks(tree, helm, "docs")
    assert proc.returncode == 1
    assert ("FAIL  docs/deployment.md block 1: helm install incident-router "
            "helm/incident-router/ci/embedded-values.yaml with the documented Secrets: "
            "incident-router check-config") in proc.stdout
    assert "PAGERDUTY_ROUTING_KEY is not set" in proc.stdout


def test_documented_install_that_needs_crds_fails(tree: Path, helm: str) -> None:
    edit(tree / DOC, "  -f helm/incident-router/ci/embedded-values.yaml",
         "  -f helm/incident-router/ci/embedded-values.yaml --set serviceMonitor.enabled=true")
    proc = run_checks(tree, helm, "docs")
    assert proc.returncode == 1
    assert "needs CRDs a plain cluster lacks" in proc.stdout
    assert "ServiceMonitor/incident-router" in proc.stdout


def test_documented_install_missing_a_referenced_secret_fails(tree: Path, helm: str) -> None:
    edit(tree / DOC, "kubectl -n incident-router create secret generic kafka-ca "
                     "--from-file=ca.crt=kafka-ca.crt\n", "")
    proc = run_checks(tree, helm, "docs")
    assert proc.returncode == 1
    assert "references Secrets the documented commands do not create" in proc.stdout
    assert "volume kafka-tls: Secret kafka-ca key ca.crt" in proc.stdout


def test_rule_edit_that_would_recreate_the_pod_fails(tree: Path, helm: str) -> None:
    # The checksum annotation back on unconditionally: every rule edit would roll the pod.
    edit(tree / CHART / "templates/deployment.yaml", "        {{- if not $reloader }}\n", "")
    edit(tree / CHART / "templates/deployment.yaml",
         "sha256sum }}\n        {{- end }}\n", "sha256sum }}\n")
    proc = run_checks(tree, helm, "helm")
    assert proc.returncode == 1
    assert ("FAIL  configReloader.enabled=true: a rule and config edit leaves the pod "
            "template unchanged") in proc.stdout


def render(helm: str, release: str, *args: str) -> list[dict[str, object]]:
    proc = subprocess.run([helm, "template", release, str(ROOT / CHART),
                           "--kube-version", "1.30.0", *args],
                          capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_two_releases_scrape_and_alert_under_their_own_job(helm: str) -> None:
    values = ["-f", str(ROOT / CHART / "ci/operator-values.yaml")]
    for release, job in (("incident-router", "incident-router"),
                         ("payments", "payments-incident-router")):
        objects = render(helm, release, *values)
        monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
        relabel = monitor["spec"]["endpoints"][0]["relabelings"][0]  # type: ignore[index]
        assert relabel == {"targetLabel": "job", "replacement": job}
        rules = next(o for o in objects if o["kind"] == "PrometheusRule")
        down = next(r for r in rules["spec"]["groups"][0]["rules"]  # type: ignore[index]
                    if r["alert"] == "IncidentRouterDown")
        assert down["expr"] == f'up{{job="{job}"}} == 0'
    objects = render(helm, "x", *values, "--set", "serviceMonitor.jobLabel=router-eu")
    rules = next(o for o in objects if o["kind"] == "PrometheusRule")
    assert 'up{job="router-eu"}' in yaml.safe_dump(rules)


def test_chart_refuses_api_tokens_without_a_reloader_token(helm: str) -> None:
    values = str(ROOT / CHART / "ci/operator-values.yaml")
    proc = subprocess.run([helm, "template", "ir", str(ROOT / CHART), "--kube-version", "1.30.0",
                           "-f", values,
                           "--set", "configReloader.apiTokenKey="], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "configReloader.apiTokenKey is required when config.api.tokens is set" in proc.stderr


def test_chart_refuses_an_httproute_without_a_gateway(helm: str) -> None:
    proc = subprocess.run([helm, "template", "ir", str(ROOT / CHART), "--kube-version", "1.30.0",
                           "--set", "httpRoute.enabled=true"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "httpRoute.parentRefs is required" in proc.stderr


def test_helm_test_pod_is_not_behind_the_service_and_may_pass_the_network_policy(
        helm: str) -> None:
    objects = render(helm, "ir", "-f", str(ROOT / CHART / "ci/embedded-values.yaml"))
    test_pod = next(o for o in objects if o["kind"] == "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"  # type: ignore[index]
    labels = test_pod["metadata"]["labels"]  # type: ignore[index]
    service = next(o for o in objects if o["kind"] == "Service")
    selector = service["spec"]["selector"]  # type: ignore[index]
    assert not all(labels.get(k) == v for k, v in selector.items())
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    peers = policy["spec"]["ingress"][0]["from"]  # type: ignore[index]
    assert {"podSelector": {"matchLabels": {
        "app.kubernetes.io/instance": "ir", "app.kubernetes.io/component": "helm-test"}}} in peers
