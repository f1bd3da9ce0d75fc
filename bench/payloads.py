"""Benchmark payloads: request bodies by sequence number, cheap enough to build at 20k req/s.

Every kind is a `Payload` whose `body(seq)` returns the bytes of request number `seq`. Bodies
are pre-rendered templates with a fixed-width placeholder for the sequence number, so building
one is a single `bytes.replace` and the Content-Length never changes.

Kinds (see bench/README.md for why they look like this):

- `am1`, `am10`, `am100`: Alertmanager webhooks (version 4). One request is one aggregation
  group, as Alertmanager sends it: n alerts sharing alertname and service, one per pod. Every
  request is a new group with new alerts (unique fingerprints), about 500 bytes per alert.
- `amv2-1`, `amv2-10`, `amv2-100`: the same alerts as a JSON array for Alertmanager's
  `POST /api/v2/alerts` (the peer scenario).
- `dup30`: `am10`, but 30% of the requests repeat the exact bytes of a recent earlier request
  (an Alertmanager HA pair or a retry delivering the same group twice).
- `storm`: one alert name (`TargetDown`) over 5,000 instances, 100 alerts per request, cycling
  through the instances: after 50 requests every further alert is a re-delivery.
- `sns`: CloudWatch alarms in SNS Notification envelopes with valid SigV1 signatures (tests/
  snskit). Signing costs about 1 ms, so a pool is signed before the run and cycled.

Each alert carries a `bench_seq` label `<seq hex>-<index>` so a sink can tell which request
it came from (end-to-end latency).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
SEQ = b"SSSSSSSS"  # placeholder: 8 hex digits of the sequence number
# A minute ago at import: Alertmanager refuses alerts that start after they would end.
STARTS_AT = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
ZERO_TIME = "0001-01-01T00:00:00Z"

# Realistic alert names; GeneratedN hit the generated rules, the rest the shipped severity-label
# rules. Not APIHighErrorRate: the shipped ladder groups all of them into one incident per env,
# so unique alerts of that name would pile into one ever-growing group (that is `storm`);
# the same goes for generated rules that match (they set `service`), so the GeneratedN alerts
# here are looked at by those rules but stay under their thresholds.
NAMES = (
    "KubePodCrashLooping", "CertificateExpiringSoon", "HighRequestLatency",
    "NodeFilesystemAlmostFull",
    "Generated3", "KubeDeploymentReplicasMismatch", "PostgresReplicationLag", "Generated18",
    "TargetDown", "KafkaConsumerLag", "RedisMemoryHigh", "Generated42",
)
SEVERITIES = ("critical", "warning", "warning", "info")
TEMPLATES = 24  # lcm-ish of the rotations above: template index = seq % TEMPLATES

STORM_INSTANCES = 5000
STORM_PER_REQUEST = 100


def _alert(name: str, severity: str, service: str, pod: str, bench_seq: str,
           fingerprint: str, value: str) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {
            "alertname": name, "severity": severity, "env": "prod",
            "namespace": "payments", "service": service, "pod": pod,
            "instance": f"10.42.{len(pod) % 250}.17:8080", "job": "kubernetes-pods",
            "team": "payments", "bench_seq": bench_seq,
        },
        "annotations": {
            "summary": f"{name} on {pod}",
            "runbook_url": f"https://runbooks.example.com/{name.lower()}",
            "value": value,
        },
        "startsAt": STARTS_AT,
        "endsAt": ZERO_TIME,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint,
    }


def _group(t: int, n: int, names: tuple[str, ...] = NAMES) -> list[dict[str, object]]:
    """Template `t` of an n-alert group; SSSSSSSS stands for the request's sequence number."""
    name = names[t % len(names)]
    severity = SEVERITIES[t % len(SEVERITIES)]
    service = "svc-SSSSSSSS"
    value = ("0.23", "0.07", "0.01")[t % 3]
    return [
        _alert(name, severity, service, f"{name.lower()[:12]}-SSSSSSSS-{j:03d}", f"SSSSSSSS-{j}",
               f"SSSSSSSS{j:08x}", value)
        for j in range(n)
    ]


