"""Node configuration: the only place that reads environment variables.

A data folder remembers the chain it was created with (in `node.json`), so a node restarted
without `--chain` finds its chain again, and one restarted with a different chain is refused
rather than silently forking its state.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cairn.core.errors import ConfigError

DEFAULT_DATA_DIR = Path("~/.cairn")
DEFAULT_CHAIN = "anvil"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_FLEET_PORT = 9092


@dataclass
class NodeConfig:
    """Everything a node needs to start; built by the CLI or by tests, read by `Node`."""

    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR.expanduser())
    chain: str | None = None  # memory | anvil | http(s)://...; None = what the folder remembers
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    dev: bool = False  # create funded, unencrypted dev accounts
    # a dev node lets anyone who reaches /signin sign in as any dev account, the operator
    # included: it may listen on a non-loopback address only when this says so explicitly
    unsafe_dev_on_public_address: bool = False
    password: str | None = None  # unlocks the operator and node-held accounts
    db_url: str | None = None  # default: SQLite file in the data folder
    s3_bucket: str | None = None  # set to store blobs in S3-compatible storage
    s3_endpoint: str | None = None
    s3_region: str | None = None
    anvil_port: int | None = None  # default: any free port
    dev_accounts: tuple[str, ...] = ("alice", "bob", "carol")
    base_models: bool = False  # register the packaged base models as model assets at start
    public_domains: tuple[str, ...] = ()  # extra host[:port] names SIWE messages may use
    # mark the session cookie Secure on every request, not only on those that arrived over
    # HTTPS (for a TLS proxy that sends no X-Forwarded-Proto, or one uvicorn does not trust)
    secure_cookies: bool = False
    node_url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where CLI commands find the node
    fleet_port: int = DEFAULT_FLEET_PORT  # the Flower SuperLink's Fleet API: workers connect here
    control_port: int | None = None  # the SuperLink's Control API; default: any free port
    serverappio_port: int | None = None  # the SuperLink's ServerAppIo API; default: any free port
    epoch_seconds: float = 86_400.0  # settle revenue this often on its own; 0 = only by hand
    model_memory_mb: int = 4_096  # in-process models kept loaded within this many MiB (LRU)
    upstreams: tuple[str, ...] = ()  # ASSET=URL[#NAME]: models served by OpenAI-style servers
    upstream_api_key: str | None = None  # the API key those servers expect
    llama_cpp: bool = False  # serve packaged GGUF models with llama.cpp (the llamacpp extra)
    upload_quota_mb: int = 2_048  # MiB an account's uploads may hold before they belong to assets
    uploads_per_hour: int = 2_000  # uploads an account may make in an hour
    upload_chunk_mb: int = 16  # MiB per chunk of a resumable upload: the most one PUT carries
    free_calls_per_minute: int = 30  # calls to unpriced models per key and per account; 0: no limit
    # seconds between asking PrepaidVault for a withdrawal and taking it, fixed when the node
    # deploys its vault; default 7 days (5 minutes on a dev node)
    vault_notice_seconds: int | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> NodeConfig:
        """Defaults, then CAIRN_* environment variables, then explicit overrides (not None)."""
        env = os.environ
        config = cls()
        if env.get("CAIRN_DATA_DIR"):
            config.data_dir = Path(env["CAIRN_DATA_DIR"]).expanduser()
        config.chain = env.get("CAIRN_CHAIN") or None
        config.password = env.get("CAIRN_PASSWORD") or None
        config.db_url = env.get("CAIRN_DB_URL") or None
        config.s3_bucket = env.get("CAIRN_S3_BUCKET") or None
        config.s3_endpoint = env.get("CAIRN_S3_ENDPOINT") or None
        config.s3_region = env.get("CAIRN_S3_REGION") or None
        if env.get("CAIRN_NODE"):
            config.node_url = env["CAIRN_NODE"]
        if env.get("CAIRN_FLEET_PORT"):
            config.fleet_port = _port(env["CAIRN_FLEET_PORT"], "CAIRN_FLEET_PORT")
        if env.get("CAIRN_EPOCH_SECONDS"):
            config.epoch_seconds = _number(env["CAIRN_EPOCH_SECONDS"], "CAIRN_EPOCH_SECONDS")
        if env.get("CAIRN_MODEL_MEMORY_MB"):
            config.model_memory_mb = int(
                _number(env["CAIRN_MODEL_MEMORY_MB"], "CAIRN_MODEL_MEMORY_MB")
            )
        if env.get("CAIRN_UPLOAD_QUOTA_MB"):
            config.upload_quota_mb = int(
                _number(env["CAIRN_UPLOAD_QUOTA_MB"], "CAIRN_UPLOAD_QUOTA_MB")
            )
        if env.get("CAIRN_UPLOADS_PER_HOUR"):
            config.uploads_per_hour = int(
                _number(env["CAIRN_UPLOADS_PER_HOUR"], "CAIRN_UPLOADS_PER_HOUR")
            )
        if env.get("CAIRN_UPLOAD_CHUNK_MB"):
            config.upload_chunk_mb = int(
                _number(env["CAIRN_UPLOAD_CHUNK_MB"], "CAIRN_UPLOAD_CHUNK_MB")
            )
        if env.get("CAIRN_FREE_CALLS_PER_MINUTE"):
            config.free_calls_per_minute = int(
                _number(env["CAIRN_FREE_CALLS_PER_MINUTE"], "CAIRN_FREE_CALLS_PER_MINUTE")
            )
        if env.get("CAIRN_VAULT_NOTICE_SECONDS"):
            config.vault_notice_seconds = int(
                _number(env["CAIRN_VAULT_NOTICE_SECONDS"], "CAIRN_VAULT_NOTICE_SECONDS")
            )
        if env.get("CAIRN_UPSTREAMS"):
            config.upstreams = tuple(u.strip() for u in env["CAIRN_UPSTREAMS"].split(","))
        config.upstream_api_key = env.get("CAIRN_UPSTREAM_API_KEY") or None
        config.llama_cpp = env.get("CAIRN_LLAMA_CPP", "").lower() in ("1", "true", "yes")
        if env.get("CAIRN_PUBLIC_DOMAINS"):
            config.public_domains = tuple(d.strip() for d in env["CAIRN_PUBLIC_DOMAINS"].split(","))
        config.secure_cookies = env.get("CAIRN_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise ConfigError(f"unknown node setting {key!r}")
            if value is not None:
                setattr(config, key, Path(value).expanduser() if key == "data_dir" else value)  # type: ignore[arg-type]
        refuse_public_dev(config)
        return config

    @property
    def index_url(self) -> str:
        """SQLAlchemy URL of the off-chain index."""
        return self.db_url or f"sqlite:///{self.data_dir / 'index.db'}"

    @property
    def base_url(self) -> str:
        """Where the node's API answers."""
        return f"http://{self.host}:{self.port}"


