"""A job's checkpoints: the global parameters and the outer optimizer's state after each round.

The ServerApp writes one per round into the job's folder (`JobDir.checkpoints`) and, after a
node restart, resumes from the newest whole one. Apart from `JobDir` because only the ServerApp
needs torch: the node reads a job's folder without loading it.

    checkpoints/round-000007.safetensors   global trainable parameters after round 7
    checkpoints/round-000007.outer         the outer optimizer's state (cairn.core.diloco)
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from cairn.compute.jobdir import JobDir, atomic_write
from cairn.core.aggregation import Tensors
from cairn.core.diloco import OuterState, state_from_bytes, state_to_bytes


def save_checkpoint(job: JobDir, round_: int, params: Tensors, state: OuterState) -> Path:
    """Write the global parameters and outer state after `round_` (1-based)."""
    job.checkpoints.mkdir(parents=True, exist_ok=True)
    stem = job.checkpoints / f"round-{round_:06d}"
    tmp = stem.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in params.items()}, str(tmp))
    atomic_write(stem.with_suffix(".outer"), state_to_bytes(state))
    os.replace(tmp, stem.with_suffix(".safetensors"))  # last: it marks the checkpoint whole
    return stem.with_suffix(".safetensors")


def latest_checkpoint(job: JobDir) -> tuple[int, Tensors, OuterState] | None:
    """The newest whole checkpoint: (round, params, outer state), or None."""
    done = sorted(job.checkpoints.glob("round-*.safetensors"))
    if not done:
        return None
    path = done[-1]
    round_ = int(path.stem.split("-")[1])
    state = state_from_bytes(path.with_suffix(".outer").read_bytes())
    return round_, load_file(str(path)), state