def webhook(alerts: list[dict[str, object]]) -> dict[str, object]:
    first = alerts[0]["labels"]
    assert isinstance(first, dict)
    common = {k: first[k] for k in ("alertname", "service", "env", "team")}
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="{first["alertname"]}"}}',
        "truncatedAlerts": 0, "status": "firing", "receiver": "incident-router",
        "groupLabels": {"alertname": first["alertname"]}, "commonLabels": common,
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts,
    }


def postable(alerts: list[dict[str, object]]) -> list[dict[str, object]]:
    """Alertmanager API v2 PostableAlert: no status/fingerprint, endsAt left out (firing)."""
    return [
        {"labels": a["labels"], "annotations": a["annotations"], "startsAt": a["startsAt"],
         "generatorURL": a["generatorURL"]}
        for a in alerts
    ]


@dataclass
class Payload:
    """Request bodies of one kind; `body(seq)` is cheap (one replace on a template)."""

    kind: str
    path: str
    alerts_per_request: int
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    templates: list[bytes] = field(default_factory=list)
    pool: list[bytes] = field(default_factory=list)  # fixed bodies, cycled (sns, storm)
    dup_ratio: float = 0.0

    def body(self, seq: int) -> bytes:
        if self.pool:
            return self.pool[seq % len(self.pool)]
        if self.dup_ratio and seq > 0:
            h = _hash(seq)
            if (h % 1000) < self.dup_ratio * 1000:
                seq = max(0, seq - 1 - (h >> 10) % 50)  # a recent earlier request, verbatim
        t = self.templates[seq % len(self.templates)]
        return t.replace(SEQ, b"%08x" % (seq & 0xFFFFFFFF))

    def seq_of(self, bench_seq: str) -> int:
        """The request a `bench_seq` label value came from."""
        return int(bench_seq.split("-", 1)[0], 16)


def _hash(seq: int) -> int:
    return int.from_bytes(hashlib.blake2b(seq.to_bytes(8, "little"), digest_size=8).digest(),
                          "little")


def alertmanager(n: int, dup_ratio: float = 0.0, names: tuple[str, ...] = NAMES,
                 kind: str = "") -> Payload:
    templates = [orjson.dumps(webhook(_group(t, n, names))) for t in range(TEMPLATES)]
    kind = kind or (f"am{n}" if not dup_ratio else f"dup{round(dup_ratio * 100)}")
    return Payload(kind, "/webhooks/alertmanager", n, templates=templates, dup_ratio=dup_ratio)


def alertmanager_v2(n: int, names: tuple[str, ...] = NAMES, kind: str = "") -> Payload:
    templates = [orjson.dumps(postable(_group(t, n, names))) for t in range(TEMPLATES)]
    return Payload(kind or f"amv2-{n}", "/api/v2/alerts", n, templates=templates)


# Alerts every one of which must become its own notification (delivery and latency scenarios):
# the bench rule (bench/run.py) groups `BenchE2E` by its unique `bench_seq` label with
# group_wait 0, and Alertmanager is configured with group_by ['...'] and group_wait 0s.
E2E_NAME = ("BenchE2E",)
# The same, but each alert is a SEV1: its own incident (timeline, SLA timers) besides the page.
INCIDENT_NAME = ("BenchIncident",)


