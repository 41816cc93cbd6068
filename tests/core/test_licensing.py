"""`check_access`'s refusal reads as a sentence, signed in or not, and names what to buy."""

from __future__ import annotations

import pytest

from cairn.core.licensing import LicenceRequired, Offer, Terms, Use, check_access

OWNER = "0x" + "aa" * 20
BUYER = "0x" + "bb" * 20
OFFER = Offer(
    offer_id=3,
    asset_id=7,
    price=2 * 10**18,
    terms=Terms.COMMERCIAL,
    max_copies=0,
    duration=0,
    transferable=False,
    active=True,
    sold=0,
)


def refusal(account: str | None) -> str:
    with pytest.raises(LicenceRequired) as refused:
        check_access(
            Use.DOWNLOAD,
            asset_id=7,
            asset_name="Polite bot",
            account=account,
            owner=OWNER,
            offers=[OFFER],
            held=[],
        )
    return refused.value.message


def test_a_visitor_is_told_you_need_a_licence() -> None:
    assert refusal(None) == (
        "Polite bot (asset 7) is licensed: to download it you need a licence (sign in first); "
        "buy licence 3 (commercial, 2 CAIRN): `cairn licence buy 3` or the asset's page"
    )


def test_a_signed_in_account_is_named_and_needs_a_licence() -> None:
    assert refusal(BUYER).startswith(
        f"Polite bot (asset 7) is licensed: to download it {BUYER} needs a licence; buy licence 3"
    )


def test_the_owner_and_a_holder_pass() -> None:
    for account, held, why in ((OWNER, [], "owner"), (BUYER, [3], "licence 3")):
        reason = check_access(
            Use.DOWNLOAD,
            asset_id=7,
            asset_name="Polite bot",
            account=account,
            owner=OWNER,
            offers=[OFFER],
            held=held,
        )
        assert reason == why
