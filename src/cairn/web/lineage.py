"""A lineage graph drawn as inline SVG: pure layout, then markup.

`layout` puts each node in a column by its depth (the longest path from anything it stands on),
so every edge runs left to right; within a column nodes are ordered by where their sources sit
(then by key), one fixed-size box per row, so boxes never overlap and the same graph always
gives the same picture. `lineage_svg` draws the boxes as links (assets to /assets/{id}, jobs to
/jobs/{id}) with every piece of text escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from cairn.assets.detail import LineageNode

NODE_W = 184  # px; a box fits ~24 characters of 12px text
NODE_H = 46
GAP_X = 56  # between columns, where the edges run
GAP_Y = 14
MARGIN = 8
MAX_CHARS = 24
KIND_ORDER = {"model": 0, "app": 1, "dataset": 2, "job": 3, "provider": 4}
FILL = {  # light fills: the ink text on each stays above 7:1 contrast
    "dataset": "#e7f0fe",
    "model": "#e7f3ea",
    "app": "#f3e8fd",
    "job": "#fff4d6",
    "provider": "#f4f6f8",
}
EDGE = "#4a5360"


@dataclass(frozen=True)
class Box:
    """Where one node is drawn."""

    key: str
    column: int
    row: int
    x: int
    y: int
    width: int = NODE_W
    height: int = NODE_H


@dataclass(frozen=True)
class Layout:
    """Every node's box and the picture's size."""

    boxes: dict[str, Box]
    width: int
    height: int


def columns(keys: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each key's depth: 0 for a node nothing points at, else one more than its deepest source.

    An edge that would close a cycle (found depth-first, keys in sorted order) is ignored.
    """
    nodes = sorted(set(keys))
    out_edges: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in sorted(set(edges)):
        if a in out_edges and b in out_edges and a != b:
            out_edges[a].append(b)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    order: list[str] = []  # reverse topological order of the acyclic part
    kept: dict[str, list[str]] = {k: [] for k in nodes}
    for start in nodes:
        if start in state:
            continue
        stack = [(start, iter(out_edges[start]))]
        state[start] = 1
        while stack:
            key, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[key] = 2
                order.append(key)
                stack.pop()
            elif state.get(child) == 1:
                continue  # a back edge: drawing it would need a column before its source
            else:
                kept[key].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(out_edges[child])))
    depth = dict.fromkeys(nodes, 0)
    for key in reversed(order):
        for child in kept[key]:
            depth[child] = max(depth[child], depth[key] + 1)
    return depth


def layout(
    keys: Sequence[str], edges: Sequence[tuple[str, str]], kinds: dict[str, str] | None = None
) -> Layout:
    """Boxes for `keys`, columns by depth, rows ordered by their sources' rows then kind and key."""
    kinds = kinds or {}
    depth = columns(keys, edges)
    sources: dict[str, list[str]] = {k: [] for k in depth}
    for a, b in set(edges):
        if a in depth and b in depth and depth[a] < depth[b]:
            sources[b].append(a)
    by_column: dict[int, list[str]] = {}
    for key in depth:
        by_column.setdefault(depth[key], []).append(key)
    rows: dict[str, int] = {}
    for column in sorted(by_column):

        def place(key: str) -> tuple[float, int, str]:
            placed = [rows[s] for s in sources[key] if s in rows]
            mean = sum(placed) / len(placed) if placed else -1.0
            return (mean, KIND_ORDER.get(kinds.get(key, ""), 9), key)

        for row, key in enumerate(sorted(by_column[column], key=place)):
            rows[key] = row
    boxes = {
        key: Box(
            key,
            depth[key],
            rows[key],
            MARGIN + depth[key] * (NODE_W + GAP_X),
            MARGIN + rows[key] * (NODE_H + GAP_Y),
        )
        for key in sorted(depth)
    }
    n_columns = max(by_column, default=-1) + 1
    n_rows = max((len(v) for v in by_column.values()), default=0)
    width = 2 * MARGIN + n_columns * NODE_W + max(n_columns - 1, 0) * GAP_X
    height = 2 * MARGIN + n_rows * NODE_H + max(n_rows - 1, 0) * GAP_Y
    return Layout(boxes, width, height)