def storm() -> Payload:
    pool = []
    for r in range(STORM_INSTANCES // STORM_PER_REQUEST):
        alerts = []
        for j in range(STORM_PER_REQUEST):
            i = r * STORM_PER_REQUEST + j
            a = _alert("TargetDown", "critical", "node-exporter", f"node-{i:04d}",
                       f"{r:08x}-{j}", f"{0xD0000000 + i:016x}", "0")
            labels = a["labels"]
            assert isinstance(labels, dict)
            labels["instance"] = f"10.0.{i // 250}.{i % 250}:9100"
            labels["job"] = "node"
            alerts.append(a)
        pool.append(orjson.dumps(webhook(alerts)))
    return Payload("storm", "/webhooks/alertmanager", STORM_PER_REQUEST, pool=pool)


def cloudwatch_alarm(i: int) -> str:
    name = f"rds-cpu-high-{i:06d}"
    return orjson.dumps({
        "AlarmName": name,
        "AlarmDescription": "RDS CPU above 80% for 5 minutes",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [93.1 "
                          "(01/01/26 00:00:00)] was greater than the threshold (80.0).",
        "StateChangeTime": "2026-01-01T00:00:30.123+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}",
        "OldStateValue": "OK",
        "OKActions": [], "AlarmActions": [], "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "CPUUtilization", "Namespace": "AWS/RDS", "StatisticType": "Statistic",
            "Statistic": "AVERAGE", "Unit": None,
            "Dimensions": [{"value": f"db-{i:06d}", "name": "DBInstanceIdentifier"}],
            "Period": 60, "EvaluationPeriods": 5, "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 80.0, "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }).decode()


def sns_key(directory: str) -> Any:
    """The SNS signing key shared by the signer (loadgen) and the cert host (sink), as a
    `tests.snskit.SigningKey`, created in `directory` by whichever process comes first."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cryptography.hazmat.primitives import serialization

    from tests import snskit

    key_path, cert_path = Path(directory) / "sns-key.pem", Path(directory) / "sns-cert.pem"
    if not key_path.exists():
        key = snskit.SigningKey.generate()
        pem = key.private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        tmp = key_path.with_suffix(".tmp")
        cert_path.write_bytes(key.cert_pem)
        tmp.write_bytes(pem)
        tmp.rename(key_path)
        return key
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return snskit.SigningKey(private, cert_path.read_bytes())  # type: ignore[arg-type]


def sns(cert_url: str, count: int, key_dir: str) -> Payload:
    """`count` signed SNS notifications (about 1 ms each to sign) for the CloudWatch source."""
    key = sns_key(key_dir)
    from tests import snskit
    pool = []
    for i in range(count):
        env = snskit.notification(message=cloudwatch_alarm(i), cert_url=cert_url, key=key,
                                  subject=f"ALARM: rds-cpu-high-{i:06d}")
        pool.append(snskit.to_body(env))
    headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-topic-arn": snskit.TOPIC_ARN,
        "User-Agent": "Amazon Simple Notification Service Agent",
    }
    return Payload("sns", "/webhooks/cloudwatch", 1, content_type="text/plain; charset=UTF-8",
                   headers=headers, pool=pool)


def build(kind: str, *, cert_url: str = "", sns_pool: int = 2000, key_dir: str = "") -> Payload:
    if kind.startswith("e2e-v2-"):
        return alertmanager_v2(int(kind[7:]), E2E_NAME, kind)
    if kind.startswith("e2e-"):
        return alertmanager(int(kind[4:]), names=E2E_NAME, kind=kind)
    if kind.startswith("inc-"):
        return alertmanager(int(kind[4:]), names=INCIDENT_NAME, kind=kind)
    if kind.startswith("amv2-"):
        return alertmanager_v2(int(kind[5:]))
    if kind.startswith("am"):
        return alertmanager(int(kind[2:]))
    if kind == "dup30":
        return alertmanager(10, dup_ratio=0.3)
    if kind == "storm":
        return storm()
    if kind == "sns":
        return sns(cert_url, sns_pool, key_dir)
    raise ValueError(f"unknown payload kind {kind!r}")


if __name__ == "__main__":
    for k in ("am1", "am10", "am100", "amv2-10", "dup30", "storm"):
        p = build(k)
        b = p.body(12345)
        print(f"{k:8} {len(b):7} bytes  {len(b) / p.alerts_per_request:6.0f} bytes/alert")
