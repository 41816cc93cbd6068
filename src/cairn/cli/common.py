"""Options and look-ups the CLI's commands share: data folder, node URL, unlocking accounts."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from cairn.api.client import NodeClient
from cairn.config import NodeConfig
from cairn.core.errors import NotFound

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from cairn.identity.keystore import AccountInfo, Keystore

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Node data folder [default: ~/.cairn or $CAIRN_DATA_DIR]"),
]
NodeUrl = Annotated[
    str | None,
    typer.Option("--node", help="Node API URL [default: http://127.0.0.1:8000 or $CAIRN_NODE]"),
]
# For commands that take an amount as an argument: `-5` reaches the command, which says what is
# wrong with it, instead of Click's "No such option '-5'" (Click's own recipe for negative numbers).
AMOUNT_ARGUMENT = {"ignore_unknown_options": True}


def config(data_dir: Path | None) -> NodeConfig:
    """Node settings from the environment and the command line."""
    return NodeConfig.from_env(data_dir=data_dir)


def keystore(data_dir: Path | None) -> Keystore:
    """The keystore folder of the data folder."""
    from cairn.identity.keystore import Keystore  # eth_account: only commands that use keys

    return Keystore(config(data_dir).data_dir / "accounts")


def client(node_url: str | None) -> NodeClient:
    """An API client for the node (uploads in chunks of CAIRN_UPLOAD_CHUNK_MB, as a node)."""
    settings = NodeConfig.from_env()
    return NodeClient(node_url or settings.node_url, chunk_size=settings.upload_chunk_mb * 2**20)


def find_account(store: Keystore, who: str) -> AccountInfo:
    """An account by address or label."""
    if who.startswith("0x"):
        return store.get(who)
    try:
        return store.find_by_label(who)
    except NotFound:
        raise NotFound(
            f"no account labelled {who!r} in {store.folder}: see `cairn account list`"
        ) from None


def unlock(data_dir: Path | None, who: str) -> LocalAccount:
    """Unlock an account: dev accounts need nothing, others CAIRN_PASSWORD or a prompt."""
    settings = config(data_dir)
    store = keystore(data_dir)
    info = find_account(store, who)
    if info.dev:
        return store.unlock(info.address, None)
    password = settings.password or typer.prompt(
        f"Password for {info.label or info.address}", hide_input=True
    )
    return store.unlock(info.address, password)


def stop_on_signals() -> None:
    """Make Ctrl-C and a service manager's SIGTERM both end a long-running command through its
    clean-up path (KeyboardInterrupt), even when it was started with SIGINT ignored, as a shell
    starts background jobs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
