"""Config reloader sidecar for incident-router (the Helm chart's `configReloader`).

Watches the mounted ConfigMap directories (router.yaml, rules) and, when their content
changes, asks the router to reload: `POST /-/reload`, with a bearer token when the router's
API needs one. The kubelet updates ConfigMap volumes in place (an atomic `..data` symlink
swap), so edits reach the running router without recreating its pod.

    python config-reloader.py --watch DIR [--watch DIR ...] --url URL
                              [--interval SECONDS] [--token-env VAR]

A refused reload (4xx: the new config is invalid, the router keeps the old one) is logged
and not retried until the content changes again; an unreachable router or a 5xx is retried
every interval. Standard library only: it runs on the router image's interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def log(level: str, msg: str, **fields: object) -> None:
    entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
             "logger": "config-reloader", "msg": msg, **fields}
    print(json.dumps(entry), flush=True)


def fingerprint(dirs: list[Path]) -> str:
    """A digest of every visible file's name and content under `dirs` (following the
    kubelet's symlinks, skipping its `..`-prefixed bookkeeping entries)."""
    digest = hashlib.sha256()
    for root in dirs:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith("..") for part in rel.parts) or not path.is_file():
                continue
            digest.update(f"{root}/{rel}\0".encode())
            try:
                digest.update(path.read_bytes())
            except OSError:  # swapped away while reading: the next poll sees the new one
                digest.update(b"\0unreadable")
    return digest.hexdigest()


def reload(url: str, token: str | None) -> tuple[bool, bool, str]:
    """POST the reload: (done, retry, message). done: the router took the config; retry:
    ask again next interval (unreachable, 5xx) rather than wait for the next change (4xx)."""
    request = urllib.request.Request(url, data=b"", method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return True, False, resp.read(500).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode(errors="replace")
        return False, exc.code >= 500, f"{exc.code}: {body}"
    except OSError as exc:
        return False, True, f"unreachable: {exc.__class__.__name__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="POST /-/reload when mounted config changes")
    parser.add_argument("--watch", action="append", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--token-env", default="",
                        help="environment variable holding an API token for the router")
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env) if args.token_env else None
    if args.token_env and not token:
        log("error", "token variable is not set", variable=args.token_env)
        return 2

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    seen = fingerprint(args.watch)
    pending = False
    log("info", "watching", dirs=[str(d) for d in args.watch], interval=args.interval)
    while not stop.wait(args.interval):
        current = fingerprint(args.watch)
        if current != seen:
            seen, pending = current, True
            log("info", "configuration changed")
        if not pending:
            continue
        done, retry, message = reload(args.url, token)
        if done:
            log("info", "reloaded", answer=message)
            pending = False
        elif retry:
            log("warning", "reload failed, retrying", reason=message)
        else:
            log("error", "reload refused; the router keeps its running config", reason=message)
            pending = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
