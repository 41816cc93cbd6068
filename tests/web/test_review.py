"""The review pages through a real HTTP server: the queue of datasets with work for the account,
tasks answered through the page deciding records, gold questions indistinguishable from other
tasks, labelling tasks, the empty state and the reviewer's reputation."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import httpx

from cairn.node import Node
from tests.data.conftest import dev, make_dataset, pair, upload

SignedIn = Callable[[str], httpx.Client]
TWO_VOTES = {
    "review_share": 1.0,
    "votes_per_record": 2,
    "min_votes": 2,
    "accept_threshold": 0.8,
    "gold_share": 0.0,
}


def plain(markup: str) -> str:
    """The text a reader sees: no tags, entities decoded, runs of spaces as one."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def task_of(page: httpx.Response) -> str:
    """The review task's section of the page."""
    match = re.search(
        r'<section aria-labelledby="task-h" data-testid="review-task">.*?</section>',
        page.text,
        re.S,
    )
    assert match, page.text
    return match.group(0)


def task_id_of(page: httpx.Response) -> str:
    match = re.search(r'name="task_id" value="(\d+)"', page.text)
    assert match, page.text
    return match.group(1)


def answer(client: httpx.Client, dataset_id: int, choice: str) -> httpx.Response:
    """Answer the task the review page shows, as a reviewer pressing a button."""
    task = task_id_of(client.get(f"/review/{dataset_id}"))
    reply = client.post(f"/review/{dataset_id}", data={"task_id": task, "answer": choice})
    assert reply.status_code == 303 and reply.headers["location"] == f"/review/{dataset_id}"
    return reply


def test_the_queue_lists_datasets_with_work_for_the_signed_in_account(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=TWO_VOTES)
    make_dataset(node, dev(node, "alice"), review={"review_share": 0.0})
    upload(node, dev(node, "bob"), dataset.asset_id, [pair(1), pair(2)])

    bob = signed_in("bob")  # nobody reviews their own records
    assert 'data-testid="nothing-to-review"' in bob.get("/review").text
    carol = signed_in("carol")
    queue = carol.get("/review")
    assert queue.status_code == 200 and queue.text.count('data-testid="review-dataset"') == 1
    row = re.search(r'data-testid="review-dataset">(.*?)</tr>', queue.text, re.S)
    assert row and plain(row.group(1)) == (
        f"Polite replies #{dataset.asset_id} approve or reject 2 0.70 Start reviewing"
    )
    assert node.data.reviews.votes(dataset.asset_id) == ([], {})  # looking assigns nothing


def test_answers_through_the_page_decide_the_record(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=TWO_VOTES).asset_id
    upload(node, dev(node, "bob"), dataset, [pair(1)])
    [record] = node.data.list_records(dataset)
    assert record.status == "review"

    carol = signed_in("carol")
    page = carol.get(f"/review/{dataset}")
    task = task_of(page)
    assert html.unescape(pair(1)["prompt"]) in html.unescape(task)
    assert '<button type="submit" name="answer" value="approve">Approve</button>' in task
    assert "reputation on this dataset: 0.70 (the starting value" in plain(page.text)
    answer(carol, dataset, "approve")
    after = carol.get(f"/review/{dataset}")
    assert (
        "Answer recorded: approve." in after.text
        and 'data-testid="nothing-to-review"' in after.text
    )
    carol_address = node.keystore.find_by_label("carol").address
    assert node.data.reviews.votes(dataset)[0] == [(f"r{record.id}", carol_address, "approve")]
    assert node.data.list_records(dataset)[0].status == "review"  # one vote of two

    alice = signed_in("alice")
    answer(alice, dataset, "approve")
    assert node.data.list_records(dataset)[0].status == "accepted"
    said = plain(alice.get(f"/review/{dataset}").text)
    assert "(the starting value" in said  # one answer: its group of 5 is not full
    assert "1 of your answers waits for that" in said

    stale = alice.post(f"/review/{dataset}", data={"task_id": task_id_of(page), "answer": "reject"})
    assert stale.status_code == 403 and "was given to" in stale.text  # carol's task, not alice's


def test_a_task_answered_twice_moves_on_and_a_bad_answer_is_refused(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=TWO_VOTES).asset_id
    upload(node, dev(node, "bob"), dataset, [pair(1), pair(2)])
    carol = signed_in("carol")
    task = task_id_of(carol.get(f"/review/{dataset}"))
    wrong = carol.post(f"/review/{dataset}", data={"task_id": task, "answer": "maybe"})
    assert (
        wrong.status_code == 422
        and "answer must be one of approve, reject; got" in html.unescape(wrong.text)
    )
    assert (
        carol.post(f"/review/{dataset}", data={"task_id": task, "answer": "reject"}).status_code
        == 303
    )
    again = carol.post(f"/review/{dataset}", data={"task_id": task, "answer": "reject"})
    assert again.status_code == 303
    follow = carol.get(f"/review/{dataset}")
    assert "That task was already answered." in follow.text and task_id_of(follow) != task
    assert len(node.data.reviews.votes(dataset)[0]) == 1


def test_gold_questions_look_like_any_other_task(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    alice = dev(node, "alice")
    dataset = make_dataset(node, alice, review={**TWO_VOTES, "gold_share": 0.5}).asset_id
    gold = {"prompt": "Is the sea salty, and why?", "response": "Yes: rivers carry salts into it."}
    node.data.reviews.add_gold(dataset, alice.address, [{"record": gold, "answer": "approve"}])
    upload(node, dev(node, "bob"), dataset, [pair(1)])

    carol = signed_in("carol")
    seen = {}
    while 'data-testid="review-task"' in (page := carol.get(f"/review/{dataset}")).text:
        task = task_of(page)
        seen["gold" if gold["prompt"] in task else "record"] = task
        answer(carol, dataset, "approve")
        assert "gold" not in page.text.lower()
    assert set(seen) == {"gold", "record"}

    def shape(task: str) -> str:  # the section without what differs by nature: id and content
        task = re.sub(r'name="task_id" value="\d+"', "", task)
        return re.sub(r"<dd([^>]*)>.*?</dd>", r"<dd\1></dd>", task, flags=re.S)

    assert shape(seen["gold"]) == shape(seen["record"])


def test_a_labelling_task_offers_the_labels_and_hides_the_proposed_one(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    labels = {"type": "classification", "labels": ["positive", "negative"]}
    dataset = make_dataset(node, dev(node, "alice"), task=labels, review=TWO_VOTES).asset_id
    text = "The soup was cold and the waiter never came back to our table."
    upload(node, dev(node, "bob"), dataset, [{"text": text, "label": "positive"}])
    [record] = node.data.list_records(dataset)

    carol = signed_in("carol")
    task = task_of(carol.get(f"/review/{dataset}"))
    assert "Which label fits this text?" in task and text in task
    assert "<dt>label</dt>" not in task and "<dt>text</dt>" in task
    for label in ("positive", "negative"):
        assert f'<button type="submit" name="answer" value="{label}">{label}</button>' in task
    answer(carol, dataset, "negative")
    votes, _ = node.data.reviews.votes(dataset)
    assert votes == [(f"r{record.id}", node.keystore.find_by_label("carol").address, "negative")]


def test_review_pages_need_an_account(web: httpx.Client, node: Node) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=TWO_VOTES).asset_id
    for reply in (
        web.get("/review"),
        web.get(f"/review/{dataset}"),
        web.post(f"/review/{dataset}", data={"task_id": "1", "answer": "approve"}),
    ):
        assert reply.status_code == 303 and reply.headers["location"].startswith(
            "/signin?next=/review"
        )
