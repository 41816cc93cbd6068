"""The resident trainer: a provider's long-lived training process, and its local channel.

Flower 1.32 starts a fresh ClientApp process for every message. Training in that process would
pay, every round, a Python start, the training imports (torch, transformers, peft: seconds) and
the model load. `cairn worker start` therefore keeps one trainer beside its SuperNode
(`cairn.provider.host`) that holds a `RoundRunner` across rounds. The host runs its ClientApps
in its own threads and they call the trainer directly (`share_in_process`); a ClientApp in a
process of its own (a bare `flower-supernode` pointed at a trainer) hands it the round's content
over a Unix socket and returns its answer, and never imports torch.

The socket lives in a folder only the provider's user can open (0700), named to the ClientApp
by the SuperNode's node config (`trainer-socket`). One round is trained at a time, as the
SuperNode sends one message at a time.

The wire format is a frame: an 8-byte big-endian length, a JSON header, then the raw bytes of
the arrays the header lists. It carries a Flower `RecordDict` of ArrayRecords, ConfigRecords
and MetricRecords whose values are JSON scalars, which is all a round's task and reply hold.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from cairn.core.errors import CairnError, InvalidInput, Unavailable

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from cairn.provider.rounds import RoundRunner

log = logging.getLogger("cairn.trainer")

MAX_HEADER = 16 * 1024 * 1024  # bytes of JSON header a frame may carry
_LENGTH = struct.Struct(">Q")
_KINDS = {"arrays": ArrayRecord, "config": ConfigRecord, "metrics": MetricRecord}


# -- frames ----------------------------------------------------------------------------------


def pack(content: RecordDict, **fields: Any) -> bytes:
    """`content` (and JSON `fields`) as one frame."""
    records: dict[str, Any] = {}
    arrays: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, record in content.items():
        if isinstance(record, ArrayRecord):
            listed = []
            for key, array in record.items():
                listed.append(key)
                arrays.append(
                    {
                        "dtype": array.dtype,
                        "shape": list(array.shape),
                        "stype": array.stype,
                        "size": len(array.data),
                    }
                )
                blobs.append(array.data)
            records[name] = {"kind": "arrays", "keys": listed}
        elif isinstance(record, (ConfigRecord, MetricRecord)):
            kind = "config" if isinstance(record, ConfigRecord) else "metrics"
            values = dict(record.items())
            for key, value in values.items():
                if not isinstance(value, (str, int, float, bool)):
                    raise InvalidInput(f"{name}.{key} is not a JSON scalar")
            records[name] = {"kind": kind, "values": values}
        else:
            raise InvalidInput(f"{name} is a {type(record).__name__}, which frames do not carry")
    header = json.dumps({"fields": fields, "records": records, "arrays": arrays}).encode()
    return b"".join([_LENGTH.pack(len(header)), header, *blobs])


def unpack(frame: bytes) -> tuple[RecordDict, dict[str, Any]]:
    """The content and fields of a frame; `InvalidInput` if it is malformed."""
    try:
        (length,) = _LENGTH.unpack_from(frame)
        if length > MAX_HEADER:
            raise InvalidInput(f"frame header of {length} bytes is over {MAX_HEADER}")
        start = _LENGTH.size
        header = json.loads(frame[start : start + length])
        offset = start + length
        queue = list(header["arrays"])
        content = RecordDict()
        for name, spec in header["records"].items():
            kind = _KINDS[spec["kind"]]
            if kind is ArrayRecord:
                items = {}
                for key in spec["keys"]:
                    meta = queue.pop(0)
                    end = offset + int(meta["size"])
                    if end > len(frame):
                        raise InvalidInput("frame is shorter than its arrays")
                    items[str(key)] = Array(
                        dtype=str(meta["dtype"]),
                        shape=tuple(int(n) for n in meta["shape"]),
                        stype=str(meta["stype"]),
                        data=frame[offset:end],
                    )
                    offset = end
                content[name] = ArrayRecord(items)
            else:
                content[name] = kind(dict(spec["values"]))
        if queue or offset != len(frame):
            raise InvalidInput("frame arrays do not match its header")
        fields: dict[str, Any] = header["fields"]
    except InvalidInput:
        raise
    except (KeyError, TypeError, ValueError, IndexError, struct.error) as exc:
        raise InvalidInput(f"malformed frame: {exc!r}") from None
    return content, fields


def _send(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(frame)) + frame)


def _receive(sock: socket.socket) -> bytes:
    (size,) = _LENGTH.unpack(_read(sock, _LENGTH.size))
    return _read(sock, size)


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise Unavailable("the trainer closed the connection mid-frame")
        chunks.extend(chunk)
    return bytes(chunks)


# -- the ClientApp's side --------------------------------------------------------------------


def train_remotely(path: Path, content: RecordDict, node_id: int) -> RecordDict:
    """Hand a round's content to the resident trainer at `path`; its reply's content.

    Raises `Unavailable` if no trainer listens there, and `InvalidInput` with the trainer's
    error if the round failed. A trainer in this very process (the provider host runs its
    ClientApps in threads) is called directly: no copy of the parameters through the socket.
    """
    local = _IN_PROCESS.get(str(path))
    if local is not None:
        try:
            return local.train(content, node_id)
        except CairnError as exc:
            raise InvalidInput(exc.message) from None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise Unavailable(f"no resident trainer at {path}: {exc}") from None
        _send(sock, pack(content, node_id=node_id))
        reply, fields = unpack(_receive(sock))
    if fields.get("error"):
        raise InvalidInput(str(fields["error"]))
    return reply


# -- the trainer's side ----------------------------------------------------------------------

_IN_PROCESS: dict[str, TrainerServer] = {}  # socket path -> the trainer serving it in this process


class TrainerServer:
    """Serves rounds on a Unix socket from a thread, one at a time, with a resident runner."""

    def __init__(
        self, path: Path, work_dir: Path, account: LocalAccount, blob_source: Path | None = None
    ) -> None:
        self.path = path
        self.work_dir = work_dir
        self.blob_source = blob_source
        self.account = account
        self._runner: RoundRunner | None = None
        self._one_round = threading.Lock()  # one round at a time, from the socket or in-process
        self._building = threading.Lock()  # the runner is built once, by whoever asks first
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TrainerServer:
        """Listen at once; the training imports load in the background until the first round."""
        self.path.unlink(missing_ok=True)
        trainer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                trainer.serve(self.request)

        self._server = socketserver.UnixStreamServer(str(self.path), Handler)
        self.path.chmod(0o600)
        self._thread = threading.Thread(target=self._serve, name="cairn-trainer", daemon=True)
        self._thread.start()
        return self

    def share_in_process(self) -> TrainerServer:
        """Let `train_remotely` in this process call this trainer directly, not through its
        socket (the provider host, whose ClientApps run in its own threads)."""
        _IN_PROCESS[str(self.path)] = self
        return self

    def _serve(self) -> None:
        self.runner()  # load torch, transformers and peft before the first round asks
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.5)

    def runner(self) -> RoundRunner:
        """The resident runner (built on first use: importing it loads the training stack)."""
        with self._building:
            if self._runner is None:
                from cairn.provider.rounds import RoundRunner

                self._runner = RoundRunner(self.work_dir, blob_source=self.blob_source)
            return self._runner

    def serve(self, sock: socket.socket) -> None:
        """Answer one connection: one round in, its reply (or its error) out."""
        try:
            started = time.perf_counter()
            content, fields = unpack(_receive(sock))
            reply = self.train(content, int(fields["node_id"]))
            frame = pack(reply)
            log.info("round trained and answered in %.2f s", time.perf_counter() - started)
        except CairnError as exc:
            frame = pack(RecordDict(), error=exc.message)
        except Exception as exc:  # the ClientApp turns it into the round's error reply
            log.exception("a round failed in the resident trainer")
            frame = pack(RecordDict(), error=f"{type(exc).__name__}: {exc}")
        try:
            _send(sock, frame)
        except OSError:
            log.warning("the ClientApp left before its round's reply was sent")

    def train(self, content: RecordDict, node_id: int) -> RecordDict:
        """One round from its message content (as the ClientApp received it)."""
        from cairn.compute.records import RoundTask, task_params

        task = RoundTask.from_record(content["task"])  # type: ignore[arg-type]
        params = task_params(content)
        with self._one_round:
            return self.runner().run(task, params, self.account, node_id)

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        _IN_PROCESS.pop(str(self.path), None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)
