"""Evidence bundles (证据包) as an outside party reads them: the canonical ZIP, the leaves of the evidence log, the Merkle
checks of RFC 9162 and the signed bytes of tree heads and manifests (protocol/README.md §15.8).

Standard library and ``cryptography`` only (no msgspec, nothing of the server): ``python -m protocol.verify_bundle``
must run in a clean environment that holds this package and ``cryptography`` alone. The server writes bundles with
the same functions (server/evidence/bundle.py), so what is written is what is checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: The bundle format; a new layout gets a new name.
FORMAT = "FE-EVIDENCE-BUNDLE-1"
#: Prefix of the bytes the manifest's signature covers (then the manifest's bytes).
MANIFEST_PREFIX = b"FE-EVIDENCE-BUNDLE-1\n"
#: Prefixes of an event's and a server record's leaf data (§15.1, §15.7).
LEAF_PREFIX = b"FE-EVIDENCE-LEAF-1\n"
RECORD_PREFIX = b"FE-EVIDENCE-RECORD-1\n"
#: Prefix of the bytes a tree head's signature covers (§15.3).
STH_PREFIX = b"FE-TREE-HEAD-1\n"
#: The members of a bundle, in the order they are written ("published-head.json" may be absent).
MEMBERS = ("manifest.json", "manifest.sig", "tree-head.json", "published-head.json", "server-key.txt", "records.json", "media.json", "summary.txt")
#: The members the manifest lists with their SHA-256 (all but itself and its signature).
LISTED = MEMBERS[2:]
#: Columns of an event's leaf (§15.1) and of a server record's (§15.7), in order.
EVENT_COLUMNS = ("event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms", "wire_format", "body", "sig")
RECORD_COLUMNS = ("record_id", "kind", "subject", "at_ms", "body")
#: The restricted set of §15.1: the characters an id, a tag or a base64 text may hold, so no JSON escape is needed.
RESTRICTED = re.compile(r"^[A-Za-z0-9_.:+/=-]*$")
#: A record's kind and subject (§15.7).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX128 = re.compile(r"^[0-9a-f]{128}$")
_INT64_MAX = 2**63 - 1


class BundleError(ValueError):
    """A bundle whose bytes cannot be read as one (the message names the part)."""


# --- keys, hashes, heads ---------------------------------------------------------------------------------------------


def fingerprint(public_key_hex: str) -> str:
    """The fingerprint of a server key: SHA-256 of its 32 raw bytes, 64 lower-case hex digits."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()


def grouped(hex_text: str) -> str:
    """Hex in groups of four for reading aloud (``29ac bae1 …``)."""
    return " ".join(hex_text[i : i + 4] for i in range(0, len(hex_text), 4))


