"""Contribute pages: datasets open to contributions, signed uploads judged record by record,
and the contributor's history and standing.

An upload is signed once (EIP-712) by its contributor: by the node when it holds the signed-in
account's key, else by the browser wallet (static/contribute.js), which asks the API for the
typed data, signs it and sends the same form with the signature.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData, UploadFile

from cairn.api.deps import AccountsDep, DataDep, EconomyDep
from cairn.core.data_policy import DatasetSpec
from cairn.core.errors import CairnError, InvalidInput, Unauthorized
from cairn.core.ids import StoredId
from cairn.data.datasets import Dataset
from cairn.data.service import DataService
from cairn.data.signing import records_root, sign_contribution, upload_lines
from cairn.web.render import page
from cairn.web.viewer import Viewer, ViewerDep

router = APIRouter()

MAX_UPLOAD_BYTES = 16 * 2**20  # a bigger file goes through the API or the CLI, in parts
HISTORY_SHOWN = 50  # newest records of the contributor shown on the page
# Nonces the page offers stay below 2**53 so that a browser's JSON numbers hold them exactly.
NONCE_BITS = 52

# What each task asks for: (field, input, what to write). Labels come from the task itself.
TASK_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "instruction": (
        ("prompt", "textarea", "the instruction or question"),
        ("response", "textarea", "the answer a good model would give"),
    ),
    "classification": (
        ("text", "textarea", "the text to classify"),
        ("label", "select", "the label that fits it"),
    ),
    "verifiable": (
        ("prompt", "textarea", "a problem with one right answer"),
        ("answer", "text", "the answer"),
    ),
}
SCHEMA_INPUTS = {"string": "text", "integer": "integer", "number": "number", "boolean": "checkbox"}
REJECTED = {
    "invalid_json": "not JSON",
    "too_large": "too large",
    "schema": "schema error",
    "empty": "empty field",
    "degenerate": "degenerate text",
    "pii": "personal data",
    "duplicate": "duplicate",
    "near_duplicate": "near-duplicate",
}
STATUS_WORDS = {
    "accepted": "accepted",
    "review": "to review",
    "held": "held",
    "anchored": "anchored",
    "rejected": "rejected",
}


@dataclass(frozen=True)
class FormField:
    """One input of the record form, from the dataset's task and record schema."""

    name: str
    kind: str  # textarea, text, select, integer, number or checkbox
    hint: str
    required: bool
    options: list[str] = field(default_factory=list)

    @property
    def example(self) -> Any:
        """A stand-in value for the example record."""
        if self.options:
            return self.options[0]
        return {"integer": 0, "number": 0.5, "checkbox": True}.get(self.kind, self.hint)


def form_fields(spec: DatasetSpec) -> list[FormField]:
    """The record form: the task's fields, then the record schema's plain extra properties."""
    task = spec.task
    fields = []
    for name, kind, hint in TASK_FIELDS[task.type]:
        if task.type == "verifiable" and name == "answer":
            hint = "the answer, as a number" if task.answer_type == "numeric" else hint
        fields.append(
            FormField(name, kind, hint, True, list(task.labels) if kind == "select" else [])
        )
    schema = spec.record_schema or {}
    required = set(schema.get("required", []))
    taken = {f.name for f in fields}
    for name, prop in (schema.get("properties") or {}).items():
        if name in taken or not isinstance(prop, dict):
            continue
        hint = str(prop.get("description") or name)
        enum = prop.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            fields.append(FormField(name, "select", hint, name in required, list(enum)))
        elif prop.get("type") in SCHEMA_INPUTS:
            fields.append(FormField(name, SCHEMA_INPUTS[prop["type"]], hint, name in required))
    return fields


def example_record(fields: list[FormField]) -> str:
    """One JSONL line showing the shape of a record."""
    return json.dumps({f.name: f.example for f in fields if f.required}, ensure_ascii=False)


def record_from_form(fields: list[FormField], form: FormData) -> dict[str, Any]:
    """The record a filled-in form stands for; the validator judges it like any other line."""
    record: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f"field.{f.name}")
        if f.kind == "checkbox":
            if raw is not None:
                record[f.name] = True
            continue
        if not isinstance(raw, str) or raw == "":
            continue
        record[f.name] = raw
        try:
            if f.kind == "integer":
                record[f.name] = int(raw)
            elif f.kind == "number":
                record[f.name] = float(raw)
        except ValueError:
            pass  # kept as text: the schema check names the field and the type it wants
    return record


def file_lines(upload: Any) -> list[str]:
    """The records of an uploaded JSONL file; an empty, oversized or non-text file is refused."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("choose a JSONL file to upload")
    name = upload.filename
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if not data:
        raise InvalidInput(f"{name} is empty: a JSONL file holds one JSON record per line")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(
            f"{name} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; "
            "split it into smaller files, or send it with the API or the CLI"
        )
    try:
        if b"\x00" in data:
            raise UnicodeError("NUL byte")
        text = data.decode("utf-8-sig")
    except UnicodeError:
        raise InvalidInput(
            f"{name} is not UTF-8 text; upload a JSONL file (one JSON record per line)"
        ) from None
    lines = upload_lines(text)
    if not lines:
        raise InvalidInput(f"{name} holds only blank lines: no records to contribute")
    return lines


def fresh_nonce() -> int:
    """An unused nonce: random, as the API client picks them (a used one is refused)."""
    return secrets.randbits(NONCE_BITS)


async def posted_form(request: Request) -> FormData:
    """The posted form (multipart or urlencoded): its record fields depend on the dataset."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


