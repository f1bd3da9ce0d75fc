"""router.yaml: strict pydantic models, `${ENV}` expansion for secrets, readable errors.

Errors name the file, the key path and what is wrong, e.g.
`router.yaml: backend.path: Input should be a valid string`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from router.delivery.receivers import ReceiverConfig
from router.durations import Duration
from router.escalation import OnCallConfig
from router.model import Severity
from router.noise.business_hours import Calendar
from router.noise.digest import DigestConfig, TicketsConfig
from router.noise.heartbeats import Heartbeat
from router.noise.inhibit import InhibitRule
from router.noise.windows import MaintenanceWindow
from router.policy import SeverityPolicies


class ConfigError(Exception):
    """A config file that cannot be used; the message is fit to show to an operator."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- ingest authentication -------------------------------------------------------------


class NoAuth(Strict):
    type: Literal["none"] = "none"


class BearerAuth(Strict):
    """`Authorization: Bearer <token>`, as Alertmanager's `http_config.authorization` sends."""

    type: Literal["bearer"] = "bearer"
    tokens: list[SecretStr] = Field(min_length=1)


class BasicAuth(Strict):
    """HTTP basic auth, as Alertmanager's `http_config.basic_auth` or an SNS URL sends it."""

    type: Literal["basic"] = "basic"
    username: str
    password: SecretStr


Auth = Annotated[NoAuth | BearerAuth | BasicAuth, Field(discriminator="type")]


# --- sections ----------------------------------------------------------------------------


class ServerConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # External URL of the router, used in links (Slack buttons, status page).
    external_url: str | None = None
    # uvloop roughly halves the event loop's cost per request; "auto" uses it when installed.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # A connection must deliver its request line and headers within this many seconds (also
    # the idle time of a keep-alive connection), and then its body within as many again;
    # slower ones are closed (a body that is late is answered 408 first).
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    # TLS on the listener (PEM files; relative paths are taken from the config's directory).
    # With `tls_client_ca_file`, clients must present a certificate that CA signed (mTLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Caps on what one intake request may carry (413/422 naming the setting when exceeded).
    max_alerts_per_request: int = Field(default=10_000, ge=1)
    # Labels per alert, and annotations per alert (each counted separately).
    max_labels_per_alert: int = Field(default=128, ge=1)
    # UTF-8 bytes of each label and annotation name and of each value.
    max_label_bytes: int = Field(default=8192, ge=64)
    # Firing alerts the router holds at most: past it, requests with a firing alert get 429
    # (resolutions are always taken). 0 turns the cap off.
    max_active_alerts: int = Field(default=200_000, ge=0)
    # On SIGTERM: /readyz answers 503 and intake 503 with Retry-After at once; the sends in
    # flight get this long to finish and be recorded before the process exits (keep the
    # Helm chart's terminationGracePeriodSeconds above it).
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)


    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return self


class IntakeGateConfig(Strict):
    """Back-pressure (router.backends.gate.IntakeGate): while this process's engine is more
    than `intake_max_engine_lag` events behind, or more than `intake_max_delivery_backlog`
    notifications wait for delivery, an append first waits for progress, at most
    `intake_max_wait_seconds`. 0 turns a limit off."""

    intake_max_engine_lag: int = Field(default=5_000, ge=0)
    intake_max_delivery_backlog: int = Field(default=5_000, ge=0)
    intake_max_wait_seconds: float = Field(default=0.5, ge=0)


class RetentionConfig(IntakeGateConfig):
    """What both backends prune alike: every `prune_interval` resolved incidents older than
    `closed_incidents_max_age` leave the incident view (embedded: deleted with their groups'
    delivery refs; Kafka: tombstoned, router.backends.kafka.retention). 0 keeps them."""

    prune_interval: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    closed_incidents_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))


class EmbeddedBackendConfig(RetentionConfig):
    type: Literal["embedded"] = "embedded"
    path: str = "data/router.db"
    # Retention (router.backends.embedded.retention): every `prune_interval` the router deletes
    # rows older than their age, then gives the freed pages back to the file system. Log
    # entries go as soon as the engine has consumed them; open incidents, firing alerts and
    # undelivered notifications are never deleted. An age of 0 keeps that kind forever.
    resolved_alerts_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))
    delivery_records_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))
    dead_letters_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))


