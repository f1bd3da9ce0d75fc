"""The console in the real Chromium against a router on the Kafka backend (the real broker):
silence an alert from its page, see it and a new alert it covers shown silenced and the new
one not delivered, then expire the silence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from router.config import KafkaBackendConfig
from tests.procs import wait_until
from tests.ui.conftest import screenshot
from tests.ui.harness import Router, router
from tests.ui.test_browser import click, log_in, text_of, until_text, wait

pytestmark = pytest.mark.kafka

# One group per instance, so a new instance is a new group: notified at once (SEV1 has no
# group wait) unless a silence covers it.
RULES = """
rules:
  - name: disk-full-hooks
    match:
      labels: ['alertname="DiskFull"']
    set:
      severity: SEV1
      team: infra
      service: storage
      receivers: [hooks]
      group_by: [alertname, instance]
"""


@pytest.fixture
def kafka_console(tmp_path: Path, kafka_config: KafkaBackendConfig) -> Iterator[Router]:
    backend = kafka_config.model_dump(mode="json", exclude_none=True)
    with router(tmp_path / "console", backend=backend, rules=RULES, ready_within=90) as r:
        yield r


def delivered(r: Router, instance: str) -> list[dict[str, Any]]:
    """The notifications the webhook consumer got that are about `instance`."""
    return [body for body in r.hook.received if f'"{instance}"' in json.dumps(body)]


def until_shown_after_reload(driver: WebDriver, url: str, css: str, text: str) -> None:
    """Reload `url` until `css` shows `text` (the page is not live; the engines on Kafka take
    the command through the log)."""
    def shown(d: WebDriver) -> bool:
        d.get(url)
        return text in str(d.find_element(By.CSS_SELECTOR, css).text)

    wait(driver).until(shown)


def row_of(driver: WebDriver, summary: str) -> Any:
    return driver.find_element(By.XPATH, f"//tr[.//div[normalize-space()='{summary}']]")


def test_silence_an_alert_on_kafka_then_expire_it(kafka_console: Router, browser: WebDriver
                                                   ) -> None:
    r = kafka_console
    r.fire("DiskFull", env="prod", instance="db-1")
    wait_until(lambda: bool(delivered(r, "db-1")), 60, "the first alert's notification", r.log)

    log_in(browser, r)
    wait(browser).until(ec.presence_of_element_located((By.LINK_TEXT, "DiskFull")))
    browser.find_element(By.LINK_TEXT, "DiskFull").click()
    until_text(browser, "#quiet-reason", "Not quiet")
    alert_url = browser.current_url

    click(browser, "#silence-alert")
    prefilled = browser.find_element(By.ID, "s-matchers").get_attribute("value").splitlines()
    assert prefilled == ['alertname="DiskFull"', 'env="prod"', 'instance="db-1"']
    matchers = browser.find_element(By.ID, "s-matchers")
    matchers.clear()  # every prod disk, not only this one
    matchers.send_keys('alertname="DiskFull"\nenv="prod"')
    comment = browser.find_element(By.ID, "s-comment")
    comment.clear()
    comment.send_keys("resizing the prod volumes")
    click(browser, "#s-preview")
    until_text(browser, "#silence-preview", "Would silence 1 firing alert")
    click(browser, "#s-create")
    until_text(browser, "#done", "created")
    active = text_of(browser, "#silences-active")
    assert "resizing the prod volumes" in active and "console:alice" in active

    until_shown_after_reload(browser, alert_url, "#quiet-reason", "silenced")
    assert "not notified while it lasts" in text_of(browser, "#quiet")
    screenshot(browser, r, "kafka-alert-silenced")

    # A new prod disk fills up while the silence lasts: listed, silenced, and not notified.
    r.fire("DiskFull", env="prod", instance="db-2")
    browser.get(r.base + "/ui/alerts")
    wait(browser).until(lambda d: "silenced" in row_of(
        d, "DiskFull on db-2").find_element(By.CSS_SELECTOR, ".quiet-mark").text)
    assert "silenced" in row_of(browser, "DiskFull on db-1").find_element(
        By.CSS_SELECTOR, ".quiet-mark").text
    screenshot(browser, r, "kafka-alerts-silenced")
    # A staging disk, not covered, fired after it: once that is delivered, db-2 would have
    # been too.
    r.fire("DiskFull", env="staging", instance="db-3")
    wait_until(lambda: bool(delivered(r, "db-3")), 60, "the staging alert's notification",
               r.log)
    assert delivered(r, "db-2") == []
    assert len(delivered(r, "db-1")) == 1

    browser.get(alert_url)
    browser.find_element(By.CSS_SELECTOR, "#quiet a").click()  # to the silence
    click(browser, "#silences-active button.expire")
    until_text(browser, "#done", "expired")
    assert "resizing the prod volumes" in text_of(browser, "#silences-expired")
    until_shown_after_reload(browser, alert_url, "#quiet-reason", "Not quiet")
    screenshot(browser, r, "kafka-silence-expired")
