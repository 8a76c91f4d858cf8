"""Fuzzing what a hostile client can reach on the wire: envelope and body decoders, and the ingest behind them.

Inputs are random bytes and mutations of valid ones (the frozen example payloads, envelopes signed by a
registered device): bit flips, byte changes, truncations, insertions of tokens with huge lengths or deep
nesting, splices, fields replaced by extreme values or added. The property is always the same: each input
is accepted or refused with the documented ``ProtocolError`` code, never with any other exception, and the
ingest keeps every refusal as a ``rejected`` row with its reason. (Enterprise and credit codes: test_fuzz_codes.py.)

Bounded for the default run (a few hundred examples per target); ``FE_FUZZ_EXAMPLES=20000`` runs longer.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import topics
from protocol.codec import ProtocolError, decode_device_body, decode_server_body, encode, open_envelope, open_server_message, sniff_format
from protocol.decision import Policy
from protocol.messages import INT64_MAX, DeviceEvent, Envelope, ServerNotice
from protocol.signing import SigningKey
from server import db as dbmod
from server.ingest.projector import Projector
from server.ingest.store import DeviceKeys, Incoming
from server.ingest.batch import store_batch

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"

#: Examples per target in the default run: enough to catch a leaking decoder, brief enough for CI.
EXAMPLES = int(os.environ.get("FE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: The refusals each decoder documents (its docstring and protocol/README.md).
ENVELOPE_CODES = {"oversized", "undecodable", "bad_envelope"}
BODY_CODES = {"undecodable", "schema"}
INGEST_CODES = ENVELOPE_CODES | BODY_CODES | {"bad_topic", "unknown_device", "bad_signature", "topic_mismatch", "event_id_conflict", "seq_conflict"}

DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))
SERVER_KEY = SigningKey.from_seed(bytes(range(1, 33)))


def _examples() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The frozen examples of device events and of server messages (others, such as a time request, neither)."""
    device, server = [], []
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        obj = msgspec.json.decode(path.read_bytes())
        for decoder, found in ((decode_device_body, device), (decode_server_body, server)):
            try:
                decoder(path.read_bytes(), "json")
            except ProtocolError:
                continue
            found.append(obj)
    return device, server


DEVICE_EXAMPLES, SERVER_EXAMPLES = _examples()
DEVICE_IDS = sorted({e["device_id"] for e in DEVICE_EXAMPLES})
EXAMPLES_OF = {d: [e for e in DEVICE_EXAMPLES if e["device_id"] == d] for d in DEVICE_IDS}


def _bodies(objs: list[dict[str, Any]]) -> list[bytes]:
    return [msgspec.json.encode(o) for o in objs] + [msgspec.msgpack.encode(o) for o in objs]


DEVICE_BODIES = _bodies(DEVICE_EXAMPLES)
SERVER_BODIES = _bodies(SERVER_EXAMPLES)
DEVICE_ENVELOPES = [encode(Envelope(body=b, sig=DEVICE_KEY.sign(b)), "json" if b[:1] == b"{" else "msgpack") for b in DEVICE_BODIES]
SERVER_ENVELOPES = [encode(Envelope(body=b, sig=SERVER_KEY.sign(b)), "json" if b[:1] == b"{" else "msgpack") for b in SERVER_BODIES]

#: Tokens that stress a decoder: MessagePack headers announcing huge lengths, extension types, huge
#: or odd numbers, broken escapes, deep nesting, byte order marks.
TOKENS = [
    b"\xdb\xff\xff\xff\xff",  # str 32 of 4 GiB
    b"\xc6\xff\xff\xff\xff",  # bin 32 of 4 GiB
    b"\xdd\xff\xff\xff\xff",  # array 32 of 4 G items
    b"\xdf\xff\xff\xff\xff",  # map 32 of 4 G pairs
    b"\xc9\xff\xff\xff\xff\x01",  # ext 32
    b"\xd6\xff\x00\x00\x00\x00",  # timestamp extension
    b"\xc7\x0c\xff" + bytes(12),  # timestamp 96
    b"\xd4\x05\x00",  # fixext 1 of an unknown type
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # uint 64 max
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int 64 min
    b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00",  # float 64 +inf
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # float 64 NaN
    b"\xc1",  # never used
    b"9" * 40,
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e999",
    b"-0.0e-999",
    b'"\\ud800"',
    b'"\\u0000"',
    b"\xef\xbb\xbf",
    b"\xed\xa0\x80",  # a UTF-8 encoded surrogate
    b"[" * 3000,
    b'{"a":' * 1500,
    b"\x91" * 3000,  # MessagePack arrays of one, nested
    b"\x81\xa1a" * 1500,  # MessagePack maps of one, nested
]

