"""Ed25519 signatures over the exact bytes of a message body.

Rule: ``sig = Ed25519-Sign(private_key, body)`` where ``body`` is the encoded message (JSON or
MessagePack) exactly as it travels inside the envelope. The verifier checks the signature over those
same bytes and only then decodes them, so what is verified is what is parsed: no canonical form is needed.
Keys are stored as 64 hex characters: the 32-byte private seed, or the 32-byte public key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

_nacl_wanted = os.environ.get("FE_ED25519_VERIFY", "") != "cryptography"  # benchmarks compare the two in one run
try:  # libsodium verifies in about half the time of OpenSSL through cryptography (~60 against ~110 us on this machine)
    from nacl.exceptions import BadSignatureError as _NaclBadSignature
    from nacl.signing import SigningKey as _NaclSigningKey
    from nacl.signing import VerifyKey as _NaclVerifyKey
except ImportError:  # pragma: no cover - PyNaCl is optional
    _NaclVerifyKey = _NaclSigningKey = None
if not _nacl_wanted:
    _NaclVerifyKey = _NaclSigningKey = None

KEY_BYTES = 32
SIG_BYTES = 64


class KeyFormatError(ValueError):
    """A key file or key text that is not a valid Ed25519 key."""


class SigningKey:
    """An Ed25519 private key that signs message bodies."""

    __slots__ = ("_key", "_sodium", "public_bytes")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_bytes: bytes = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # libsodium signs in about two thirds of OpenSSL's time, without the GIL; Ed25519 signatures are deterministic
        # (RFC 8032), so both give the same bytes.
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) if _NaclSigningKey is not None else None
        self._sodium = _NaclSigningKey(seed) if seed is not None else None

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose 32-byte private seed is given."""
        if len(seed) != KEY_BYTES:
            raise KeyFormatError(f"an Ed25519 private seed is {KEY_BYTES} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_hex(cls, text: str) -> SigningKey:
        """The key from 64 hex characters."""
        return cls.from_seed(_unhex(text, "private key"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a key file holding the hex seed."""
        try:
            return cls.from_hex(Path(path).read_text(encoding="ascii"))
        except KeyFormatError as e:
            raise KeyFormatError(f"{path}: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise KeyFormatError(f"{path}: cannot read the key file: {getattr(e, 'strerror', None) or e}") from None

    def seed_hex(self) -> str:
        """The private seed as hex (keep it secret)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the hex seed to a new file readable by its owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self.seed_hex() + "\n")

    def verifier(self) -> VerifyKey:
        """The matching public key."""
        return VerifyKey(self.public_bytes)

    @property
    def public_hex(self) -> str:
        """The public key as hex."""
        return self.public_bytes.hex()

    def sign(self, data: bytes) -> bytes:
        """The 64-byte signature of data."""
        if self._sodium is not None:
            return self._sodium.sign(bytes(data)).signature  # type: ignore[no-any-return]
        return self._key.sign(data)


class VerifyKey:
    """An Ed25519 public key; build it once per peer, verification is then ~100 us."""

    __slots__ = ("_key", "_sodium", "public_bytes")

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != KEY_BYTES:
            raise KeyFormatError(f"an Ed25519 public key is {KEY_BYTES} bytes, got {len(public_bytes)}")
        self.public_bytes = public_bytes
        self._key = Ed25519PublicKey.from_public_bytes(public_bytes)
        self._sodium = _NaclVerifyKey(public_bytes) if _NaclVerifyKey is not None else None

    @classmethod
    def from_hex(cls, text: str) -> VerifyKey:
        """The public key from 64 hex characters."""
        return cls(_unhex(text, "public key"))

    def verify(self, data: bytes, sig: bytes) -> bool:
        """True if sig is this key's signature of data."""
        if self._sodium is not None:
            if len(sig) != SIG_BYTES:
                return False
            try:
                self._sodium.verify(bytes(data), bytes(sig))
            except _NaclBadSignature:
                return False
            return True
        try:
            self._key.verify(sig, data)
        except InvalidSignature:
            return False
        return True


def _unhex(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise KeyFormatError(f"{what} must be {2 * KEY_BYTES} hex characters") from None
    if len(raw) != KEY_BYTES:
        raise KeyFormatError(f"{what} must be {2 * KEY_BYTES} hex characters, got {len(text)}")
    return raw
