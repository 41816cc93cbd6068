"""Retrieval for apps: embed a dataset version's records once, find the passages for a question.

An app may answer over a dataset version. Each record becomes one passage (`passage_text`),
every passage is embedded with a sentence encoder (all-MiniLM-L6-v2 by default) into unit
vectors, and the index is stored by CID (`RetrievalIndex.to_blobs`): the vectors as one .npy
blob, the passages as JSON, and a small document naming both, the model that embedded them and
the dataset version they come from, with each passage's record hash so a passage names the
record it came from. At request time `Retriever` embeds the question and takes the top-k
passages by cosine similarity (a dot product: every vector is unit length), `app_passages`
keeps them within the app's token budget (`cairn.serve.passage_budget`), and
`augment_messages` puts them into the chat's system message.

A passage is embedded as the encoder sees it: texts past the encoder's context (256 tokens for
all-MiniLM-L6-v2) are cut for the embedding; the prompt takes a passage up to the budget.
Search is exact (brute force over the matrix): 10,000 passages of 384 floats are 15 MB and one
matrix-vector product, far below the cost of embedding the question.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cairn.core.errors import InvalidInput
from cairn.serve.app_spec import Retrieval
from cairn.serve.backends.base import Backend, ServedModel, check_messages
from cairn.serve.passage_budget import Passage, fit_passages, passages_block
from cairn.store.base import BlobStore

SCHEMA = "cairn.retrieval/v1"
NORM_TOLERANCE = 1e-3  # how far from 1 a stored vector's length may be (float32 rounding)
NO_RECORDS = "the dataset version has no records to retrieve from"

Vectors = npt.NDArray[np.float32]
# texts -> one vector per text, e.g. `lambda texts: backend.embed(model, texts)[0]`
Embed = Callable[[list[str]], list[list[float]] | Vectors]


def passage_text(record: dict[str, Any]) -> str:
    """One record as text: "field: value" lines by field name, strings as is, others as JSON.

    Empty values (None, blank strings, empty lists and objects) are left out, and so are the
    fields starting with "_" that `Anchoring.records` adds (contributor, record hash): they
    say who gave the record, not what it says.
    """
    lines = []
    for field in sorted(record):
        value = record[field]
        if field.startswith("_") or _is_empty(value):
            continue
        text = value if isinstance(value, str) else _compact_json(value)
        lines.append(f"{field}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class RetrievalIndex:
    """Passages and their unit vectors, from one embedding model over one dataset version."""

    passages: list[str]
    vectors: Vectors  # (N, D) float32, each row of length 1; read-only
    model: str  # the embedding model that made the vectors (queries must use the same one)
    version: str  # the dataset version's manifest CID
    # the record hash of each passage (None in indexes stored before they were kept)
    records: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        vectors = self.vectors
        if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32:
            raise InvalidInput("a retrieval index's vectors must be a float32 numpy array")
        if vectors.ndim != 2 or vectors.shape[0] < 1 or vectors.shape[1] < 1:
            raise InvalidInput(
                f"a retrieval index's vectors must be a non-empty (N, D) matrix; "
                f"got shape {vectors.shape}"
            )
        if len(self.passages) != vectors.shape[0]:
            raise InvalidInput(
                f"a retrieval index has {len(self.passages)} passages "
                f"but {vectors.shape[0]} vectors"
            )
        if not all(isinstance(p, str) for p in self.passages):
            raise InvalidInput("a retrieval index's passages must all be strings")
        if not self.model or not self.version:
            raise InvalidInput("a retrieval index must name its embedding model and version")
        if self.records is not None and len(self.records) != len(self.passages):
            raise InvalidInput(
                f"a retrieval index has {len(self.passages)} passages "
                f"but {len(self.records)} record hashes"
            )
        if self.records is not None and not all(isinstance(r, str) for r in self.records):
            raise InvalidInput("a retrieval index's record hashes must all be strings")
        norms = np.linalg.norm(vectors, axis=1)  # (N,)
        off = np.flatnonzero(~(np.abs(norms - 1.0) <= NORM_TOLERANCE))
        if off.size:
            raise InvalidInput(
                f"a retrieval index's vectors must have length 1; "
                f"vector {int(off[0])} has length {float(norms[off[0]]):.4g}"
            )
        frozen = vectors.view()  # shared between threads through `Retriever`: read-only
        frozen.flags.writeable = False
        object.__setattr__(self, "vectors", frozen)

    @property
    def dim(self) -> int:
        """The length of each vector."""
        return int(self.vectors.shape[1])

    def search(self, query_vector: Sequence[float] | Vectors, k: int) -> list[tuple[int, float]]:
        """The k best (passage index, score) pairs, best first; equal scores by lower index.

        The score is the dot product with `query_vector`: the cosine when the query is unit
        length (the order is the same either way). k beyond the passages is cut to them.
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1; got {k}")
        query = np.asarray(query_vector, dtype=np.float32)
        if query.shape != (self.dim,):
            raise InvalidInput(
                f"the query vector must have {self.dim} numbers (model {self.model}); "
                f"got shape {query.shape}"
            )
        scores = self.vectors @ query  # (N,)
        n = scores.shape[0]
        k = min(k, n)
        if k < n:
            # the k-th best score, then everything at least as good: ties at the cut stay in
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            candidates = np.flatnonzero(scores >= kth)
        else:
            candidates = np.arange(n)
        # lexsort sorts by its last key first: score descending, then index ascending
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        return [(int(i), float(scores[i])) for i in order]

    def to_blobs(self, store: BlobStore) -> str:
        """Store the vectors (.npy), the passages (JSON) and the document; return its CID."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(self.vectors, dtype="<f4"), allow_pickle=False)
        document = {
            "schema": SCHEMA,
            "model": self.model,
            "version": self.version,
            "dim": self.dim,
            "count": len(self.passages),
            "vectors": store.put(buffer.getvalue()),
            "passages": store.put_json(self.passages),
        }
        if self.records is not None:
            document["records"] = store.put_json(list(self.records))
        return store.put_json(document)

    @staticmethod
    def blob_cids(store: BlobStore, cid: str) -> list[str]:
        """The CIDs the index document `cid` names: vectors, passages and record hashes."""
        document = store.get_json(cid)
        return [str(document[k]) for k in ("vectors", "passages", "records") if k in document]

    @classmethod
    def from_blobs(cls, store: BlobStore, cid: str) -> RetrievalIndex:
        """The index stored under `cid`, every blob verified and every shape checked."""
        document = store.get_json(cid)

        def damaged(why: str) -> InvalidInput:
            return InvalidInput(f"blob {cid} is not a usable retrieval index: {why}")

        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            schema = document.get("schema") if isinstance(document, dict) else None
            raise damaged(f"its schema is {schema!r}, expected {SCHEMA!r}")
        for key, kind in (("model", str), ("version", str), ("vectors", str), ("passages", str)):
            if not isinstance(document.get(key), kind):
                raise damaged(f"'{key}' must be a string")
        count, dim = document.get("count"), document.get("dim")
        if type(count) is not int or type(dim) is not int or count < 1 or dim < 1:
            raise damaged(f"'count' and 'dim' must be positive integers; got {count!r}, {dim!r}")
        try:
            vectors = np.load(io.BytesIO(store.get(document["vectors"])), allow_pickle=False)
        except ValueError as error:  # not .npy, or an object array
            raise damaged(f"its vectors are not a .npy array: {error}") from error
        if vectors.dtype != np.dtype("<f4") or vectors.shape != (count, dim):
            raise damaged(
                f"its vectors are {vectors.dtype} {vectors.shape}, "
                f"expected float32 ({count}, {dim})"
            )
        passages = store.get_json(document["passages"])
        if not isinstance(passages, list) or len(passages) != count:
            got = len(passages) if isinstance(passages, list) else type(passages).__name__
            raise damaged(f"expected a list of {count} passages; got {got}")
        records = None
        if "records" in document:
            if not isinstance(document["records"], str):
                raise damaged("'records' must be a string")
            records = store.get_json(document["records"])
            if not isinstance(records, list):
                raise damaged(f"its record hashes are a {type(records).__name__}, not a list")
            records = tuple(records)
        try:
            return cls(passages, vectors, document["model"], document["version"], records)
        except InvalidInput as error:
            raise damaged(error.message) from error


def build_index(
    records: list[dict[str, Any]],
    embed: Embed,
    *,
    model: str,
    version: str,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> RetrievalIndex:
    """Embed each record's passage, `batch_size` at a time, into an index.

    Records with no text (`passage_text` is empty) are left out. Each passage keeps its record's
    hash (`_record_hash`, as `Anchoring.records` gives it) when every record has one.
    `progress(done, total)` is called after each batch, counting passages.
    """
    if batch_size < 1:
        raise InvalidInput(f"batch_size must be at least 1; got {batch_size}")
    kept = [(text, record) for record in records if (text := passage_text(record))]
    passages = [text for text, _ in kept]
    if not passages:
        raise InvalidInput(NO_RECORDS)
    hashes = [record.get("_record_hash") for _, record in kept]
    record_hashes = tuple(map(str, hashes)) if all(hashes) else None
    total = len(passages)
    vectors: Vectors | None = None
    for start in range(0, total, batch_size):
        batch = passages[start : start + batch_size]
        got = np.asarray(embed(batch), dtype=np.float32)  # (B, D)
        if got.ndim != 2 or got.shape[0] != len(batch) or got.shape[1] < 1:
            raise InvalidInput(
                f"model {model}: embedding {len(batch)} passages gave shape {got.shape}"
            )
        if vectors is None:
            vectors = np.empty((total, got.shape[1]), dtype=np.float32)  # (N, D)
        elif got.shape[1] != vectors.shape[1]:
            raise InvalidInput(
                f"model {model}: vectors changed length from {vectors.shape[1]} "
                f"to {got.shape[1]} at passage {start}"
            )
        vectors[start : start + len(batch)] = unit_rows(got, first=start)
        if progress is not None:
            progress(start + len(batch), total)
    assert vectors is not None  # total >= 1, so the loop ran
    return RetrievalIndex(passages, vectors, model, version, record_hashes)


def unit_rows(vectors: Vectors, first: int = 0) -> Vectors:
    """`vectors` (B, D) scaled to length 1; a zero or non-finite row is an `InvalidInput`."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (B, 1)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        raise InvalidInput(
            f"passage {first + int(bad[0])}: its embedding is zero or not finite, "
            "so it has no direction to compare"
        )
    return (vectors / norms).astype(np.float32)


