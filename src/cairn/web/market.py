"""The marketplace (/) and the asset page (/assets/{id}).

Both read the same read models the rest of the node uses (`cairn.assets.market`,
`cairn.assets.detail`); this module only turns a request into their calls and their answers
into a page.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from cairn.api.deps import AccountsDep, AssetDetailsDep, DataDep, EconomyDep, MarketDep
from cairn.assets.market import KINDS, MarketFilter
from cairn.core.errors import InvalidInput
from cairn.core.ids import StoredId
from cairn.core.licensing import Use
from cairn.identity.keystore import Keystore
from cairn.web.licences import licence_panel
from cairn.web.lineage import href_of, lineage_svg, reading_order
from cairn.web.render import page
from cairn.web.viewer import MaybeViewer

router = APIRouter()

Text = Annotated[str | None, Query(max_length=200)]


class HoldsKeys(Protocol):
    """Whatever holds the node's key files (the node, for the pages that still take it)."""

    keystore: Keystore


def account_names(holder: HoldsKeys) -> dict[str, str]:
    """The node's labels of accounts it holds keys for, by lower-case address (pages that
    take their dependencies use `Accounts.names` through `AccountsDep`)."""
    return {a.address.lower(): a.label for a in holder.keystore.list() if a.label}


@router.get("/", response_class=HTMLResponse)
def marketplace(
    request: Request,
    market: MarketDep,
    accounts: AccountsDep,
    q: Text = None,
    kind: Text = None,
    licence: Text = None,
    task: Text = None,
    price: Text = None,
    max_price: Text = None,
) -> HTMLResponse:
    """Datasets, models and apps, searchable and filtered by kind, licence, task and price."""
    form = {
        "q": q or "",
        "kind": kind or "",
        "licence": licence or "",
        "task": task or "",
        "price": price or "",
        "max_price": max_price or "",
    }
    error = None
    try:
        wanted = MarketFilter.parse(**form)
    except InvalidInput as exc:
        error, wanted = exc.message, MarketFilter()
    listings = market.listings(wanted) if error is None else []
    return page(
        request,
        "market.html",
        status=400 if error else 200,
        title="Marketplace",
        form=form,
        error=error,
        filtered=wanted.active or error is not None,
        facets=market.facets(),
        kinds=KINDS,
        groups=[(k, [s for s in listings if s.kind == k]) for k in KINDS],
        total=len(listings),
        names=accounts.names(),
    )


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
def asset_page(
    request: Request,
    details: AssetDetailsDep,
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: MaybeViewer,
    asset_id: StoredId,
) -> HTMLResponse:
    """One asset: what it is, its versions, its identity on chain, its lineage and its payees."""
    detail = details.get(asset_id)
    name = detail.asset.name or f"{detail.asset.kind} {asset_id}"
    names = accounts.names()
    svg, listed, sources = None, [], {}
    if detail.lineage is not None:
        # Providers whose keys this node holds are shown by their labels.
        nodes = [
            replace(n, title=names[n.account.lower()])
            if n.account and n.account.lower() in names
            else n
            for n in detail.lineage.nodes
        ]
        edges = detail.lineage.edges
        svg = lineage_svg(nodes, edges, detail.lineage.focus, f"Lineage of {name}")
        ordered = reading_order(nodes, edges)
        listed = [(n, href_of(n)) for n in ordered]
        sources = {
            item.key: [n.title for n in ordered if (n.key, item.key) in edges] for item in ordered
        }
    return page(
        request,
        "asset.html",
        title=name,
        name=name,
        d=detail,
        s=detail.listing,
        svg=svg,
        lineage_links=listed,
        sources=sources,
        names=names,
        lic=licence_panel(economy.licences, viewer, detail.asset),
        bounties=economy.bounties.listing(asset_id) if detail.asset.kind == "dataset" else [],
    )


@router.get("/datasets/{dataset_id}/records.jsonl")
def download_records(
    economy: EconomyDep, data_service: DataDep, dataset_id: StoredId, viewer: MaybeViewer
) -> Response:
    """The newest version's records for the signed-in viewer (a licensed dataset needs a
    licence held by the viewer: the error page says which to buy)."""
    economy.licences.require(Use.EXPORT, dataset_id, viewer.address if viewer else None)
    data = data_service.export(dataset_id, "jsonl", None)
    return Response(
        data,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="dataset-{dataset_id}.jsonl"'},
    )