class KafkaBackendConfig(RetentionConfig):
    """Kafka scale-out backend. Security settings pass straight through to aiokafka."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: list[str] = Field(min_length=1)
    topic_prefix: str = "incident-router"
    group_id: str = "incident-router"
    partitions: int = Field(default=12, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    create_topics: bool = True
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Where the intake-side producer waits before answering 503.
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    # The engine's broker calls (transaction begin/send/commit, fetches, restore reads) give up
    # after this and rebuild the partition; and its watchdog restarts the engine's consumer and
    # producers when records wait and none was decided for `engine_stall_seconds`
    # (/readyz answers 503 meanwhile). See docs/kafka.md.
    engine_call_timeout_seconds: float = Field(default=10.0, gt=0)
    engine_stall_seconds: float = Field(default=30.0, gt=0)
    # Each partition commits its own transactions: its next batch starts when its previous
    # transaction returned and at least this long after that one started, so records arriving
    # sooner wait and share one transaction. 0: at once (lowest latency; one transaction per
    # partition per commit round trip, the most CPU under load). See docs/kafka.md, "Sizing".
    engine_batch_interval_seconds: float = Field(default=0.0, ge=0, le=1)
    # Transactions per second a replica's engine starts, all its partitions together: above
    # it a partition waits its turn (oldest records first) and its next transaction carries
    # what arrived meanwhile. Caps the transactions' CPU under load; 0: no limit.
    engine_transactions_per_second: float = Field(default=0.0, ge=0)
    # Topic retention set by `kafka init` / topic creation (router.backends.kafka.topics):
    # `retention.ms` of the alerts log and the outbox, and of the compacted dead-letter and
    # delivery-record topics (cleanup.policy compact,delete). 0 keeps that topic's records
    # forever (retention.ms -1; compaction only for the compacted ones).
    log_retention: Duration = Field(default=timedelta(days=7), ge=timedelta(0))
    notifications_retention: Duration = Field(default=timedelta(days=7), ge=timedelta(0))
    delivery_records_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))
    dead_letters_max_age: Duration = Field(default=timedelta(days=30), ge=timedelta(0))


BackendConfig = Annotated[
    EmbeddedBackendConfig | KafkaBackendConfig, Field(discriminator="type")
]


class AlertmanagerSourceConfig(Strict):
    enabled: bool = True
    auth: Auth = NoAuth()


SNS_CERT_HOST_PATTERN = r"^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$"


class CloudWatchSourceConfig(Strict):
    enabled: bool = True
    # Basic auth embedded in the SNS subscription URL (optional, on top of signatures).
    auth: Auth = NoAuth()
    # Only these SNS topics are accepted; empty means none (fail closed).
    topic_arns: list[str] = Field(default_factory=list)
    # Host pattern that SigningCertURL and SubscribeURL must match (tests serve from 127.0.0.1).
    cert_host_pattern: str = SNS_CERT_HOST_PATTERN
    # Confirm subscriptions by fetching SubscribeURL after the same host check.
    confirm_subscriptions: bool = True
    # What INSUFFICIENT_DATA means: ignore it, or treat it as firing / resolved.
    insufficient_data: Literal["ignore", "firing", "resolved"] = "ignore"
    # Allow http:// for cert and subscribe URLs (tests only; never in production).
    allow_insecure_urls: bool = False


class GenericSourceConfig(Strict):
    enabled: bool = True
    auth: Auth = NoAuth()


class SourcesConfig(Strict):
    alertmanager: AlertmanagerSourceConfig = AlertmanagerSourceConfig()
    cloudwatch: CloudWatchSourceConfig = CloudWatchSourceConfig()
    generic: GenericSourceConfig = GenericSourceConfig()


class ApiConfig(Strict):
    """Who may use the REST API and the web console (router.api.auth).

    `tokens` are read-write: the REST API needs one (Bearer) when any is configured, and they
    log in to the console with write rights. `read_tokens` log in to the console read-only.
    With no token and no trusted header configured, the console is open read-write, like the
    REST API. `trusted_header` names a header an authenticating proxy sets to the user's name
    (e.g. X-Forwarded-User): requests carrying it are logged in with `trusted_header_role`;
    set it only when every request reaches the router through that proxy.
    """

    tokens: list[SecretStr] = Field(default_factory=list)
    read_tokens: list[SecretStr] = Field(default_factory=list)
    trusted_header: str | None = Field(default=None, min_length=1)
    trusted_header_role: Literal["read", "write"] = "read"
    # Signs console session cookies; unset, a random key per process (logins end at restart,
    # and replicas behind a load balancer need the same secret).
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _read_needs_write(self) -> ApiConfig:
        if self.read_tokens and not self.tokens:
            raise ValueError("read_tokens need tokens as well: without api.tokens the REST "
                             "API is open to everyone")
        return self


class SlackAppConfig(Strict):
    """The Slack app behind `/incident` and the Acknowledge/Resolve buttons."""

    signing_secret: SecretStr
    # Slash commands answer in Slack's 3 s; these users may run them (empty: everyone).
    allowed_users: list[str] = Field(default_factory=list)


class PagerDutyWebhookConfig(Strict):
    """PagerDuty webhooks v3 (acknowledge/resolve there -> here); several during rotation."""

    secrets: list[SecretStr] = Field(min_length=1)


class SlackChannelsConfig(Strict):
    """An incident channel per incident (docs/incidents.md, "Incident channel")."""

    # The `slack` receiver (bot mode: bot_token) that creates and runs the channels.
    receiver: str = Field(min_length=1)
    # Incidents at or above this severity get a channel at triage.
    min_severity: Severity = Severity.SEV2
    # The channel is archived this long after resolution (not before the post-mortem is
    # published or marked done, unless its deadline has passed: a bot cannot unarchive).
    archive_after: Duration = Field(default=timedelta(hours=24), ge=timedelta(0))
    # A reaction with this emoji on a message of the channel makes it a timeline note.
    note_emoji: str = Field(default="pushpin", min_length=1)
    # On-call user name (schedules, commander) -> Slack user id (U…/W…) or e-mail address.
    users: dict[str, str] = Field(default_factory=dict)
    # Private channels (scope groups:write) instead of public ones (channels:manage).
    private: bool = False


class IncidentsConfig(Strict):
    """When alerts become incidents, and what an incident drives."""

    # Alert groups at or above this severity open an incident.
    open_at: Severity = Severity.SEV2
    # Incidents at or above this severity are paged through the escalation policy.
    page_at: Severity = Severity.SEV2
    # Receivers that page people (pagerduty, opsgenie, jsm): they get one page per
    # escalation level, with the level's on-call targets.
    page_receivers: list[str] = Field(default_factory=list)
    # Incidents at or above this severity go on the status page.
    statuspage_at: Severity = Severity.SEV2
    # The `statuspage` receiver to drive (none: the router serves its own GET /status).
    statuspage_receiver: str | None = None
    # Service -> Statuspage component id.
    components: dict[str, str] = Field(default_factory=dict)
    # Receivers told about SLA breaches and escalations (besides the incident's own).
    sla_receivers: list[str] = Field(default_factory=list)
    # A post-mortem is due this long after resolution; a reminder fires if not marked done.
    postmortem_due: Duration = timedelta(hours=48)
    # The same group firing again within this long of its incident's resolution reopens that
    # incident (one new page); later it opens a new one. 0 never reopens.
    reopen_window: Duration = timedelta(hours=1)
    # A Slack channel per incident (none: no channels are created).
    slack_channels: SlackChannelsConfig | None = None
    # The incident inhibition rule (docs/noise.md): an open incident at or above `inhibit_at`
    # for a service keeps that service's less severe alerts quiet (reason `incident`); they
    # are listed on its timeline instead of paging, and notify when it closes if still firing.
    inhibit_lower_severity: bool = True
    inhibit_at: Severity = Severity.SEV1


class BusinessHoursConfig(Strict):
    """When SEV3/SEV4 (any severity whose response is `chat_business_hours` or `backlog`) may
    notify: outside its team's calendar they are deferred to the next opening."""

    calendars: list[Calendar] = Field(default_factory=list)
    # The calendar of alerts whose team has none below (none: such alerts are not deferred).
    default: str | None = None
    teams: dict[str, str] = Field(default_factory=dict)  # team -> calendar name
    # What chat receivers (slack, teams) hear of a deferred alert: `quiet`, one post that
    # mentions nobody and says until when it waits; `none`, nothing until the opening.
    # Paging receivers always wait.
    chat_when_deferred: Literal["quiet", "none"] = "none"

    @model_validator(mode="after")
    def _known(self) -> BusinessHoursConfig:
        names = [c.name for c in self.calendars]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate calendar name(s): {', '.join(dupes)}")
        for where, name in [("default", self.default),
                            *((f"teams.{t}", n) for t, n in self.teams.items())]:
            if name is not None and name not in names:
                raise ValueError(f"{where}: unknown calendar {name!r} (known: "
                                 f"{', '.join(names) or 'none'})")
        return self


