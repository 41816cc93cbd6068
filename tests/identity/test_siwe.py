"""Sign-In with Ethereum against a real SQLite index, with messages from any standard client."""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cairn.core.errors import CairnError, InvalidInput, Unauthorized
from cairn.db.engine import Database
from cairn.identity.models import SessionRow, SiweNonce
from cairn.identity.siwe import SignedIn, SiweAuth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # abnf's notes on siwe's grammar, at import
    from siwe import SiweMessage

DOMAIN = "cairn.test"
CHAIN_ID = 31337
START = 1_750_000_000.0  # 2025-06-15T15:06:40Z
NONCE_TTL = 600
SESSION_TTL = 3600


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite index in a file, as a node keeps it."""
    database = Database(f"sqlite:///{tmp_path}/index.db")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def auth(db: Database, clock: Clock) -> SiweAuth:
    return SiweAuth(
        db,
        domains={DOMAIN, "localhost:8000"},
        chain_id=CHAIN_ID,
        nonce_ttl=NONCE_TTL,
        session_ttl=SESSION_TTL,
        clock=clock,
    )


@pytest.fixture
def wallet() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def library_message(
    address: str,
    nonce: str,
    *,
    domain: str = DOMAIN,
    chain_id: int = CHAIN_ID,
    issued_at: float = START,
    expiration_time: float | None = None,
    not_before: float | None = None,
    uri: str | None = None,
) -> str:
    """The message as the `siwe` package (like siwe.js in a browser) writes it."""
    message = SiweMessage(
        domain=domain,
        address=address,
        statement="Sign in to Cairn.",
        uri=uri or f"https://{domain}/login",
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=iso(issued_at),
        expiration_time=iso(expiration_time) if expiration_time is not None else None,
        not_before=iso(not_before) if not_before is not None else None,
    )
    text: str = message.prepare_message()
    return text


def spec_message(address: str, nonce: str, *, issued_at: float = START) -> str:
    """The message typed out in the format of EIP-4361's own example, scheme and resources too."""
    return (
        f"https://{DOMAIN} wants you to sign in with your Ethereum account:\n"
        f"{address}\n"
        "\n"
        "I accept the Cairn Terms of Service: https://cairn.test/tos\n"
        "\n"
        "URI: https://cairn.test/login\n"
        "Version: 1\n"
        f"Chain ID: {CHAIN_ID}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {iso(issued_at)}\n"
        f"Expiration Time: {iso(issued_at + 300)}\n"
        "Request ID: 7a4b-01\n"
        "Resources:\n"
        "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
        "- https://example.com/my-web2-claim.json"
    )


def sign(message: str, account: LocalAccount) -> str:
    """personal_sign, as a wallet does it: EIP-191 over the message text, 65 bytes hex."""
    signed = Account.sign_message(encode_defunct(text=message), account.key)
    return "0x" + bytes(signed.signature).hex()


def test_a_library_message_signs_in_and_the_token_resolves(
    auth: SiweAuth, wallet: LocalAccount
) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    signed_in = auth.sign_in(message, sign(message, wallet))
    assert signed_in == SignedIn(signed_in.token, wallet.address, int(START) + SESSION_TTL)
    assert auth.resolve(signed_in.token) == wallet.address


def test_a_hand_written_spec_message_signs_in(auth: SiweAuth, wallet: LocalAccount) -> None:
    message = spec_message(wallet.address, auth.issue_nonce())
    signed_in = auth.sign_in(message, sign(message, wallet).removeprefix("0x"))
    assert auth.resolve(signed_in.token) == wallet.address
    # The session ends no later than the message's own Expiration Time.
    assert signed_in.expires_at == int(START) + 300


def test_nonces_are_long_alphanumeric_and_stored_with_their_expiry(
    auth: SiweAuth, db: Database
) -> None:
    nonces = {auth.issue_nonce() for _ in range(20)}
    assert len(nonces) == 20
    assert all(len(nonce) >= 16 and nonce.isascii() and nonce.isalnum() for nonce in nonces)
    with db.session() as session:
        rows = session.scalars(select(SiweNonce)).all()
    assert {row.nonce for row in rows} == nonces
    assert {(row.expires_at, row.used_by) for row in rows} == {(int(START) + NONCE_TTL, None)}


def test_only_the_sha256_of_a_session_token_is_stored(
    auth: SiweAuth, wallet: LocalAccount, db: Database
) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    token = auth.sign_in(message, sign(message, wallet)).token
    assert len(token) >= 43  # 32 random bytes, urlsafe base64
    with db.session() as session:
        (row,) = session.scalars(select(SessionRow)).all()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.address)


def forged_by_another_key(message: str, wallet: LocalAccount) -> tuple[str, str]:
    return message, sign(message, Account.create())


def tampered_after_signing(message: str, wallet: LocalAccount) -> tuple[str, str]:
    return message.replace("Sign in to Cairn.", "Sign in to Cairn!"), sign(message, wallet)


