"""Validate a usage receipt: replay its transcript on the advertised model, check its commitment.

A charged chat or completion's receipt carries the gateway's commitment to the model's hidden
states and the CID of its transcript (`cairn.economy.receipts`). `ReceiptValidator.check`
verifies the gateway's signature, reads the transcript, resolves the model the receipt names
(an app's: the chat model it wraps), reads the transcript on it in one pass and compares
(`cairn.verify.inference`): a gateway that served another checkpoint, a quantised copy, the base
instead of a fine-tune or another prompt fails. `cairn verify receipts` runs the same check on
the caller's machine, from what the API publishes.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

from cairn.core.errors import CairnError, InvalidInput
from cairn.economy.receipts import (
    ReceiptBook,
    Transcripts,
    UsageReceipt,
    receipt_from_json,
    verify_receipt,
)
from cairn.serve.gateway import Gateway

log = logging.getLogger(__name__)
SAMPLE_PER_BATCH = 2  # committed receipts of each anchored batch the node replays itself


@dataclass(frozen=True)
class ReceiptCheck:
    """What a receipt's replay found."""

    receipt_id: str
    model: int  # the model asset replayed (an app's receipt: the model it wraps)
    ok: bool | None  # None: it could not be replayed here (its model gone or not served here)
    tokens: int  # generated tokens the commitment covers
    relative: float | None  # the worst chunk's median relative error; None if not compared
    overlap: float | None  # the least share of a chunk's top places committed
    reason: str


class ReceiptValidator:
    """Replay receipts' transcripts on the models they name; the node's own sample of each
    anchored batch (`check_sampled`, a scheduler task)."""

    def __init__(self, gateway: Gateway, receipts: ReceiptBook, transcripts: Transcripts) -> None:
        self.gateway, self.receipts, self.transcripts = gateway, receipts, transcripts

    def receipt(self, receipt_id: str) -> UsageReceipt:
        """A stored receipt, its gateway's signature checked; InvalidInput if it commits to
        nothing a validator can replay."""
        stored = self.receipts.get(receipt_id)
        receipt = receipt_from_json(stored.receipt)
        verify_receipt(receipt, stored.signature)
        if not receipt.commitment or not receipt.transcript:
            raise InvalidInput(
                f"usage receipt {receipt_id} commits to no hidden states: only chats and "
                "completions that this node's models generated carry a commitment"
            )
        return receipt

    def model_of(self, receipt: UsageReceipt) -> int:
        """The model asset a receipt's generation ran on (an app's: the model it wraps)."""
        app = self.gateway.app(str(receipt.model))
        return receipt.model if app is None else app[1].model

    def check_sampled(self, per_batch: int = SAMPLE_PER_BATCH) -> list[ReceiptCheck]:
        """Replay `per_batch` committed receipts of the oldest anchored batch not sampled yet,
        drawn from its root (anyone can redraw the same ones), and store what each found."""
        found = self.receipts.unchecked_batch()
        if found is None:
            return []
        batch_id, root, committed = found
        drawn = random.Random(root).sample(committed, min(per_batch, len(committed)))
        checks = []
        for receipt_id in drawn:
            try:
                checks.append(self.check(receipt_id))
            except CairnError as exc:  # the model is gone, or no longer served here
                checks.append(ReceiptCheck(receipt_id, 0, None, 0, None, None, exc.message))
        for check in checks:
            if check.ok is False:
                log.warning(
                    "usage receipt %s failed its replay: %s", check.receipt_id, check.reason
                )
        self.receipts.record_checks(
            batch_id,
            {
                c.receipt_id: {"ok": c.ok, "relative": c.relative, "reason": c.reason}
                for c in checks
            },
        )
        return checks

    def check(self, receipt_id: str) -> ReceiptCheck:
        """Replay one receipt's transcript on its model and compare."""
        from cairn.verify.inference import Commitment, Transcript  # torch: with the model

        receipt = self.receipt(receipt_id)
        model = self.model_of(receipt)
        prompt, completion = self.transcripts.get(receipt.transcript)

        def failed(reason: str) -> ReceiptCheck:
            return ReceiptCheck(receipt_id, model, False, len(completion), None, None, reason)

        if (len(prompt), len(completion)) != (receipt.prompt_tokens, receipt.completion_tokens):
            return failed(
                f"the transcript holds {len(prompt)} prompt and {len(completion)} completion "
                f"tokens; the receipt charged {receipt.prompt_tokens} and "
                f"{receipt.completion_tokens}"
            )
        try:
            commitment = Commitment.decode(receipt.commitment)
        except ValueError as exc:
            return failed(f"the commitment is malformed: {exc}")
        served = self.gateway.resolve(str(model))
        verdict = served.backend.verify(served.model, Transcript(prompt, completion, commitment))
        relative = verdict.relative if math.isfinite(verdict.relative) else None
        return ReceiptCheck(
            receipt_id, model, verdict.ok, verdict.tokens, relative, verdict.overlap, verdict.reason
        )
