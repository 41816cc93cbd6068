"""The contribute pages through a real HTTP server: datasets listed with the shape of their
records, uploads and form records signed by the node or by a wallet and judged record by record,
bad files refused without changing anything, and the contributor's history and standing."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from cairn.data.signing import sign_contribution
from cairn.node import Node
from cairn.web.contribute import MAX_UPLOAD_BYTES
from tests.data.conftest import dev, make_dataset, pair

SignedIn = Callable[[str], httpx.Client]
NOW = {"review_share": 0.0}  # every valid record is accepted at once


def nonce_of(page: httpx.Response) -> str:
    """The nonce the page's forms carry, as a browser would send it back."""
    match = re.search(r'name="nonce" value="(\d+)"', page.text)
    assert match, page.text
    return match.group(1)


def plain(markup: str) -> str:
    """The text a reader sees: no tags, entities decoded, runs of spaces as one."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def verdicts_of(page: httpx.Response) -> list[tuple[str, str]]:
    """(code, visible text) of each verdict row."""
    rows = re.findall(r'data-testid="verdict" data-code="(\w+)">(.*?)</tr>', page.text, re.S)
    return [(code, plain(row)) for code, row in rows]


def jsonl(records: list[object]) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


def upload_file(
    web: httpx.Client, dataset_id: int, content: bytes, name: str = "data.jsonl"
) -> httpx.Response:
    url = f"/datasets/{dataset_id}/contribute"
    nonce = nonce_of(web.get(url))
    return web.post(
        url,
        data={"source": "file", "nonce": nonce},
        files={"file": (name, content, "application/x-ndjson")},
    )


def wallet_sign_in(web: httpx.Client) -> LocalAccount:
    """Sign `web` in with a fresh wallet whose key the node does not hold."""
    wallet: LocalAccount = Account.create()
    message = web.post("/signin/message", data={"address": wallet.address}).json()["message"]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = web.post("/signin/wallet", json={"message": message, "signature": signature})
    assert reply.status_code == 200, reply.text
    return wallet


def test_the_contribute_list_shows_each_dataset_and_what_its_records_look_like(
    web: httpx.Client, node: Node
) -> None:
    alice = dev(node, "alice")
    replies = make_dataset(node, alice)
    moods = make_dataset(
        node, alice, task={"type": "classification", "labels": ["positive", "negative"]}
    )
    page = web.get("/contribute")  # open to visitors: contributing itself needs an account
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert text.count('data-testid="dataset-row"') == 2
    assert (
        '{"prompt": "the instruction or question", "response": "the answer a good model would give"}'
        in text
    )
    assert '{"text": "the text to classify", "label": "positive"}' in text
    assert "labels: positive, negative" in text
    assert f'href="/datasets/{replies.asset_id}/contribute"' in text
    assert f'href="/datasets/{moods.asset_id}/contribute"' in text


def test_an_upload_is_signed_by_the_node_and_every_record_gets_a_verdict(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=NOW).asset_id
    bob = signed_in("bob")
    content = jsonl([pair(1), pair(2), pair(1), "not json at all", {"prompt": "What is 2 plus 2?"}])
    reply = upload_file(bob, dataset, content)
    assert reply.status_code == 201, reply.text
    assert 'data-testid="verdicts"' in reply.text
    assert "5 records: 2 accepted, 0 to review, 3 rejected." in plain(reply.text)
    verdicts = verdicts_of(reply)
    assert [code for code, _ in verdicts] == ["ok", "ok", "duplicate", "invalid_json", "schema"]
    assert verdicts[0][1] == "1 accepted"
    assert verdicts[2][1].startswith("3 rejected: duplicate line 3: exact duplicate of record")
    assert "(line 1 of this upload)" in verdicts[2][1]
    assert verdicts[3][1].startswith("4 rejected: not JSON line 4: not valid JSON")
    assert (
        verdicts[4][1].startswith("5 rejected: schema error line 5:")
        and "response" in verdicts[4][1]
    )

    address = node.keystore.find_by_label("bob").address
    stored = node.data.list_records(dataset)
    assert [(r.content, r.contributor, r.status) for r in stored] == [
        (pair(1), address, "accepted"),
        (pair(2), address, "accepted"),
    ]
    # The history under the verdicts already holds them.
    assert "Your records 2 (2 accepted)" in plain(reply.text)

    # The browser sends the same form again (a reload): the first answer, nothing stored twice.
    again = bob.post(
        f"/datasets/{dataset}/contribute",
        data={"source": "file", "nonce": nonce_of(bob.get(f"/datasets/{dataset}/contribute"))},
        files={"file": ("data.jsonl", content, "application/x-ndjson")},
    )
    codes = [code for code, _ in verdicts_of(again)]
    assert codes == ["duplicate"] * 3 + ["invalid_json", "schema"]
    assert len(node.data.list_records(dataset)) == 2


def test_resending_a_signed_upload_shows_its_first_verdicts(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=NOW).asset_id
    bob = signed_in("bob")
    url = f"/datasets/{dataset}/contribute"
    form = {"source": "file", "nonce": nonce_of(bob.get(url))}
    files = {"file": ("data.jsonl", jsonl([pair(1)]), "application/x-ndjson")}
    assert bob.post(url, data=form, files=files).status_code == 201
    replayed = bob.post(url, data=form, files=files)
    assert replayed.status_code == 200 and "had been received before" in replayed.text
    assert [code for code, _ in verdicts_of(replayed)] == ["ok"]
    other = bob.post(url, data=form, files={"file": ("b.jsonl", jsonl([pair(2)]), "text/plain")})
    assert other.status_code == 409 and "was already used for another upload" in other.text
    assert len(node.data.list_records(dataset)) == 1


def test_the_record_form_has_the_task_fields_and_builds_a_record(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(
        node,
        dev(node, "alice"),
        task={"type": "classification", "labels": ["positive", "negative"]},
        record_schema={
            "type": "object",
            "required": ["lang"],
            "properties": {
                "lang": {"enum": ["en", "fr"], "description": "language of the text"},
                "stars": {"type": "integer"},
            },
        },
        review=NOW,
    ).asset_id
    carol = signed_in("carol")
    url = f"/datasets/{dataset}/contribute"
    page = carol.get(url)
    assert page.status_code == 200
    for name in ("text", "label", "lang", "stars"):
        field_id = re.search(rf'id="(field-\d+)" name="field\.{name}"', page.text)
        assert field_id and f'<label for="{field_id.group(1)}">' in page.text, name
    assert '<option value="negative">negative</option>' in page.text
    assert '<label for="upload-file">JSONL file</label>' in page.text
    assert "contribute.js" not in page.text  # the node holds carol's key and signs for her

    text = "I loved every minute of this film, the music most of all."
    record = {"field.text": text, "field.label": "positive", "field.lang": "en", "field.stars": "4"}
    reply = carol.post(url, data={"source": "form", "nonce": nonce_of(page), **record})
    assert reply.status_code == 201 and [c for c, _ in verdicts_of(reply)] == ["ok"]
    [stored] = node.data.list_records(dataset)
    assert stored.content == {"text": text, "label": "positive", "lang": "en", "stars": 4}
    assert stored.contributor == node.keystore.find_by_label("carol").address
    assert f">{text}</textarea>" not in reply.text  # an accepted record leaves the form empty

    wrong = {**record, "field.text": "A different text about a different film.", "field.lang": "de"}
    refused = carol.post(url, data={"source": "form", "nonce": nonce_of(reply), **wrong})
    [(code, verdict)] = verdicts_of(refused)
    assert code == "schema" and "rejected: schema error" in verdict and "lang" in verdict
    assert ">A different text about a different film.</textarea>" in refused.text  # kept to fix
    assert len(node.data.list_records(dataset)) == 1


def test_a_wallet_user_signs_the_typed_data_and_the_page_checks_it(
    web: httpx.Client, node: Node
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=NOW).asset_id
    wallet = wallet_sign_in(web)
    url = f"/datasets/{dataset}/contribute"
    page = web.get(url)
    assert page.status_code == 200 and '<script src="/static/contribute.js"' in page.text
    assert 'data-wallet="1"' in page.text
    nonce = nonce_of(page)
    assert int(nonce) < 2**53  # a browser's JSON numbers hold it exactly

    unsigned = web.post(
        url,
        data={"source": "form", "nonce": nonce, "field.prompt": "Hi?", "field.response": "Hello."},
    )
    assert unsigned.status_code == 401 and "your browser wallet signs each upload" in unsigned.text
    assert node.data.list_records(dataset) == []

    # What contribute.js does: the API prepares the typed data, the wallet signs, the form is sent.
    line = json.dumps(pair(1), separators=(",", ":"))
    typed = web.post(
        f"/api/v1/datasets/{dataset}/contributions/typed-data",
        json={"nonce": nonce, "records": [line]},
    ).json()
    form = {"source": "form", "nonce": nonce, "line": line}
    forged = web.post(url, data={**form, "signature": sign_contribution(Account.create(), typed)})
    assert forged.status_code == 401 and f"is not {wallet.address}'s" in plain(forged.text)
    assert node.data.list_records(dataset) == []
    signed = web.post(url, data={**form, "signature": sign_contribution(wallet, typed)})
    assert signed.status_code == 201 and [c for c, _ in verdicts_of(signed)] == ["ok"]

    content = jsonl([pair(2), pair(3)])
    nonce = nonce_of(signed)
    typed = web.post(
        f"/api/v1/datasets/{dataset}/contributions/typed-data",
        json={"nonce": nonce, "jsonl": content.decode()},
    ).json()
    sent = web.post(
        url,
        data={"source": "file", "nonce": nonce, "signature": sign_contribution(wallet, typed)},
        files={"file": ("data.jsonl", content, "application/x-ndjson")},
    )
    assert sent.status_code == 201 and [c for c, _ in verdicts_of(sent)] == ["ok", "ok"]
    stored = node.data.list_records(dataset, contributor=wallet.address)
    assert [r.content for r in stored] == [pair(1), pair(2), pair(3)]


def test_bad_files_are_refused_on_the_page_and_change_nothing(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=NOW).asset_id
    bob = signed_in("bob")
    cases = [
        (b"", "data.jsonl is empty"),
        (b"\n \n\n", "data.jsonl holds only blank lines"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "data.jsonl is not UTF-8 text"),
        (b'{"prompt": "caf\xe9"}', "data.jsonl is not UTF-8 text"),
        (b"x" * (MAX_UPLOAD_BYTES + 1), "data.jsonl is larger than 16 MiB"),
    ]
    for content, message in cases:
        reply = upload_file(bob, dataset, content)
        assert reply.status_code == 422, message
        error = re.search(r'data-testid="contribute-error">(.*?)</p>', reply.text, re.S)
        assert error and message in html.unescape(error.group(1)), reply.text
        assert "Nothing was stored" in error.group(1) and 'data-testid="verdicts"' not in reply.text
    url = f"/datasets/{dataset}/contribute"
    no_file = bob.post(url, data={"source": "file", "nonce": nonce_of(bob.get(url))})
    assert no_file.status_code == 422 and "choose a JSONL file to upload" in no_file.text
    assert node.data.list_records(dataset) == []
    assert "You have no records in this dataset yet." in bob.get(url).text


def test_the_page_shows_the_contributors_records_reputation_and_share(
    web: httpx.Client, node: Node, signed_in: SignedIn
) -> None:
    dataset = make_dataset(node, dev(node, "alice"), review=NOW).asset_id
    bob = signed_in("bob")
    url = f"/datasets/{dataset}/contribute"
    before = plain(bob.get(url).text)
    assert "reputation 0.70 (the starting value" in before and "None yet: no version" in before
    upload_file(bob, dataset, jsonl([pair(1), pair(2), pair(3)]))
    node.data.anchoring.anchor(dataset)
    after = bob.get(url).text
    assert after.count('data-testid="history-record"') == 3 and "3 (3 anchored)" in plain(after)
    share = re.search(r'data-testid="attribution">(.*?)</dd>', after, re.S)
    assert share and share.group(1).startswith(
        "100.00 % of the dataset's data revenue (version 1, 3"
    )
    assert signed_in("carol").get(url).text.count('data-testid="history-record"') == 0


def test_signed_out_visitors_are_sent_to_sign_in(web: httpx.Client, node: Node) -> None:
    dataset = make_dataset(node, dev(node, "alice")).asset_id
    url = f"/datasets/{dataset}/contribute"
    for reply in (web.get(url), web.post(url, data={"source": "form", "nonce": "1"})):
        assert reply.status_code == 303 and reply.headers["location"] == f"/signin?next={url}"
    assert node.data.list_records(dataset) == []
    missing = web.get("/contribute")
    assert missing.status_code == 200 and "Sign in" in missing.text
