"""The configuration in effect (config + compiled rules) and its atomic hot reload.

A reload builds a whole new `Snapshot` and swaps one reference, so a request sees either the
old rules or the new ones, never a mix. An invalid file is refused and the old snapshot stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from router.config import Config, ConfigError, load_config
from router.metrics import IntakeMetrics
from router.rules import RuleError, RuleSet, load_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    config: Config
    rules: RuleSet


def build_snapshot(config: Config) -> Snapshot:
    """Compile and cross-check the rules of `config` and its receiver references; raise
    ConfigError listing every problem (check-config and reload both come through here)."""
    problems = config.receiver_problems()
    try:
        rules = load_rules(config.resolve(config.rules_dir), config)
    except RuleError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError("\n".join(problems))
    return Snapshot(config=config, rules=rules)


def load_snapshot(path: Path) -> Snapshot:
    return build_snapshot(load_config(path))


class Runtime:
    """Holds the current snapshot; `reload()` swaps it if the file on disk is valid."""

    def __init__(self, snapshot: Snapshot, metrics: IntakeMetrics, path: Path | None) -> None:
        self.snapshot = snapshot
        self.metrics = metrics
        self.path = path
        # Components that follow the config (e.g. the engine's severity policy).
        self.on_reload: list[Callable[[Snapshot], None]] = []
        # Checks a new snapshot must pass before it replaces this one (e.g. its receivers can
        # be built); a ConfigError refuses the reload with its message.
        self.before_reload: list[Callable[[Snapshot], None]] = []
        # Whether a component rebuilds the delivery receivers on reload; until one does, a
        # reload that changes `receivers` is refused (else pages to a new one dead-letter).
        self.receivers_follow_reload = False
        metrics.reload_ok.set(1)
        metrics.reload_time.set(time.time())
        metrics.rules_loaded.set(len(snapshot.rules))

    def reload(self) -> tuple[bool, str]:
        if self.path is None:
            return False, "no config file to reload from"
        try:
            new = load_snapshot(self.path)
        except ConfigError as exc:
            self.metrics.reload_ok.set(0)
            log.error("config reload refused, keeping the running config: %s", exc)
            return False, str(exc)
        changed = _changed_receivers(self.snapshot.config, new.config)
        try:
            for check in self.before_reload:
                check(new)
        except ConfigError as exc:
            self.metrics.reload_ok.set(0)
            log.error("config reload refused, keeping the running config: %s", exc)
            return False, str(exc)
        if changed and not self.receivers_follow_reload:
            self.metrics.reload_ok.set(0)
            reason = (f"receivers changed ({', '.join(changed)}): restart the router to "
                      f"build them")
            log.error("config reload refused: %s", reason)
            return False, reason
        if new.config.backend != self.snapshot.config.backend:
            log.warning("backend settings changed: they take effect after a restart")
        if new.config.server != self.snapshot.config.server:
            log.warning("server settings changed: they take effect after a restart")
        self.snapshot = new
        for follow in self.on_reload:
            follow(new)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        self.metrics.rules_loaded.set(len(new.rules))
        log.info("config reloaded from %s: %d rules", self.path, len(new.rules))
        return True, f"reloaded {len(new.rules)} rules"


def _changed_receivers(old: Config, new: Config) -> list[str]:
    """Names of receivers added, removed or changed between two configs, sorted."""
    before = {r.name: r for r in old.receivers}
    after = {r.name: r for r in new.receivers}
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
