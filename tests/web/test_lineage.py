"""The lineage picture: columns by depth, boxes that never overlap, the same picture for the
same graph, and markup that escapes whatever names people gave their assets."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from cairn.assets.detail import LineageNode
from cairn.web.lineage import (
    MAX_CHARS,
    NODE_H,
    NODE_W,
    clip,
    columns,
    layout,
    lineage_svg,
    reading_order,
)

SVG = "{http://www.w3.org/2000/svg}"

keys = st.lists(st.sampled_from([f"n{i}" for i in range(14)]), min_size=1, max_size=14, unique=True)


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """Any small directed graph, cycles and self-loops included."""
    nodes = draw(keys)
    edges = draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)), max_size=30))
    return nodes, edges


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    """A graph whose edges all run from an earlier key to a later one: no cycles."""
    nodes = draw(keys)
    pairs = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]
    edges = draw(st.lists(st.sampled_from(pairs), max_size=30)) if pairs else []
    return nodes, edges


def test_a_chain_takes_one_column_per_step_and_a_diamond_joins_at_its_deepest_source() -> None:
    assert columns(["c", "b", "a"], [("a", "b"), ("b", "c")]) == {"a": 0, "b": 1, "c": 2}
    diamond = columns(["a", "b", "c", "d"], [("a", "b"), ("b", "d"), ("a", "c"), ("c", "d")])
    assert diamond == {"a": 0, "b": 1, "c": 1, "d": 2}
    skip = columns(["a", "b", "c"], [("a", "c"), ("a", "b"), ("b", "c")])
    assert skip["c"] == 2  # the longest path decides, so every edge runs rightwards


def test_a_cycle_is_broken_at_one_edge_and_the_rest_still_runs_left_to_right() -> None:
    depth = columns(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])
    assert depth == {"a": 0, "b": 1, "c": 2}
    assert columns(["a"], [("a", "a"), ("a", "ghost")]) == {"a": 0}  # loops, unknown ends


@given(graphs())
def test_boxes_never_overlap_and_fit_the_picture(
    graph: tuple[list[str], list[tuple[str, str]]],
) -> None:
    nodes, edges = graph
    drawn = layout(nodes, edges)
    boxes = list(drawn.boxes.values())
    assert sorted(drawn.boxes) == sorted(nodes)
    for i, a in enumerate(boxes):
        assert a.x >= 0 and a.y >= 0
        assert a.x + a.width <= drawn.width and a.y + a.height <= drawn.height
        for b in boxes[i + 1 :]:
            apart = (
                a.x + a.width <= b.x
                or b.x + b.width <= a.x
                or a.y + a.height <= b.y
                or b.y + b.height <= a.y
            )
            assert apart, (a, b)


@given(dags())
def test_in_a_graph_without_cycles_every_edge_runs_left_to_right(
    graph: tuple[list[str], list[tuple[str, str]]],
) -> None:
    nodes, edges = graph
    boxes = layout(nodes, edges).boxes
    for a, b in edges:
        assert boxes[a].x + NODE_W < boxes[b].x


@given(graphs(), st.randoms(use_true_random=False))
def test_the_same_graph_in_any_order_gives_the_same_picture(
    graph: tuple[list[str], list[tuple[str, str]]], rng: random.Random
) -> None:
    nodes, edges = graph
    shuffled_nodes, shuffled_edges = nodes[:], edges[:]
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_edges)
    assert layout(nodes, edges) == layout(shuffled_nodes, shuffled_edges)


def lineage() -> tuple[list[LineageNode], list[tuple[str, str]]]:
    job = "0x" + "ab" * 32
    nodes = [
        LineageNode("model 2", "model", "tiny causal-lm", "model #2", asset_id=2),
        LineageNode("dataset 1@bafy", "dataset", "Polite replies v1", "dataset", asset_id=1),
        LineageNode(f"job {job}", "job", "training job", "0xabab…abab", job_id=job),
        LineageNode("provider 0xB0b", "provider", "bob", "provider · 75%", account="0xB0b"),
        LineageNode("model 3", "model", "reverser", "model #3", asset_id=3),
    ]
    edges = [
        ("model 2", f"job {job}"),
        ("dataset 1@bafy", f"job {job}"),
        ("provider 0xB0b", f"job {job}"),
        (f"job {job}", "model 3"),
    ]
    return nodes, edges


def test_the_svg_links_each_asset_and_the_job_and_is_labelled_for_screen_readers() -> None:
    nodes, edges = lineage()
    svg = str(lineage_svg(nodes, edges, "model 3", "Lineage of reverser"))
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("role") == "group" and root.get("data-testid") == "lineage"
    assert root.get("aria-label", "").startswith("Lineage of reverser: 2 model, 1 dataset, 1 job")
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    links = sorted(a.get("href") or "" for a in root.iter(f"{SVG}a"))
    assert links == ["/assets/1", "/assets/2", "/assets/3", f"/jobs/0x{'ab' * 32}"]
    assert len(root.findall(f".//{SVG}rect")) == 5  # a box per node, the provider unlinked
    assert len(root.findall(f".//{SVG}path[@marker-end]")) == 4  # an arrow per edge
    focus = next(g for g in root.iter() if g.get("data-key") == "model 3")
    assert focus.find(f"{SVG}rect").get("stroke-width") == "3"  # type: ignore[union-attr]


def test_names_are_escaped_and_clipped_to_their_box() -> None:
    evil = '<script>alert("x")</script> & "quotes" in a very long name indeed'
    nodes = [LineageNode('model 7"><x', "model", evil, "model #7", asset_id=7)]
    svg = str(lineage_svg(nodes, [], 'model 7"><x', 'Lineage of <b>"x"</b>'))
    assert "<script" not in svg and "<b>" not in svg and "<x" not in svg
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert texts[0] == clip(evil) and len(texts[0]) == MAX_CHARS and texts[0].endswith("…")
    assert [t.text for t in root.iter(f"{SVG}title")][1].startswith(evil)  # full name on hover
    assert root.get("height") == str(NODE_H + 16)


def test_an_empty_lineage_still_draws_a_labelled_picture() -> None:
    root = ET.fromstring(str(lineage_svg([], [], "model 1", "Lineage of m")))
    assert root.get("aria-label") == "Lineage of m: nothing recorded."
    assert root.get("width") == "16"


def test_the_text_list_reads_the_picture_column_by_column() -> None:
    nodes, edges = lineage()
    order = [n.key for n in reading_order(nodes, edges)]
    assert order[-2:] == [f"job {'0x' + 'ab' * 32}", "model 3"]
    assert order[:3] == ["model 2", "dataset 1@bafy", "provider 0xB0b"]  # by kind in a column
