"""Packaging: every import is a declared dependency, every runtime dependency is pinned in
constraints.txt, the embedded backend runs without the `kafka` extra, and the licence file is
the one pyproject.toml names."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def runtime_requirements() -> list[Requirement]:
    """The base dependencies and the `kafka` extra: what the image installs."""
    return [Requirement(r) for r in [*PYPROJECT["dependencies"],
                                     *PYPROJECT["optional-dependencies"]["kafka"]]]


def imported_top_level_modules(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency() -> None:
    third_party = imported_top_level_modules(ROOT / "router") - set(sys.stdlib_module_names)
    third_party -= {"router", "__future__"}
    dists = packages_distributions()
    declared = {canonicalize_name(r.name) for r in runtime_requirements()}
    undeclared = {
        module: dists.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in dists.get(module, [])} & declared
    }
    assert not undeclared, f"imported by router/ but not in pyproject.toml: {undeclared}"


def test_tzdata_is_declared_for_slim_images() -> None:
    # router/ uses zoneinfo; python:3.11-slim has no system time-zone database.
    assert "zoneinfo" in imported_top_level_modules(ROOT / "router")
    assert "tzdata" in {canonicalize_name(r.name) for r in runtime_requirements()}


def test_aiokafka_is_only_in_the_kafka_extra_and_the_tests_pull_it() -> None:
    base = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert "aiokafka" not in base
    assert "incident-router[kafka]" in PYPROJECT["optional-dependencies"]["test"]


def constraint_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = constraint_pins()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req}"


def test_the_image_builds_with_the_constraints_and_the_kafka_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--constraint constraints.txt '.[kafka]'" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignored and "!LICENSE" in ignored


def run_without_aiokafka(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter where `import aiokafka` fails as if not installed."""
    prelude = "import sys\nsys.modules['aiokafka'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_embedded_backend_runs_without_aiokafka(tmp_path: Path) -> None:
    proc = run_without_aiokafka(f"""
        import asyncio
        from prometheus_client import CollectorRegistry
        from router.api.app import build_app
        from router.backends.factory import make_backend
        from router.config import Config
        from router.metrics import EngineMetrics

        config = Config.model_validate({{"backend": {{"type": "embedded",
                                                      "path": {str(tmp_path / "r.db")!r}}}}})

        async def main() -> None:
            backend = make_backend(config, EngineMetrics(CollectorRegistry()))
            await backend.start()
            print("ready", await backend.ready())
            await backend.stop()

        asyncio.run(main())
        print("kafka loaded:", any(m.startswith("router.backends.kafka") for m in sys.modules))
    """)
    assert proc.returncode == 0, proc.stderr
    assert "ready True" in proc.stdout
    assert "kafka loaded: False" in proc.stdout


def test_kafka_backend_without_aiokafka_says_which_extra_to_install() -> None:
    proc = run_without_aiokafka("""
        from prometheus_client import CollectorRegistry
        from router.backends.factory import KafkaNotInstalled, make_backend
        from router.config import Config
        from router.metrics import EngineMetrics

        config = Config.model_validate(
            {"backend": {"type": "kafka", "bootstrap_servers": ["127.0.0.1:9092"]}})
        try:
            make_backend(config, EngineMetrics(CollectorRegistry()))
        except KafkaNotInstalled as exc:
            print("refused:", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "refused: backend.type kafka needs aiokafka: install incident-router[kafka]" \
        in proc.stdout


def test_licence_file_is_the_apache_2_licence_pyproject_names() -> None:
    assert PYPROJECT["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
