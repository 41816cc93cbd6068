"""What an audit check found: ok, differs (naming what), or unchecked (what could not be read)."""

from __future__ import annotations

from dataclasses import dataclass

OK, DIFFERS, UNCHECKED = "ok", "differs", "unchecked"


@dataclass(frozen=True)
class Finding:
    """One check of one epoch or job."""

    check: str  # document, tree, receipts, sales, revenue, lineage, split, plan, shares...
    status: str  # ok | differs | unchecked
    detail: str


class Findings:
    """The findings of one epoch or job, in the order they were made."""

    def __init__(self) -> None:
        self.items: list[Finding] = []

    def check(self, name: str, good: bool, detail: str) -> bool:
        """Record a check that passed or failed; returns whether it passed."""
        self.items.append(Finding(name, OK if good else DIFFERS, detail))
        return good

    def unchecked(self, name: str, detail: str) -> None:
        """Record a check that could not be made, and why."""
        self.items.append(Finding(name, UNCHECKED, detail))


class Audited:
    """What an audited epoch or job reports from its `findings`."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Nothing differs (some checks may have been impossible: see `unchecked`)."""
        return not self.differences

    @property
    def differences(self) -> tuple[Finding, ...]:
        """The checks that failed."""
        return tuple(f for f in self.findings if f.status == DIFFERS)

    @property
    def unchecked(self) -> tuple[Finding, ...]:
        """The checks that could not be made."""
        return tuple(f for f in self.findings if f.status == UNCHECKED)