def reading_order(
    nodes: Sequence[LineageNode], edges: Sequence[tuple[str, str]]
) -> list[LineageNode]:
    """The nodes column by column, top to bottom: the order a text list of the picture takes."""
    boxes = layout([n.key for n in nodes], edges, {n.key: n.kind for n in nodes}).boxes
    return sorted(nodes, key=lambda n: (boxes[n.key].column, boxes[n.key].row))


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def href_of(node: LineageNode) -> str | None:
    """Where a node links: its asset page, its job page, or nowhere."""
    if node.asset_id is not None:
        return f"/assets/{node.asset_id}"
    if node.job_id is not None:
        return f"/jobs/{node.job_id}"
    return None


def lineage_svg(
    nodes: Sequence[LineageNode], edges: Sequence[tuple[str, str]], focus: str, label: str
) -> Markup:
    """The lineage as an accessible inline SVG; `label` names it ("Lineage of reverser")."""
    by_key = {n.key: n for n in nodes}
    drawn = layout(list(by_key), edges, {k: n.kind for k, n in by_key.items()})
    boxes = drawn.boxes
    kinds = sorted({n.kind for n in nodes}, key=lambda k: KIND_ORDER.get(k, 9))
    counts = ", ".join(f"{sum(n.kind == k for n in nodes)} {k}" for k in kinds)
    summary = (
        f"{label}: {counts}. Arrows point from what was used to what was made."
        if nodes
        else f"{label}: nothing recorded."
    )
    # a group, not an image: its boxes are links, which role="img" would hide from assistive tech
    parts = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" role="group" '
        f'aria-label="{escape(summary)}" data-testid="lineage" '
        f'viewBox="0 0 {drawn.width} {drawn.height}" width="{drawn.width}" height="{drawn.height}">',
        f"<title>{escape(label)}</title>",
        f"<desc>{escape(summary)}</desc>",
        '<defs><marker id="lineage-arrow" viewBox="0 0 8 8" refX="8" refY="4" '
        f'markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="{EDGE}"/>'
        "</marker></defs>",
        '<g class="edges">',
    ]
    for a, b in sorted(set(edges)):
        if a not in boxes or b not in boxes or a == b:
            continue
        src, dst = boxes[a], boxes[b]
        x1, y1 = src.x + src.width, src.y + src.height // 2
        x2, y2 = dst.x, dst.y + dst.height // 2
        bend = max(abs(x2 - x1) // 2, 24)
        parts.append(
            f'<path d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" fill="none" '
            f'stroke="{EDGE}" stroke-width="1.5" marker-end="url(#lineage-arrow)"/>'
        )
    parts.append('</g><g class="nodes">')
    for key in sorted(boxes):
        node, box = by_key[key], boxes[key]
        stroke = 3 if key == focus else 1
        body = (
            f"<title>{escape(node.title)} ({escape(node.detail)})</title>"
            f'<rect x="{box.x}" y="{box.y}" width="{box.width}" height="{box.height}" rx="8" '
            f'fill="{FILL.get(node.kind, "#ffffff")}" stroke="#1b1f24" stroke-width="{stroke}"/>'
            f'<text x="{box.x + 10}" y="{box.y + 19}" font-weight="600">{escape(clip(node.title))}</text>'
            f'<text x="{box.x + 10}" y="{box.y + 36}">{escape(clip(node.detail, MAX_CHARS + 4))}</text>'
        )
        href = href_of(node)
        attrs = f'data-key="{escape(key)}" data-kind="{escape(node.kind)}"'
        if href:
            parts.append(f'<a href="{escape(href)}" {attrs}>{body}</a>')
        else:
            parts.append(f"<g {attrs}>{body}</g>")
    parts.append("</g></svg>")
    return Markup("".join(parts))