class Config(Strict):
    server: ServerConfig = ServerConfig()
    backend: BackendConfig = EmbeddedBackendConfig()
    sources: SourcesConfig = SourcesConfig()
    api: ApiConfig = ApiConfig()
    rules_dir: str = "rules"
    # Markdown runbooks that rules link with `runbook: <name>`, served at /runbooks/<name>.
    runbooks_dir: str = "runbooks"
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    # Who hears about alerts whose rule and severity policy name no receiver.
    default_receivers: list[str] = Field(default_factory=list)
    severities: SeverityPolicies = SeverityPolicies()
    incidents: IncidentsConfig = IncidentsConfig()
    oncall: OnCallConfig = OnCallConfig()
    # Noise control (docs/noise.md): Alertmanager-style inhibition, maintenance windows,
    # business hours. Silences are made at run time (the API, amtool).
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    business_hours: BusinessHoursConfig = BusinessHoursConfig()
    # Where severities with `route: digest` / `route: ticket` go (router.noise.digest).
    digest: DigestConfig = DigestConfig()
    tickets: TicketsConfig = TicketsConfig()
    heartbeats: list[Heartbeat] = Field(default_factory=list)
    slack: SlackAppConfig | None = None
    pagerduty_webhook: PagerDutyWebhookConfig | None = None
    # Map of the `severity` label's values to SEV levels, for alerts no rule matches.
    severity_label_map: dict[str, str] = Field(
        default_factory=lambda: {
            "critical": "SEV1",
            "page": "SEV1",
            "error": "SEV2",
            "high": "SEV2",
            "warning": "SEV3",
            "medium": "SEV3",
            "info": "SEV4",
            "low": "SEV4",
            "none": "SEV4",
        }
    )
    # Directory that relative paths (rules_dir, runbooks_dir, backend.path) are resolved against.
    base_dir: str = Field(default=".", exclude=True)
    # The file it was read from, for messages about it.
    source: str = Field(default="router.yaml", exclude=True)

    @model_validator(mode="after")
    def _routes(self) -> Config:
        for sev in Severity:
            route = self.severities.for_severity(sev).route
            if route == "digest" and not self.digest.receivers:
                raise ValueError(f"severities.{sev.value}.route: digest needs digest.receivers "
                                 "(who gets the daily summary)")
            if route == "ticket" and not self.tickets.receivers:
                raise ValueError(f"severities.{sev.value}.route: ticket needs "
                                 "tickets.receivers (who files the tickets)")
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def receiver_names(self) -> set[str]:
        return {r.name for r in self.receivers}

    def receiver_problems(self) -> list[str]:
        """Receiver references that cannot work, one line each naming the key path: a name no
        receiver defines (its pages would only reach the dead letters), a name defined twice,
        a status page driven through a receiver that is not of type statuspage."""
        problems: list[str] = []
        seen: set[str] = set()
        for i, r in enumerate(self.receivers):
            if r.name in seen:
                problems.append(f"{self.source}: receivers.{i}.name: duplicate receiver name "
                                f"{r.name!r}")
            seen.add(r.name)
        known = unknown_receiver_note(seen)
        refs: list[tuple[str, list[str]]] = [("default_receivers", self.default_receivers)]
        refs += [(f"severities.{s.value}.receivers", self.severities.for_severity(s).receivers)
                 for s in Severity]
        refs += [("incidents.page_receivers", self.incidents.page_receivers),
                 ("incidents.sla_receivers", self.incidents.sla_receivers)]
        if self.incidents.statuspage_receiver is not None:
            refs.append(("incidents.statuspage_receiver", [self.incidents.statuspage_receiver]))
        refs += [(f"heartbeats.{i}.receivers", list(h.receivers))
                 for i, h in enumerate(self.heartbeats)]
        refs += [("digest.receivers", list(self.digest.receivers)),
                 ("tickets.receivers", list(self.tickets.receivers))]
        for path, names in refs:
            problems.extend(f"{self.source}: {path}: unknown receiver {n!r} {known}"
                            for n in names if n not in seen)
        statuspage = self.incidents.statuspage_receiver
        kind = next((r.type for r in self.receivers if r.name == statuspage), "statuspage")
        if kind != "statuspage":
            problems.append(f"{self.source}: incidents.statuspage_receiver: receiver "
                            f"{statuspage!r} is of type {kind!r}, not 'statuspage'")
        channels = self.incidents.slack_channels
        if channels is not None:
            bot = next((r for r in self.receivers if r.name == channels.receiver), None)
            if bot is None:
                problems.append(f"{self.source}: incidents.slack_channels.receiver: unknown "
                                f"receiver {channels.receiver!r} {known}")
            elif bot.type != "slack" or getattr(bot, "bot_token", None) is None:
                problems.append(f"{self.source}: incidents.slack_channels.receiver: receiver "
                                f"{channels.receiver!r} is not a slack receiver with bot_token")
        return problems


def unknown_receiver_note(known: set[str]) -> str:
    """`(known: a, b)`: what an unknown-receiver message offers instead."""
    return f"(known: {', '.join(sorted(known)) or 'none'})"


# --- loading -------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, path: str, env: dict[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values; missing variables are errors."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}.{i}", env) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _ENV.sub(sub, value)
    return value


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{source}: {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_config(text: str, source: str = "router.yaml", env: dict[str, str] | None = None,
                 base_dir: str = ".") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: (top level): invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of sections")
    try:
        expanded = _expand(raw, "", dict(os.environ) if env is None else env)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    expanded["base_dir"] = base_dir
    expanded["source"] = source
    try:
        return Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_config(text, source=str(p), env=env, base_dir=str(p.parent))
