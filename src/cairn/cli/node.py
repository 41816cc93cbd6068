"""`cairn node start|status`."""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from cairn.cli.common import DataDir, NodeUrl, client, stop_on_signals
from cairn.cli.output import console, fields, table
from cairn.config import DEFAULT_HOST, DEFAULT_PORT, NodeConfig, is_loopback
from cairn.core.errors import ConfigError

app = typer.Typer(help="Run and inspect a Cairn node.", no_args_is_help=True)


@app.command("start")
def start(
    data_dir: DataDir = None,
    chain: Annotated[
        str | None,
        typer.Option(
            help="memory, anvil or an http(s):// JSON-RPC URL [default: anvil, or what the data folder used]"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on")] = DEFAULT_PORT,
    dev: Annotated[
        bool, typer.Option("--dev", help="Create funded, UNENCRYPTED dev accounts")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Seed a demo community on first start (accounts, a dataset, a trained model, "
            "paid use, a settled epoch) and keep its two provider workers running; implies --dev",
        ),
    ] = False,
    unsafe_dev_on_public_address: Annotated[
        bool,
        typer.Option(
            "--unsafe-dev-on-public-address",
            help="Let --dev or --demo listen on a non-loopback --host. ANYONE who reaches the "
            "node can then sign in as any dev account, the operator included",
        ),
    ] = False,
    base_models: Annotated[
        bool, typer.Option(help="Register the packaged base models as model assets")
    ] = True,
    fleet_port: Annotated[
        int | None,
        typer.Option(
            help="Port of the Flower Fleet API providers' workers connect to [default: 9092]"
        ),
    ] = None,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(help="Serve the API and web UI over HTTPS with this certificate (PEM)"),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The private key of --ssl-certfile (PEM)")
    ] = None,
) -> None:
    """Start a node: chain, store, index, and the API and web UI on http(s)://HOST:PORT."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo's own calls to the API
    # SIGTERM ends the node as Ctrl-C does, through `node.close()`, which stops anvil so that
    # it saves its state (uvicorn re-raises a SIGTERM it caught, which would kill us first).
    stop_on_signals()
    dev = dev or demo
    config = NodeConfig.from_env(
        data_dir=data_dir,
        chain=chain,
        host=host,
        port=port,
        dev=dev,
        unsafe_dev_on_public_address=unsafe_dev_on_public_address,
        dev_accounts=_demo_accounts() if demo else None,
        base_models=base_models,
        fleet_port=fleet_port,
    )
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ConfigError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    for tls_file in (ssl_certfile, ssl_keyfile):
        if tls_file is not None and not tls_file.is_file():
            raise ConfigError(f"{tls_file} does not exist")
    scheme = "http" if ssl_certfile is None else "https"
    refuse_busy_ports(config)  # all of the above before the node's imports: refused at once
    import uvicorn

    from cairn.api.app import create_app
    from cairn.demo_community import DemoCommunity
    from cairn.node import bootstrap

    if not dev and config.password is None and sys.stdin.isatty():
        config.password = typer.prompt(
            "Node password (unlocks the operator account)", hide_input=True
        )
    with console.status(f"Starting Cairn node in {config.data_dir} ..."):
        node = bootstrap(config)
    try:
        with console.status("Starting the Flower SuperLink ..."):
            resumed = node.start_compute()
        deployment = node.chain.deployment
        lines = [
            f"[bold]API and web UI[/]     {scheme}://{host}:{port}   (OpenAPI: /docs)",
            f"[bold]chain[/]              {node.backend.kind}, chain id {node.client.chain_id}"
            + (f", RPC {node.rpc_url}" if node.rpc_url else ""),
            f"[bold]data folder[/]        {config.data_dir}",
            f"[bold]operator[/]           {node.operator.address}",
            f"[bold]Flower fleet API[/]   {node.superlink.fleet_address}"
            + (
                "   (plaintext: any SuperNode may join)"
                if node.superlink.tls_dir is None
                else "   (TLS; admitted SuperNodes only)"
            ),
            "[bold]providers[/]          cairn worker start --account NAME",
        ]
        if resumed:
            lines.append(f"[bold]resumed jobs[/]       {', '.join(resumed)}")
        lines += [f"[bold]{name:<19}[/]{c.address}" for name, c in deployment.contracts.items()]
        if dev:
            lines.append(
                "[bold yellow]DEV NODE: dev accounts are stored UNENCRYPTED; never use them for real value[/]"
            )
        if dev and not is_loopback(host):
            lines.append(
                f"[bold red]ANYONE who reaches {host}:{port} can sign in as any dev account, "
                "the operator included[/]"
            )
        console.print(Panel("\n".join(lines), title="Cairn node", expand=False))
        if dev:
            table(
                "Dev accounts",
                ["label", "address"],
                [
                    [a.label, a.address]
                    for a in node.keystore.list()
                    if a.dev and a.label != "operator"
                ],
            )
        community = DemoCommunity(node) if demo else None
        if community is not None:
            state = community.state()
            console.print(
                "[bold]demo community[/]: "
                + (
                    "seeding it now (a minute or two); the pages show its progress"
                    if state is None
                    else f"{state['status']}; reconnecting its provider workers"
                )
            )
            community.start()
        try:
            uvicorn.run(
                create_app(node),
                host=host,
                port=port,
                log_level="info",
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
            )
        finally:
            if community is not None:
                community.stop()
    finally:
        node.close()


def _demo_accounts() -> tuple[str, ...]:
    from cairn.demo_community import demo_accounts

    return demo_accounts()


def refuse_busy_ports(config: NodeConfig) -> None:
    """Fail before anything is created if the API or Fleet API port cannot be listened on."""
    if config.port == config.fleet_port:
        raise ConfigError(
            f"--port and --fleet-port are both {config.port}: the API and the Flower fleet API "
            "need a port each"
        )
    for port, what, flag in (
        (config.port, "the API and web UI", "--port"),
        (config.fleet_port, "the Flower fleet API providers' workers connect to", "--fleet-port"),
    ):
        try:
            try_listening(config.host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} ({what}) is in use: stop what uses it or choose another "
                    f"with {flag}"
                ) from None
            raise ConfigError(
                f"cannot listen on {config.host}:{port} ({what}): {exc.strerror or exc}; "
                f"choose another --host or {flag}"
            ) from None


def try_listening(host: str, port: int) -> None:
    """Listen on host:port for a moment; raises the OSError a server would meet there.

    Binds as uvicorn does (SO_REUSEADDR, so a closed connection's TIME_WAIT is no obstacle) but
    without SO_REUSEPORT, which gRPC sets: a SuperLink already on the port would otherwise let a
    second one bind beside it and share its connections.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()


@app.command("fleet-tls")
def fleet_tls(
    names: Annotated[
        list[str],
        typer.Argument(help="Host names or IP addresses providers dial to reach the Fleet API"),
    ],
    data_dir: DataDir = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Make new keys; providers then need the new ca.pem")
    ] = False,
) -> None:
    """Make the Fleet API's TLS keys; the node then admits only SuperNodes it was told of."""
    from cairn.compute.fleet_tls import make_fleet_tls  # cryptography: for this command only

    folder = fleet_tls_dir(data_dir)
    if (folder / "server.pem").exists() and not replace:
        raise ConfigError(
            f"{folder} already holds fleet TLS keys; add --replace to make new ones (every "
            "provider then needs the new ca.pem)"
        )
    make_fleet_tls(folder, names)
    console.print(
        f"Fleet TLS keys for {', '.join(names)} in {folder}. On its next start the node serves "
        "its Fleet API over TLS and admits only SuperNodes admitted with "
        "`cairn node admit-supernode`.\n"
        f"Give providers {folder / 'ca.pem'} (public); {folder / 'ca.key'} never leaves."
    )


@app.command("supernode-key")
def supernode_key(
    path: Annotated[Path, typer.Argument(help="Private key file to make; PATH.pub beside it")],
) -> None:
    """Make a provider's SuperNode key pair: send PATH.pub to the node's operator."""
    from cairn.compute.fleet_tls import make_supernode_key  # cryptography: for this command only

    if path.exists():
        raise ConfigError(f"{path} exists; choose another file")
    make_supernode_key(path)
    console.print(
        f"SuperNode key {path} (private, 0600) and {path}.pub: the node's operator admits "
        f"{path}.pub with `cairn node admit-supernode`"
    )


@app.command("admit-supernode")
def admit_supernode(
    public_key: Annotated[Path, typer.Argument(help="A provider's SuperNode public key (.pub)")],
    data_dir: DataDir = None,
) -> None:
    """Admit a provider's SuperNode to the Fleet API; it takes effect when the node next starts."""
    from cairn.compute.fleet_tls import load_supernode_public_key  # cryptography: here only

    folder = fleet_tls_dir(data_dir)
    if not (folder / "server.pem").exists():
        raise ConfigError(
            f"{folder} holds no fleet TLS keys: make them first with `cairn node fleet-tls NAME`"
        )
    try:
        load_supernode_public_key(public_key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{public_key} is not a SuperNode public key: {exc}") from None
    admitted = folder / "supernodes" / (public_key.stem + ".pub")
    if admitted.exists():
        raise ConfigError(f"{admitted} exists: rename {public_key} to admit it too")
    admitted.parent.mkdir(exist_ok=True)
    shutil.copyfile(public_key, admitted)
    console.print(f"Admitted {admitted.name}: restart the node to register it")


def fleet_tls_dir(data_dir: Path | None) -> Path:
    """Where a node keeps its Fleet API TLS keys, as its SuperLink looks for them."""
    return NodeConfig.from_env(data_dir=data_dir).data_dir / "flower" / "tls"


@app.command("status")
def status(node_url: NodeUrl = None) -> None:
    """Show a running node's health, chain and contracts."""
    with client(node_url) as api:
        health = api.health()
        chain = api.chain()
    fields(
        f"Cairn node at {api.base_url}",
        {
            "status": health["status"],
            "version": health["version"],
            "chain": f"{chain['backend']} (chain id {chain['chain_id']})",
            "rpc url": chain["rpc_url"] or "(in process)",
            "block": health["block_number"],
            "operator": chain["operator"],
        },
    )
    table(
        "Contracts",
        ["contract", "address"],
        [[n, c["address"]] for n, c in chain["contracts"].items()],
    )
