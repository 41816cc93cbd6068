"""An asset's metadata document: names and descriptions show what they say (no control
characters, no bidirectional overrides), checked in the domain and refused through the API."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.assets.metadata import asset_metadata
from cairn.core.errors import InvalidInput
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.node import Node
from tests.api.conftest import in_process, node_client
from tests.data.conftest import dev


def metadata(name: str = "Replies", description: str = "") -> dict[str, Any]:
    return asset_metadata(
        kind=AssetKind.DATASET,
        name=name,
        licence="CC0-1.0",
        description=description,
        parents=[],
        split=RevenueSplit.owner_only(),
        created_by="0x" + "11" * 20,
    )


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("report\x00.txt", "name must not contain control character U+0000 at position 6"),
        (
            "invoice\u202egpj.exe",  # shows as "invoiceexe.jpg"
            "name must not contain bidirectional control U+202E (RIGHT-TO-LEFT OVERRIDE) at "
            "position 7",
        ),
        ("a\u2066b\u2069", "name must not contain bidirectional control U+2066"),
        ("a\u200fb", "name must not contain bidirectional control U+200F"),
        ("tab\there", "name must not contain control character U+0009"),
        ("two\nlines", "name must not contain control character U+000A"),
        ("line\u2028sep", "name must not contain line break U+2028 (LINE SEPARATOR)"),
        ("bell\x07", "name must not contain control character U+0007"),
    ],
)
def test_a_name_with_a_control_or_bidi_character_is_refused(name: str, refusal: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        metadata(name=name)
    assert refused.value.message.startswith(refusal)


def test_names_in_any_script_and_multi_line_descriptions_are_kept() -> None:
    name = "Sprachmodell für Ärzte 👩\u200d⚕️ · عربي · 中文"  # a ZWJ emoji is not a control
    description = "First line.\r\nSecond line,\twith a tab."
    made = metadata(name=f"  {name} ", description=description)
    assert made["name"] == name and made["description"] == description
    for bad, code in (("a\x00b", "U+0000"), ("x\u202ey", "U+202E")):
        with pytest.raises(InvalidInput) as refused:
            metadata(description=bad)
        assert refused.value.message.startswith("description must not contain")
        assert f"{code} " in refused.value.message


def test_the_api_refuses_a_spoofing_name_and_registers_nothing(node: Node) -> None:
    before = node.chain.registry.total_assets()
    with in_process(node) as app, node_client(app) as api:
        api.sign_in(dev(node, "alice"))
        reply = api.http.post(
            "/api/v1/assets",
            json={"kind": "model", "name": "invoice\u202egpj.exe", "licence": "MIT"},
            headers={"Authorization": f"Bearer {api.token}"},
        )
    assert reply.status_code == 422
    assert reply.json()["detail"].startswith("name must not contain bidirectional control U+202E")
    assert node.chain.registry.total_assets() == before
