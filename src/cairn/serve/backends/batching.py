"""Continuous batching: the generations running on one model share one decoding loop.

A `BatchEngine` runs a model's loop thread. A generation's `BatchedSequence` queues until the
batch has room (`MAX_BATCH`), then joins between two steps: its prompt is read alone (prefill),
and from the next step on it decodes with the others, one token each per forward pass (one pass
per LoRA adapter key: the runner switches adapters). Each keeps its own sampling parameters and
`torch.Generator`; the loop ends it at an end token or max_tokens, its reader at a stop string
(`token_deltas`) or by closing it.

Exactness. A sequence's tokens do not depend on its companions: greedy decoding in a batch gives
the same token ids, and a seed the same sample, as decoding alone. Attention never mixes
sequences: each row reads only its own keys (`kernels.ragged_attention`, a `SequenceKV` each), so
no sum holds padding. Every row of a step goes through the same matmul kernel: a GEMM sums a row in
an order set by its kernel, and picks the kernel by the row count (MKL another for one to three
rows, and with two threads for any count below twelve that is not a multiple of four; oneDNN
another for one row), so the runner pads a step's rows to a multiple of four. Sampling is per
row, with the sequence's own generator. Checked on CPU; a GPU's matmuls may differ in the last
bits between batch sizes.

Readers. The loop never waits on one: a sequence whose buffer (`STREAM_BUFFER` tokens) is full
sits the steps out, keeping its slot and cache, until its reader takes a token; after
`READER_PATIENCE_S` without one it loses them, and its reader gets what was buffered, then
`Unavailable`. Closing a generation ends its sequence at once; the slot is free by the next step.

The thread starts with the first sequence, blocks on a condition while there is nothing to run,
and ends after `IDLE_SECONDS` without work, or as soon as its engine is collected (the model was
evicted and its last generation is gone): it holds its engine only while it works. A long
prompt's prefill delays the others' next token by its length (no chunked prefill).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterator, Sequence
from typing import Any, Protocol

import torch

from cairn.core.errors import Unavailable
from cairn.serve.backends.base import Generation, SamplingParams
from cairn.serve.backends.deltas import token_deltas
from cairn.verify.inference import Committer, Transcript

MAX_BATCH = 16  # sequences holding a slot (and a KV cache); later ones wait, first come first in
STREAM_BUFFER = 64  # tokens a sequence may run ahead of its reader before it sits steps out
READER_PATIENCE_S = 60.0  # a reader that takes no token for this long loses its sequence
IDLE_SECONDS = 10.0  # the loop thread ends after this long with nothing to run


class BatchedSequence:
    """One generation inside the engine: prompt, sampling, the runner's cache, the token buffer."""

    def __init__(
        self,
        prompt: list[int],
        params: SamplingParams,
        ends: set[int],  # end-of-sequence tokens
        device: torch.device,
        adapter: Hashable | None = None,  # a LoRA adapter's key; None for the base model
        commit: bool = False,  # record the states behind its tokens (the runner gives them)
    ) -> None:
        self.prompt, self.params, self.ends, self.adapter = prompt, params, ends, adapter
        self.rng = torch.Generator(device=device)
        if params.seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(params.seed)
        # the runner's, touched only on the loop thread
        self.cache: Any = None  # this sequence's KV state
        self.length = 0  # tokens in the cache
        self.last = -1  # the newest token: the next decoding step's input
        # the engine's, under its lock
        self.produced = 0  # tokens sampled
        self.tokens: deque[int] = deque()  # sampled, not yet read
        self.ready: threading.Condition | None = None  # readers wait on it (the engine's lock)
        self.ended = False  # no more tokens will be sampled
        self.error: BaseException | None = None  # why it ended, if it failed
        self.full_since: float | None = None  # when its buffer filled, while it stays full
        # the states behind its tokens, for the receipt's commitment: its reader stops at most
        # STREAM_BUFFER tokens (and the one a step adds) behind the last one sampled
        self.committer = Committer(lag=STREAM_BUFFER + 2) if commit else None


class Runner(Protocol):
    """What the engine asks of a model: the logits that follow each sequence's tokens."""

    def prefill(self, sequence: BatchedSequence) -> torch.Tensor:
        """Read the prompt into a new cache; the logits of the first token, (V,)."""

    def decode(self, sequences: list[BatchedSequence]) -> torch.Tensor:
        """Feed each sequence its `last` token (all share one adapter); the next logits, (n, V)."""

    def states(self, n: int) -> torch.Tensor:
        """The last hidden states behind the last call's `n` rows of logits, (n, width), float32
        on the CPU (a sequence's `committer` takes them)."""