def ed25519_ok(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is the Ed25519 signature of ``message`` by the key; False for anything malformed."""
    if not (isinstance(public_key_hex, str) and HEX64.fullmatch(public_key_hex) and isinstance(signature_hex, str) and HEX128.fullmatch(signature_hex)):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def sth_bytes(tree_size: int, timestamp_ms: int, root: bytes) -> bytes:
    """The 63 bytes a tree head's signature covers (§15.3)."""
    return STH_PREFIX + struct.pack(">QQ", tree_size, timestamp_ms) + root


def head_ok(head: Any, public_key_hex: str) -> bool:
    """A tree head (a dict as exported, §15.3) is well-formed and signed by this key."""
    if not isinstance(head, dict):
        return False
    size, ts, root, sig = head.get("tree_size"), head.get("timestamp_ms"), head.get("root_hash"), head.get("signature")
    if not (_int(size) and _int(ts) and isinstance(root, str) and HEX64.fullmatch(root)):
        return False
    return ed25519_ok(public_key_hex, sth_bytes(size, ts, bytes.fromhex(root)), sig)


def _int(v: Any) -> bool:
    return type(v) is int and 0 <= v <= _INT64_MAX


# --- leaves ----------------------------------------------------------------------------------------------------------


def compact_json(values: Sequence[Any]) -> bytes:
    """A JSON array without white space, as the server's encoder writes it (every string from the restricted set)."""
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not RESTRICTED.fullmatch(text):
        raise BundleError(f"{what} is not standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise BundleError(f"{what} is not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:  # one spelling only
        raise BundleError(f"{what} is not standard base64 with padding")
    return raw


def event_leaf_data(event: Any) -> bytes:
    """The leaf data of an event given as a dict of its 11 columns (body and sig in base64). Raises BundleError
    when a column is missing, of the wrong type or outside the restricted set (it would have another encoding)."""
    if not isinstance(event, dict) or set(event) != set(EVENT_COLUMNS):
        raise BundleError(f"an event has exactly the columns {', '.join(EVENT_COLUMNS)}")
    values = []
    for name in EVENT_COLUMNS:
        v = event[name]
        if name in ("seq", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms"):
            if not _int(v):
                raise BundleError(f"column {name} is not an integer")
        elif not isinstance(v, str) or not RESTRICTED.fullmatch(v) or not v and name != "body":
            raise BundleError(f"column {name} is not a text of the restricted set")
        values.append(v)
    if event["wire_format"] not in ("json", "msgpack"):
        raise BundleError("column wire_format is neither json nor msgpack")
    _b64(event["body"], "column body")
    if len(_b64(event["sig"], "column sig")) != 64:
        raise BundleError("column sig is not 64 bytes")
    return LEAF_PREFIX + compact_json(values)


def record_leaf_data(record: Any) -> bytes:
    """The leaf data of a server record given as a dict of its 5 values (body in base64)."""
    if not isinstance(record, dict) or set(record) != set(RECORD_COLUMNS):
        raise BundleError(f"a server record has exactly the values {', '.join(RECORD_COLUMNS)}")
    rid, kind, subject, at, body = (record[c] for c in RECORD_COLUMNS)
    if not (isinstance(rid, str) and re.fullmatch(r"rec:[0-9a-f]{32}", rid)):
        raise BundleError("record_id is not rec: and 32 hex digits")
    if not (isinstance(kind, str) and NAME.fullmatch(kind) and isinstance(subject, str) and NAME.fullmatch(subject)):
        raise BundleError("kind or subject is outside the restricted set")
    if not _int(at):
        raise BundleError("at_ms is not an integer")
    _b64(body, "body")
    return RECORD_PREFIX + compact_json([rid, kind, subject, at, body])


def decode_body(body: bytes, wire_format: str) -> Any:
    """A device's body decoded (JSON, or MessagePack with the types §3.2 uses); BundleError when it is not one."""
    try:
        if wire_format == "json":
            return json.loads(body.decode("utf-8"))
        value, end = _unpack(body, 0, 0)
    except (ValueError, UnicodeDecodeError, IndexError, struct.error, RecursionError):
        raise BundleError(f"its body is not {wire_format}") from None
    if end != len(body):
        raise BundleError("its body has bytes after the MessagePack value")
    return value


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_NUMBERS = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
_LENGTHS = {0xD9: ("str", ">B"), 0xDA: ("str", ">H"), 0xDB: ("str", ">I"), 0xC4: ("bin", ">B"), 0xC5: ("bin", ">H"), 0xC6: ("bin", ">I"),
            0xDC: ("array", ">H"), 0xDD: ("array", ">I"), 0xDE: ("map", ">H"), 0xDF: ("map", ">I")}


def _unpack(b: bytes, i: int, depth: int) -> tuple[Any, int]:
    """One MessagePack value at ``b[i:]``: the value and where it ends (no extension types)."""
    if depth > 32:
        raise ValueError("nested too deep")
    t = b[i]
    if t <= 0x7F or t >= 0xE0:
        return (t if t <= 0x7F else t - 0x100), i + 1
    if t in _FIXED:
        return _FIXED[t], i + 1
    if t in _NUMBERS:
        fmt_ = _NUMBERS[t]
        return struct.unpack_from(fmt_, b, i + 1)[0], i + 1 + struct.calcsize(fmt_)
    if 0xA0 <= t <= 0xBF:
        kind, n, i = "str", t & 0x1F, i + 1
    elif 0x90 <= t <= 0x9F:
        kind, n, i = "array", t & 0x0F, i + 1
    elif 0x80 <= t <= 0x8F:
        kind, n, i = "map", t & 0x0F, i + 1
    elif t in _LENGTHS:
        kind, fmt_ = _LENGTHS[t]
        n, i = struct.unpack_from(fmt_, b, i + 1)[0], i + 1 + struct.calcsize(fmt_)
    else:
        raise ValueError(f"MessagePack type 0x{t:02x} is not used by devices")
    if kind in ("str", "bin"):
        if i + n > len(b):
            raise ValueError("truncated")
        raw = b[i : i + n]
        return (raw.decode("utf-8") if kind == "str" else raw), i + n
    items = []
    for _ in range(n * (2 if kind == "map" else 1)):
        v, i = _unpack(b, i, depth + 1)
        items.append(v)
    if kind == "array":
        return items, i
    return {k: v for k, v in zip(items[::2], items[1::2], strict=True) if isinstance(k, str)}, i


def hexes(values: Any) -> list[bytes]:
    """A list of 64-hex-digit strings as bytes; BundleError otherwise."""
    if not isinstance(values, list) or not all(isinstance(v, str) and HEX64.fullmatch(v) for v in values):
        raise BundleError("not a list of 64 lower-case hex digits each")
    return [bytes.fromhex(v) for v in values]


# --- the canonical ZIP -----------------------------------------------------------------------------------------------

_LOCAL, _CENTRAL, _END = 0x04034B50, 0x02014B50, 0x06054B50
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, 00:00:00: a bundle's bytes do not depend on when it was zipped


def write_zip(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The canonical ZIP of these members, in this order: stored (no compression), no extra fields, no comment,
    every time 1980-01-01 00:00. Any unzip tool reads it; ``read_zip`` accepts only this form."""
    out, central = bytearray(), bytearray()
    for name, data in members:
        raw = name.encode("ascii")
        crc = binascii.crc32(data) & 0xFFFFFFFF
        fields = struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, _DOS_DATE, crc, len(data), len(data), len(raw), 0)
        central += struct.pack("<IH", _CENTRAL, 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, len(out)) + raw
        out += struct.pack("<I", _LOCAL) + fields + raw + data
    end = struct.pack("<IHHHHIIH", _END, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def read_zip(blob: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The members of a bundle's ZIP, read from its local headers in order, and what is wrong with its form:
    a member whose CRC-32 does not match, or bytes that differ from the canonical ZIP of the same members (a
    header, the central directory or the end record changed). Raises BundleError when no member can be read."""
    members: list[tuple[str, bytes]] = []
    problems: list[str] = []
    pos = 0
    while len(blob) >= pos + 30 and struct.unpack_from("<I", blob, pos)[0] == _LOCAL:
        _, _, _, _, _, _, crc, csize, size, nlen, xlen = struct.unpack_from("<IHHHHHIIIHH", blob, pos)
        start = pos + 30 + nlen + xlen
        try:
            name = blob[pos + 30 : pos + 30 + nlen].decode("ascii")
        except UnicodeDecodeError:
            name = repr(blob[pos + 30 : pos + 30 + nlen])
        if csize != size or start + size > len(blob):
            problems.append(f"ZIP: the local header of {name} is damaged (at byte {pos})")
            break
        data = blob[start : start + size]
        if binascii.crc32(data) & 0xFFFFFFFF != crc:
            problems.append(f"ZIP: {name}: its CRC-32 does not match its bytes (changed inside the file)")
        members.append((name, data))
        pos = start + size
    if not members:
        raise BundleError("not an evidence bundle: no ZIP member could be read")
    canonical = write_zip(members)
    if canonical != blob:
        at = next((i for i, (a, b) in enumerate(zip(canonical, blob)) if a != b), min(len(canonical), len(blob)))
        problems.append(f"ZIP: byte {at} differs from the canonical form of the same members ({_zip_region(members, at)})")
    return members, problems


def _zip_region(members: Sequence[tuple[str, bytes]], at: int) -> str:
    """Which part of the canonical ZIP holds byte ``at``."""
    pos = 0
    for name, data in members:
        head = 30 + len(name)
        if at < pos + head:
            return f"the local header of {name}"
        if at < pos + head + len(data):
            return f"the bytes of {name}"
        pos += head + len(data)
    central = sum(46 + len(n) for n, _ in members)
    return "the central directory" if at < pos + central else "the end record"