def garbage_hex(message: str, wallet: LocalAccount) -> tuple[str, str]:
    return message, "0x" + "zz" * 65


def too_short(message: str, wallet: LocalAccount) -> tuple[str, str]:
    return message, sign(message, wallet)[:-2]


def not_on_the_curve(message: str, wallet: LocalAccount) -> tuple[str, str]:
    return message, "0x" + "00" * 64 + "1b"


@pytest.mark.parametrize(
    "forge",
    [forged_by_another_key, tampered_after_signing, garbage_hex, too_short, not_on_the_curve],
)
def test_a_forged_signature_is_refused_and_the_nonce_stays_usable(
    auth: SiweAuth, wallet: LocalAccount, forge: object
) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    assert callable(forge)
    bad_message, bad_signature = forge(message, wallet)
    with pytest.raises(Unauthorized):
        auth.sign_in(bad_message, bad_signature)
    signed_in = auth.sign_in(message, sign(message, wallet))
    assert auth.resolve(signed_in.token) == wallet.address


def test_a_replayed_message_is_refused(auth: SiweAuth, wallet: LocalAccount) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    signature = sign(message, wallet)
    auth.sign_in(message, signature)
    with pytest.raises(Unauthorized, match="already used"):
        auth.sign_in(message, signature)


def test_two_racing_sign_ins_with_one_nonce_give_one_session(
    auth: SiweAuth, wallet: LocalAccount
) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    signature = sign(message, wallet)
    start = threading.Barrier(4)
    outcomes: list[object] = []

    def attempt() -> None:
        start.wait()
        try:
            outcomes.append(auth.sign_in(message, signature))
        except CairnError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(outcome, SignedIn) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, Unauthorized) for outcome in outcomes) == 3


def test_a_nonce_this_node_did_not_issue_is_refused(auth: SiweAuth, wallet: LocalAccount) -> None:
    message = library_message(wallet.address, "madeUpNonce12345")
    with pytest.raises(Unauthorized, match="not issued by this node"):
        auth.sign_in(message, sign(message, wallet))


def test_an_expired_nonce_is_refused(auth: SiweAuth, wallet: LocalAccount, clock: Clock) -> None:
    nonce = auth.issue_nonce()
    clock.now += NONCE_TTL
    message = library_message(wallet.address, nonce, issued_at=clock.now)
    with pytest.raises(Unauthorized, match=r"nonce .* expired"):
        auth.sign_in(message, sign(message, wallet))


def test_a_long_dead_nonce_is_forgotten_and_still_refused(
    auth: SiweAuth, wallet: LocalAccount, clock: Clock, db: Database
) -> None:
    nonce = auth.issue_nonce()
    clock.now += 2 * NONCE_TTL + 1
    auth.issue_nonce()  # issuing sweeps nonces dead for a whole TTL
    with db.session() as session:
        assert session.get(SiweNonce, nonce) is None
    message = library_message(wallet.address, nonce, issued_at=clock.now)
    with pytest.raises(Unauthorized, match="not issued by this node"):
        auth.sign_in(message, sign(message, wallet))


def test_a_nonce_still_works_just_before_it_expires(
    auth: SiweAuth, wallet: LocalAccount, clock: Clock
) -> None:
    nonce = auth.issue_nonce()
    clock.now += NONCE_TTL - 1
    message = library_message(wallet.address, nonce, issued_at=clock.now)
    auth.sign_in(message, sign(message, wallet))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"domain": "evil.example"}, "signs in to 'evil.example'"),
        ({"chain_id": 1}, "chain id 1"),
        ({"expiration_time": START - 1}, "message expired"),
        ({"expiration_time": START}, "message expired"),
        ({"not_before": START + 3600}, "not valid before"),
        ({"issued_at": START + 3600}, "in the future"),
        # the URI line must be on the origin the domain line names
        ({"uri": "https://evil.example/login"}, "URI https://evil.example/login is not on"),
        ({"uri": "https://cairn.test.evil.example/"}, "is not on http\\(s\\)://cairn.test"),
        ({"uri": "https://someone@cairn.test/"}, "URI https://someone@cairn.test/ is not on"),
        ({"uri": "http://cairn.test:8443/login"}, "URI http://cairn.test:8443/login"),
        ({"uri": "ftp://cairn.test/"}, "URI ftp://cairn.test/ is not on"),
        ({"uri": "did:pkh:eip155:1:0xabc"}, "URI did:pkh"),
    ],
)
def test_a_message_for_elsewhere_or_another_time_is_refused_and_changes_nothing(
    auth: SiweAuth, wallet: LocalAccount, change: dict[str, object], reason: str
) -> None:
    nonce = auth.issue_nonce()
    bad = library_message(wallet.address, nonce, **change)  # type: ignore[arg-type]
    with pytest.raises(Unauthorized, match=reason):
        auth.sign_in(bad, sign(bad, wallet))
    good = library_message(wallet.address, nonce)
    auth.sign_in(good, sign(good, wallet))


