"""The chain backend `--chain` names: the memory chain, a managed anvil, or a JSON-RPC URL."""

from __future__ import annotations

from pathlib import Path

from cairn.chain.backends import AnvilBackend, ChainBackend, RpcBackend
from cairn.core.errors import ConfigError


def open_backend(
    spec: str, data_dir: Path, *, anvil_port: int | None = None, lock_fd: int | None = None
) -> ChainBackend:
    """Open the backend named by `--chain`: `memory`, `anvil` or an http(s):// URL.

    `lock_fd` is the data folder's lock, which a managed anvil holds until it has exited.
    """
    if spec == "memory":
        from cairn.chain.memory import MemoryBackend  # py-evm: loaded only for this chain

        return MemoryBackend()
    if spec == "anvil":
        return AnvilBackend(
            data_dir / "chain" / "anvil-state.json", port=anvil_port, lock_fd=lock_fd
        )
    if spec.startswith(("http://", "https://")):
        return RpcBackend(spec)
    raise ConfigError(f"unknown chain {spec!r}: use memory, anvil or an http(s):// JSON-RPC URL")
