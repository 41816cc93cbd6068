"""`cairn verify job ID`: what the replay of a job's sampled rounds found.

After a job's last round its coordinator trains a sample of rounds again from what each
provider's signed report names (`cairn.verify`): each provider's flagged rounds and one more at
random. This command prints each replayed round, its outcome and why, and every provider whose
replay failed and what it cost (its share and its stake, with the evidence's CID, which anyone
may fetch and replay). It exits with 1 when a replay failed, so a script can act on it.
"""

from __future__ import annotations

import typer

from cairn.cli.common import NodeUrl, client
from cairn.cli.output import console, table, units
from cairn.compute.job import Job

app = typer.Typer(help="Check what others did: replays of training work.", no_args_is_help=True)


def print_verification(job: Job) -> bool:
    """Print the job's verification; whether every replayed round passed."""
    v = job.verification
    if v is None:
        console.print("not verified yet: the replay runs after the job's last round")
        return True
    if v.skipped:
        console.print(f"not replayed: {v.skipped}", markup=False)
        return True
    if v.error:
        console.print(f"the verification stopped: {v.error}", markup=False)
        return True
    table(
        "Replayed rounds",
        ["round", "provider", "outcome", "why"],
        [
            [
                r.round,
                r.account,
                "passed" if r.ok else ("not verified" if r.relative is None else "FAILED"),
                r.reason,
            ]
            for r in v.replays
        ],
    )
    for account, slash in v.slashed.items():
        console.print(
            f"{account}: not paid for this job; {units(slash.amount, 18)} CAIRN of its stake "
            f"went to the builder (evidence {slash.evidence_cid}, tx {slash.tx_hash or '-'})",
            markup=False,
        )
    return all(r.ok or r.relative is None for r in v.replays)


@app.command("job")
def job(job_id: str, node_url: NodeUrl = None) -> None:
    """The replay of a job's sampled rounds: who passed, who failed and what it cost."""
    with client(node_url) as api:
        found = Job.model_validate(api.request("GET", f"/jobs/{job_id}"))
    console.print(f"job {found.job_id} ({found.name}): {found.status}", markup=False)
    if not print_verification(found):
        raise typer.Exit(1)
