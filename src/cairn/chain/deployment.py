"""Deploy Cairn's contracts once per chain and remember where they are.

The deployment (chain id, addresses, ABIs, source hashes) is saved as JSON in the node's data
folder and reused on restart, as long as the chain still has code at every address; a chain
that lost its state (a new in-memory chain) gets a fresh deployment.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from cairn.chain.client import ChainClient
from cairn.chain.compiler import compile_contract


@dataclass(frozen=True)
class DeployedContract:
    """One contract on chain: where it is and how to talk to it."""

    address: str
    abi: list[dict[str, Any]]
    source_hash: str


@dataclass
class Deployment:
    """All of Cairn's contracts on one chain."""

    chain_id: int
    backend: str
    deployer: str
    block: int
    contracts: dict[str, DeployedContract] = field(default_factory=dict)

    def to_json(self) -> str:
        """The deployment as JSON (what the data folder keeps)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """Read a deployment written by `to_json`."""
        data = json.loads(text)
        contracts = {name: DeployedContract(**c) for name, c in data.pop("contracts").items()}
        return cls(contracts=contracts, **data)

    def address(self, name: str) -> str:
        """Address of contract `name`."""
        return self.contracts[name].address


def is_live(client: ChainClient, deployment: Deployment) -> bool:
    """Whether `deployment` belongs to this chain and every contract still has code."""
    if deployment.chain_id != client.chain_id:
        return False
    return all(len(client.w3.eth.get_code(c.address)) > 0 for c in deployment.contracts.values())  # type: ignore[arg-type]


# Each contract with what its constructor takes, in deployment order: a name in the arguments
# is the address of a contract deployed before it.
CONTRACTS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("CairnToken", ("Cairn", "CAIRN")),
    ("AssetRegistry", ()),
    ("ContributionLedger", ("@AssetRegistry",)),
    ("RevenueDistributor", ("@CairnToken",)),
    ("JobEscrow", ("@CairnToken", "@AssetRegistry")),
    ("LicenseToken", ("@CairnToken", "@AssetRegistry")),
    (
        "DataBounty",
        ("@CairnToken", "@AssetRegistry", "@ContributionLedger", "@RevenueDistributor"),
    ),
)


def deploy_missing(
    client: ChainClient, deployer: LocalAccount, deployment: Deployment, cache_dir: Path | None
) -> list[str]:
    """Deploy every Cairn contract the deployment lacks (all of them for a new one)."""
    added = []
    for name, args in CONTRACTS:
        if name in deployment.contracts:
            continue
        compiled = compile_contract(name, cache_dir)
        resolved = [
            deployment.address(a[1:]) if isinstance(a, str) and a.startswith("@") else a
            for a in args
        ]
        address = client.deploy(deployer, compiled.abi, compiled.bytecode, *resolved)
        deployment.contracts[name] = DeployedContract(address, compiled.abi, compiled.source_hash)
        added.append(name)
    return added


def deploy_all(client: ChainClient, deployer: LocalAccount, cache_dir: Path | None) -> Deployment:
    """Deploy all of Cairn's contracts."""
    deployment = Deployment(
        chain_id=client.chain_id,
        backend=client.backend.kind,
        deployer=deployer.address,
        block=int(client.w3.eth.block_number),
    )
    deploy_missing(client, deployer, deployment, cache_dir)
    return deployment


def load_or_deploy(
    client: ChainClient, deployer: LocalAccount, path: Path, cache_dir: Path | None
) -> tuple[Deployment, bool]:
    """The saved deployment if it is live on this chain, else a new one; True when new.

    A live deployment made by an older Cairn gets the contracts added since, and keeps the rest.
    """
    if path.exists():
        saved = Deployment.from_json(path.read_text())
        if is_live(client, saved):
            if deploy_missing(client, deployer, saved, cache_dir):
                save_deployment(path, saved)
            return saved, False
    deployment = deploy_all(client, deployer, cache_dir)
    save_deployment(path, deployment)
    return deployment, True


def save_deployment(path: Path, deployment: Deployment) -> None:
    """Write `deployment` to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(deployment.to_json())
    os.replace(tmp, path)