class BatchEngine:
    """One model's decoding loop: sequences join between steps and leave when done or closed."""

    def __init__(
        self,
        runner: Runner,
        name: str,  # the model, for the thread's name
        idle_seconds: float = IDLE_SECONDS,
        reader_patience_s: float = READER_PATIENCE_S,
    ) -> None:
        self.runner, self.name = runner, name
        self.idle_seconds, self.reader_patience_s = idle_seconds, reader_patience_s
        # reentrant: the finalizer below may run on a thread that holds it
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._waiting: deque[BatchedSequence] = deque()
        self._active: list[BatchedSequence] = []
        self.thread: threading.Thread | None = None  # the loop thread, while it runs
        self._idle_since: float | None = None
        # once this engine is collected, its waiting thread wakes to find it gone and ends
        weakref.finalize(self, _wake, self._work)

    def submit(self, sequence: BatchedSequence) -> None:
        """Queue `sequence` to join the batch; starts the loop thread if it is not running."""
        with self._lock:
            if sequence.ended:
                return
            sequence.ready = threading.Condition(self._lock)
            self._waiting.append(sequence)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=_serve,
                    args=(weakref.ref(self), self._work),
                    name=f"cairn-batch {self.name}",
                    daemon=True,
                )
                self.thread.start()
            self._work.notify()

    def tokens(self, sequence: BatchedSequence) -> Iterator[int]:
        """The sequence's tokens as they are sampled; raises the error it ended with, if any."""
        while True:
            with self._lock:
                while not sequence.tokens and not sequence.ended:
                    assert sequence.ready is not None, "a sequence is read only once submitted"
                    sequence.ready.wait()
                if not sequence.tokens:
                    if sequence.error is not None:
                        raise sequence.error
                    return
                if sequence.full_since is not None:
                    self._work.notify()  # it can decode again
                token = sequence.tokens.popleft()
            yield token

    def cancel(self, sequence: BatchedSequence) -> None:
        """End `sequence` now and drop what its reader has not read; safe to call twice."""
        with self._lock:
            sequence.tokens.clear()
            self._end(sequence)
            sequence.error = None  # its reader left: nobody to tell
            if sequence in self._waiting:
                self._waiting.remove(sequence)
            self._work.notify()

    # --- the loop ---------------------------------------------------------------------------

    def _end(self, sequence: BatchedSequence, error: BaseException | None = None) -> None:
        if not sequence.ended:
            sequence.ended, sequence.error = True, error
        if sequence.ready is not None:
            sequence.ready.notify_all()

    def _plan(self) -> tuple[list[BatchedSequence], list[BatchedSequence]] | float | None:
        """Under the lock: the next round's (joining, decoding) sequences; else the seconds to
        wait for work, or None when the thread has been idle long enough to end."""
        now = time.monotonic()
        for sequence in self._active:
            if len(sequence.tokens) < STREAM_BUFFER:
                sequence.full_since = None
            elif sequence.full_since is None:
                sequence.full_since = now
            elif now - sequence.full_since >= self.reader_patience_s:
                stalled = f"its reader took no token for {self.reader_patience_s:g} s"
                self._end(sequence, Unavailable(f"{self.name}: generation dropped: {stalled}"))
        for sequence in [s for s in self._active if s.ended]:
            self._active.remove(sequence)
            sequence.cache = None  # the loop thread frees caches: no forward pass is using it
        joining = []
        while self._waiting and len(self._active) < MAX_BATCH:
            joining.append(self._waiting.popleft())
            self._active.append(joining[-1])
        decoding = [s for s in self._active if s.length > 0 and s.full_since is None]
        if joining or decoding:
            self._idle_since = None
            return joining, decoding
        if self._active:  # every reader is behind: wait for one, or for its patience to end
            self._idle_since = None
            return min(s.full_since or now for s in self._active) + self.reader_patience_s - now
        self._idle_since = self._idle_since or now
        left = self._idle_since + self.idle_seconds - now
        if left > 0:
            return left
        self.thread = None
        return None

    def _run(self, joining: list[BatchedSequence], decoding: list[BatchedSequence]) -> None:
        """One round, outside the lock: prefill the newcomers, then one step per adapter."""
        for sequence in joining:
            self._step([sequence], lambda group: self.runner.prefill(group[0])[None])
        groups: dict[Hashable | None, list[BatchedSequence]] = {}
        for sequence in decoding:
            groups.setdefault(sequence.adapter, []).append(sequence)
        for group in groups.values():
            self._step(group, self.runner.decode)

    def _step(self, group: list[BatchedSequence], forward: Callable[..., torch.Tensor]) -> None:
        """`forward` over the group (its logits, (n, V)), one token sampled for each sequence."""
        try:
            with torch.inference_mode():
                logits = forward(group)  # (n, V)
                if any(s.committer is not None for s in group):
                    for s, state in zip(group, self.runner.states(len(group)), strict=True):
                        if s.committer is not None:
                            s.committer.add(state[None])
                sampled = [
                    next_token(row, s.params.temperature, s.params.top_p, s.rng)
                    for row, s in zip(logits, group, strict=True)
                ]
        except Exception as exc:  # the model failed these sequences; the others go on
            with self._lock:
                for sequence in group:
                    self._end(sequence, exc)
            return
        with self._lock:
            for sequence, token in zip(group, sampled, strict=True):
                sequence.last = token
                if sequence.ended:
                    continue  # closed during the step: its token goes nowhere
                sequence.produced += 1
                sequence.tokens.append(token)
                if token in sequence.ends or sequence.produced >= sequence.params.max_tokens:
                    self._end(sequence)
                elif sequence.ready is not None:
                    sequence.ready.notify()


