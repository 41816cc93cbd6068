"""Keys for a Fleet API on a public address: TLS for the channel, SuperNode keys for who joins.

A node's SuperLink encrypts its Fleet API with a server certificate signed by the node's own CA
(`ca.pem`, handed to providers, who pass it to `flower-supernode --root-certificates`), and with
Flower's SuperNode authentication admits only SuperNodes whose public keys the node registered
through the Control API. A SuperNode signs with an EC private key on a NIST curve in OpenSSH
format (what `--auth-supernode-private-key` loads); its public key is registered as PEM.

Layout of a node's fleet TLS folder (`make_fleet_tls`):

    ca.pem  ca.key          the node's CA: ca.pem goes to providers, ca.key never leaves
    server.pem  server.key  the SuperLink's certificate, for the names providers dial
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_DAYS = 825  # the longest validity clients commonly accept for a server certificate
CURVE = ec.SECP384R1()  # a NIST curve, as Flower's SuperNode authentication requires
CA_KEY_USAGE = x509.KeyUsage(  # a CA that signs certificates and nothing else
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def make_fleet_tls(folder: Path, names: list[str], *, days: int = CERT_DAYS) -> None:
    """Write a CA and a server certificate for `names` (host names or IPs) into `folder`.

    127.0.0.1 and localhost are always included: the node reaches its own Control API by them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(CURVE)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cairn node fleet CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(CURVE)
    wanted = list(dict.fromkeys([*names, "127.0.0.1", "localhost"]))
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in wanted]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    _write(folder / "ca.key", _pem_private(ca_key), secret=True)
    _write(folder / "server.pem", server.public_bytes(serialization.Encoding.PEM))
    _write(folder / "server.key", _pem_private(server_key), secret=True)


def make_supernode_key(private_key_file: Path) -> bytes:
    """Write a new SuperNode private key (OpenSSH, 0600) and its `.pub`; returns the public key.

    The returned bytes (PEM) are what the node registers; the `.pub` (OpenSSH) is what
    `flwr supernode register` reads.
    """
    key = ec.generate_private_key(CURVE)
    private_key_file.parent.mkdir(parents=True, exist_ok=True)
    _write(
        private_key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        secret=True,
    )
    public = key.public_key()
    _write(
        private_key_file.with_name(private_key_file.name + ".pub"),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    )
    return supernode_public_key(public)


def load_supernode_public_key(pub_file: Path) -> bytes:
    """The registrable (PEM) form of a SuperNode public key file (OpenSSH or PEM)."""
    data = pub_file.read_bytes()
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_ssh_public_key(data)
        )
    except UnsupportedAlgorithm as exc:  # not ValueError: an unknown key type, or no key at all
        raise ValueError(str(exc)) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{pub_file}: a SuperNode key must be an EC key, not {type(key).__name__}")
    return supernode_public_key(key)


def supernode_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """A public key as Flower's Control API registers it (PEM SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name)


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
