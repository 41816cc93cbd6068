"""A generation whose charge is settled exactly once, however it ends.

The gateway holds a request's largest possible cost before it generates; `Metered` closes that
hold with the tokens actually produced when the generation ends or its consumer stops (a client
that goes away pays for what was generated), or releases it, writing no receipt, when the
backend fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from cairn.economy.metering import Charge, Meter
from cairn.economy.receipts import ServedTokens, UsageReceipt
from cairn.serve.backends import Generation

log = logging.getLogger(__name__)


class Metered:
    """A generation whose charge is settled exactly once: by what it produced when it ends or
    its consumer stops (a client that goes away pays for what was generated), or not at all
    when the backend fails (the hold is released and no receipt is written)."""

    def __init__(self, meter: Meter, charge: Charge, generation: Generation) -> None:
        self.meter = meter
        self.charge = charge
        self.generation = generation
        self.receipt: UsageReceipt | None = None
        self.failed = False
        self._lock = threading.Lock()

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens (exact once the generation is done)."""
        return self.generation.prompt_tokens

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.generation
        except GeneratorExit:  # the consumer stopped early
            self.finish()
            raise
        except BaseException:
            self.fail()
            raise
        self.finish()

    def finish(self) -> UsageReceipt | None:
        """Stop generating and charge what was used (once); None if the request failed."""
        with self._lock:
            if self.receipt is None and not self.failed:
                self.generation.close()
                self.receipt = self.meter.close(
                    self.charge,
                    self.generation.prompt_tokens,
                    self.generation.completion_tokens,
                    self._served(),
                )
            return self.receipt

    def _served(self) -> ServedTokens | None:
        """The generation's transcript and commitment for the receipt, if it made one."""
        try:
            transcript = self.generation.transcript()
        except ValueError:  # the states did not cover the tokens read: a bug, charged anyway
            log.exception("no commitment for this call")
            return None
        if transcript is None:
            return None
        encoded = transcript.commitment.encode()
        return ServedTokens(transcript.prompt, transcript.completion, encoded)

    def fail(self) -> None:
        """The backend failed: release the hold, charge nothing (unless already charged)."""
        with self._lock:
            if self.receipt is None and not self.failed:
                self.failed = True
                self.generation.close()
                self.meter.abort(self.charge)

    def text(self) -> tuple[str, UsageReceipt]:
        """The whole answer and its receipt (a failed generation raises instead)."""
        answer = "".join(self)
        receipt = self.finish()
        assert receipt is not None  # a failed generation raised above
        return answer, receipt