def augment_messages(
    messages: list[dict[str, str]], system_prompt: str | None, passages: list[str]
) -> list[dict[str, str]]:
    """The chat with the app's instructions and passages in one leading system message.

    That message holds, in order and separated by blank lines: the app's system prompt, the
    caller's own leading system message (the app speaks first; the caller's words are kept),
    and the numbered passages, last so they sit next to the question. The rest of the chat
    follows unchanged. With nothing to add, the chat is returned as it came (as a new list).
    """
    check_messages(messages)
    rest = [dict(m) for m in messages]
    parts = [system_prompt] if system_prompt and system_prompt.strip() else []
    if rest[0]["role"] == "system":
        own = rest.pop(0)["content"]
        if own.strip():
            parts.append(own)
    if passages:
        parts.append(passages_block(passages))
    if not parts:
        return rest
    return [{"role": "system", "content": "\n\n".join(parts)}, *rest]


def app_passages(
    retriever: Retriever, retrieval: Retrieval, question: str, backend: Backend, model: ServedModel
) -> list[Passage]:
    """The passages an app over `retrieval` puts before `question` when its chat model is
    `model` on `backend`: the top_k, within the app's budget in that model's tokens."""
    if not question.strip():
        return []
    found = retriever.find(retrieval.index, question, retrieval.top_k)
    budget = retrieval.context_budget(backend.context_length(model))
    return fit_passages(found, budget, lambda text: backend.count_tokens(model, text))


