"""The evidence log of protocol/README.md section 15, checked the way an outside auditor would.

Everything here is computed with hashlib and the documented rules only (leaf data, RFC 6962 tree,
RFC 9162 proof checks as the README writes them out), so the worked example of section 15.6 can be
reproduced without the server's code. The last tests cross-check the reference server's modules
(server.evidence.log where it is importable, and protocol.merkle) against these numbers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import protocol
from protocol.codec import decode_device_body, encode
from protocol.signing import SigningKey, VerifyKey

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"
README = EXAMPLES_DIR.parent / "README.md"

LEAF_PREFIX = b"FE-EVIDENCE-LEAF-1\n"
STH_PREFIX = b"FE-TREE-HEAD-1\n"
#: The columns of a leaf, in order (README 15.1).
LEAF_COLUMNS = ("event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms", "wire_format", "body", "sig")

DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))  # the seed of README 4.2, standing in for the phone's key
SERVER_KEY = SigningKey.from_seed(bytes(range(32, 64)))
SERVER_PUBLIC_HEX = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"

#: The three records of README 15.6: example file, received_ms, stored_ms, signature of the body.
RECORDS = [
    (
        "device_status.v2.json",
        1795488125391,
        1795488125398,
        "0efc5e5c042199500db59a3ba7c136f08600e93219f083115f9d85e6e5c06321b358600afcbd900f3fd573a385ed0ac138add8b5514defda0f4167007b9ade0d",
    ),
    (
        "enterprise_scanned.v3.json",
        1795488321574,
        1795488321803,
        "e2afc7c4f3e99df9dc1169ae6c14924e5ff14a53e7d80ce036fa48ce1e267cd4965dc1e5817741d8c860fd3c832731e42542cfb304ca7d84f5fa8136beadbf08",
    ),
    (
        "provisional_decision.v2.json",
        1795488321575,
        1795488321803,
        "8fff876d65c51f13c28ecce159454e29f022b04f8cfa824e82792a5ed04b0ab486c5ef1c0dfb98d369559b2f0b4484a3f9305de87a573a3b562c75aa63d64c0e",
    ),
]
LEAF_DATA_0_LENGTH = 783
LEAF_HASHES = [
    "4a968bb28238496aee9821476ea25530ff49ca4e4983a48a5c0e196534eafcc6",
    "ba91d110b035d3c1f286488dbd97497497eb8b00c2f55423f869514b6c19c0e5",
    "7c7f5ef1ca5f07737c2da1781fb352cf4b12c4feeed2f45373ce111b6208990d",
]
NODE_01 = "f4461a9f42a6fdf7fda61f075c3cf6b804ed8c3c6d805dfad5314f8cc2ff368e"
ROOT_3 = "7f99cc6bd9f7c436c43c63ea8dd130c4b4f77a2075001e0241fa677df74e957d"
STH_TIMESTAMP_MS = 1795488330000
STH_BYTES_HEX = "46452d545245452d484541442d310a0000000000000003000001a20b71b1107f99cc6bd9f7c436c43c63ea8dd130c4b4f77a2075001e0241fa677df74e957d"
STH_SIGNATURE_HEX = "d8725f31f7b4e4f74a2ed2081d77f056cad6e7c41386643e449be468ef1b6f5e5d4ca89ad703f43d53c0f399918d74a6535f9d2333fb3093b26e77c5b08a250b"


# --------------------------------------------------------------------------- the documented rules, from scratch


def _body(name: str) -> bytes:
    """The body the phone signed: the example as compact JSON (README 5.2)."""
    raw = json.loads((EXAMPLES_DIR / name).read_text(encoding="utf-8"))
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _row(index: int) -> list[Any]:
    name, received_ms, stored_ms, sig_hex = RECORDS[index]
    raw = json.loads((EXAMPLES_DIR / name).read_text(encoding="utf-8"))
    return [raw["event_id"], raw["device_id"], raw["seq"], raw["type"], raw["device_time_ms"], raw["clock_error_ms"], received_ms, stored_ms, "json", _body(name), bytes.fromhex(sig_hex)]


def _leaf_data(row: Sequence[Any]) -> bytes:
    values = [base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v for v in row]
    return LEAF_PREFIX + json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 2.1, recursively, as the README writes it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 2.1.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


def _proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 2.1.2 PROOF(m, D[n])."""
    return [] if m in (0, len(leaves)) else _subproof(m, leaves, True)


