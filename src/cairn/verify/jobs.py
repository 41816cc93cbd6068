"""What a coordinator keeps of a job's rounds, and the replay of a sample of them at its end.

Every accepted reply is kept as its signed report and a sketch of its update (`keep`:
`update_vector` of `SKETCH_SIZE` entries, float32: the whole update of a small model, a few MB of
a large one), in the job folder's `verify/`. After the last round the sample is drawn from the
reports (`draw`, `cairn.verify.sampling`: every provider's flagged rounds first, then one round
of each at random), each drawn worker reveals the AdamW state that round resumed, and the round
is trained again from the checkpoint it started from (`replay`). A failed replay leaves its
evidence (`cairn.verify.replay.evidence`) in `verify/` for the node to store by CID and name
when it slashes.

    verify/kept.jsonl                            one line per kept reply: round, node, report
    verify/round-000003-node-17.safetensors      that reply's update sketch
    verify/evidence-round-000003-node-17.json    a failed replay's evidence
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cairn.compute.reports import WorkReport, report_from_json, report_leaf
from cairn.verify.replay import RoundInputs, Verdict, evidence, verify_round
from cairn.verify.sampling import choose_rounds, sample_seed
from cairn.verify.screens import SKETCH_SIZE, update_vector


@dataclass(frozen=True)
class KeptRound:
    """One accepted reply as the coordinator kept it."""

    round: int
    node_id: int
    report: WorkReport
    signature: str

    @property
    def account(self) -> str:
        return self.report.account


class JobReplays:
    """The kept replies of one job, in its folder's `verify/`, and their sampled replay."""

    def __init__(self, folder: Path, sketch_size: int = SKETCH_SIZE) -> None:
        self.folder = folder
        self.sketch_size = sketch_size

    def keep(
        self,
        start: Mapping[str, torch.Tensor],
        node_id: int,
        report: WorkReport,
        signature: str,
        returned: Mapping[str, torch.Tensor],
    ) -> None:
        """Keep one accepted reply: its report and the sketch of `returned - start`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        sketch = update_vector(start, returned, self.sketch_size).float()
        path = self._sketch_path(report.round, node_id)
        tmp = path.with_suffix(".tmp")
        save_file({"sketch": sketch.contiguous()}, str(tmp))
        os.replace(tmp, path)
        line = {"round": report.round, "node_id": node_id, "signature": signature}
        with (self.folder / "kept.jsonl").open("a") as fh:
            fh.write(json.dumps({**line, "report": asdict(report)}, sort_keys=True) + "\n")

    def kept(self) -> list[KeptRound]:
        """Every kept reply, the last kept of each round and node (a resumed job keeps again)."""
        path = self.folder / "kept.jsonl"
        if not path.exists():
            return []
        found: dict[tuple[int, int], KeptRound] = {}
        for text in path.read_text().splitlines():
            if not text.strip():
                continue
            data = json.loads(text)
            kept = KeptRound(
                int(data["round"]),
                int(data["node_id"]),
                report_from_json(data["report"]),
                str(data["signature"]),
            )
            found[(kept.round, kept.node_id)] = kept
        return [found[key] for key in sorted(found)]

    def draw(self, job_id: str, flagged: Iterable[tuple[int, int]] = ()) -> list[KeptRound]:
        """The kept replies to replay: each provider's flagged (node, round) pairs first, then
        one of its rounds at random, drawn with the seed of every kept report's leaf."""
        kept = self.kept()
        by_key = {(k.account, k.round): k for k in kept}
        accounts = {k.node_id: k.account for k in kept}
        rounds: dict[str, list[int]] = {}
        for k in kept:
            rounds.setdefault(k.account, []).append(k.round)
        seed = sample_seed(job_id, (report_leaf(k.report, k.signature) for k in kept))
        marked = [(accounts[n], r) for n, r in flagged if n in accounts]
        return [by_key[pair] for pair in choose_rounds(seed, rounds, flagged=marked)]

    def replay(
        self,
        chosen: Iterable[KeptRound],
        *,
        reveal: Callable[[KeptRound], dict[str, Any] | None],
        inputs: Callable[[KeptRound, dict[str, Any] | None], RoundInputs],
        model: Any,
        tokenizer: Any,
    ) -> list[Verdict]:
        """Replay the chosen rounds, each provider's in order until its first failure, and
        write the evidence of each failure; the verdicts.

        `reveal` asks a round's worker for the AdamW state it resumed (None: it has none, or
        did not answer: the round is then `unrevealed`, not replayed); `inputs` gives the rest of the round's inputs (the checkpoint it
        started from, the job's records and hyperparameters).
        """
        verdicts: list[Verdict] = []
        failed: set[str] = set()
        for kept in chosen:
            if kept.account in failed:
                continue  # one failed replay is evidence enough
            state = reveal(kept) if kept.report.optimizer_digest else None  # "": it started afresh
            if state is None and kept.report.optimizer_digest:
                verdicts.append(unrevealed(kept))  # a crash or a refusal: no evidence of fraud
                continue
            round_inputs = inputs(kept, state)
            sketch = load_file(str(self._sketch_path(kept.round, kept.node_id)))["sketch"]
            verdict = verify_round(
                model,
                tokenizer,
                kept.report,
                round_inputs,
                None,
                sketch=(sketch, self.sketch_size),
            )
            verdicts.append(verdict)
            if not verdict.ok:
                failed.add(kept.account)
                document = evidence(kept.report, kept.signature, verdict)
                path = self.folder / f"evidence-round-{kept.round:06d}-node-{kept.node_id}.json"
                path.write_text(json.dumps(document, sort_keys=True, indent=1))
        return verdicts

    def _sketch_path(self, round_: int, node_id: int) -> Path:
        return self.folder / f"round-{round_:06d}-node-{node_id}.safetensors"


def unrevealed(kept: KeptRound) -> Verdict:
    """The verdict on a round whose worker did not show the AdamW state its report signs."""
    return Verdict(
        job_id=kept.report.job_id,
        round=kept.round,
        account=kept.account,
        node_id=kept.node_id,
        ok=False,
        relative=float("inf"),
        exact=False,
        reason="not replayed: the worker did not reveal the AdamW state its report signs",
        replay_seconds=0.0,
        replayed_digest="",
    )
