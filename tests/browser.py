"""Debian's headless Chromium driven by Selenium, for the dashboard's tests (scripts/provision
--browser installs chromium and chromium-driver)."""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Iterator
from typing import Any

from tests.helpers import Sandbox


@contextlib.contextmanager
def chromium(origin: str) -> Iterator[Any]:
    """A browser allowed to use the clipboard on ``origin`` (``http://127.0.0.1:PORT``)."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver_path, "scripts/provision --browser installs Debian's chromium and chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    permissions = ["clipboardReadWrite", "clipboardSanitizedWrite"]
    driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": permissions, "origin": origin})
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def dashboard(box: Sandbox, *args: str) -> Iterator[str]:
    """`driveops-env dashboard` of the sandbox's environment; its URL (with the token)."""
    proc = box.popen("dashboard", *args)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        yield line.split()[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def text_of(browser: Any, testid: str) -> str:
    """The element's text ("" while it is not there, or redrawn under the read)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = browser.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:
        return ""


def click(browser: Any, testid: str) -> None:
    """A click on the element, found again if the page redrew it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            browser.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').click()
        except StaleElementReferenceException:
            continue
        return
    raise AssertionError(f"{testid}: redrawn under every click")