def _shift_until_odd_or_zero(fn: int, sn: int) -> tuple[int, int]:
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def _check_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """README 15.5, line by line (RFC 9162 2.1.3.2)."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _check_consistency(m: int, n: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """README 15.5, line by line (RFC 9162 2.1.4.2)."""
    if m == n:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, first_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


def _leaves() -> list[bytes]:
    return [_leaf_hash(_leaf_data(_row(i))) for i in range(len(RECORDS))]


def _sth_bytes(size: int, timestamp_ms: int, root: bytes) -> bytes:
    return STH_PREFIX + struct.pack(">QQ", size, timestamp_ms) + root


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _section_15() -> str:
    text = _readme()
    return text[text.index("## 15. Evidence log") :]


# --------------------------------------------------------------------------- the worked example of README 15.6


def test_the_records_are_the_phone_examples_signed() -> None:
    assert DEVICE_KEY.public_hex == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    for name, _, _, sig_hex in RECORDS:
        body = _body(name)
        assert encode(decode_device_body((EXAMPLES_DIR / name).read_bytes(), "json"), "json") == body
        assert DEVICE_KEY.sign(body).hex() == sig_hex
        assert VerifyKey(DEVICE_KEY.public_bytes).verify(body, bytes.fromhex(sig_hex))
    assert [_row(i)[2] for i in range(3)] == [1, 2, 3] and len({_row(i)[1] for i in range(3)}) == 1


def test_leaf_data_of_record_0() -> None:
    data = _leaf_data(_row(0))
    assert len(data) == LEAF_DATA_0_LENGTH
    assert data.startswith(LEAF_PREFIX) and len(LEAF_PREFIX) == 19 and not data.endswith(b"\n")
    assert b" " not in data[len(LEAF_PREFIX) :]
    array = json.loads(data[len(LEAF_PREFIX) :])
    assert len(array) == len(LEAF_COLUMNS)
    assert base64.b64decode(array[9], validate=True) == _body(RECORDS[0][0])
    assert base64.b64decode(array[10], validate=True).hex() == RECORDS[0][3]
    section = _section_15()
    assert data.decode("ascii") in section
    assert f"{LEAF_DATA_0_LENGTH} bytes" in section


def test_leaf_hashes_node_and_root() -> None:
    leaves = _leaves()
    assert [h.hex() for h in leaves] == LEAF_HASHES
    assert _node(leaves[0], leaves[1]).hex() == NODE_01
    assert _node(bytes.fromhex(NODE_01), leaves[2]).hex() == ROOT_3 == _mth(leaves).hex()
    section = _section_15()
    for i, h in enumerate(LEAF_HASHES):
        assert f"leaf {i}   {h}" in section
    assert NODE_01 in section and ROOT_3 in section


def test_the_readme_table_gives_received_stored_and_signature() -> None:
    section = _section_15()
    for i, (name, received_ms, stored_ms, sig_hex) in enumerate(RECORDS):
        row = _row(i)
        assert f"| {i} | {row[2]} | `{name.split('.')[0]}` | {received_ms} | {stored_ms} | `{sig_hex}` |" in section


def test_signed_tree_head() -> None:
    signed = _sth_bytes(3, STH_TIMESTAMP_MS, bytes.fromhex(ROOT_3))
    assert len(signed) == 63 and len(STH_PREFIX) == 15
    assert signed.hex() == STH_BYTES_HEX
    assert SERVER_KEY.public_hex == SERVER_PUBLIC_HEX
    assert SERVER_KEY.sign(signed).hex() == STH_SIGNATURE_HEX
    assert VerifyKey.from_hex(SERVER_PUBLIC_HEX).verify(signed, bytes.fromhex(STH_SIGNATURE_HEX))
    assert not VerifyKey(DEVICE_KEY.public_bytes).verify(signed, bytes.fromhex(STH_SIGNATURE_HEX))
    exported = json.dumps(
        {"tree_size": 3, "timestamp_ms": STH_TIMESTAMP_MS, "root_hash": ROOT_3, "signature": STH_SIGNATURE_HEX, "public_key": SERVER_PUBLIC_HEX}, separators=(",", ":")
    )
    section = _section_15()
    assert exported in section
    hex_lines = "\n".join([STH_BYTES_HEX[:30], STH_BYTES_HEX[30:46], STH_BYTES_HEX[46:62], STH_BYTES_HEX[62:]])
    assert hex_lines in section
    assert STH_BYTES_HEX[:30] == STH_PREFIX.hex() and int(STH_BYTES_HEX[30:46], 16) == 3 and int(STH_BYTES_HEX[46:62], 16) == STH_TIMESTAMP_MS


def test_the_readme_prefixes_are_the_bytes() -> None:
    section = _section_15()
    assert f"the 19 bytes `{LEAF_PREFIX.hex(' ')}`" in section
    assert f"the 15 bytes `{STH_PREFIX.hex(' ')}`" in section


def test_the_readme_lists_the_leaf_columns_in_order() -> None:
    section = _section_15()
    for i, column in enumerate(LEAF_COLUMNS, start=1):
        assert f"| {i} | `{column}` |" in section


def test_inclusion_worked_example() -> None:
    leaves = _leaves()
    path = _path(1, leaves)
    assert path == [leaves[0], leaves[2]]
    root = bytes.fromhex(ROOT_3)
    assert _check_inclusion(leaves[1], 1, 3, path, root)
    assert not _check_inclusion(leaves[0], 1, 3, path, root)  # another record at that index
    assert not _check_inclusion(leaves[1], 2, 3, path, root)  # the wrong index
    assert not _check_inclusion(leaves[1], 1, 3, path[:1], root)  # a path cut short
    assert not _check_inclusion(leaves[1], 1, 3, [*path, leaves[2]], root)  # a path too long
    assert not _check_inclusion(leaves[1], 3, 3, path, root)


def test_consistency_worked_example() -> None:
    leaves = _leaves()
    proof = _proof(2, leaves)
    assert proof == [leaves[2]]
    old_root, new_root = _mth(leaves[:2]), bytes.fromhex(ROOT_3)
    assert old_root.hex() == NODE_01
    assert _check_consistency(2, 3, old_root, new_root, proof)
    assert not _check_consistency(2, 3, leaves[0], new_root, proof)  # a rewritten earlier log
    assert not _check_consistency(2, 3, old_root, leaves[2], proof)
    assert _check_consistency(1, 3, leaves[0], new_root, _proof(1, leaves))
    assert _check_consistency(3, 3, new_root, new_root, [])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_the_documented_checks_accept_every_proof_and_refuse_a_changed_one(n: int) -> None:
    leaves = [_leaf_hash(f"record {i}".encode()) for i in range(n)]
    root = _mth(leaves)
    for i in range(n):
        path = _path(i, leaves)
        assert _check_inclusion(leaves[i], i, n, path, root)
        if path:
            assert not _check_inclusion(leaves[i], i, n, [_leaf_hash(b"x"), *path[1:]], root)
    for m in range(1, n + 1):
        proof = _proof(m, leaves)
        assert _check_consistency(m, n, _mth(leaves[:m]), root, proof)
        if m < n:
            changed = [*leaves[: m - 1], _leaf_hash(b"changed")]
            assert not _check_consistency(m, n, _mth(changed), root, proof)


# --------------------------------------------------------------------------- the reference server agrees


def test_the_reference_server_writes_these_bytes() -> None:
    evidence = pytest.importorskip("server.evidence.log")
    from protocol import merkle

    assert tuple(evidence.LEAF_COLUMNS) == LEAF_COLUMNS
    assert evidence.LEAF_PREFIX == LEAF_PREFIX and evidence.STH_PREFIX == STH_PREFIX
    leaves = _leaves()
    for i in range(len(RECORDS)):
        assert evidence.leaf_data(_row(i)) == _leaf_data(_row(i))
        assert evidence.row_leaf_hash(_row(i)) == leaves[i]
        # The database hands the server memoryviews for BLOB columns; the leaf is the same.
        as_stored = [memoryview(v) if isinstance(v, bytes) else v for v in _row(i)]
        assert evidence.leaf_data(as_stored) == _leaf_data(_row(i))
    assert merkle.root(leaves).hex() == ROOT_3
    assert merkle.inclusion_proof(leaves, 1) == _path(1, leaves)
    assert merkle.consistency_proof(leaves, 2) == _proof(2, leaves)
    assert merkle.verify_inclusion(leaves[1], 1, 3, _path(1, leaves), bytes.fromhex(ROOT_3))
    assert merkle.verify_consistency(2, 3, bytes.fromhex(NODE_01), bytes.fromhex(ROOT_3), _proof(2, leaves))
    assert merkle.Frontier.from_leaves(leaves).root().hex() == ROOT_3
    assert evidence.sth_bytes(3, STH_TIMESTAMP_MS, bytes.fromhex(ROOT_3)).hex() == STH_BYTES_HEX
    head = evidence.TreeHead(tree_size=3, timestamp_ms=STH_TIMESTAMP_MS, root_hash=ROOT_3, signature=STH_SIGNATURE_HEX, public_key=SERVER_PUBLIC_HEX)
    assert head.verify() and head.verify(VerifyKey.from_hex(SERVER_PUBLIC_HEX))
    import msgspec

    assert msgspec.json.encode(head).decode() in _section_15()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_the_reference_server_proofs_are_rfc_6962(n: int) -> None:
    from protocol import merkle

    leaves = [_leaf_hash(f"record {i}".encode()) for i in range(n)]
    assert merkle.root(leaves) == _mth(leaves)
    for i in range(n):
        assert merkle.inclusion_proof(leaves, i) == _path(i, leaves)
    for m in range(n + 1):
        assert merkle.consistency_proof(leaves, m) == _proof(m, leaves)
