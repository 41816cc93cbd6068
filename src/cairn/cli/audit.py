"""`cairn audit`: re-derive every funded epoch from the chain and public blobs.

The node is asked only where its contracts are (`GET /api/v1/chain`, which anyone can check
against the chain) and for blobs by CID, each checked against its CID. Everything else is read
through the chain's own RPC (`--rpc`, by default the URL the node publishes). Exits 1 when an
epoch differs from what the chain and the documents give.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cairn.cli.common import NodeUrl, client
from cairn.cli.output import console, table, units
from cairn.core.errors import InvalidInput
from cairn.verify.audit import DIFFERS, Auditor, AuditReport


def audit(
    node_url: NodeUrl = None,
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="The chain's JSON-RPC URL [default: the one the node names]"),
    ] = None,
    epoch: Annotated[
        list[int] | None,
        typer.Option("--epoch", "-e", help="Show only this distributor epoch (repeatable)"),
    ] = None,
) -> None:
    """Re-derive every funded epoch (revenue settlements and bounty payouts) from the chain and
    public blobs, and name any difference from what was funded."""
    from web3 import Web3

    from cairn.verify.audit_chain import AuditChain, http_blobs

    with client(node_url) as api, console.status("Reading the chain and the documents ..."):
        info = api.request("GET", "/chain")
        url = rpc or info.get("rpc_url")
        if not url:
            raise InvalidInput(
                "the node's chain has no RPC URL (an embedded in-memory chain): pass --rpc"
            )
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        if int(w3.eth.chain_id) != int(info["chain_id"]):
            raise InvalidInput(
                f"{url} serves chain {w3.eth.chain_id}, the node's contracts are on "
                f"chain {info['chain_id']}"
            )
        contracts = {name: (c["address"], c["abi"]) for name, c in info["contracts"].items()}
        chain = AuditChain(w3, contracts, int(info["deployed_at_block"]))
        report = Auditor(chain, http_blobs(str(api.base_url))).run(epoch or ())
    show(report)
    if not report.ok:
        raise typer.Exit(1)


def show(report: AuditReport) -> None:
    """The report as a table, then each difference and what could not be checked."""
    if not report.epochs:
        console.print(f"no funded epochs up to block {report.head}")
        return
    table(
        f"Funded epochs, audited up to block {report.head}",
        ["epoch", "kind", "amount (CAIRN)", "checks", "result"],
        [
            [
                e.epoch,
                e.kind,
                units(e.amount),
                f"{len(e.findings) - len(e.differences) - len(e.unchecked)} ok"
                + (f", {len(e.unchecked)} unchecked" if e.unchecked else ""),
                "ok" if e.ok else f"DIFFERS ({len(e.differences)})",
            ]
            for e in report.epochs
        ],
    )
    for e in report.epochs:
        for f in e.findings:
            if f.status == DIFFERS:
                console.print(f"epoch {e.epoch}: {f.check} differs: {f.detail}", markup=False)
    for e in report.epochs:
        for f in e.unchecked:
            console.print(f"epoch {e.epoch}: {f.check} unchecked: {f.detail}", markup=False)
    console.print(
        "every epoch matches the chain and its documents"
        if report.ok
        else "some epochs differ from what the chain and their documents give"
    )
