"""Leaving the vault: a user asks for their unspent prepaid tokens back, takes them once the
vault's notice period has passed, or cancels the request.

What the CLI's `cairn balance withdraw` does through the API's contract relay, for the pages of
a node that holds the user's key. The vault (`PrepaidVault`) is the authority: a request sets
the tokens aside at once (the index reads its events), and during the notice the gateway may
still draw what the user spent before. These checks come first so that a refusal says why in
words and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from cairn.chain.contracts import Chain
from cairn.chain.vault import ALL, Vault, Withdrawal
from cairn.core.errors import InvalidInput
from cairn.economy.balances import Balances


@dataclass(frozen=True)
class PendingWithdrawal:
    """A request the vault holds."""

    amount: int | None  # None: everything the balance will hold then
    available_at: int  # chain time (unix seconds) from which it can be taken
    seconds_left: int  # of its notice, by the chain's clock (`next_block_time`): 0 once ready

    @property
    def ready(self) -> bool:
        return self.seconds_left == 0


class Withdrawals:
    """Withdrawal requests on the gateway's vault, by the account that holds the balance."""

    def __init__(self, chain: Chain, balances: Balances) -> None:
        self.chain = chain
        self.balances = balances

    def _vault(self) -> Vault:
        vault = self.chain.vault
        if vault is None or not self.balances.vault_holds_balances():
            raise InvalidInput(
                "this node's prepaid balances are not in a vault yet: nothing can be withdrawn"
            )
        return vault

    def pending(self, account: str) -> PendingWithdrawal | None:
        """`account`'s request, None when it has none."""
        held = self.balances.pending_withdrawal(account)
        return None if held is None else self._pending(held)

    def _pending(self, held: Withdrawal) -> PendingWithdrawal:
        left = max(0, held.available_at - self.chain.client.next_block_time())
        return PendingWithdrawal(
            None if held.amount == ALL else held.amount, held.available_at, left
        )

    def request(self, sender: LocalAccount, amount: int | None) -> PendingWithdrawal:
        """Ask to withdraw `amount` (None: everything the balance will hold), replacing any
        earlier request and restarting its notice; the request as the vault holds it."""
        vault = self._vault()
        if amount is not None and amount <= 0:
            raise InvalidInput(f"a withdrawal must be positive; got {amount}")
        held = vault.balance_of(sender.address)
        if not held:
            raise InvalidInput("you have nothing in the vault to withdraw")
        if amount is not None and amount > held:
            raise InvalidInput(f"you hold {held} in the vault, less than the {amount} asked for")
        available_at, _ = vault.request_withdrawal(sender, ALL if amount is None else amount)
        self.balances.sync()  # the index sets the tokens aside as the vault does
        return self._pending(Withdrawal(ALL if amount is None else amount, available_at))

    def take(self, sender: LocalAccount) -> int:
        """Take the withdrawal asked for, once its notice has passed; the tokens paid."""
        vault = self._vault()
        pending = vault.pending_withdrawal(sender.address)
        if not pending.amount:
            raise InvalidInput("no withdrawal was asked for: ask for one first")
        now = self.chain.client.next_block_time()
        if now < pending.available_at:
            raise InvalidInput(
                f"the notice period ends in {pending.available_at - now} s: take it after that"
            )
        paid, _ = vault.withdraw(sender)
        self.balances.sync()
        return paid

    def cancel(self, sender: LocalAccount) -> None:
        """Withdraw the request: the tokens are spendable again."""
        vault = self._vault()
        if not vault.pending_withdrawal(sender.address).amount:
            raise InvalidInput("no withdrawal was asked for: there is nothing to cancel")
        vault.request_withdrawal(sender, 0)
        self.balances.sync()
