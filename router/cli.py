"""incident-router serve | check-config | test-rules | dlq list|replay | kafka init | postmortem"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from router.config import Config, ConfigError, load_config
from router.silence_cli import add_parser as add_silence_parser


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for (an error if it is missing) or, with "auto", when installed."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _serve(args: argparse.Namespace) -> int:
    from router.api.app import build_app
    from router.api.drain import on_sigterm
    from router.api.keys import RUNTIME
    from router.api.listener import listener
    from router.gcpolicy import tune as tune_gc
    from router.logs import setup_logging
    from router.runtime import load_snapshot

    setup_logging(args.log_level)
    try:
        snapshot = load_snapshot(Path(args.config))
    except ConfigError as exc:
        print(f"incident-router: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    for warning in snapshot.warnings:
        logging.getLogger("router.runtime").warning("%s", warning)
    try:
        listen = listener(snapshot.config)
    except (OSError, ssl.SSLError) as exc:
        # The error names the problem (no such file, key does not match); never key material.
        print(f"incident-router: invalid TLS settings (server.tls_*): {exc}", file=sys.stderr)
        return 1
    app = build_app(snapshot, config_path=Path(args.config))

    async def on_startup(app: web.Application) -> None:
        # After the backend started (cleanup contexts run first): its restored state is frozen.
        tune_gc()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, app[RUNTIME].reload)
        # Replaces aiohttp's handler (which exits at once): drain first (router.api.drain).
        loop.add_signal_handler(signal.SIGTERM, on_sigterm, app)

    app.on_startup.append(on_startup)
    server = snapshot.config.server
    web.run_app(
        app,
        loop=new_event_loop(server.event_loop),
        host=args.host or server.host,
        port=args.port if args.port is not None else server.port,
        access_log=None,
        print=lambda _: None,
        handle_signals=True,
        keepalive_timeout=listen.keepalive_timeout,
        ssl_context=listen.ssl_context,
    )
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from router.runtime import build_snapshot

    try:
        snapshot = build_snapshot(load_config(Path(args.config)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in snapshot.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = (f"{args.config}: ok ({len(snapshot.rules)} rules, "
               f"{len(snapshot.config.receivers)} receivers)")
    if args.effective:
        # A YAML comment, so stdout stays a document that loads.
        print(f"# {summary}\n{effective_yaml(snapshot.config)}", end="")
    else:
        print(summary)
    return 0


def effective_yaml(config: Config) -> str:
    """The configuration that will run, defaults filled in (the severity policies merged with
    the built-in SEV1..SEV4), as YAML; secrets print as `**********` (pydantic's SecretStr)."""
    import yaml

    data = config.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _test_rules(args: argparse.Namespace) -> int:
    from router.ruletest import main as ruletest_main

    return ruletest_main(args.config, [Path(f) for f in args.files])


def _config_or_none(args: argparse.Namespace) -> Config | None:
    """The `--config` file, or None after printing what is wrong with it."""
    try:
        return load_config(Path(args.config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _dlq(args: argparse.Namespace) -> int:
    """On either backend, through its own dead-letter store (`factory.dead_letters`)."""
    from router.backends.base import StoreUnavailable
    from router.backends.factory import KafkaNotInstalled, dead_letters

    config = _config_or_none(args)
    if config is None:
        return 1

    async def run() -> int:
        async with dead_letters(config) as store:
            if args.dlq_command == "list":
                for d in await store.list(receiver=args.receiver):
                    n = d.notification
                    print(f"{d.id}\t{d.failed_at.isoformat()}\t{d.receiver}\t{n.kind.value}\t"
                          f"{n.group_key}\t{d.reason}")
                return 0
            count = await store.replay(id=args.id, receiver=args.receiver)
            print(f"replayed {count} notification(s); a running router delivers them now")
            return 0 if count or not args.id else 1

    try:
        return asyncio.run(run())
    except (KafkaNotInstalled, StoreUnavailable) as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return 1


def _kafka_init(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from router.backends.kafka.backend import TopicLayoutError, init_topics
    from router.config import KafkaBackendConfig

    config = _config_or_none(args)
    if config is None:
        return 1
    if not isinstance(config.backend, KafkaBackendConfig):
        print("kafka init: backend.type is not kafka", file=sys.stderr)
        return 1
    try:
        counts = asyncio.run(init_topics(config.backend))
    except (TopicLayoutError, KafkaError) as exc:
        print(f"kafka init: {exc}", file=sys.stderr)
        return 1
    for name, n in sorted(counts.items()):
        print(f"{name}\t{n} partitions")
    return 0


def _postmortem(args: argparse.Namespace) -> int:
    from router.config import EmbeddedBackendConfig

    config = _config_or_none(args)
    if config is None:
        return 1
    incident_id = args.incident_id.upper()
    if args.url:
        code, text = asyncio.run(_postmortem_over_http(args.url, incident_id, args.token))
    elif isinstance(config.backend, EmbeddedBackendConfig):
        code, text = asyncio.run(_postmortem_embedded(config, incident_id))
    else:
        print("postmortem: with the kafka backend this requires a running router: pass its "
              "address with --url (and --token or INCIDENT_ROUTER_TOKEN if api.tokens is set)",
              file=sys.stderr)
        return 1
    if code != 0:
        print(f"postmortem: {text}", file=sys.stderr)
        return code
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


async def _postmortem_embedded(config: Config, incident_id: str) -> tuple[int, str]:
    """Read the incident from the SQLite view without starting an engine (a running router may
    own the database; the CLI only reads)."""
    from router.backends.embedded.backend import EmbeddedBackend
    from router.backends.factory import engine_context
    from router.config import EmbeddedBackendConfig
    from router.incidents import postmortem_input
    from router.metrics import EngineMetrics
    from router.postmortem import render_postmortem

    assert isinstance(config.backend, EmbeddedBackendConfig)
    path = config.resolve(config.backend.path)
    if not path.exists():
        return 1, f"no database at {path} (backend.path)"
    backend = EmbeddedBackend(path, engine_context(config), EngineMetrics(CollectorRegistry()))
    await backend.db.open()
    try:
        incident = await backend.incident(incident_id)
    finally:
        await backend.db.close()
    if incident is None:
        return 1, f"no incident {incident_id} in {path}"
    return 0, render_postmortem(postmortem_input(incident, config.severities))


async def _postmortem_over_http(url: str, incident_id: str, token: str | None) -> tuple[int, str]:
    import os

    import aiohttp

    token = token or os.environ.get("INCIDENT_ROUTER_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = f"{url.rstrip('/')}/api/v1/incidents/{incident_id}/postmortem"
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with (aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(target, headers=headers) as resp):
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 1, f"cannot reach {url}: {exc.__class__.__name__}"
    if resp.status == 200:
        return 0, text
    if resp.status == 404:
        return 1, f"no incident {incident_id} at {url}"
    if resp.status == 401:
        return 1, "the router wants an API token (--token or INCIDENT_ROUTER_TOKEN)"
    return 1, f"{url} answered HTTP {resp.status}"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("incident-router")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incident-router")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    # Upper-cased first, so `--log-level debug` works; anything else is argparse's clear error.
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS)
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check-config", help="validate a config file and its rules")
    check.add_argument("--config", required=True)
    check.add_argument("--effective", action="store_true",
                       help="also print the configuration that will run (defaults filled in, "
                            "secrets redacted) as YAML")
    check.set_defaults(func=_check_config)

    tr = sub.add_parser("test-rules", help="run rule test files")
    tr.add_argument("--config", default=None)
    tr.add_argument("files", nargs="+")
    tr.set_defaults(func=_test_rules)

    dlq = sub.add_parser("dlq", help="list or replay dead-lettered notifications")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list")
    dlq_list.add_argument("--config", required=True)
    dlq_list.add_argument("--receiver")
    dlq_list.set_defaults(func=_dlq, id=None)
    dlq_replay = dlq_sub.add_parser("replay")
    dlq_replay.add_argument("--config", required=True)
    which = dlq_replay.add_mutually_exclusive_group()
    which.add_argument("--id")
    which.add_argument("--receiver")
    dlq_replay.set_defaults(func=_dlq)

    kafka = sub.add_parser("kafka", help="Kafka backend tools")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True)
    kinit = kafka_sub.add_parser("init", help="create the topics and check their layout")
    kinit.add_argument("--config", required=True)
    kinit.set_defaults(func=_kafka_init)

    pm = sub.add_parser("postmortem", help="print the post-mortem draft of an incident")
    pm.add_argument("incident_id", metavar="INC-YYYYMMDD-N")
    pm.add_argument("--config", required=True)
    pm.add_argument("--url", help="a running router (required with the kafka backend)")
    pm.add_argument("--token", help="API token (default: $INCIDENT_ROUTER_TOKEN)")
    pm.add_argument("--output", "-o", help="write the Markdown to this file")
    pm.set_defaults(func=_postmortem)

    add_silence_parser(sub)

    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
