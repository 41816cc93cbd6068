"""The main flows, walked in Chromium on the seeded demo node as its people would:
contribute a file and see the verdicts, review, build a model from the form and watch the job
finish, chat in the playground and see the balance fall, settle the epoch and claim."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cairn.data.contributions import review_sampled
from cairn.data.validate import record_hash
from tests.browser.conftest import DemoNode, screenshot, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1200)]

REVIEW_SHARE = 0.25  # the demo dataset's review policy
JOB_SECONDS = 600


def _number(text: str) -> float:
    """The first number in a text such as '1,234.5 CAIRN'."""
    match = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?", text)
    assert match, text
    return float(match.group().replace(",", ""))


def _questions(sampled: bool, count: int, salt: str) -> list[dict[str, str]]:
    """New arithmetic records that the dataset's review sampling does (or does not) pick."""
    out: list[dict[str, str]] = []
    n = 0
    while len(out) < count:
        n += 1
        record = {"prompt": f"What is {n} plus {salt}?", "response": f"{n} plus {salt} is more."}
        if review_sampled(record_hash(record), REVIEW_SHARE) == sampled:
            out.append(record)
    return out


def test_contribute_a_file_and_see_each_verdict(
    page: Any, demo_node: DemoNode, tmp_path: Path
) -> None:
    dataset = demo_node.facts["dataset"]["id"]
    kept = _questions(False, 2, "1000")
    to_review = _questions(True, 2, "2000")
    upload = tmp_path / "mine.jsonl"
    lines = [json.dumps(r) for r in kept + to_review] + [json.dumps(kept[0]), "not json at all"]
    upload.write_text("\n".join(lines) + "\n")

    sign_in(page, "carol")
    page.goto(f"/datasets/{dataset}/contribute")
    page.get_by_label("JSONL file", exact=True).set_input_files(str(upload))
    page.get_by_role("button", name="Sign and upload").click()
    page.get_by_test_id("verdicts").wait_for()
    verdicts = page.get_by_test_id("verdict").all_inner_texts()
    assert len(verdicts) == 6, verdicts
    assert sum("accepted" in v for v in verdicts) == 2, verdicts
    assert sum("to review" in v for v in verdicts) == 2, verdicts
    assert "duplicate" in verdicts[4] and "rejected" in verdicts[4]
    assert "rejected" in verdicts[5] and "JSON" in verdicts[5]
    screenshot(page, "flow-contribute-verdicts")


def test_review_the_new_records(page: Any, demo_node: DemoNode) -> None:
    dataset = demo_node.facts["dataset"]["id"]
    sign_in(page, "dave")
    page.goto("/review")
    page.get_by_test_id("review-dataset").first.wait_for()
    page.goto(f"/review/{dataset}")
    answered = 0
    while page.get_by_test_id("review-task").count() and answered < 10:
        task = page.get_by_test_id("review-task").inner_text()
        assert "What is" in task
        if answered == 0:
            screenshot(page, "flow-review-task")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_load_state()
        assert "Answer recorded" in page.content()
        answered += 1
    assert answered >= 2  # carol's two records picked for review
    assert page.get_by_test_id("nothing-to-review").count() == 1


def test_build_a_model_from_the_form_and_watch_the_job_finish(
    page: Any, demo_node: DemoNode
) -> None:
    sign_in(page, "alice")
    page.goto("/build")
    page.locator("#f-method-lora").check()
    page.wait_for_load_state("networkidle")
    page.get_by_label("Name", exact=True).fill("Arithmetic tutor, second try")
    base = page.get_by_test_id("base-model")
    smol = [o for o in base.locator("option").all_inner_texts() if "SmolLM2" in o]
    assert smol, base.locator("option").all_inner_texts()
    base.select_option(label=smol[0])
    page.locator('[name="distributed.rounds"]').fill("1")
    page.locator('[name="distributed.inner_steps"]').fill("1")
    page.locator('[name="budget.max_tokens"]').fill("5")
    page.get_by_role("button", name="Update preview").click()
    page.wait_for_load_state()
    recipe = page.get_by_test_id("recipe-yaml").inner_text()
    assert "method: lora" in recipe and "inner_steps: 1" in recipe
    assert page.get_by_test_id("cost-estimate").inner_text().strip()
    screenshot(page, "flow-build-form")

    page.get_by_test_id("launch").click()
    page.wait_for_url(re.compile(r".*/jobs/0x[0-9a-f]+$"))
    page.get_by_test_id("job-model").wait_for(timeout=JOB_SECONDS * 1000)
    status = page.get_by_test_id("job-status").inner_text()
    assert "finished" in status, status
    assert page.locator("svg.chart").count() >= 1
    assert "round 1 of 1" in page.get_by_test_id("job-round").inner_text()
    providers = page.get_by_test_id("job-providers").locator("tbody tr").all_inner_texts()
    assert len(providers) == 2 and all(row.rstrip().endswith("CAIRN") for row in providers)
    assert sum(_number(row.rsplit("\t", 1)[-1]) for row in providers) == pytest.approx(5.0)
    screenshot(page, "flow-job-finished")
    page.get_by_test_id("job-model").get_by_role("link").first.click()
    page.wait_for_load_state()
    assert "Arithmetic tutor, second try" in page.content()
    screenshot(page, "flow-new-model")


def test_chat_in_the_playground_and_the_balance_falls(page: Any, demo_node: DemoNode) -> None:
    sign_in(page, "grace")
    before = _number(page.get_by_test_id("prepaid-balance").inner_text())
    page.goto(f"/playground?model={demo_node.facts['model']}")
    page.get_by_label("Your message").fill("What is 12 plus 30?")
    page.locator("summary", has_text="Settings").click()
    page.get_by_label("Max answer tokens").fill("12")
    page.get_by_test_id("chat-send").click()
    page.get_by_test_id("chat-answer").wait_for()
    cost = page.get_by_test_id("call-cost").inner_text()
    assert "CAIRN" in cost and "token" in cost, cost
    after = _number(page.get_by_test_id("prepaid-balance").inner_text())
    assert after < before
    screenshot(page, "flow-playground-chat")


def test_settle_the_epoch_and_claim(page: Any, demo_node: DemoNode) -> None:
    sign_in(page, "operator")
    page.goto("/earnings")
    page.get_by_test_id("settle-button").click()
    page.wait_for_load_state()
    assert "pochs" in page.locator(".flash").inner_text() or "ettled" in page.content()

    page.context.clear_cookies()
    sign_in(page, "alice")  # owner of the dataset and the model grace paid for
    page.goto("/earnings")
    wallet = _number(page.get_by_test_id("wallet-balance").inner_text())
    unclaimed = _number(page.get_by_test_id("unclaimed-total").inner_text())
    assert unclaimed > 0
    screenshot(page, "flow-earnings-before-claim")
    page.get_by_test_id("claim-button").click()
    page.wait_for_load_state()
    assert "laimed" in page.locator(".flash").inner_text()
    assert _number(page.get_by_test_id("wallet-balance").inner_text()) > wallet
    screenshot(page, "flow-earnings-claimed")