def remembered_chain(data_dir: Path, requested: str | None) -> str:
    """The chain this data folder uses, recording it on first use."""
    marker = data_dir / "node.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        chain = str(saved["chain"])
        if requested is not None and requested != chain:
            raise ConfigError(
                f"data folder {data_dir} was created with --chain {chain}; start it with that "
                f"chain, or choose another --data-dir for {requested}"
            )
        return chain
    chain = requested or DEFAULT_CHAIN
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"chain": chain, "created_at": int(time.time())}, indent=2))
    return chain


def is_loopback(host: str) -> bool:
    """Whether listening on `host` accepts connections from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def refuse_public_dev(config: NodeConfig) -> None:
    """A dev node on a non-loopback address is an error unless explicitly wanted."""
    if config.dev and not is_loopback(config.host) and not config.unsafe_dev_on_public_address:
        raise ConfigError(
            f"a dev node (--dev or --demo) must not listen on {config.host}: anyone who reaches "
            "it can sign in at /signin as any dev account, the operator included. Listen on "
            "127.0.0.1 (the default) and use a tunnel, or add --unsafe-dev-on-public-address "
            "if everyone who can reach it may act as anyone"
        )


def _port(text: str, name: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{name} must be a TCP port 1-65535; got {text!r}")
    return int(text)


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{name} must be a non-negative number; got {text!r}")
    return value
