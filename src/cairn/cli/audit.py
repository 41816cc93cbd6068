"""`cairn audit`: re-derive every funded epoch from the chain and public blobs.

The node is asked only where its contracts are (`GET /api/v1/chain`, which anyone can check
against the chain) and for blobs by CID, each checked against its CID. Everything else is read
through the chain's own RPC (`--rpc`, by default the URL the node publishes). Exits 1 when an
epoch differs from what the chain and the documents give.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from cairn.cli.common import NodeUrl, client
from cairn.cli.output import console, table, units
from cairn.core.errors import InvalidInput
from cairn.verify.audit import Auditor, AuditReport, EpochAudit
from cairn.verify.audit_jobs import JobAudit
from cairn.verify.findings import DIFFERS


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object")
    ] = False,
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
    if as_json:
        print(json.dumps({"ok": report.ok, **asdict(report)}))
    else:
        show(report)
    if not report.ok:
        raise typer.Exit(1)


def show(report: AuditReport) -> None:
    """The report as tables, then each difference and what could not be checked."""
    if not report.epochs and not report.jobs:
        console.print(f"nothing funded or settled up to block {report.head}")
        return
    if report.epochs:
        table(
            f"Funded epochs, audited up to block {report.head}",
            ["epoch", "kind", "amount (CAIRN)", "checks", "result"],
            [[e.epoch, e.kind, units(e.amount), _checks(e), _result(e)] for e in report.epochs],
        )
    if report.jobs:
        table(
            "Training jobs settled on JobEscrow",
            ["job", "work units", "checks", "result"],
            [[j.job_id[:18] + "…", j.total_work, _checks(j), _result(j)] for j in report.jobs],
        )
    audited: list[tuple[str, EpochAudit | JobAudit]] = [
        *((f"epoch {e.epoch}", e) for e in report.epochs),
        *((f"job {j.job_id}", j) for j in report.jobs),
    ]
    for name, subject in audited:
        for f in subject.findings:
            if f.status == DIFFERS:
                console.print(f"{name}: {f.check} differs: {f.detail}", markup=False)
    for name, subject in audited:
        for f in subject.unchecked:
            console.print(f"{name}: {f.check} unchecked: {f.detail}", markup=False)
    console.print(
        "everything matches the chain and its documents"
        if report.ok
        else "some epochs or jobs differ from what the chain and their documents give"
    )


def _checks(subject: EpochAudit | JobAudit) -> str:
    passed = len(subject.findings) - len(subject.differences) - len(subject.unchecked)
    return f"{passed} ok" + (f", {len(subject.unchecked)} unchecked" if subject.unchecked else "")


def _result(subject: EpochAudit | JobAudit) -> str:
    return "ok" if subject.ok else f"DIFFERS ({len(subject.differences)})"
