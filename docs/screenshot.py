"""Redo ``docs/temporal-ui-paused-run.png``: a paused run, as the Temporal UI shows it.

    make ui-screenshot            # or: .venv/bin/python docs/screenshot.py

It starts a stack of its own (dev server and worker, offline demo model) on
free ports with a throwaway database, starts the Data Manager's request, which pauses
on ``delete_records``, and photographs the run's page in the Temporal UI with
headless Chromium (Debian: ``apt-get install -y chromium``), driven over the
DevTools protocol through a pipe so that the picture is taken once the page
shows the run, not after a guessed delay.

With ``--ui-url`` and ``--workflow-id`` it photographs a page of a stack that
is already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from countersign.client import RunClient, build_run_input, workflow_id  # noqa: E402
from countersign.models import Principal, RunStatus  # noqa: E402
from countersign.settings import Settings  # noqa: E402
from devstack.stack import DevStack, child_environment  # noqa: E402
from devstack.temporal_server import DevStackSettings  # noqa: E402

DEFAULT_OUTPUT = PROJECT_ROOT / "docs" / "temporal-ui-paused-run.png"
SEED_MESSAGE = "Delete 50 old records from the users table"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


# The page's text and that of its same-origin frames (the UI renders a run's
# summary and details as markdown in frames).
PAGE_TEXT = """
[document, ...[...document.querySelectorAll('iframe')].map(f => {
  try { return f.contentDocument; } catch (e) { return null; }
})].map(d => (d && d.body) ? d.body.innerText : '').join('\\n')
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (NUL-separated JSON)."""

    def __init__(self, user_data_dir: Path, width: int, height: int) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise SystemExit("chromium is missing: apt-get install -y chromium")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The protocol pipe must be file descriptors 3 (commands) and 4 (replies);
        # bash, not sh: dash cannot redirect from descriptors above 9.
        command = [
            "/bin/bash",
            "-c",
            f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data_dir}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command,
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("SCREENSHOT_DEBUG") else subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.size = (width, height)

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result (events are skipped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the protocol pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def evaluate(self, expression: str, session: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        evaluated = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session,
        )
        return evaluated["result"].get("value")

    def wait_for_text(self, session: str, expect: list[str], within: float = 30.0) -> None:
        """Wait until the page's text (frames included) holds every string of ``expect``."""
        deadline = time.monotonic() + within
        text = ""
        while not all(s in text for s in expect):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed {expect}; it shows:\n{text[:2000]}")
            # Polling the page's text is the condition; the pause keeps Chromium idle.
            time.sleep(0.25)
            text = str(self.evaluate(PAGE_TEXT, session))

    def screenshot(
        self, url: str, expect: list[str], click: str | None = None, then: list[str] | None = None
    ) -> bytes:
        """Open ``url``, wait for ``expect``, click the tab labelled ``click``, wait, shoot.

        Args:
            url: The page.
            expect: Strings the page's text must hold before anything else.
            click: Text of a link, button or tab to click once ``expect`` shows.
            then: Strings the page's text must hold after the click.
        """
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        width, height = self.size
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for_text(session, expect)
        if click is not None:
            clicked = self.evaluate(
                "(() => { const el = [...document.querySelectorAll('a, button, [role=tab]')]"
                f".find(e => e.innerText.trim() === {json.dumps(click)});"
                " if (el) { el.click(); return true; } return false; })()",
                session,
            )
            if not clicked:
                raise RuntimeError(f"nothing labelled {click!r} to click on {url}")
            self.wait_for_text(session, then or [])
        # Two animation frames: what the text says is also painted.
        self.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
            session,
        )
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        """Close the browser and wait for it."""
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._to_browser)
        os.close(self._from_browser)


def shoot(ui_url: str, namespace: str, wf_id: str, output: Path) -> None:
    """Photograph the run's page in the Temporal UI into ``output``."""
    url = f"{ui_url}/namespaces/{namespace}/workflows/{wf_id}"
    with tempfile.TemporaryDirectory(prefix="countersign-chromium-") as profile:
        browser = Chromium(Path(profile), 1440, 1000)
        try:
            png = browser.screenshot(
                url,
                expect=[wf_id, "RUNNING", "confirmation TTL"],
                # The run's summary and what it waits for (set by the workflow).
                click="User Metadata",
                then=["await confirmation", "delete_records"],
            )
        finally:
            browser.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(png)
    print(f"wrote {output} ({len(png)} bytes) from {url}")


async def paused_run_on_own_stack(output: Path) -> None:
    """Start a dev server and worker, pause one run, photograph it, stop."""
    with tempfile.TemporaryDirectory(prefix="countersign-screenshot-") as tmp:
        grpc_port, ui_port = free_port(), free_port()
        overrides = {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{grpc_port}",
            "COUNTERSIGN_MODEL": "demo",
            "COUNTERSIGN_DEMO_DB": str(Path(tmp) / "demo.sqlite3"),
        }
        settings = Settings.model_validate(overrides)
        stack = DevStack(
            settings=settings,
            dev=DevStackSettings(ui_port=ui_port, db_filename=Path(tmp) / "temporal.sqlite3"),
            env=child_environment(settings, {**os.environ, **overrides}),
            with_api=False,
        )
        try:
            await stack.start()
            assert stack.client is not None
            run = build_run_input(
                settings,
                agent_id="data_manager",
                message=SEED_MESSAGE,
                requester=Principal(id="test_user", roles=("requester",)),
                user_id="test_user",
                session_id="test_session",
            )
            _, view = await RunClient.start(
                stack.client,
                run,
                task_queue=settings.temporal_task_queue,
                wait=timedelta(seconds=30),
            )
            if view is None or view.status is not RunStatus.PAUSED:
                raise SystemExit(f"the run did not pause: {view}")
            await asyncio.to_thread(
                shoot, stack.ui_url, settings.temporal_namespace, workflow_id(run.run_id), output
            )
        finally:
            await stack.stop()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--ui-url", help="photograph a running stack's UI instead")
    parser.add_argument("--workflow-id", help="with --ui-url: the run's workflow id")
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args()
    if args.ui_url:
        if not args.workflow_id:
            parser.error("--ui-url needs --workflow-id")
        shoot(args.ui_url.rstrip("/"), args.namespace, args.workflow_id, args.output)
        return
    asyncio.run(paused_run_on_own_stack(args.output))


if __name__ == "__main__":
    main()
    # Skip the teardown that the Temporal SDK's threads can abort
    # (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
