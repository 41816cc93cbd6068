"""The review queue: datasets with work for the signed-in reviewer, one task at a time
(approve, reject or a label), and the reviewer's standing. Gold questions look like any other."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cairn.api.deps import DataDep
from cairn.core.errors import Conflict, Forbidden
from cairn.core.ids import StoredId
from cairn.data.review import COUNTED_IN_GROUPS_OF
from cairn.web.render import page, redirect
from cairn.web.viewer import ViewerDep

router = APIRouter()


@router.get("/review", response_class=HTMLResponse)
def review_index(request: Request, data: DataDep, viewer: ViewerDep) -> HTMLResponse:
    """Datasets with review work for the signed-in account."""
    rows = []
    for dataset in data.datasets.list():
        mine = data.reviews.standing(dataset.asset_id, viewer.address)
        waiting = 0 if mine.held else data.reviews.waiting(dataset.asset_id, viewer.address)
        if waiting or mine.held:
            rows.append((dataset, waiting, mine))
    return page(request, "review.html", title="Review", rows=rows)


@router.get("/review/{dataset_id}", response_class=HTMLResponse)
def review_page(
    request: Request, data: DataDep, dataset_id: StoredId, viewer: ViewerDep
) -> HTMLResponse:
    """The account's next review task on the dataset, or that there is none."""
    dataset = data.datasets.get(dataset_id)
    held = None
    try:
        task = data.reviews.next_task(dataset_id, viewer.address)
    except Forbidden as exc:
        task, held = None, exc.message
    shown: list[tuple[str, str]] = []
    if task is not None:
        order = [f for f in dataset.spec.task.required_fields if f in task.record]
        order += [f for f in task.record if f not in order]
        for name in order:
            # A labelling task hides the proposed label, so that reviewers judge the text alone.
            if task.kind == "label" and name == "label":
                continue
            value = task.record[name]
            shown.append((name, value if isinstance(value, str) else json.dumps(value)))
    return page(
        request,
        "review_task.html",
        title=f"Review {dataset.name}",
        dataset=dataset,
        task=task,
        shown=shown,
        held=held,
        standing=data.reviews.standing(dataset_id, viewer.address),
        uncounted=data.reviews.uncounted(dataset_id, viewer.address),
        group=COUNTED_IN_GROUPS_OF,
    )


@router.post("/review/{dataset_id}")
def review_answer(
    request: Request,
    data: DataDep,
    dataset_id: StoredId,
    viewer: ViewerDep,
    task_id: Annotated[StoredId, Form()],
    answer: Annotated[str, Form(max_length=200)],
) -> RedirectResponse:
    """Record the answer to a task, then show the next one."""
    data.datasets.get(dataset_id)
    try:
        data.reviews.submit(task_id, viewer.address, answer)
    except Conflict:
        return redirect(f"/review/{dataset_id}", "That task was already answered.")
    return redirect(f"/review/{dataset_id}", f"Answer recorded: {answer}.")