class Retriever:
    """Finds passages for a question in stored indexes, keeping the last few indexes loaded.

    Safe to share between threads: the cache is locked; an index is loaded outside the lock
    (two threads asking for the same new index may both load it; one copy is kept).
    """

    def __init__(self, store: BlobStore, embed: Embed, *, model: str, capacity: int = 4) -> None:
        if capacity < 1:
            raise InvalidInput(f"capacity must be at least 1; got {capacity}")
        self.store = store
        self.embed = embed
        self.model = model  # indexes made by another model are refused: their space differs
        self.capacity = capacity
        self._indexes: OrderedDict[str, RetrievalIndex] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, cid: str) -> RetrievalIndex:
        """The index stored under `cid`, from the cache or the store."""
        with self._lock:
            if cid in self._indexes:
                self._indexes.move_to_end(cid)
                return self._indexes[cid]
        index = RetrievalIndex.from_blobs(self.store, cid)
        if index.model != self.model:
            raise InvalidInput(
                f"retrieval index {cid} was embedded with model {index.model}, "
                f"but this retriever embeds questions with model {self.model}"
            )
        with self._lock:
            index = self._indexes.setdefault(cid, index)
            self._indexes.move_to_end(cid)
            while len(self._indexes) > self.capacity:
                self._indexes.popitem(last=False)
        return index

    def loaded(self) -> list[str]:
        """The CIDs of the indexes held in memory, least recently used first."""
        with self._lock:
            return list(self._indexes)

    def retrieve(self, index_cid: str, query: str, k: int) -> list[str]:
        """The texts of the k passages of the index nearest to `query`, best first."""
        return [p.text for p in self.find(index_cid, query, k)]

    def find(self, index_cid: str, query: str, k: int) -> list[Passage]:
        """The k passages of the index nearest to `query`, best first, with their records."""
        if not query.strip():
            raise InvalidInput("the question to retrieve passages for is empty")
        index = self.index(index_cid)
        got = np.asarray(self.embed([query]), dtype=np.float32)  # (1, D)
        if got.shape != (1, index.dim):
            raise InvalidInput(
                f"model {self.model}: embedding the question gave shape {got.shape}, "
                f"expected (1, {index.dim})"
            )
        norm = float(np.linalg.norm(got[0]))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidInput(
                f"model {self.model}: the question's embedding is zero or not finite"
            )
        vector = got[0] / norm  # (D,)
        records = index.records
        return [
            Passage(i, records[i] if records else None, index.passages[i], score)
            for i, score in index.search(vector, k)
        ]


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict | tuple) and not value


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
