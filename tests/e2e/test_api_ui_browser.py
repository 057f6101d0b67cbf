"""The upload page in a real browser: uvicorn on 127.0.0.1 with a stand-in model, headless
Chromium driven over the Chrome DevTools Protocol (its websocket, no Selenium/Playwright).

The test types the key, chooses a CSV, submits, waits for the flagged count the page draws,
and checks it against the API's own result for that job. A screenshot is saved to
``var/test-artifacts/ui-upload.png`` (gitignored) for a person to look at. Skips when no
Chromium binary is found (``ANOMALYOPS_CHROMIUM`` names one explicitly).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from anomalyops.settings import PROJECT_ROOT
from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    UvicornProcess,
    csv_bytes,
    expected,
    make_frame,
    publish,
    read_csv_reply,
)

ARTIFACT = PROJECT_ROOT / "var" / "test-artifacts" / "ui-upload.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ROWS = 3000
FRAME = make_frame(ROWS, seed=7)
# About 5 % of the rows above the threshold, so the count is neither 0 nor everything.
THRESHOLD = float(np.round(np.quantile(expected(FRAME), 0.95), 4))


def _chromium() -> str | None:
    named = os.environ.get("ANOMALYOPS_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for b in BROWSERS if (found := shutil.which(b))), None)


class Chromium:
    """Headless Chromium with a throwaway profile; its DevTools port read from the profile."""

    def __init__(self, binary: str, profile: Path, log_path: Path) -> None:
        self.profile = profile
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1500",
            "about:blank",
        ]
        if os.geteuid() == 0:  # containers run tests as root; Chromium's sandbox refuses that
            args.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def devtools_port(self, timeout: float = 30.0) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
            time.sleep(0.1)
        raise TimeoutError(f"no DevToolsActivePort after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Cdp:
    """A minimal CDP client over one page target's websocket: commands and the events seen."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.events: list[dict] = []
        self._ids = itertools.count(1)

    def __call__(self, method: str, timeout: float = 30.0, **params) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def eval(self, expression: str):
        result = self("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{what} not seen after {timeout} s")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    root = tmp_path_factory.mktemp("ui-uvicorn")
    serving = root / "serving"
    serving.mkdir()
    proc = UvicornProcess(
        {
            "ANOMALYOPS_API_ENVIRONMENT": "production",
            "ANOMALYOPS_API_MODEL_DIR": str(serving),
            "ANOMALYOPS_API_STATE_DIR": str(root / "state"),
            "ANOMALYOPS_API_SPOOL_DIR": str(root),
            "ANOMALYOPS_API_KEYS": KEY,
            "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
            "ANOMALYOPS_API_POLL_INTERVAL_S": "0.25",
        },
        root / "uvicorn.log",
    )
    try:
        publish(serving, 1, threshold=THRESHOLD)
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    binary = _chromium()
    if binary is None:
        pytest.skip(
            "no Chromium binary on PATH (tried " + ", ".join(BROWSERS) + "); install one "
            "(apt-get install chromium) or set ANOMALYOPS_CHROMIUM to run the browser test"
        )
    chromium = Chromium(binary, tmp_path / "profile", tmp_path / "chromium.log")
    cdp = None
    try:
        port = chromium.devtools_port()
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        chromium.stop()


def test_upload_page_scores_a_file_in_a_real_browser(
    server: UvicornProcess, browser: Cdp, tmp_path: Path
) -> None:
    cdp = browser
    data_file = tmp_path / "day.csv"
    data_file.write_bytes(csv_bytes(FRAME))
    cdp("Page.enable")
    cdp("Runtime.enable")
    cdp("Log.enable")
    cdp("Page.navigate", url=f"{server.url}/ui")
    cdp.wait_for("document.body && document.body.dataset.state === 'ready'", 30, "the page")

    cdp.eval(f"document.getElementById('api-key').value = {json.dumps(KEY)}")
    root = cdp("DOM.getDocument")["root"]["nodeId"]
    file_input = cdp("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    cdp("DOM.setFileInputFiles", files=[str(data_file)], nodeId=file_input)
    assert cdp.eval("document.getElementById('file').files[0].name") == "day.csv"
    cdp.eval("document.getElementById('submit').click()")

    state = cdp.wait_for(
        "['done', 'failed'].includes(document.body.dataset.state) && document.body.dataset.state",
        120,
        "the job's result on the page",
    )
    if state == "failed":
        pytest.fail(
            "the page says: " + cdp.eval("document.getElementById('error-text').textContent")
        )
    shown = cdp.eval(
        """({
        flagged: document.getElementById('flagged-count').textContent,
        version: document.getElementById('model-version').textContent,
        rows: document.getElementById('rows-scored').textContent,
        job: document.getElementById('job-id').textContent,
        status: document.getElementById('job-status').textContent,
        bars: document.querySelectorAll('#histogram-svg rect').length,
        line: !!document.getElementById('threshold-line'),
        download: document.getElementById('download').href,
      })"""
    )
    png = cdp("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_bytes(base64.b64decode(png))
    print(f"\nscreenshot of the upload page: {ARTIFACT}")

    # The API's own answer for the same job.
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30) as client:
        job = client.get(f"/v1/jobs/{shown['job']}").json()
        result = client.get(f"/v1/jobs/{shown['job']}/result")
    assert job["status"] == "succeeded" and shown["status"] == "succeeded", job
    reply = read_csv_reply(result.content)
    api_flagged = int(reply["is_anomaly"].sum())
    assert api_flagged == int((expected(FRAME) > THRESHOLD).sum())  # the model's own maths
    assert 0 < api_flagged < ROWS
    assert int(shown["flagged"]) == api_flagged, shown
    assert shown["version"] == "1" == result.headers["x-model-version"]
    assert shown["rows"] == f"{ROWS:,}"
    assert shown["bars"] > 5 and shown["line"], shown
    assert shown["download"].startswith("blob:"), shown
    assert ARTIFACT.stat().st_size > 10_000

    # Nothing blocked by the page's Content-Security-Policy, no script error.
    problems = [
        e["params"]
        for e in cdp.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (
            e.get("method") == "Log.entryAdded"
            and e["params"]["entry"]["level"] == "error"
            and "favicon" not in e["params"]["entry"].get("url", "")
        )
    ]
    assert not problems, problems
