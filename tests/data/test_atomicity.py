"""An upload is atomic: a writer killed mid-upload leaves nothing, and the retry stores it once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cairn.data.models import RecordRow, UploadRow
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node
from tests.data.conftest import dev, make_dataset, pair

WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from cairn.data import contributions
    from cairn.node import open_node

    data_dir, job = sys.argv[1], json.loads(open(sys.argv[2]).read())
    node = open_node(data_dir, port=1)
    open(os.path.join(data_dir, "anvil.pid"), "w").write(str(node.backend.process._proc.pid))
    real = contributions.insert_records

    def insert_then_die(session, rows):
        real(session, rows[: contributions.INSERT_CHUNK])  # the first chunk is written...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the writer dies inside the transaction

    contributions.insert_records = insert_then_die
    node.data.contributions.contribute(
        job["dataset"], contributor=job["contributor"], nonce=job["nonce"], signature=job["signature"], lines=job["lines"]
    )
    """
)


def counts(node: Node, dataset_id: int) -> tuple[int, int]:
    with node.db.session() as session:
        uploads = session.scalar(
            select(func.count()).select_from(UploadRow).where(UploadRow.dataset_id == dataset_id)
        )
        records = session.scalar(
            select(func.count()).select_from(RecordRow).where(RecordRow.dataset_id == dataset_id)
        )
    return int(uploads or 0), int(records or 0)


@pytest.mark.process
@pytest.mark.slow
def test_a_writer_killed_mid_upload_leaves_nothing_and_the_retry_is_idempotent(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    data_dir = tmp_path / "node"
    node = make_node(data_dir, chain="anvil")
    owner, contributor = dev(node, "alice"), dev(node, "bob")
    dataset = make_dataset(node, owner, review={"review_share": 0.0})
    lines = [json.dumps(pair(i)) for i in range(1_200)]
    typed = node.data.contributions.typed_data(dataset.asset_id, records_root(lines), 4242)
    job = {
        "dataset": dataset.asset_id,
        "contributor": contributor.address,
        "nonce": 4242,
        "signature": sign_contribution(contributor, typed),
        "lines": lines,
    }
    node.close()
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "writer.py").write_text(WRITER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "writer.py"), str(data_dir), str(tmp_path / "job.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    pid_file = data_dir / "anvil.pid"
    if pid_file.exists():  # the killed writer could not stop its anvil: stop it, wait for it
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    again = make_node(data_dir, chain=None)
    assert counts(again, dataset.asset_id) == (0, 0)  # no half-stored upload
    send = again.data.contributions.contribute
    first = send(
        dataset.asset_id,
        contributor=job["contributor"],
        nonce=4242,
        signature=job["signature"],
        lines=lines,
    )
    assert not first.replayed and first.accepted == 1_200
    retry = send(
        dataset.asset_id,
        contributor=job["contributor"],
        nonce=4242,
        signature=job["signature"],
        lines=lines,
    )
    assert retry.replayed and counts(again, dataset.asset_id) == (1, 1_200)
