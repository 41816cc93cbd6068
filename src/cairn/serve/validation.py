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

import math
from dataclasses import dataclass

from cairn.core.errors import InvalidInput
from cairn.economy.receipts import (
    ReceiptBook,
    Transcripts,
    UsageReceipt,
    receipt_from_json,
    verify_receipt,
)
from cairn.serve.gateway import Gateway


@dataclass(frozen=True)
class ReceiptCheck:
    """What a receipt's replay found."""

    receipt_id: str
    model: int  # the model asset replayed (an app's receipt: the model it wraps)
    ok: bool
    tokens: int  # generated tokens the commitment covers
    relative: float | None  # the worst chunk's median relative error; None if not compared
    overlap: float | None  # the least share of a chunk's top places committed
    reason: str


class ReceiptValidator:
    """Replay receipts' transcripts on the models they name."""

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
