"""Browser tests: Debian's chromium driven by Playwright against a node the tests start.

One node serves the whole package (and is stopped after it, so that its idle SuperLink and
workers do not slow the rest of the suite): `cairn node start --demo` in a fresh data folder, exactly what
`make run` starts, so the pages are tested on the seeded community (and the seeding itself is
tested). Screenshots of every page go to build/screenshots (or $CAIRN_SCREENSHOTS) for a person
to look at. Each page is checked with axe-core (WCAG 2 A and AA rules) and at phone width.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from cairn.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("CAIRN_SCREENSHOTS", ROOT / "build" / "screenshots"))
SEED_SECONDS = 900  # the demo's training round on 2 busy cores, with room to spare
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

playwright_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():  # `make test` installs it; a bare pytest run elsewhere may not have it
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """README.md's commands run first on the shared demo node: they name the ids a fresh demo
    node hands out next, which the flows' own models and apps would take (the flows, for their
    part, assume nothing of what the README adds)."""
    here = Path(__file__).parent
    ours = [k for k, item in enumerate(items) if item.path.parent == here]
    readme = [item for item in items if item.path.name == "test_readme.py"]
    if not ours or not readme:
        return
    rest = [item for item in items if item.path.name != "test_readme.py"]
    items[:] = rest[: ours[0]] + readme + rest[ours[0] :]


@dataclass
class DemoNode:
    """A `cairn node start --demo` process and what its seeding recorded."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None  # None: a node started outside the tests
    log: Path
    facts: dict[str, Any]

    def address(self, name: str) -> str:
        """The address of one of the demo's people (alice ... grace)."""
        return str(self.facts["accounts"][name])


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="package")
def demo_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoNode]:
    """`cairn node start --demo` on a fresh folder, seeded, serving on 127.0.0.1.

    To iterate on pages without seeding each run, point CAIRN_BROWSER_NODE at a running demo
    node as URL#DATA_DIR (the flows then change that node's state)."""
    if os.environ.get("CAIRN_BROWSER_NODE"):
        url, _, folder = os.environ["CAIRN_BROWSER_NODE"].partition("#")
        facts = json.loads((Path(folder) / "demo.json").read_text())["facts"]
        yield DemoNode(url, Path(folder), None, Path(folder) / "none.log", facts)
        return
    data_dir = tmp_path_factory.mktemp("demo-node")
    port = free_port()
    log = data_dir.parent / "demo-node.log"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "cairn"),
                "node",
                "start",
                "--demo",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--fleet-port",
                str(free_port()),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    marker = data_dir / "demo.json"
    deadline = time.monotonic() + SEED_SECONDS
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the demo node exited ({process.returncode}):\n{_tail(log)}")
            if marker.exists() and json.loads(marker.read_text())["status"] == "seeded":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo community was not seeded in time:\n{_tail(log)}")
            time.sleep(1.0)
        facts = json.loads(marker.read_text())["facts"]
        assert httpx.get(url + "/api/v1/health", timeout=10).status_code == 200
        yield DemoNode(url, data_dir, process, log, facts)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Debian chromium."""
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, demo_node: DemoNode) -> Iterator[Any]:
    """A fresh browser context (no cookies) at desktop size, on the demo node."""
    context = browser.new_context(viewport=DESKTOP, base_url=demo_node.url)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    blocked: list[str] = []  # what the Content Security Policy refused to load or run
    tab.on(
        "console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None
    )
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not blocked, f"the page's CSP refused: {blocked}"


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as build/screenshots/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def accessibility_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page, one line each."""
    # evaluated, not added as a <script>: the pages' CSP refuses inline scripts (rightly)
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}});
            return r.violations.map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
        }"""
    )
    return list(result)


def overflows_horizontally(page: Any) -> bool:
    """Whether the page is wider than the viewport (a phone would scroll sideways)."""
    return bool(page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1"))


def sign_in(page: Any, label: str) -> None:
    """Sign in with the dev account picker, as a person would."""
    page.goto("/signin")
    page.get_by_label("Account", exact=True).select_option(label=_option_text(page, label))
    page.get_by_role("button", name="Sign in as this account").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def _option_text(page: Any, label: str) -> str:
    options = page.locator("#dev-account option").all_inner_texts()
    for text in options:
        if text.split(" · ")[0] == label:
            return str(text)
    raise AssertionError(f"no dev account {label} among {options}")