#: A field value replaced after encoding by arrays nested thousands deep (no encoder writes those).
NEST = "NEST-MARK"
NEST_DEPTHS = [50, 2_000, 6_000]  # harmless, past Python's recursion limit (1,000), far past it
NESTED = {b'"' + NEST.encode() + b'"': (b"[", b"]"), msgspec.msgpack.encode(NEST): (b"\x91", b"\xc0")}

#: Integers at the edges of what JSON readers, MessagePack, SQLite and datetime hold.
EDGE_INTS = st.one_of(st.integers(), st.sampled_from([2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -1, 0, 253_402_300_800_000]))
#: Values a field may be replaced with: out of every range a decoder or a database column might assume.
EXTREME = st.one_of(
    EDGE_INTS,
    st.just(NEST),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.sampled_from(["", "x" * 5000, "\u0000", "٢٠٢٥", "ＦＥ１", "\n", "a\nb", "𐀀"]),
    st.binary(max_size=64),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few byte-level mutations."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "token", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 32))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


@st.composite
def reshaped(draw: st.DrawFn, objs: list[dict[str, Any]]) -> bytes:
    """A valid message with fields removed, replaced by extreme values, or added (unknown to the reader:
    skipped, not validated), encoded in either format."""
    obj = dict(draw(st.sampled_from(objs)))
    numbers = sorted(k for k, v in obj.items() if type(v) is int)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["number", "number", "field", "delete", "add"]))
        if op == "number" and numbers:
            obj[draw(st.sampled_from(numbers))] = draw(st.one_of(EDGE_INTS, EXTREME))
        elif op == "delete":
            key = draw(st.sampled_from(sorted(obj)))
            if key not in ("type", "device_id"):
                del obj[key]
        elif op == "add":
            obj[draw(st.sampled_from(["x", "extension", "unknown_field"]))] = draw(st.one_of(st.just(NEST), EXTREME))
        else:
            obj[draw(st.sampled_from(sorted(obj)))] = draw(EXTREME)
    enc = draw(st.sampled_from([msgspec.json.encode, msgspec.msgpack.encode]))
    try:
        data = enc(obj)
    except OverflowError:  # MessagePack has no integers past 64 bits; JSON text does
        data = msgspec.json.encode(obj)
    for mark, (open_, close) in NESTED.items():
        if mark in data:
            depth = draw(st.sampled_from(NEST_DEPTHS))
            data = data.replace(mark, open_ * depth + close * (depth if open_ == b"[" else 1))
    return data


@st.composite
def renumbered(draw: st.DrawFn, objs: list[dict[str, Any]]) -> bytes:
    """A valid message with one of its integers replaced by one at the edges, encoded in either format."""
    obj = dict(draw(st.sampled_from(objs)))
    obj[draw(st.sampled_from(sorted(k for k, v in obj.items() if type(v) is int)))] = draw(EDGE_INTS)
    try:
        return draw(st.sampled_from([msgspec.json.encode, msgspec.msgpack.encode]))(obj)
    except OverflowError:  # MessagePack has no integers past 64 bits; JSON text does
        return msgspec.json.encode(obj)


