"""The Flower ServerApp of a Cairn job: the node starts one Flower run per job (and per resume).

The run config names the job's folder (`job-dir`); `Coordinator` does the rounds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from cairn.compute.coordinator import Coordinator
from cairn.compute.flower_processes import quicken_object_pulls
from cairn.compute.jobdir import JobDir
from cairn.core.children import exit_when_orphaned

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the job named by the run config's `job-dir`."""
    exit_when_orphaned()  # a node killed by SIGKILL leaves no ServerApp behind
    quicken_object_pulls()  # the workers' replies are pulled as soon as they are pushed
    job = JobDir(Path(str(context.run_config["job-dir"])))
    run_id = int(grid.run.run_id)
    if job.run_id() == run_id:  # the node restarts the run if this process dies before its end
        job.set_process(run_id)
    Coordinator(grid, job, run_id).run()
