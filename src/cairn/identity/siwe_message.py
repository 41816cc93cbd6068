"""The text of an EIP-4361 (Sign-In with Ethereum) message, as a client writes it to sign.

Written here rather than with the `siwe` package, whose import compiles its ABNF grammar: 1.5 s
of every `cairn` command that signs in, spent on a parser that writing a message never uses.
The node still parses each message with `siwe` (`cairn.identity.siwe`), once per process.
tests/api/test_client_sign_in.py checks the text against `siwe`'s own rendering.
"""

from __future__ import annotations


def siwe_message(
    *,
    domain: str,
    address: str,
    statement: str | None,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: str,
) -> str:
    """The EIP-4361 message with these fields (a statement or none; no expiry, not-before,
    request id or resources), line for line as `siwe.SiweMessage.prepare_message` writes it."""
    header = f"{domain} wants you to sign in with your Ethereum account:\n{address}"
    prefix = f"{header}\n\n{statement}" if statement is not None else f"{header}\n"
    suffix = "\n".join(
        [
            f"URI: {uri}",
            "Version: 1",
            f"Chain ID: {chain_id}",
            f"Nonce: {nonce}",
            f"Issued At: {issued_at}",
        ]
    )
    return f"{prefix}\n\n{suffix}"
