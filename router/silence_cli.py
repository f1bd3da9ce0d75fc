"""`incident-router silence add|query|expire`: the router's own silence CLI, a thin client of
its `/api/v1/silences` API (the same handlers amtool reaches under `/api/v2`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from router.durations import parse_duration
from router.noise.matchers import MatcherError, parse_matchers


def add_parser(sub: Any) -> None:
    silence = sub.add_parser("silence", help="add, list or expire silences on a running router")
    silence.add_argument("--url", default="http://127.0.0.1:8080", help="the router's URL")
    silence.add_argument("--token", help="API token (default: $INCIDENT_ROUTER_TOKEN)")
    ops = silence.add_subparsers(dest="op", required=True)
    add = ops.add_parser("add", help="silence the alerts matching every matcher")
    add.add_argument("matchers", nargs="+", help='e.g. alertname=DiskFull cluster=~"eu-.*"')
    add.add_argument("--duration", default="1h", help="how long (default 1h)")
    add.add_argument("--author", default=os.environ.get("USER", "incident-router"))
    add.add_argument("--comment", required=True)
    add.set_defaults(func=_add)
    query = ops.add_parser("query", help="list silences (active and pending; --expired too)")
    query.add_argument("--expired", action="store_true")
    query.set_defaults(func=_query)
    expire = ops.add_parser("expire", help="end silences now")
    expire.add_argument("ids", nargs="+")
    expire.set_defaults(func=_expire)


def _call(args: argparse.Namespace, method: str, path: str,
          body: dict[str, Any] | None = None) -> Any:
    token = args.token or os.environ.get("INCIDENT_ROUTER_TOKEN")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{args.url.rstrip('/')}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        return int(work())
    except urllib.error.HTTPError as exc:
        print(f"incident-router: {exc.code}: {exc.read().decode(errors='replace')}",
              file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"incident-router: cannot reach {args.url}: {exc}", file=sys.stderr)
    except (MatcherError, ValueError) as exc:
        print(f"incident-router: {exc}", file=sys.stderr)
    return 1


def _add(args: argparse.Namespace) -> int:
    def work() -> int:
        matchers = [m for text in args.matchers for m in parse_matchers(text)]
        now = datetime.now(UTC)
        body = {"matchers": [m.to_api().to_json() for m in matchers],
                "startsAt": now.isoformat(), "endsAt": (now + parse_duration(args.duration))
                .isoformat(), "createdBy": args.author, "comment": args.comment}
        print(_call(args, "POST", "/api/v1/silences", body)["silenceID"])
        return 0
    return _run(args, work)


def _query(args: argparse.Namespace) -> int:
    def work() -> int:
        for s in _call(args, "GET", "/api/v1/silences"):
            state = s["status"]["state"]
            if state == "expired" and not args.expired:
                continue
            matchers = ",".join(
                f"{m['name']}{'=' if m.get('isEqual', True) else '!'}"
                f"{'~' if m['isRegex'] else ''}\"{m['value']}\"" for m in s["matchers"])
            print(f"{s['id']}  {state:8}  ends {s['endsAt']}  {{{matchers}}}  "
                  f"{s['createdBy']}: {s['comment']}")
        return 0
    return _run(args, work)


def _expire(args: argparse.Namespace) -> int:
    def work() -> int:
        for sid in args.ids:
            _call(args, "DELETE", f"/api/v1/silence/{sid}")
        return 0
    return _run(args, work)
