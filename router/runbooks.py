"""Runbooks: Markdown files in `runbooks_dir`, named by file stem, rendered to safe HTML.

A rule links one with `runbook: <name>`; the router serves it at `/runbooks/<name>`
(router.api.runbooks). Names are restricted to letters, digits, `-` and `_`, so a name can
never leave the directory. Rendering is CommonMark (markdown-it-py, tables on) and the HTML it
makes, raw HTML in the file included, then goes through nh3's allow-list: no script, no event
handler attributes, links only to http(s)/mailto and relative URLs.
"""

from __future__ import annotations

import re
from pathlib import Path

import nh3
from markdown_it import MarkdownIt

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SUFFIX = ".md"
_URL_SCHEMES = {"http", "https", "mailto"}
_MD = MarkdownIt("commonmark").enable("table")


def is_name(text: str) -> bool:
    return NAME.fullmatch(text) is not None


def is_external(text: str) -> bool:
    """An absolute http(s) URL, which a rule may give instead of a runbook name."""
    return text.startswith(("http://", "https://")) and len(text) > len("https://")


def url_for(name: str, external_url: str | None) -> str:
    """Where the router serves runbook `name`: absolute when server.external_url is set."""
    return f"{(external_url or '').rstrip('/')}/runbooks/{name}"


def names(runbooks_dir: Path) -> list[str]:
    """The runbooks in the directory, sorted; empty when it does not exist."""
    if not runbooks_dir.is_dir():
        return []
    return sorted(p.stem for p in runbooks_dir.glob(f"*{SUFFIX}")
                  if p.is_file() and is_name(p.stem))


def read(runbooks_dir: Path, name: str) -> str | None:
    """The Markdown of runbook `name`, or None when there is no such runbook."""
    if not is_name(name):
        return None
    try:
        return (runbooks_dir / f"{name}{SUFFIX}").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def render(markdown: str) -> str:
    """Sanitised HTML of a runbook."""
    return nh3.clean(_MD.render(markdown), url_schemes=_URL_SCHEMES)


def title(markdown: str, name: str) -> str:
    """The runbook's first `# heading`, else its name."""
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip().strip("#").strip() or name
    return name
