"""Browser tests: Debian's chromium driven by Playwright against a node the tests start.

One node serves the whole run (`tests/demo_node.py`): `cairn node start --demo` on the folder
`cairn demo` seeded, exactly what `make run` starts once seeded, so the pages are tested on the
seeded community. Screenshots of every page go to build/screenshots (or $CAIRN_SCREENSHOTS) for a person
to look at. Each page is checked with axe-core (WCAG 2 A and AA rules) and at phone width.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.demo_node import DemoNode

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("CAIRN_SCREENSHOTS", ROOT / "build" / "screenshots"))
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
