"""A longer, coverage-guided fuzz run of the decoders, by hand (the CI runs tests/protocol/test_fuzz.py instead).

    .venv/bin/pip install atheris          # not a project dependency
    .venv/bin/python scripts/fuzz.py TARGET [libFuzzer options], e.g.
    .venv/bin/python scripts/fuzz.py envelope -max_total_time=600

Targets: envelope, device-body, server-body, ingest, enterprise-code, credit-code. The run starts from a corpus
folder seeded with the frozen examples (protocol/examples), their envelopes and a genuine enterprise code
(``$TMPDIR/fe-fuzz-corpus/TARGET`` unless a folder is named). Any exception other than the documented refusal stops it;
libFuzzer writes the input to ``crash-<sha1>``, to replay with ``scripts/fuzz.py TARGET crash-<sha1>``.

libFuzzer is guided by Python coverage only: msgspec's decoders are C, so for the envelope and body targets the
structure-aware generators of tests/protocol/test_fuzz.py (``FE_FUZZ_EXAMPLES=20000``) reach deeper; this run
is most useful for the ingest and the two code parsers, with the dictionary below.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atheris
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports():
    from protocol import topics
    from protocol.codec import ProtocolError, decode_device_body, decode_server_body, encode, open_envelope
    from protocol.creditcode import CHARSET, CreditCodeError, check_character, validate
    from protocol.enterprise_code import CodeError, issue, verify
    from protocol.messages import INT64_MAX, Envelope
    from protocol.signing import SigningKey
    from server import db as dbmod
    from server.ingest.store import DeviceKeys, Incoming
    from server.ingest.batch import store_batch

DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))
CODE_KEY = SigningKey.from_seed(bytes(range(2, 34)))
GENUINE_CODE = issue("91350100M000100Y43", CODE_KEY, "K1", dt.date(2025, 3, 14))
CODE_KEYS = {"K1": CODE_KEY.verifier()}
EXAMPLES = [msgspec.json.decode(p.read_bytes()) for p in sorted((ROOT / "protocol" / "examples").glob("*.json"))]
DEVICE_IDS = sorted({e["device_id"] for e in EXAMPLES if "seq" in e})
#: Documented refusal codes of the ingest (protocol/README.md, "What the server does with a message").
INGEST_CODES = {"oversized", "undecodable", "bad_envelope", "schema", "bad_topic", "unknown_device", "bad_signature", "topic_mismatch", "event_id_conflict", "seq_conflict"}


def _fits(value: object) -> bool:
    """Every integer in a decoded message fits a signed 64-bit column."""
    if isinstance(value, dict):
        return all(_fits(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits(v) for v in value)
    return not isinstance(value, int) or -INT64_MAX <= value <= INT64_MAX


def _fmt(data: bytes) -> str:
    return "json" if data[:1] == b"{" else "msgpack"


def fuzz_envelope(data: bytes) -> None:
    """open_envelope refuses with ProtocolError only."""
    try:
        open_envelope(data)
    except ProtocolError:
        pass


def _bodies(decode: Callable[[bytes, str], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        for fmt in ("json", "msgpack"):
            try:
                msg = decode(data, fmt)
            except ProtocolError:
                continue
            msgspec.json.encode(msg)
            assert _fits(msgspec.to_builtins(msg)), "an accepted message must fit the database"

    return run


class _Ingest:
    """store_batch on a throw-away database, with the example devices registered."""

    def __init__(self) -> None:
        path = Path(tempfile.mkdtemp(prefix="fe-fuzz-")) / "server.db"
        dbmod.migrate(path)
        self.con = dbmod.connect(path)
        self.con.execute("PRAGMA synchronous=OFF")
        for d in DEVICE_IDS:
            self.con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (?, 'M', 'qr_terminal', 'A', ?, 0)", (d, DEVICE_KEY.public_hex))
        self.keys = DeviceKeys(self.con)

    def __call__(self, data: bytes) -> None:
        """Store the input as a signed body on its device's topic, and as a raw payload: only documented refusals."""
        device = DEVICE_IDS[data[0] % len(DEVICE_IDS)] if data else DEVICE_IDS[0]
        body = data[1:]
        signed = encode(Envelope(body=body, sig=DEVICE_KEY.sign(body)), _fmt(body))  # type: ignore[arg-type]
        batch = [Incoming(topics.device_up(device), signed, int(time.time() * 1000)), Incoming(topics.device_up(device), data, 0)]
        before = self.con.execute("SELECT COALESCE(MAX(id), 0) FROM rejected").fetchone()[0]
        store_batch(self.con, batch, self.keys)
        codes = {c for (c,) in self.con.execute("SELECT reason_code FROM rejected WHERE id > ?", (before,))}
        assert codes <= INGEST_CODES, codes