# -- contribute --------------------------------------------------------------------------


@router.get("/contribute", response_class=HTMLResponse)
def contribute_index(request: Request, data: DataDep) -> HTMLResponse:
    """Every dataset open to contributions, with the shape of its records and its counts."""
    rows = []
    for dataset in data.datasets.list():
        fields = form_fields(dataset.spec)
        rows.append((dataset, fields, example_record(fields)))
    return page(request, "contribute.html", title="Contribute", rows=rows)


def _contribute_page(
    request: Request,
    data: DataService,
    bounties: Sequence[Any],
    viewer: Viewer,
    dataset: Dataset,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    fields = form_fields(dataset.spec)
    history = data.history(dataset.asset_id, viewer.address, HISTORY_SHOWN)
    extra.setdefault("values", {})
    return page(
        request,
        "contribute_dataset.html",
        status=status,
        title=f"Contribute to {dataset.name}",
        dataset=dataset,
        fields=fields,
        example=example_record(fields),
        nonce=fresh_nonce(),
        history=history.newest,
        history_total=history.total,
        history_counts=history.counts,
        standing=data.reviews.standing(dataset.asset_id, viewer.address),
        share=data.anchoring.share_of(dataset.asset_id, viewer.address),
        status_words=STATUS_WORDS,
        rejected_words=REJECTED,
        max_upload_mib=MAX_UPLOAD_BYTES // 2**20,
        bounties=bounties,
        **extra,
    )


@router.get("/datasets/{dataset_id}/contribute", response_class=HTMLResponse)
def contribute_page(
    request: Request, data: DataDep, economy: EconomyDep, dataset_id: StoredId, viewer: ViewerDep
) -> HTMLResponse:
    """Upload a JSONL file or fill in a record; see your records and standing."""
    dataset = data.datasets.get(dataset_id)
    bounties = economy.bounties.listing(dataset_id)
    return _contribute_page(request, data, bounties, viewer, dataset)


def _signed_upload(
    data: DataService,
    node_key: Callable[[str], LocalAccount],
    viewer: Viewer,
    dataset_id: int,
    lines: list[str],
    form: FormData,
) -> tuple[int, str]:
    """(nonce, signature) of the upload: the wallet's, sent with the form, or the node's."""
    raw_nonce = form.get("nonce")
    if not isinstance(raw_nonce, str) or not re.fullmatch(r"[0-9]{1,78}", raw_nonce):
        raise InvalidInput("the form's nonce is missing or not a decimal number; reload the page")
    nonce = int(raw_nonce)
    signature = form.get("signature")
    if isinstance(signature, str) and signature:
        return nonce, signature
    if not viewer.key_on_node:
        raise Unauthorized(
            f"this node does not hold the key of {viewer.address}: your browser wallet signs "
            "each upload, which needs JavaScript and a wallet such as MetaMask"
        )
    typed = data.contributions.typed_data(dataset_id, records_root(lines), nonce)
    return nonce, sign_contribution(node_key(viewer.address), typed)


@router.post("/datasets/{dataset_id}/contribute", response_class=HTMLResponse)
def contribute_post(
    request: Request,
    data: DataDep,
    economy: EconomyDep,
    accounts: AccountsDep,
    dataset_id: StoredId,
    viewer: ViewerDep,
    form: PostedForm,
) -> HTMLResponse:
    """Sign and send an upload (a file or one record); show every record's verdict."""
    dataset = data.datasets.get(dataset_id)
    bounties = economy.bounties.listing(dataset_id)
    fields = form_fields(dataset.spec)
    source = form.get("source")
    posted = {f.name: form.get(f"field.{f.name}") for f in fields} if source == "form" else {}
    values = {name: value for name, value in posted.items() if isinstance(value, str)}
    try:
        if source == "file":
            lines = file_lines(form.get("file"))
        elif source == "form":
            line = form.get("line")
            if form.get("signature") and isinstance(line, str) and line:
                lines = [line]  # the exact line the wallet signed
            else:
                lines = [json.dumps(record_from_form(fields, form), ensure_ascii=False)]
        else:
            raise InvalidInput("send a JSONL file or fill in the record form")
        nonce, signature = _signed_upload(data, accounts.signer, viewer, dataset_id, lines, form)
        result = data.contributions.contribute(
            dataset_id, contributor=viewer.address, nonce=nonce, signature=signature, lines=lines
        )
    except CairnError as exc:  # bad input or a refused signature: shown, nothing stored
        return _contribute_page(
            request,
            data,
            bounties,
            viewer,
            dataset,
            status=exc.status,
            error=exc.message,
            values=values,
        )
    kept = values if result.accepted == 0 else {}  # a refused record stays in the form to fix
    return _contribute_page(
        request,
        data,
        bounties,
        viewer,
        data.datasets.get(dataset_id),
        status=200 if result.replayed else 201,
        result=result,
        values=kept,
    )