def any_bytes(seeds: list[bytes], objs: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Random bytes, junk starting like either format, mutated seeds, reshaped and renumbered messages."""
    return st.one_of(
        st.binary(max_size=512),
        st.binary(max_size=512).map(lambda b: b"{" + b),
        st.tuples(st.integers(0x80, 0x8F), st.binary(max_size=512)).map(lambda t: bytes([t[0]]) + t[1]),
        mutated(seeds),
        mutated(seeds),
        reshaped(objs),
        reshaped(objs),
        renumbered(objs),
    )


def assert_refused_with(err: ProtocolError, codes: set[str]) -> None:
    assert err.code in codes, f"undocumented refusal code {err.code!r}: {err}"
    assert str(err), "a refusal says why"


# --------------------------------------------------------------------------- envelopes and bodies


@FUZZ
@given(payload=any_bytes(DEVICE_ENVELOPES + SERVER_ENVELOPES, DEVICE_EXAMPLES))
def test_open_envelope_refuses_only_with_its_documented_codes(payload: bytes) -> None:
    try:
        fmt, env = open_envelope(payload)
    except ProtocolError as e:
        assert_refused_with(e, ENVELOPE_CODES)
    else:
        assert sniff_format(payload) == fmt and isinstance(env.body, bytes) and len(env.sig) == 64


@FUZZ
@given(body=any_bytes(DEVICE_BODIES, DEVICE_EXAMPLES), fmt=st.sampled_from(["json", "msgpack"]))
def test_device_body_decoder_refuses_only_with_its_documented_codes(body: bytes, fmt: str) -> None:
    try:
        msg = decode_device_body(body, fmt)  # type: ignore[arg-type]
    except ProtocolError as e:
        assert_refused_with(e, BODY_CODES)
    else:
        assert isinstance(msg, DeviceEvent)
        msgspec.json.encode(msg)  # what the server keeps as body_json
        assert all(-INT64_MAX <= n <= INT64_MAX for n in _integers(msgspec.to_builtins(msg))), "an accepted message must fit the database"


def _integers(value: object) -> Iterator[int]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _integers(item)
    elif isinstance(value, int):
        yield value


@FUZZ
@given(body=any_bytes(SERVER_BODIES, SERVER_EXAMPLES), fmt=st.sampled_from(["json", "msgpack"]))
def test_server_body_decoder_refuses_only_with_its_documented_codes(body: bytes, fmt: str) -> None:
    try:
        msg = decode_server_body(body, fmt)  # type: ignore[arg-type]
    except ProtocolError as e:
        assert_refused_with(e, BODY_CODES)
    else:
        assert isinstance(msg, ServerNotice)


@FUZZ
@given(payload=any_bytes(SERVER_ENVELOPES, SERVER_EXAMPLES))
def test_a_device_opens_only_genuine_server_messages(payload: bytes) -> None:
    try:
        msg = open_server_message(payload, SERVER_KEY.verifier())
    except ProtocolError as e:
        assert_refused_with(e, ENVELOPE_CODES | BODY_CODES | {"bad_signature"})
    else:  # only the server's own signed bodies open: the mutation left body and signature intact
        assert msgspec.json.encode(msg) in {msgspec.json.encode(decode_server_body(b, "json" if b[:1] == b"{" else "msgpack")) for b in SERVER_BODIES}


@FUZZ
@given(topic=st.one_of(st.text(max_size=100), st.builds(lambda d: topics.device_up(DEVICE_IDS[0]).replace(DEVICE_IDS[0], d), st.text(max_size=80))))
def test_topic_parser_refuses_only_with_topic_error(topic: str) -> None:
    try:
        device_id = topics.device_id_from_up(topic)
    except topics.TopicError:
        return
    assert topics.device_up(device_id) == topic


def test_deep_nesting_is_a_refusal_not_a_crash() -> None:
    """Found by this fuzzer: msgspec raises RecursionError past Python's recursion limit."""
    for payload in (b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", b"\x81\xa1x" + b"\x91" * 5000 + b"\xc0"):
        with pytest.raises(ProtocolError) as err:
            open_envelope(payload)
        assert err.value.code == "undecodable" and "nested too deeply" in str(err.value)
        with pytest.raises(ProtocolError) as err:
            decode_device_body(payload, "json" if payload[:1] == b"{" else "msgpack")
        assert err.value.code == "undecodable"


# --------------------------------------------------------------------------- the ingest


@pytest.fixture(scope="module")
def ingest_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A real server database with the example devices registered under one key."""
    path = tmp_path_factory.mktemp("fuzz") / "server.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    con.execute("PRAGMA synchronous=OFF")  # a throw-away database: no need to wait for the disk on every batch
    for device_id in DEVICE_IDS:
        con.execute(
            "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (?, 'M', 'qr_terminal', 'A', ?, 0)", (device_id, DEVICE_KEY.public_hex)
        )
    yield con
    con.close()


def _signed(body: bytes) -> bytes:
    fmt = "json" if body[:1] == b"{" else "msgpack"
    return encode(Envelope(body=body, sig=DEVICE_KEY.sign(body)), fmt)


def _signed_by(device_id: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """Junk the device itself signed, on its own topic: it reaches the body decoder and the database."""
    objs = EXAMPLES_OF[device_id]
    return any_bytes(_bodies(objs), objs).map(lambda body: (topics.device_up(device_id), _signed(body)))


@FUZZ
@given(
    batch=st.lists(
        st.one_of(
            st.tuples(st.one_of(st.sampled_from(DEVICE_IDS).map(topics.device_up), st.text(max_size=40)), any_bytes(DEVICE_ENVELOPES, DEVICE_EXAMPLES)),
            *[_signed_by(d) for d in DEVICE_IDS],
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_ingest_keeps_every_refusal_aside_with_its_reason(ingest_db: sqlite3.Connection, batch: list[tuple[str, bytes]]) -> None:
    con = ingest_db
    before = con.execute("SELECT COALESCE(MAX(id), 0) FROM rejected").fetchone()[0]
    incoming = [Incoming(topic, payload, int(time.time() * 1000)) for topic, payload in batch]
    out = store_batch(con, incoming, DeviceKeys(con), projector=Projector(Policy()))  # not store_or_isolate: no exception at all
    rows = con.execute("SELECT reason_code, reason FROM rejected WHERE id > ? ORDER BY id", (before,)).fetchall()
    assert {code for code, _ in rows} <= INGEST_CODES, rows
    assert all(reason for _, reason in rows)
    receipted = sum(len(items) for items in out.receipts.values())
    assert len(rows) == sum(out.rejected.values()) and receipted <= out.stored + out.duplicates
    assert len(rows) + out.stored + out.duplicates == len(batch)