def fuzz_enterprise_code(data: bytes) -> None:
    """verify refuses with CodeError only, and never accepts anything but the genuine code (white space aside)."""
    text = data.decode("utf-8", errors="replace")  # the seeds stay readable; other scripts come as UTF-8
    try:
        code = verify(text, CODE_KEYS)
    except CodeError:
        return
    assert text.strip() == GENUINE_CODE and code.text == GENUINE_CODE, repr(text)


def fuzz_credit_code(data: bytes) -> None:
    """validate refuses with CreditCodeError only, and accepts only ASCII codes whose check character holds."""
    text = data.decode("utf-8", errors="replace")
    try:
        code = validate(text)
    except CreditCodeError:
        return
    assert text.strip().isascii() and set(code) <= set(CHARSET) and check_character(code[:17]) == code[17], repr(text)


def _seeds(target: str) -> list[bytes]:
    bodies = [msgspec.json.encode(e) for e in EXAMPLES] + [msgspec.msgpack.encode(e) for e in EXAMPLES]
    if target in ("enterprise-code", "credit-code"):
        return [GENUINE_CODE.encode(), b"91350100M000100Y43"]
    if target == "ingest":
        return [bytes([i]) + b for i, b in enumerate(bodies)]
    if target == "envelope":
        return [encode(Envelope(body=b, sig=DEVICE_KEY.sign(b)), _fmt(b)) for b in bodies]  # type: ignore[arg-type]
    return bodies


def _dictionary() -> list[bytes]:
    """libFuzzer dictionary: tokens that stress decoders (MessagePack headers announcing huge lengths, odd
    numbers, deep nesting) and characters Python may read as ASCII (other scripts' digits, 'ﬀ'.upper())."""
    tokens = [b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xd6\xff",
              b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", b"9223372036854775808", b"1e999", b'"\\ud800"', b"[[[[[[[[", b"\x91\x91\x91\x91"]
    for i in range(0x80, 0x30000):
        c = chr(i)
        if c.isdecimal() or (c.upper().isascii() and c.upper().isalnum()):
            tokens.append(c.encode())
    return tokens


TARGETS: dict[str, Callable[[], Callable[[bytes], None]]] = {
    "envelope": lambda: fuzz_envelope,
    "device-body": lambda: _bodies(decode_device_body),  # type: ignore[arg-type]
    "server-body": lambda: _bodies(decode_server_body),  # type: ignore[arg-type]
    "ingest": _Ingest,
    "enterprise-code": lambda: fuzz_enterprise_code,
    "credit-code": lambda: fuzz_credit_code,
}


def main() -> None:
    """Run one target under libFuzzer."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: scripts/fuzz.py {{{','.join(TARGETS)}}} [libFuzzer options] [corpus folder]")
    target, args = sys.argv[1], sys.argv[2:]
    if not any(not a.startswith("-") for a in args):  # no corpus folder or input file named: seed one
        corpus = Path(tempfile.gettempdir()) / "fe-fuzz-corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(_seeds(target)):
            (corpus / f"seed-{i:03d}").write_bytes(seed)
        args.append(str(corpus))
    if not any(a.startswith("-dict=") for a in args):
        words = Path(tempfile.gettempdir()) / "fe-fuzz.dict"
        words.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in t) + '"\n' for t in _dictionary()))
        args.append(f"-dict={words}")
    atheris.Setup([sys.argv[0], *args], TARGETS[target]())
    atheris.Fuzz()


if __name__ == "__main__":
    main()
