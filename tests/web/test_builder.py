"""The model builder page: the form, its recipe preview and estimate, and launching a job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import yaml

from cairn.compute.fitted_defaults import TARGET_SECONDS
from cairn.compute.pace import estimate_time
from cairn.core.recipe import METHODS, parse_recipe
from cairn.node import Node
from tests.compute.conftest import TOKEN, anchored_dataset, register_tiny, save_tiny_model
from tests.data.conftest import dev
from tests.web.test_jobs_pages import play_rounds, start_job


@dataclass
class Setup:
    lm: int
    encoder: int
    instruction: int


@pytest.fixture
def setup(node: Node, tmp_path: Path) -> Setup:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    lm = register_tiny(node, alice, tmp_path, "causal-lm").asset_id
    encoder = register_tiny(node, alice, tmp_path, "encoder").asset_id
    return Setup(lm, encoder, anchored_dataset(node, alice, bob, "instruction", n=12))


def form(setup: Setup, **values: str) -> dict[str, str]:
    """A submitted form for a small sft run (what the browser posts)."""
    data = {
        "_form": "sft",
        "name": "reverse words",
        "method": "sft",
        "base_model": str(setup.lm),
        "dataset": str(setup.instruction),
        "sft.learning_rate": "0.003",
        "sft.batch_size": "4",
        "sft.max_length": "64",
        "distributed.workers": "2",
        "distributed.rounds": "3",
        "distributed.inner_steps": "5",
        "distributed.nesterov": "on",
        "budget.max_tokens": "0",
    }
    data.update({k.replace("__", "."): v for k, v in values.items()})
    return data


class Inputs(HTMLParser):
    """The page's form controls, labels, ids and test ids."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self.testids: dict[str, dict[str, str | None]] = {}
        self.stack: list[str] = []
        self.pre: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if a.get("data-testid"):
            self.testids[str(a["data-testid"])] = {"tag": tag, **a}
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({"tag": tag, **a})
        if tag == "pre" and a.get("data-testid") == "recipe-yaml":
            self.stack.append("yaml")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.pre.append(data)


def parse(html: str) -> Inputs:
    parser = Inputs()
    parser.feed(html)
    return parser


def test_every_input_has_a_label_and_a_hint(web: httpx.Client, setup: Setup) -> None:
    for method in METHODS:
        page = web.get("/build", params={"method": method})
        assert page.status_code == 200, page.text
        html = parse(page.text)
        assert len(html.controls) > 15
        for control in html.controls:
            assert control["id"] in html.labels, control
            described = str(control.get("aria-describedby") or "").split()
            assert described and all(d in html.ids for d in described), control
        assert {"recipe-yaml", "cost-estimate", "build-preview"} <= set(html.testids)
    assert 'aria-live="polite"' in page.text and "<legend>Method</legend>" in page.text


def test_the_page_offers_every_method_and_preselects_a_fitting_base(
    web: httpx.Client, setup: Setup
) -> None:
    page = web.get("/build").text
    for method in METHODS:
        assert f'id="f-method-{method}" value="{method}"' in page
    assert "Sign in to launch" in page and 'data-testid="launch"' not in page
    recipe = yaml.safe_load("".join(parse(page).pre))
    assert recipe["method"] == "lora" and recipe["base_model"] == setup.lm
    assert recipe["datasets"] == [{"dataset": setup.instruction}]

    encoder = web.get("/build", params={"base": setup.encoder}).text
    assert 'id="f-method-classify" value="classify" checked' in encoder
    assert f'<option value="{setup.encoder}" selected>' in encoder
    assert yaml.safe_load("".join(parse(encoder).pre))["base_model"] == setup.encoder

    # choosing classify on a form made for sft swaps in an encoder and drops the instruction data
    switched = web.get("/build", params=form(setup, method="classify")).text
    recipe = yaml.safe_load("".join(parse(switched).pre))
    assert recipe["method"] == "classify" and recipe["base_model"] == setup.encoder
    assert recipe["datasets"] == [] and "List should have at least 1 item" in switched


