"""Fixtures of the console's browser tests: one router per module, one browser per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.harness import Router, chromium, full_page_screenshot, router


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    with router(tmp_path_factory.mktemp("console")) as r:
        yield r


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def phone() -> Iterator[Any]:
    driver = chromium(390, 844, phone=True)  # an iPhone 12-class viewport
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, router: Router, name: str) -> Path:
    """Saved into $IR_SCREENSHOTS (docs/console for the docs), else the test's tmp dir."""
    path = router.shots / f"{name}.png"
    full_page_screenshot(driver, path)
    return path