def test_a_uri_over_another_scheme_than_the_first_line_names_is_refused(
    auth: SiweAuth, wallet: LocalAccount
) -> None:
    nonce = auth.issue_nonce()
    message = spec_message(wallet.address, nonce).replace("URI: https://", "URI: http://")
    with pytest.raises(Unauthorized, match=re.escape("is not on https://cairn.test, the origin")):
        auth.sign_in(message, sign(message, wallet))
    good = spec_message(wallet.address, nonce)
    auth.sign_in(good, sign(good, wallet))


@pytest.mark.parametrize(
    "change",
    [
        {"issued_at": START + 30},  # a wallet clock a little ahead
        {"not_before": START + 30},
        {"domain": "localhost:8000"},
        {"expiration_time": START + 1},
    ],
)
def test_a_message_inside_the_limits_signs_in(
    auth: SiweAuth, wallet: LocalAccount, change: dict[str, object]
) -> None:
    message = library_message(wallet.address, auth.issue_nonce(), **change)  # type: ignore[arg-type]
    auth.sign_in(message, sign(message, wallet))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("hello", "check the first line"),
        ("", "check the first line"),
        ("x" * 5000, "at most 4096"),
        ("x" * 400 + " wants you to sign in with your Ethereum account:", "at most 320"),
    ],
)
def test_a_malformed_message_is_invalid_input(auth: SiweAuth, message: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        auth.sign_in(message, "0x" + "00" * 65)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("Version: 1", "Version: 2", "check the 'Version: 1' line"),
        ("Chain ID: 31337", "Chain ID: x", "check the 'Chain ID: ' line"),
        ("Request ID: 7a4b-01", "Request ID: 7a4b-01\n", "check line 13 \\(''\\)"),
        ("Request ID: 7a4b-01", "Request-ID: 7a4b-01", "check line 12 \\('Request-ID"),
        ("https://example.com/my-web2-claim.json", "https://example.com/a\n", "line break"),
    ],
)
def test_a_malformed_message_says_which_line_to_check(
    auth: SiweAuth, wallet: LocalAccount, old: str, new: str, reason: str
) -> None:
    message = spec_message(wallet.address, auth.issue_nonce()).replace(old, new)
    with pytest.raises(InvalidInput, match=reason):
        auth.sign_in(message, sign(message, wallet))


def test_a_lowercase_address_is_invalid_input_with_the_parsers_reason(
    auth: SiweAuth, wallet: LocalAccount
) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    message = message.replace(wallet.address, wallet.address.lower())
    with pytest.raises(InvalidInput, match=r"address: .*EIP-55"):
        auth.sign_in(message, sign(message, wallet))


def test_sign_out_ends_the_session(auth: SiweAuth, wallet: LocalAccount) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    token = auth.sign_in(message, sign(message, wallet)).token
    auth.sign_out(token)
    with pytest.raises(Unauthorized, match="signed out"):
        auth.resolve(token)
    auth.sign_out(token)  # twice is harmless
    auth.sign_out("never-issued")


def test_a_session_expires(auth: SiweAuth, wallet: LocalAccount, clock: Clock) -> None:
    message = library_message(wallet.address, auth.issue_nonce())
    signed_in = auth.sign_in(message, sign(message, wallet))
    clock.now = signed_in.expires_at - 1
    assert auth.resolve(signed_in.token) == wallet.address
    clock.now = signed_in.expires_at
    with pytest.raises(Unauthorized, match="expired"):
        auth.resolve(signed_in.token)


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
def test_an_unknown_token_is_unauthorized(auth: SiweAuth, token: str) -> None:
    with pytest.raises(Unauthorized):
        auth.resolve(token)


SIWE_CHARACTERS = st.sampled_from(list("0123456789abcdefxX:/.-\n Zwants you to sign in"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    message=st.text(SIWE_CHARACTERS | st.characters(), max_size=300),
    signature=st.text(max_size=140) | st.binary(min_size=65, max_size=65).map(bytes.hex),
)
def test_garbage_never_raises_anything_but_a_cairn_error(
    auth: SiweAuth, message: str, signature: str
) -> None:
    with pytest.raises(CairnError):
        auth.sign_in(message, signature)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_mutated_valid_message_never_raises_anything_but_a_cairn_error(
    auth: SiweAuth, wallet: LocalAccount, data: st.DataObject
) -> None:
    message = spec_message(wallet.address, "fixedNonce1234567890")
    signature = sign(message, wallet)
    position = data.draw(st.integers(0, len(message) - 1))
    width = data.draw(st.integers(0, 8))
    insert = data.draw(st.text(SIWE_CHARACTERS | st.characters(), max_size=8))
    mutated = message[:position] + insert + message[position + width :]
    assume(mutated != message)
    with pytest.raises(CairnError):
        auth.sign_in(mutated, signature)