def test_the_preview_is_the_recipe_that_will_run_with_its_estimate(
    web: httpx.Client, setup: Setup
) -> None:
    fragment = web.post("/build/preview", data=form(setup, budget__max_tokens="6"))
    assert fragment.status_code == 200 and "<html" not in fragment.text
    recipe = yaml.safe_load("".join(parse(fragment.text).pre))
    assert recipe["hyperparameters"]["learning_rate"] == 0.003
    assert recipe["distributed"]["rounds"] == 3 and recipe["budget"]["max_tokens"] == str(6 * TOKEN)
    estimate = fragment.text.split('data-testid="cost-estimate"')[1]
    assert "<strong>6 CAIRN</strong>" in estimate
    assert "2 workers × 3 rounds × 5 inner steps = 30" in estimate
    assert "30 steps × 4 per step = 120" in estimate
    assert "120 sequences × 64 tokens = 7,680" in estimate
    assert "Each worker, if all train alike</dt><dd>3 CAIRN" in estimate
    assert "upper bounds" in estimate  # the assumptions are on the page

    # the same preview without JavaScript: the form submitted to GET /build
    page = web.get("/build", params=form(setup, sft__learning_rate="0.02"))
    assert yaml.safe_load("".join(parse(page.text).pre))["hyperparameters"]["learning_rate"] == 0.02


def test_invalid_settings_show_the_validators_message_and_launch_nothing(
    web: httpx.Client, signed_in: Callable[[str], httpx.Client], node: Node, setup: Setup
) -> None:
    preview = web.post("/build/preview", data=form(setup, distributed__min_workers="5"))
    assert "must be at most workers (2); got 5" in preview.text and "recipe-errors" in preview.text
    assert "The estimate appears once the recipe is valid" in preview.text

    signed_in("alice")
    alice = dev(node, "alice").address
    before = node.chain.token.balance_of(alice)
    reply = web.post(
        "/build", data=form(setup, distributed__min_workers="5", budget__max_tokens="5")
    )
    assert reply.status_code == 422
    assert "nothing was launched and no budget was moved" in reply.text
    assert 'href="#f-distributed-min_workers"' in reply.text
    assert 'id="f-distributed-min_workers-error">must be at most workers (2); got 5' in reply.text
    assert 'aria-invalid="true"' in reply.text
    assert 'value="5"' in reply.text  # what was typed stays in the form
    assert node.jobs.list_jobs() == [] and node.chain.token.balance_of(alice) == before


def test_what_the_node_refuses_shows_on_the_page_and_moves_no_budget(
    web: httpx.Client, signed_in: Callable[[str], httpx.Client], node: Node, setup: Setup
) -> None:
    signed_in("alice")
    alice = dev(node, "alice").address
    before = node.chain.token.balance_of(alice)
    values = form(setup, method="classify", base_model=str(setup.encoder), budget__max_tokens="5")
    values["_form"] = "classify"
    reply = web.post("/build", data=values)
    assert reply.status_code == 422
    assert "classify needs classification records" in reply.text
    assert 'data-testid="launch-error"' in reply.text
    assert node.jobs.list_jobs() == [] and node.chain.token.balance_of(alice) == before


@pytest.mark.process
def test_launching_escrows_the_budget_and_opens_the_job(
    web: httpx.Client, signed_in: Callable[[str], httpx.Client], node: Node, setup: Setup
) -> None:
    reply = web.post("/build", data=form(setup))
    assert reply.status_code == 303 and reply.headers["location"] == "/signin?next=/build"

    signed_in("alice")
    alice = dev(node, "alice").address
    before = node.chain.token.balance_of(alice)
    page = web.get("/build").text
    assert 'data-testid="launch"' in page and "Your wallet holds 1,000 CAIRN" in page
    reply = web.post("/build", data=form(setup, budget__max_tokens="5"))
    assert reply.status_code == 303, reply.text
    (job,) = node.jobs.list_jobs()
    assert reply.headers["location"] == f"/jobs/{job.job_id}"
    assert job.builder == alice and job.name == "reverse words" and job.escrowed
    assert job.recipe["hyperparameters"]["learning_rate"] == 0.003
    assert node.chain.token.balance_of(alice) == before - 5 * TOKEN

    shown = web.get(reply.headers["location"])
    assert "started." in shown.text and 'data-testid="job-status"' in shown.text
    assert 'data-testid="cancel-job"' in shown.text


