"""Headless Chromium driven over the DevTools protocol on a pipe (no extra package).

`chromium --screenshot` shoots when a virtual-time budget runs out, which can be before the
report's React app has replaced its white "Loading Snakemake Report..." screen or before its
styles are generated (a CI run got a shot 92 % one colour; here an unstyled page was seen).
Here a page is shot only once a condition on its DOM holds.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

# As the machine's notes advise: without the background-networking flags Chromium keeps
# trying hosts this closed network refuses.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe",
)


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def wait_for(poll, what: str, timeout: float = 120.0):
    """poll() every 0.2 s until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := poll()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not there after {timeout:g} s: {what}")
        time.sleep(0.2)
    return value


def high_pipe() -> tuple[int, int]:
    """os.pipe() moved to descriptors above 9, both closed on exec."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Browser:
    """One Chromium process and one page; commands go in on fd 3, answers come out on fd 4,
    each message JSON ended by a NUL byte (Chromium's --remote-debugging-pipe)."""

    def __init__(self, profile: Path, width: int, height: int):
        # ends above 9, so that moving them to 3 and 4 in the child cannot overwrite one another
        to_browser_r, self._to_browser = high_pipe()
        self._from_browser, from_browser_w = high_pipe()

        def onto_fds_3_and_4():  # dup2'd descriptors are inheritable; every other one is not
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self._process = subprocess.Popen(
            [executable(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=onto_fds_3_and_4,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:  # events arrive in between; keep the answer to this call
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed its pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def call(self, method: str, **params) -> dict:
        return self._call(method, self._session, **params)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Navigate to `url` and wait until the JavaScript expression `ready` is true."""
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate(ready), what=f"{url}: {ready}")

    def screenshot(self, png: Path) -> Path:
        png.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return png

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
