"""The console in the real Chromium, clicked through as an on-call engineer would."""

from __future__ import annotations

import time
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import screenshot
from tests.ui.harness import READ_TOKEN, WRITE_TOKEN, Router

WAIT = 20  # seconds: the live regions refresh every 3 s


def wait(driver: WebDriver, timeout: float = WAIT) -> WebDriverWait[WebDriver]:
    # A form post navigates: a poll that lands mid-navigation is retried, not a failure.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(WebDriverException,))


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def log_in(driver: WebDriver, router: Router, token: str = WRITE_TOKEN, name: str = "alice",
           path: str = "/ui/alerts") -> None:
    driver.get(router.base + path)
    wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "login").click()
    wait(driver).until(ec.presence_of_element_located((By.ID, "whoami")))
    assert driver.current_url.startswith(router.base + path.split("?")[0])


def click(driver: WebDriver, css: str) -> None:
    element = wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
    element.click()


def open_details(driver: WebDriver, summary_text: str) -> None:
    driver.find_element(By.XPATH, f"//summary[normalize-space()='{summary_text}']").click()


def until_text(driver: WebDriver, css: str, text: str, timeout: float = WAIT) -> None:
    wait(driver, timeout).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def fetch_status(driver: WebDriver, path: str, csrf: bool = True) -> Any:
    """POST from the page with the page's CSRF token (or none): the answer's status."""
    return driver.execute_async_script("""
        const [path, withCsrf, done] = arguments;
        const token = document.querySelector("input[name=csrf]").value;
        const body = new URLSearchParams(withCsrf ? {csrf: token} : {});
        fetch(path, {method: "POST", body: body, redirect: "manual"})
          .then(r => done(r.status), e => done(String(e)));
    """, path, csrf)


def test_an_alert_arrives_live_and_its_incident_is_worked_to_resolution(
        console: Router, browser: WebDriver) -> None:
    log_in(browser, console)
    browser.execute_script("window.notReloaded = true;")
    console.fire("CheckoutDown", env="prod", instance="checkout-1")
    # The list refreshes itself: the alert appears without a reload.
    wait(browser).until(ec.presence_of_element_located((By.LINK_TEXT, "CheckoutDown")))
    assert browser.execute_script("return window.notReloaded === true")
    assert "SEV1" in text_of(browser, "#alert-list")
    screenshot(browser, console, "alerts")

    click(browser, "#alert-list a[href*='CheckoutDown'], #alert-list a")
    until_text(browser, "main", "checkout-down")  # the rule that classified it
    assert browser.find_element(By.LINK_TEXT, "https://runbooks.example.com/checkout-down")
    assert 'env="prod"' in text_of(browser, "main")
    screenshot(browser, console, "alert")

    # Open the incident it opened (the engine opens it right after the alert).
    for _ in range(50):
        links = browser.find_elements(By.CSS_SELECTOR, "a[href^='/ui/incidents/INC-']")
        if links:
            break
        time.sleep(0.3)  # the engine opens the incident just after the alert is stored
        browser.refresh()
    links[0].click()
    until_text(browser, "h1", "CheckoutDown")
    incident_url = browser.current_url

    click(browser, "#ack")
    until_text(browser, "#incident-live", "acknowledged")
    until_text(browser, "#timeline", "console:alice")

    open_details(browser, "Post an update")
    browser.find_element(By.ID, "u-message").send_keys("Rolled back the 14:02 deploy")
    browser.find_element(By.ID, "u-status").send_keys("identified")
    click(browser, "#preview")
    until_text(browser, "#preview-text", "Rolled back the 14:02 deploy")
    assert "Status: Identified" in text_of(browser, "#preview-text")
    screenshot(browser, console, "update-preview")
    click(browser, "#post-update")
    until_text(browser, "#timeline", "Rolled back the 14:02 deploy")
    until_text(browser, "#incident-status", "identified")

    open_details(browser, "Resolve")
    browser.find_element(By.ID, "r-message").send_keys("Error rate back to normal")
    click(browser, "#resolve")
    until_text(browser, "#incident-status", "resolved")
    until_text(browser, "#timeline", "Error rate back to normal")
    assert browser.current_url.split("?")[0] == incident_url.split("?")[0]

    # The timeline reads in time order: opened, acknowledged, the update, resolved.
    entries = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")]
    kinds = [e.split(" UTC ", 1)[1].split(" ")[0] for e in entries]
    order = [kinds.index(k) for k in ("opened", "acknowledged", "status", "resolved")]
    assert order == sorted(order), entries
    screenshot(browser, console, "incident")

    click(browser, "#postmortem")
    until_text(browser, "#postmortem-text", "Post-mortem")
    assert "Rolled back the 14:02 deploy" in text_of(browser, "#postmortem-text")
    # Rendered from its Markdown: headings and tables, not the source text.
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#postmortem-text h2")]
    assert "Timeline" in headings and "Action items" in headings, headings
    timeline = browser.find_elements(By.CSS_SELECTOR, "#postmortem-text table")[1]
    assert "Time (UTC)" in timeline.find_element(By.CSS_SELECTOR, "thead").text
    assert "Rolled back the 14:02 deploy" in timeline.text
    assert "|---" not in text_of(browser, "#postmortem-text")
    assert browser.find_element(By.ID, "download").get_attribute("href").endswith(
        "/postmortem.md")
    screenshot(browser, console, "postmortem")


