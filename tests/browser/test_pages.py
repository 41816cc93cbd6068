"""Every page of the seeded demo node, signed out and signed in, at desktop and phone width:
it renders real content, passes axe-core's WCAG 2 A/AA rules, does not scroll sideways on a
phone, and is saved as a screenshot. Keyboard use: the skip link, and signing in without a mouse.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import (
    PHONE,
    DemoNode,
    accessibility_violations,
    overflows_horizontally,
    screenshot,
    sign_in,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1200)]


def pages(demo: DemoNode) -> dict[str, str]:
    """Name -> path of each page, on the demo's own dataset, model and job."""
    dataset, model, job = demo.facts["dataset"]["id"], demo.facts["model"], demo.facts["job"]["id"]
    return {
        "marketplace": "/",
        "dataset": f"/assets/{dataset}",
        "model": f"/assets/{model}",
        "contribute-list": "/contribute",
        "contribute": f"/datasets/{dataset}/contribute",
        "review-list": "/review",
        "review": f"/review/{dataset}",
        "build": "/build",
        "jobs": "/jobs",
        "job": f"/jobs/{job}",
        "playground": f"/playground?model={model}",
        "earnings": "/earnings",
        "node": "/node",
        "apps": "/apps",
        "app": f"/apps/{demo.facts['app']}",
        "app-builder": "/apps/new",
    }


def visit(page: Any, path: str, name: str) -> None:
    reply = page.goto(path)
    assert reply is not None and reply.status == 200, f"{path}: {reply and reply.status}"
    assert page.locator("main h1").count() >= 1, f"{path} has no heading"
    violations = accessibility_violations(page)
    assert not violations, f"{path}:\n" + "\n".join(violations)
    screenshot(page, name)


def test_the_signed_out_pages(page: Any, demo_node: DemoNode) -> None:
    visit(page, "/", "signed-out-marketplace")
    assert demo_node.facts["dataset"]["id"] and "Arithmetic questions" in page.content()
    visit(page, "/signin", "signin")
    visit(page, f"/assets/{demo_node.facts['model']}", "signed-out-model")
    assert "Licensed" in page.content()  # the demo sells licences to download its model
    visit(page, f"/apps/{demo_node.facts['app']}", "signed-out-app")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_signed_in(page: Any, demo_node: DemoNode, width: str) -> None:
    if width == "phone":
        page.set_viewport_size(PHONE)
    sign_in(page, "bob")
    for name, path in pages(demo_node).items():
        visit(page, path, f"{width}-{name}")
        if width == "phone":
            assert not overflows_horizontally(page), f"{path} scrolls sideways at 375 px"


def test_the_keyboard_reaches_content_and_signs_in(page: Any, demo_node: DemoNode) -> None:
    page.goto("/signin")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.focus("#dev-account")
    page.keyboard.press("End")  # the last dev account
    chosen = page.eval_on_selector("#dev-account", "s => s.options[s.selectedIndex].text")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the sign-in button
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    assert chosen.split(" · ")[0] in page.locator("header .who").inner_text()
