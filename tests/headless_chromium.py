"""Debian's headless Chromium driven by Selenium through Debian's chromedriver.

Nothing is downloaded: the driver path is given, so Selenium Manager is never asked. Every
step is bounded: each WebDriver command has a 120 s HTTP timeout (Selenium's default for
Chromium), page loads 60 s, and every wait polls against a deadline; a hung browser fails
the test instead of hanging the run. A page is shot only once a condition on its DOM holds
(the report's React app shows a white loading screen and unstyled content first).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

# Without the background-networking flags Chromium keeps trying hosts a closed network refuses.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
PAGE_LOAD_TIMEOUT_S = 60


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def driver_executable() -> str | None:
    return shutil.which("chromedriver")


def wait_for(poll, what: str, timeout: float = 120.0):
    """poll() every 0.2 s until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := poll()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not there after {timeout:g} s: {what}")
        time.sleep(0.2)
    return value


class Browser:
    """One Chromium with one page, `width` × `height` CSS pixels."""

    def __init__(self, profile: Path, width: int, height: int):
        from selenium import webdriver

        options = webdriver.ChromeOptions()
        options.binary_location = executable()
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        service = webdriver.ChromeService(executable_path=driver_executable())
        self._driver = webdriver.Chrome(options=options, service=service)
        self._driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        # the screenshot is exactly the viewport asked for, whatever the window decorations
        self._driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (statements allowed, the last one's value)."""
        result = self._driver.execute_cdp_cmd(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Navigate to `url` and wait until the JavaScript expression `ready` is true."""
        self._driver.get(url)
        wait_for(lambda: self.evaluate(ready), what=f"{url}: {ready}")

    def screenshot(self, png: Path) -> Path:
        png.write_bytes(self._driver.get_screenshot_as_png())
        return png

    def close(self) -> None:
        self._driver.quit()
