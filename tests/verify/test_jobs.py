"""A job's kept replies and their sampled replay: two real workers train three DiLoCo rounds, one
of them adds noise to every update; the replay at the end passes the honest one and catches the
other, with evidence anyone can check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from eth_account import Account

from cairn.compute.records import unpacked
from cairn.compute.reports import WorkReport, params_digest, report_from_json, sign_report
from cairn.compute.reports import verify_report as check_signature
from cairn.core.diloco import OuterState, outer_step
from cairn.provider.rounds import RoundRunner, resumed_state
from cairn.verify.jobs import JobReplays, KeptRound
from cairn.verify.replay import EVIDENCE_SCHEMA, RoundInputs
from tests.provider.test_trainer import HPARAMS, job, task, work_dir

__all__ = ["job"]  # the module's fixture, shared
HONEST, CHEAT = Account.from_key("0x" + "21" * 32), Account.from_key("0x" + "22" * 32)


def noisy(
    params: dict[str, torch.Tensor], start: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`params` with noise of 10 % of the update's length added."""
    update = torch.cat([(params[k] - start[k]).flatten() for k in sorted(params)])
    g = torch.Generator().manual_seed(1)
    noise = {k: torch.randn(v.shape, generator=g) for k, v in params.items()}
    scale = 0.1 * update.norm() / torch.cat([n.flatten() for n in noise.values()]).norm()
    return {k: params[k] + scale * noise[k] for k in params}


def test_the_sampled_replay_passes_the_honest_worker_and_catches_the_noisy_one(
    job: dict[str, Any], tmp_path: Path
) -> None:
    workers = {0: (HONEST, RoundRunner(work_dir(job, tmp_path / "a"))),
               1: (CHEAT, RoundRunner(work_dir(job, tmp_path / "b")))}  # fmt: skip
    replays = JobReplays(tmp_path / "job" / "verify")
    checkpoints = {0: job["params"]}
    outer = OuterState()
    for round_ in (1, 2, 3):
        start, returned = checkpoints[round_ - 1], []
        for shard, (account, runner) in workers.items():
            round_task = dataclasses.replace(
                task(job, round_), shard=shard, seed=10 * round_ + shard
            )
            reply = runner.run(round_task, start, account, 100 + shard)
            report = report_from_json(json.loads(str(reply["report"]["report"])))
            signature = str(reply["report"]["signature"])
            params = unpacked(reply, "params")
            if account is CHEAT:  # it signs what it sends: only a replay can tell
                params = noisy(params, start)
                report = dataclasses.replace(report, params_digest=params_digest(params))
                signature = sign_report(report, account)
            check_signature(report, signature)
            replays.keep(start, 100 + shard, report, signature, params)
            returned.append(params)
        checkpoints[round_], outer = outer_step(start, returned, [1.0, 1.0], outer, lr=0.7)

    kept = replays.kept()
    assert [(k.round, k.node_id) for k in kept] == [(r, n) for r in (1, 2, 3) for n in (100, 101)]
    chosen = replays.draw("job-1")
    assert replays.draw("job-1") == chosen  # anyone with the reports draws the same
    assert sorted(k.account for k in chosen) == sorted([HONEST.address, CHEAT.address])
    flagged = replays.draw("job-1", flagged=[(101, 2), (101, 3)])
    assert [k.round for k in flagged if k.node_id == 101][:2] in ([2, 3], [3, 2])

    folders = {100: tmp_path / "a", 101: tmp_path / "b"}
    records = workers[0][1]._records[job["train_cid"]]

    def reveal(k: KeptRound) -> dict[str, Any] | None:
        return resumed_state(folders[k.node_id], "job-1", k.round, k.report.shard)

    def inputs(k: KeptRound, state: dict[str, Any] | None) -> RoundInputs:
        return RoundInputs("sft", HPARAMS, records, checkpoints[k.round - 1], state)

    loaded = next(iter(workers[0][1]._models.values()))
    verdicts = replays.replay(
        flagged, reveal=reveal, inputs=inputs, model=loaded.model, tokenizer=loaded.tokenizer
    )
    by = {v.account: v for v in verdicts}
    assert by[HONEST.address].ok and by[HONEST.address].exact, by[HONEST.address].reason
    assert not by[CHEAT.address].ok and by[CHEAT.address].relative > 0.05
    assert [v.account for v in verdicts].count(CHEAT.address) == 1  # it stops at the first
    [path] = (tmp_path / "job" / "verify").glob("evidence-*.json")
    document = json.loads(path.read_text())
    assert document["schema"] == EVIDENCE_SCHEMA and document["account"] == CHEAT.address
    signed = {k: v for k, v in document["report"].items() if k not in ("schema", "signature")}
    check_signature(WorkReport(**signed), document["report"]["signature"])
