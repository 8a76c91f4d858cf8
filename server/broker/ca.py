"""The project's certificate authority for the broker's TLS: a CA, the broker's server certificate, and
optional device client certificates (``fe-server ca ...``), made with ``cryptography``.

Devices verify the broker's certificate against ``ca.crt`` (carried in their bundle), host name included.
With ``require_certificate``, a device presents a client certificate whose common name is its device id;
the CA can sign a public key the device made itself, so the device's private key never leaves it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
#: Validity of the CA and of the certificates it issues.
CA_DAYS = 3650
CERT_DAYS = 825
#: Certificates are valid from a little before now, so that a device clock slightly behind accepts them.
BACKDATE = dt.timedelta(hours=1)


class CaError(ValueError):
    """A CA operation that cannot be done; the message says why."""


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "field-enforcement"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def init_ca(ca_dir: Path, common_name: str = "field-enforcement broker CA") -> Path:
    """Make a new CA key and self-signed certificate in ``ca_dir``; refuses to overwrite one."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    if (ca_dir / CA_KEY).exists() or (ca_dir / CA_CERT).exists():
        raise CaError(f"{ca_dir} already holds a CA ({CA_KEY}/{CA_CERT}); a new one would invalidate every device's bundle")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(ca_dir / CA_KEY, key)
    (ca_dir / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_dir / CA_CERT


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError:
        raise CaError(f"{ca_dir} holds no CA: run `fe-server ca init --dir {ca_dir}` first") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{ca_dir / CA_KEY}: not an EC key")
    return cert, key


def _issue(ca_dir: Path, common_name: str, public_key: ec.EllipticCurvePublicKey, *, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> x509.Certificate:
    ca_cert, ca_key = _load_ca(ca_dir)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, True, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def server_cert(ca_dir: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A new key and certificate for the broker listener, valid for ``hosts`` (names or IP addresses)."""
    if not hosts:
        raise CaError("give at least one --host the devices connect to (a name or an IP address)")
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(ca_dir, hosts[0], key.public_key(), sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    (ca_dir / SERVER_KEY).unlink(missing_ok=True)
    _write_key(ca_dir / SERVER_KEY, key)
    (ca_dir / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_dir / SERVER_CERT, ca_dir / SERVER_KEY


def client_cert(ca_dir: Path, device_id: str, out_dir: Path, public_key_pem: bytes | None = None) -> Path:
    """A client certificate for a device (common name = device id) written to ``out_dir/client.crt``.

    With ``public_key_pem`` (a key pair the device made itself) only the certificate is written; without
    it a key pair is made here too and written as ``client.key``.
    """
    if public_key_pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(out_dir / "client.key", key)
        public = key.public_key()
    else:
        loaded = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise CaError("the device's TLS public key must be an EC (P-256) key in PEM")
        public = loaded
    cert = _issue(ca_dir, device_id, public, sans=[], usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    (out_dir / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out_dir / "client.crt"