def test_the_incident_list_puts_open_incidents_first_with_sla_time_left(
        console: Router, browser: WebDriver) -> None:
    first = console.declare("Search is slow", "SEV3")
    worst = console.declare("Payments fail", "SEV1")
    log_in(browser, console, path="/ui/incidents")
    rows = browser.find_elements(By.CSS_SELECTOR, "#incident-list tbody tr")
    ids = [r.find_element(By.CSS_SELECTOR, "a").text for r in rows]
    assert ids.index(worst) < ids.index(first)
    row = rows[ids.index(worst)]
    assert "left" in row.text  # 15 min to acknowledge a SEV1
    screenshot(browser, console, "incidents")
    # Dark mode follows the OS setting (prefers-color-scheme).
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    background = browser.execute_script(
        "return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)", background
    screenshot(browser, console, "incidents-dark")


def test_a_read_only_token_cannot_act(console: Router, browser: WebDriver) -> None:
    ident = console.declare("Read-only check", "SEV2")
    log_in(browser, console, token=READ_TOKEN, name="viewer", path=f"/ui/incidents/{ident}")
    assert "read-only" in text_of(browser, "#whoami")
    assert browser.find_elements(By.ID, "ack") == []
    assert "read-only" in text_of(browser, "#read-only")
    # Even a hand-made POST with a valid CSRF token is refused.
    assert fetch_status(browser, f"/ui/incidents/{ident}/ack") == 403
    screenshot(browser, console, "read-only")
    assert console.incident(ident)["acknowledged_at"] is None


def test_a_post_without_the_csrf_token_is_refused(console: Router, browser: WebDriver) -> None:
    ident = console.declare("CSRF check", "SEV2")
    log_in(browser, console, path=f"/ui/incidents/{ident}")
    browser.execute_script(
        "document.querySelector('form[action$=\"/ack\"] input[name=csrf]').remove()")
    click(browser, "#ack")
    until_text(browser, "#problem", "CSRF")
    assert "403" in text_of(browser, "h1")
    screenshot(browser, console, "csrf-refused")
    assert console.incident(ident)["acknowledged_at"] is None


def test_classify_a_pasted_alert(console: Router, browser: WebDriver) -> None:
    log_in(browser, console, path="/ui/rules")
    assert "checkout-down" in text_of(browser, "table.rules")
    browser.find_element(By.ID, "c-alert").send_keys(
        '{"labels": {"alertname": "CheckoutDown", "env": "prod"}}')
    click(browser, "#classify")
    until_text(browser, "#c-rule", "checkout-down")
    assert text_of(browser, "#c-severity") == "SEV1"
    assert "payments" in text_of(browser, "#c-owner")
    assert text_of(browser, "#c-receivers") == "log"
    screenshot(browser, console, "rules")


def test_replay_a_dead_letter(console: Router, browser: WebDriver) -> None:
    console.hook.accept.clear()
    console.fire("DiskFull", instance="db-1")
    log_in(browser, console, path="/ui/dead-letters")
    for _ in range(60):
        if browser.find_elements(By.CSS_SELECTOR, "table.dead-letters button.replay"):
            break
        time.sleep(0.3)  # delivery runs in the background; the list is not live
        browser.refresh()
    assert "hooks" in text_of(browser, "table.dead-letters")
    assert "400" in text_of(browser, "table.dead-letters")
    screenshot(browser, console, "dead-letters")
    console.hook.accept.set()
    before = len(console.hook.received)
    click(browser, "table.dead-letters button.replay")
    until_text(browser, "#done", "put back for delivery")
    assert not text_of(browser, "#done").startswith("0 ")
    for _ in range(60):
        if len(console.hook.received) > before:
            break
        time.sleep(0.2)
    assert len(console.hook.received) > before
    browser.refresh()
    wait(browser).until(ec.presence_of_element_located((By.ID, "no-dead-letters")))


def test_declare_an_incident_and_see_who_is_on_call(console: Router, browser: WebDriver) -> None:
    log_in(browser, console, path="/ui/incidents")
    click(browser, "#declare")
    browser.find_element(By.ID, "d-title").send_keys("Card payments declined")
    browser.find_element(By.ID, "d-severity").send_keys("SEV1")
    browser.find_element(By.ID, "d-impact").send_keys("EU customers cannot pay by card")
    browser.find_element(By.ID, "d-service").send_keys("checkout")
    click(browser, "#declare-submit")
    until_text(browser, "h1", "Card payments declined")
    until_text(browser, "#timeline", "declared")
    browser.get(console.base + "/ui/oncall")
    assert text_of(browser, ".oncall-user") in {"alice", "bob", "carol"}
    assert "cto" in text_of(browser, "ol.levels")
    screenshot(browser, console, "oncall")


def test_at_phone_width_open_the_incident_and_acknowledge(console: Router, phone: WebDriver
                                                          ) -> None:
    ident = console.declare("Mobile check-in broken", "SEV1")
    log_in(phone, console, path="/ui/incidents")
    phone.find_element(By.LINK_TEXT, ident).click()
    until_text(phone, "h1", "Mobile check-in broken")
    # The page fits the phone: nothing wider than the viewport but scrollable tables.
    assert phone.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")
    click(phone, "#ack")
    until_text(phone, "#incident-live", "acknowledged")
    screenshot(phone, console, "phone-incident")
    assert console.incident(ident)["acknowledged_at"] is not None


def test_silence_an_alert_from_its_page_then_expire_it(console: Router, browser: WebDriver
                                                        ) -> None:
    console.fire("QueueBacklog", env="prod", instance="worker-7")
    log_in(browser, console)
    wait(browser).until(ec.presence_of_element_located((By.LINK_TEXT, "QueueBacklog")))
    browser.find_element(By.LINK_TEXT, "QueueBacklog").click()
    until_text(browser, "#quiet-reason", "Not quiet")
    alert_url = browser.current_url

    click(browser, "#silence-alert")
    prefilled = browser.find_element(By.ID, "s-matchers").get_attribute("value").splitlines()
    assert prefilled == ['alertname="QueueBacklog"', 'env="prod"', 'instance="worker-7"']
    comment = browser.find_element(By.ID, "s-comment")
    comment.clear()
    comment.send_keys("draining the queue by hand")
    click(browser, "#s-preview")
    until_text(browser, "#silence-preview", "Would silence 1 firing alert")
    assert "QueueBacklog" in text_of(browser, "#silence-preview")
    screenshot(browser, console, "silence-new")
    click(browser, "#s-create")
    until_text(browser, "#done", "created")
    active = text_of(browser, "#silences-active")
    assert "draining the queue by hand" in active and "console:alice" in active
    screenshot(browser, console, "silences")

    browser.get(alert_url)
    until_text(browser, "#quiet-reason", "silenced")
    assert "not notified while it lasts" in text_of(browser, "#quiet")
    screenshot(browser, console, "alert-silenced")
    browser.get(console.base + "/ui/alerts")
    row = browser.find_element(By.XPATH, "//tr[.//a[normalize-space()='QueueBacklog']]")
    assert "silenced" in row.find_element(By.CSS_SELECTOR, ".quiet-mark").text
    browser.back()

    browser.find_element(By.CSS_SELECTOR, "#quiet a").click()  # to the silence
    click(browser, "#silences-active button.expire")
    until_text(browser, "#done", "expired")
    assert "draining the queue by hand" in text_of(browser, "#silences-expired")
    browser.get(alert_url)
    until_text(browser, "#quiet-reason", "Not quiet")
