"""Real JupyterLab (or Notebook 7) in headless Chromium, driven by Python Playwright.

Helpers for the browser tests, not tests themselves. A :class:`JupyterServer` runs
``jupyter lab`` or ``jupyter notebook`` on a free loopback port with a temporary root
directory; :class:`NotebookPage` writes a notebook there, opens it and runs its cells
through the real UI, so widgets render exactly as they do for a user.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, expect

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("SSE_WIDGET_CHROMIUM", "/usr/bin/chromium")

# Chromium flags for this closed network: without the background-networking ones it keeps
# trying to reach Google's hosts, and fails.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Records long tasks (main-thread work over 50 ms) as [startTime, duration] pairs.
RECORD_LONG_TASKS = """
(() => {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
})();
"""

# Counts EventSource objects in the page: how many were made and how many are open now.
COUNT_EVENTSOURCES = """
(() => {
  const Real = window.EventSource;
  const stats = { created: 0, open: 0, urls: [] };
  window.__esStats = stats;
  window.EventSource = class extends Real {
    constructor(url, init) {
      super(url, init);
      stats.created += 1;
      stats.open += 1;
      stats.urls.push(String(url));
      const realClose = this.close.bind(this);
      let closed = false;
      const mark = () => { if (!closed) { closed = true; stats.open -= 1; } };
      this.close = () => { mark(); realClose(); };
      this.addEventListener('error', () => { if (this.readyState === 2) mark(); });
    }
  };
})();
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_chromium(pw: Playwright) -> Browser:
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(
            f"the browser tests need Chromium at {CHROMIUM}; install Debian's chromium "
            "(`apt-get install chromium`) or set SSE_WIDGET_CHROMIUM"
        )
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


class JupyterServer:
    """``jupyter lab`` (or ``notebook``) on a free port, in a temporary root directory."""

    def __init__(
        self,
        app: str = "lab",
        env: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.root = pathlib.Path(tempfile.mkdtemp(prefix=f"sse_widget_{app}_"))
        self.url = f"http://127.0.0.1:{self.port}"
        home = self.root / ".home"
        (home / "settings").mkdir(parents=True)
        # Keep JupyterLab quiet and offline: no news, no update checks.
        (home / "settings" / "overrides.json").write_text(
            json.dumps(
                {
                    "@jupyterlab/apputils-extension:notification": {
                        "fetchNews": "false",
                        "checkForUpdates": False,
                    },
                    # Save widget state into notebooks, as the snapshot test needs.
                    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
                    **(settings or {}),
                }
            )
        )
        cmd = [
            str(pathlib.Path(sys.executable).parent / "jupyter"),
            app,
            "--no-browser",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.disable_check_xsrf=False",
            f"--LabServerApp.app_settings_dir={home / 'settings'}",
            f"--LabServerApp.workspaces_dir={home / 'workspaces'}",
        ]
        if os.getuid() == 0:
            cmd.append("--allow-root")
        venv_bin = str(pathlib.Path(sys.executable).parent)
        full_env = {
            **os.environ,
            # Kernels must run this interpreter, the one with sse_widget installed.
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            **(env or {}),
        }
        self.log = open(self.root / f"{app}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=full_env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"jupyter {self.app} did not start in {timeout} s:\n{self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        return (self.root / f"{self.app}.log").read_text()[-5000:]

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for k in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{k['id']}")

    def write_notebook(
        self,
        name: str,
        cells: list[str],
        metadata: dict[str, Any] | None = None,
        outputs: list[list[dict[str, Any]]] | None = None,
    ) -> pathlib.Path:
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"c{i}",
                    "metadata": {},
                    "outputs": (outputs[i] if outputs else []),
                    "source": src,
                }
                for i, src in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                **(metadata or {}),
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = self.root / name
        path.write_text(json.dumps(nb))
        return path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class NotebookPage:
    """One notebook open in the browser, with helpers to run cells and read widgets."""

    def __init__(self, server: JupyterServer, page: Page, name: str) -> None:
        self.server = server
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, kernel: bool = True) -> NotebookPage:
        s = self.server
        if s.app == "lab":
            url = f"{s.url}/lab/tree/{self.name}?reset&token={s.token}"
        else:
            url = f"{s.url}/notebooks/{self.name}?token={s.token}"
        self.page.goto(url)
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        if kernel:
            self.wait_kernel_idle()
        return self

    def wait_kernel_idle(self, timeout: float = 60) -> None:
        """Wait until this notebook's kernel is started and idle (asked of the server)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sess in self.server.api("GET", "/api/sessions"):
                if sess["path"].endswith(self.name) and sess["kernel"]["execution_state"] == "idle":
                    # The page also needs its widget manager connected; give it a moment.
                    self.page.wait_for_timeout(500)
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the kernel of {self.name} did not become idle in {timeout} s")

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def run_cell(self, index: int, wait: bool = True, timeout: float = 60) -> None:
        """Run one cell through the UI (select it, Shift+Enter)."""
        cell = self.cell(index)
        cell.locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.wait_cell_done(index, timeout)
        else:
            expect(cell.locator(".jp-InputArea-prompt")).to_contain_text("*", timeout=15_000)

    def wait_cell_done(self, index: int, timeout: float = 60) -> None:
        prompt = self.cell(index).locator(".jp-InputArea-prompt")
        expect(prompt).to_have_text(_DONE_PROMPT, timeout=timeout * 1000)

    def run_all(self, timeout: float = 60) -> None:
        n = self.page.locator(".jp-Notebook .jp-Cell").count()
        for i in range(n):
            self.run_cell(i, timeout=timeout)

    def output_text(self, index: int) -> str:
        return str(self.cell(index).locator(".jp-OutputArea").inner_text())

    def widget(self, index: int = 0) -> Any:
        """The n-th sse_widget view on the page."""
        return self.page.locator(".sse-widget").nth(index)

    def screenshot(self, name: str, widget: int | None = None) -> pathlib.Path:
        """Save the page (or one widget) under artifacts/ for a person to look at."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if widget is None:
            self.page.screenshot(path=str(path), full_page=True)
        else:
            self.widget(widget).screenshot(path=str(path))
        return path


_DONE_PROMPT = re.compile(r"^\[\d+\]:?$")


@contextmanager
def notebook(
    server: JupyterServer,
    browser: Browser,
    cells: list[str],
    *,
    name: str | None = None,
    count_eventsources: bool = True,
    record_long_tasks: bool = False,
) -> Iterator[NotebookPage]:
    """Write a notebook with ``cells``, open it in a fresh browser context, yield it."""
    name = name or f"nb_{secrets.token_hex(4)}.ipynb"
    server.write_notebook(name, cells)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    if count_eventsources:
        context.add_init_script(COUNT_EVENTSOURCES)
    if record_long_tasks:
        context.add_init_script(RECORD_LONG_TASKS)
    page = context.new_page()
    nb = NotebookPage(server, page, name)
    try:
        yield nb.open()
    finally:
        context.close()
        server.shutdown_kernels()