def _serve(ref: weakref.ref[BatchEngine], work: threading.Condition) -> None:
    """The loop thread: rounds while there is work, a wait on `work` while there is none. It
    holds no reference to its engine while it waits, so a collected engine ends it."""
    while True:
        with work:
            engine = ref()
            if engine is None:
                return
            plan = engine._plan()
            if plan is None:
                return
            if isinstance(plan, float):
                del engine  # if that was the last reference, the finalizer has just run
                if ref() is not None:
                    work.wait(plan)
                continue
        engine._run(*plan)
        del engine


def _wake(work: threading.Condition) -> None:
    with work:
        work.notify_all()


def next_token(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> int:
    """Draw the next token from `logits` (V,): greedy at temperature 0, else nucleus sampling."""
    if temperature == 0.0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (V,)
    if top_p < 1.0:
        probs, order = probs.sort(descending=True)
        outside = probs.cumsum(0) - probs >= top_p  # mass before the token already reaches top_p
        outside[0] = False  # the most likely token is always kept
        probs = probs.masked_fill(outside, 0.0)
        return int(order[torch.multinomial(probs, 1, generator=rng)])
    return int(torch.multinomial(probs, 1, generator=rng))


class BatchedGeneration(Generation):
    """A generation whose tokens come from its model's `BatchEngine`, decoded incrementally and
    cut at stop strings. It joins the batch when first read."""

    def __init__(
        self,
        engine: BatchEngine,
        sequence: BatchedSequence,
        decode: Callable[[Sequence[int]], str],  # token ids -> text, special tokens skipped
    ) -> None:
        self.prompt_tokens = len(sequence.prompt)
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.token_ids: list[int] = []  # the completion's tokens read so far
        self._engine, self._sequence, self._decode = engine, sequence, decode
        self._started = self._closed = False

    def __iter__(self) -> Iterator[str]:
        if self._started or self._closed:
            return iter(())
        self._started = True
        return self._deltas()

    def close(self) -> None:
        self._closed = True
        self._engine.cancel(self._sequence)  # a reader in another thread sees the end

    def _deltas(self) -> Generator[str, None, None]:
        sequence = self._sequence
        self._engine.submit(sequence)
        try:
            yield from token_deltas(
                self, self._tokens(), sequence.ends, self._decode, sequence.params
            )
        finally:
            self._engine.cancel(sequence)  # a stop string or an early exit frees the slot now

    def transcript(self) -> Transcript | None:
        """The prompt, the tokens read and the commitment to their states (None if it has no
        committer or read nothing)."""
        committer = self._sequence.committer
        if committer is None:
            return None
        commitment = committer.commit(len(self.token_ids))
        if commitment is None:
            return None
        return Transcript(tuple(self._sequence.prompt), tuple(self.token_ids), commitment)

    def _tokens(self) -> Iterator[int]:
        for token in self._engine.tokens(self._sequence):
            self.token_ids.append(token)
            yield token