def test_a_first_visit_is_a_job_fitted_to_this_node(
    web: httpx.Client, node: Node, setup: Setup
) -> None:
    page = web.get("/build").text
    recipe = parse_recipe(yaml.safe_load("".join(parse(page).pre)))
    # no history on the tiny model: one CPU provider's default pace; its 10 rounds of 50 steps
    # would take about 50 minutes, so fewer rounds and steps were chosen for about 5
    assert (recipe.distributed.rounds, recipe.distributed.inner_steps) != (10, 50)
    time = estimate_time(recipe, node.jobs.conditions(recipe))
    assert time.seconds <= TARGET_SECONDS and not time.pace.measured
    shown = page.split('data-testid="time-estimate"')[1].split('data-testid="cost-estimate"')[0]
    assert f"<strong>About {time.duration}</strong>" in shown
    assert "none is online now" in shown  # the tests' node runs no SuperLink
    assert "based on a default rate for one CPU provider" in shown
    assert "No provider is online: the job waits for one to join" in shown
    assert 'data-testid="fitted-note"' in shown
    rounds = recipe.distributed.rounds  # the rounds' hint says so
    assert f"Default 10; {rounds} here, chosen from the time estimate" in page


def test_the_page_warns_when_a_job_overruns_its_time_limit(
    web: httpx.Client, node: Node, setup: Setup
) -> None:
    values = form(
        setup,
        sft__batch_size="8",
        sft__max_length="512",
        distributed__rounds="10",
        distributed__inner_steps="50",
        budget__max_seconds="3600",
    )
    fragment = web.post("/build/preview", data=values).text
    recipe = yaml.safe_load("".join(parse(fragment).pre))
    assert recipe["distributed"]["rounds"] == 10 and recipe["distributed"]["inner_steps"] == 50
    assert recipe["hyperparameters"]["batch_size"] == 8  # what the builder typed is kept
    warnings = [part.split("</p>")[0] for part in fragment.split('data-testid="time-warning">')[1:]]
    assert any("more than the time limit (3,600 s): the job would stop" in w for w in warnings)
    # the round timeout, left empty, was raised to cover a round twice: 50 steps x 8 records
    chosen = parse_recipe(recipe)
    time = estimate_time(chosen, node.jobs.conditions(chosen))
    assert recipe["distributed"]["round_timeout_s"] >= 2 * time.round_compute > 600
    assert not any("round timeout" in w for w in warnings)

    small = web.post("/build/preview", data=form(setup)).text  # 3 rounds of 5 steps of 4
    assert "more than the time limit" not in small and "by less than" not in small


def test_the_estimate_stands_on_this_nodes_measured_rounds(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_rounds(node, job_id, [3.0, 2.0, 1.25])  # 5 steps in 1.5 s of compute, 2.5 s a round
    job = node.jobs.get(job_id)
    page = web.get("/build", params={"base": job.base_asset, "method": "sft"}).text
    recipe = parse_recipe(yaml.safe_load("".join(parse(page).pre)))
    conditions = node.jobs.conditions(recipe)
    assert conditions.pace.measured_rounds == 3 and conditions.pace.round_overhead == 1.0
    assert "measured history (3 finished rounds on this base model)" in page
    # that pace runs the schema's own defaults well within 5 minutes: nothing to fit
    assert (recipe.distributed.rounds, recipe.distributed.inner_steps) == (10, 50)
    assert estimate_time(recipe, conditions).seconds <= TARGET_SECONDS
    assert 'data-testid="fitted-note"' not in page

    # a LoRA model over the same base trains at its pace: its adapters' base is looked up
    alice = dev(node, "alice")
    model = node.catalog.metadata(node.assets.get(job.base_asset))["model"]
    adapter = {"base_asset": job.base_asset, "base_weights": model["weights"]}
    lora = node.catalog.register_folder(
        alice,
        save_tiny_model(tmp_path / "adapted", "causal-lm"),
        name="tiny adapted",
        licence="Apache-2.0",
        family="causal-lm",
        extra={"model": {**model, "adapter": adapter}},
    )
    over = recipe.model_copy(update={"base_model": lora.asset_id})
    assert node.jobs.conditions(over).pace == conditions.pace
    other = register_tiny(node, alice, tmp_path / "other", "causal-lm")
    unrelated = recipe.model_copy(update={"base_model": other.asset_id})
    assert not node.jobs.conditions(unrelated).pace.measured
