"""Classification throughput: the shipped rules plus 200 generated ones, alerts per second.

    .venv/bin/python bench/classify.py [--alerts 200000] [--rules 200]

The generated rules mix what real rule sets hold: most name an alert (`alertname="..."`, found
through the alertname index), some only match other labels (`team`, `env=~...`, checked for
every alert of their source), with thresholds and `continue` tagging rules. The alerts mix
Alertmanager alerts that hit the API ladder, generated names, unknown names that fall through
to the defaults, and CloudWatch alarms. Target (issue 3): at least 50,000 alerts/s on one core.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from router.config import Config
from router.model import Alert, Status
from router.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def generated_rules(n: int) -> dict[str, object]:
    rules: list[dict[str, object]] = []
    for i in range(n):
        kind = i % 10
        if kind < 7:  # named alert with a severity ladder step
            rules.append({
                "name": f"gen-{i}",
                "match": {"source": "alertmanager",
                          "labels": [f'alertname="Generated{i // 2}"', 'env=~"prod|production"']},
                "value": {"op": ">", "threshold": 0.05 if i % 2 else 0.2, "unit": "ratio"},
                "set": {"severity": "SEV2" if i % 2 else "SEV1", "team": f"team{i % 17}",
                        "service": f"svc{i}", "group_by": ["alertname", "service", "env"]},
            })
        elif kind < 9:  # label-only rule: evaluated for every alert of the source
            rules.append({
                "name": f"gen-{i}",
                "match": {"labels": [f'team="t{i}"', 'env!~"dev|test"']},
                "set": {"severity": "SEV3", "runbook_url": f"https://runbooks.example.com/{i}"},
            })
        else:  # tagging rule that continues
            rules.append({
                "name": f"gen-{i}",
                "match": {"source": "cloudwatch", "labels": [f'region="r{i}"']},
                "set": {"labels": {"tier": "backend"}},
                "continue": True,
            })
    return {"rules": rules}


def alerts(n: int, rng: random.Random) -> list[Alert]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            name, source = "APIHighErrorRate", "alertmanager"
            labels = {"alertname": name, "env": "prod"}
        elif kind == 1:
            name, source = f"Generated{rng.randrange(100)}", "alertmanager"
            labels = {"alertname": name, "env": rng.choice(["prod", "staging"])}
        elif kind == 2:
            name, source = f"Unknown{rng.randrange(50)}", "alertmanager"
            labels = {"alertname": name, "severity": rng.choice(["critical", "warning"])}
        else:
            name, source = f"alarm-{rng.randrange(50)}", "cloudwatch"
            labels = {"alertname": name, "namespace": "AWS/RDS", "metric_name": "CPUUtilization",
                      "region": "eu-west-1", "DBInstanceIdentifier": f"db-{i % 7}"}
        out.append(Alert(
            source=source, fingerprint=f"{i:016x}", status=Status.FIRING, name=name,
            labels=labels, value=round(rng.random() * (100 if kind == 3 else 0.4), 3),
            starts_at=T0, received_at=T0,
        ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()

    config = Config.model_validate({"receivers": [{"name": "log", "type": "log"}]})
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp)
        for p in (ROOT / "rules").glob("*.yaml"):
            if not p.name.endswith(".test.yaml"):
                shutil.copy(p, rules_dir / p.name)
        (rules_dir / "50-generated.yaml").write_text(yaml.safe_dump(generated_rules(args.rules)))
        ruleset = load_rules(rules_dir, config)

    batch = alerts(args.alerts, random.Random(42))
    classify = ruleset.classify
    best = 0.0
    for _ in range(args.repeat):
        started = time.perf_counter()
        for a in batch:
            classify(a)
        best = max(best, len(batch) / (time.perf_counter() - started))
    matched = sum(1 for a in batch[:10_000] if classify(a).rule is not None)
    print(f"rules loaded: {len(ruleset)} ({args.rules} generated)")
    print(f"alerts: {len(batch)} per run, best of {args.repeat}; "
          f"{matched / min(len(batch), 10_000):.0%} matched a rule")
    print(f"classified: {best:,.0f} alerts/s")


if __name__ == "__main__":
    main()
