"""Ed25519 over the exact body bytes, and the worked example of protocol/README.md.

Ed25519 (RFC 8032) is deterministic: the same seed and the same bytes always give the same signature,
so the constants below (also printed in the README) let a firmware maker check an implementation.
They were computed once with `cryptography` and cross-checked with the RFC 8032 reference code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import protocol
from protocol.codec import (
    ProtocolError,
    decode_device_body,
    decode_server_body,
    encode,
    open_envelope,
    open_server_message,
    seal,
)
from protocol.messages import DEVICE_MESSAGE_TYPES, DEVICE_REQUEST_TYPES, SERVER_MESSAGE_TYPES, Envelope, type_tag
from protocol.signing import KeyFormatError, SigningKey, VerifyKey
from protocol.timesync import decode_time_request

EXAMPLES_DIR = Path(protocol.__file__).resolve().parent / "examples"

# --------------------------------------------------------------------------- the worked example (README)

SEED_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
PUBLIC_KEY_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

#: protocol/examples/enterprise_scanned.v1.json as msgspec encodes it in JSON (480 bytes of UTF-8).
BODY_JSON = (
    '{"type":"enterprise_scanned","schema":1,"event_id":"0195a6f3-7ef6-708a-aebc-0bc6b2d87b57",'
    '"device_id":"phone-310115-xf-0022","seq":884,"device_time_ms":1742262730486,'
    '"clock_error_ms":200,"clock_source":"ntp","officer_id":"31011522045",'
    '"code_text":"https://yqym.example.org/e/91310115MA1H7K2P4W?v=2&k=7Q2MH9",'
    '"credit_code":"91310115MA1H7K2P4W","reason":"消防安全检查（综合查一次）","location":{"lat":31.229655,'
    '"lon":121.518702,"accuracy_m":12.0},"local_decision":null}'
).encode("utf-8")
BODY_JSON_SHA256 = "8c8a183f441289294592257d5ecd3813a98edf45c21cad7c14a477e3a89eca36"
SIG_JSON_HEX = (
    "15a3996f80f845c7bc9925e64141c1a7b3ab2d217b26f5bd11ed9b703e5bca0f"
    "96c8a15840a2bccdcc96fd15435ee3fc37ce3c38cf5442654e5fa37bf325790b"
)
ENVELOPE_JSON = (
    b'{"body":"eyJ0eXBlIjoiZW50ZXJwcmlzZV9zY2FubmVkIiwic2NoZW1hIjoxLCJldmVudF9pZCI6IjAxOTVhNmYzLTdlZjY'
    b"tNzA4YS1hZWJjLTBiYzZiMmQ4N2I1NyIsImRldmljZV9pZCI6InBob25lLTMxMDExNS14Zi0wMDIyIiwic2VxIjo4ODQsImR"
    b"ldmljZV90aW1lX21zIjoxNzQyMjYyNzMwNDg2LCJjbG9ja19lcnJvcl9tcyI6MjAwLCJjbG9ja19zb3VyY2UiOiJudHAiLCJ"
    b"vZmZpY2VyX2lkIjoiMzEwMTE1MjIwNDUiLCJjb2RlX3RleHQiOiJodHRwczovL3lxeW0uZXhhbXBsZS5vcmcvZS85MTMxMDE"
    b"xNU1BMUg3SzJQNFc/dj0yJms9N1EyTUg5IiwiY3JlZGl0X2NvZGUiOiI5MTMxMDExNU1BMUg3SzJQNFciLCJyZWFzb24iOiL"
    b"mtojpmLLlronlhajmo4Dmn6XvvIjnu7zlkIjmn6XkuIDmrKHvvIkiLCJsb2NhdGlvbiI6eyJsYXQiOjMxLjIyOTY1NSwibG9"
    b'uIjoxMjEuNTE4NzAyLCJhY2N1cmFjeV9tIjoxMi4wfSwibG9jYWxfZGVjaXNpb24iOm51bGx9","sig":"FaOZb4D4Rce8mS'
    b'XmQUHBp7OrLSF7JvW9Ee2bcD5byg+WyKFYQKK8zcyW/RVDXuP8N848OM9UQmVOX6N78yV5Cw=="}'
)

#: The same message as msgspec encodes it in MessagePack (420 bytes).
BODY_MSGPACK = bytes.fromhex(
    "8ea474797065b2656e74657270726973655f7363616e6e6564a6736368656d6101a86576656e745f6964d92430313935"
    "613666332d376566362d373038612d616562632d306263366232643837623537a96465766963655f6964b470686f6e65"
    "2d3331303131352d78662d30303232a3736571cd0374ae6465766963655f74696d655f6d73cf00000195a6f37ef6ae63"
    "6c6f636b5f6572726f725f6d73ccc8ac636c6f636b5f736f75726365a36e7470aa6f6666696365725f6964ab33313031"
    "31353232303435a9636f64655f74657874d93a68747470733a2f2f7971796d2e6578616d706c652e6f72672f652f3931"
    "3331303131354d413148374b325034573f763d32266b3d3751324d4839ab6372656469745f636f6465b2393133313031"
    "31354d413148374b32503457a6726561736f6ed927e6b688e998b2e5ae89e585a8e6a380e69fa5efbc88e7bbbce59088"
    "e69fa5e4b880e6aca1efbc89a86c6f636174696f6e83a36c6174cb403f3acaab8a5ce6a36c6f6ecb405e613269df97ab"
    "aa61636375726163795f6dcb4028000000000000ae6c6f63616c5f6465636973696f6ec0"
)
SIG_MSGPACK_HEX = (
    "812fbb1630650384564170a13d3c2f8edde85f7700c61be1745892e0d5ab7fbd"
    "68055148f4f19bc06770cb7dbf6873ab464089b80cc6530ed30a5adc667db805"
)


@pytest.fixture(scope="module")
def example_key() -> SigningKey:
    return SigningKey.from_seed(bytes(range(32)))


def _example(name: str) -> bytes:
    return (EXAMPLES_DIR / name).read_bytes()


def test_seed_gives_the_documented_public_key(example_key: SigningKey) -> None:
    assert bytes(range(32)).hex() == SEED_HEX
    assert example_key.public_hex == PUBLIC_KEY_HEX
    assert example_key.seed_hex() == SEED_HEX
    assert SigningKey.from_hex(SEED_HEX).public_hex == PUBLIC_KEY_HEX


def test_worked_example_body_is_the_enterprise_scanned_example() -> None:
    example = decode_device_body(_example("enterprise_scanned.v1.json"), "json")
    assert decode_device_body(BODY_JSON, "json") == example
    assert decode_device_body(BODY_MSGPACK, "msgpack") == example
    assert len(BODY_JSON) == 480 and len(BODY_MSGPACK) == 420
    assert hashlib.sha256(BODY_JSON).hexdigest() == BODY_JSON_SHA256


def test_worked_example_json_signature(example_key: SigningKey) -> None:
    assert example_key.sign(BODY_JSON).hex() == SIG_JSON_HEX
    assert VerifyKey.from_hex(PUBLIC_KEY_HEX).verify(BODY_JSON, bytes.fromhex(SIG_JSON_HEX))


def test_worked_example_msgpack_signature(example_key: SigningKey) -> None:
    assert example_key.sign(BODY_MSGPACK).hex() == SIG_MSGPACK_HEX
    assert VerifyKey.from_hex(PUBLIC_KEY_HEX).verify(BODY_MSGPACK, bytes.fromhex(SIG_MSGPACK_HEX))


def test_worked_example_json_envelope(example_key: SigningKey) -> None:
    envelope = Envelope(body=BODY_JSON, sig=bytes.fromhex(SIG_JSON_HEX))
    assert encode(envelope, "json") == ENVELOPE_JSON
    as_json = json.loads(ENVELOPE_JSON)
    assert list(as_json) == ["body", "sig"]
    assert base64.b64decode(as_json["body"], validate=True) == BODY_JSON
    assert base64.b64decode(as_json["sig"], validate=True).hex() == SIG_JSON_HEX
    assert open_envelope(ENVELOPE_JSON) == ("json", envelope)
    # Today's encoder writes every field, so it adds the fields later revisions added (with their defaults)
    # to the revision-1 example: prev_hash (revision 3, a common field, after clock_source) and field,
    # matter, exception_basis (revision 2, at the end). The worked example is what a revision-1 writer sent.
    example = decode_device_body(_example("enterprise_scanned.v1.json"), "json")
    today = BODY_JSON[:-1].replace(b'"clock_source":"ntp",', b'"clock_source":"ntp","prev_hash":null,') + b',"field":null,"matter":"","exception_basis":null}'
    assert len(today) == len(BODY_JSON) + len(b',"prev_hash":null') + len(b',"field":null,"matter":"","exception_basis":null')
    assert seal(example, example_key, "json") == encode(Envelope(body=today, sig=example_key.sign(today)), "json")
    assert decode_device_body(today, "json") == example


def test_worked_example_msgpack_envelope(example_key: SigningKey) -> None:
    envelope = Envelope(body=BODY_MSGPACK, sig=bytes.fromhex(SIG_MSGPACK_HEX))
    payload = encode(envelope, "msgpack")
    # fixmap of 2 entries; "body" -> bin16 (0xc5) of 0x01a4 = 420 bytes; "sig" -> bin8 (0xc4) of 0x40 = 64 bytes.
    assert payload == bytes.fromhex("82a4626f6479c501a4") + BODY_MSGPACK + bytes.fromhex("a3736967c440" + SIG_MSGPACK_HEX)
    assert open_envelope(payload) == ("msgpack", envelope)


# --------------------------------------------------------------------------- seal / open


_DEVICE_TAGS = {type_tag(cls) for cls in DEVICE_MESSAGE_TYPES}
ALL_EXAMPLES = sorted(p.name for p in EXAMPLES_DIR.glob("*.json"))
DEVICE_EXAMPLES = [n for n in ALL_EXAMPLES if n.split(".")[0] in _DEVICE_TAGS]
SERVER_EXAMPLES = [n for n in ALL_EXAMPLES if n.split(".")[0] in {type_tag(cls) for cls in SERVER_MESSAGE_TYPES}]
REQUEST_EXAMPLES = [n for n in ALL_EXAMPLES if n.split(".")[0] in {type_tag(cls) for cls in DEVICE_REQUEST_TYPES}]


def test_every_example_is_sealed_and_opened() -> None:
    assert len(DEVICE_EXAMPLES) >= len(DEVICE_MESSAGE_TYPES) and len(SERVER_EXAMPLES) >= len(SERVER_MESSAGE_TYPES)
    assert "decision_snapshot.v1.json" in SERVER_EXAMPLES and "provisional_decision.v1.json" in DEVICE_EXAMPLES


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("name", DEVICE_EXAMPLES)
def test_seal_and_open_device_message(name: str, fmt: str) -> None:
    key = SigningKey.generate()
    msg = decode_device_body(_example(name), "json")
    payload = seal(msg, key, fmt)  # type: ignore[arg-type]
    got_fmt, env = open_envelope(payload)
    assert got_fmt == fmt
    assert VerifyKey(key.public_bytes).verify(env.body, env.sig)
    assert env.body == encode(msg, fmt)  # type: ignore[arg-type]
    assert decode_device_body(env.body, got_fmt) == msg


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("name", SERVER_EXAMPLES)
def test_seal_and_open_server_message(name: str, fmt: str) -> None:
    key = SigningKey.generate()
    msg = decode_server_body(_example(name), "json")
    payload = seal(msg, key, fmt)  # type: ignore[arg-type]
    assert open_server_message(payload, VerifyKey.from_hex(key.public_hex)) == msg


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("name", REQUEST_EXAMPLES)
def test_seal_and_open_time_request(name: str, fmt: str) -> None:
    key = SigningKey.generate()
    msg = decode_time_request(_example(name), "json")
    got_fmt, env = open_envelope(seal(msg, key, fmt))  # type: ignore[arg-type]
    assert VerifyKey(key.public_bytes).verify(env.body, env.sig)
    assert decode_time_request(env.body, got_fmt) == msg


def test_every_example_is_a_device_server_or_request_message() -> None:
    assert sorted(DEVICE_EXAMPLES + SERVER_EXAMPLES + REQUEST_EXAMPLES) == ALL_EXAMPLES and REQUEST_EXAMPLES == ["time_request.v1.json"]


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_tampering_with_one_body_byte_fails(example_key: SigningKey, fmt: str) -> None:
    msg = decode_device_body(_example("enterprise_scanned.v1.json"), "json")
    _, env = open_envelope(seal(msg, example_key, fmt))  # type: ignore[arg-type]
    verify = VerifyKey(example_key.public_bytes)
    assert verify.verify(env.body, env.sig)
    for i in (0, len(env.body) // 2, len(env.body) - 1):
        tampered = bytearray(env.body)
        tampered[i] ^= 0x01
        assert not verify.verify(bytes(tampered), env.sig)
    assert not verify.verify(env.body + b" ", env.sig)  # even harmless-looking whitespace
    bad_sig = bytearray(env.sig)
    bad_sig[10] ^= 0x80
    assert not verify.verify(env.body, bytes(bad_sig))


def test_a_signature_from_another_key_fails(example_key: SigningKey) -> None:
    other = SigningKey.generate()
    assert other.public_hex != PUBLIC_KEY_HEX
    sig = other.sign(BODY_JSON)
    assert not VerifyKey.from_hex(PUBLIC_KEY_HEX).verify(BODY_JSON, sig)
    assert VerifyKey(other.public_bytes).verify(BODY_JSON, sig)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_open_server_message_with_wrong_key_is_bad_signature(example_key: SigningKey, fmt: str) -> None:
    receipt = decode_server_body(_example("receipt.v1.json"), "json")
    forged = seal(receipt, SigningKey.generate(), fmt)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError) as err:
        open_server_message(forged, VerifyKey(example_key.public_bytes))
    assert err.value.code == "bad_signature"


def test_open_server_message_with_tampered_body_is_bad_signature(example_key: SigningKey) -> None:
    receipt = decode_server_body(_example("receipt.v1.json"), "json")
    _, env = open_envelope(seal(receipt, example_key, "json"))
    body = env.body.replace(b'"status":"duplicate"', b'"status":"stored"')
    assert body != env.body
    payload = encode(Envelope(body=body, sig=env.sig), "json")
    with pytest.raises(ProtocolError) as err:
        open_server_message(payload, VerifyKey(example_key.public_bytes))
    assert err.value.code == "bad_signature"


def test_open_server_message_checks_the_signature_before_the_schema(example_key: SigningKey) -> None:
    body = b'{"type":"not_a_message"}'
    forged = encode(Envelope(body=body, sig=SigningKey.generate().sign(body)), "json")
    with pytest.raises(ProtocolError) as err:
        open_server_message(forged, VerifyKey(example_key.public_bytes))
    assert err.value.code == "bad_signature"
    genuine = encode(Envelope(body=body, sig=example_key.sign(body)), "json")
    with pytest.raises(ProtocolError) as err:
        open_server_message(genuine, VerifyKey(example_key.public_bytes))
    assert err.value.code == "schema"


# --------------------------------------------------------------------------- key handling


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_seed_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(KeyFormatError):
        SigningKey.from_seed(seed)


@pytest.mark.parametrize("text", ["", "zz" * 32, SEED_HEX[:-2], SEED_HEX + "00"])
def test_hex_keys_must_be_64_hex_characters(text: str) -> None:
    with pytest.raises(KeyFormatError):
        SigningKey.from_hex(text)
    with pytest.raises(KeyFormatError):
        VerifyKey.from_hex(text)


def test_key_file_round_trip(tmp_path: Path, example_key: SigningKey) -> None:
    path = tmp_path / "device.key"
    example_key.save(path)
    assert path.read_text(encoding="ascii") == SEED_HEX + "\n"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).public_hex == PUBLIC_KEY_HEX
    with pytest.raises(FileExistsError):
        example_key.save(path)  # never overwrites a key


def test_bad_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.key"
    path.write_text("not a key\n", encoding="ascii")
    with pytest.raises(KeyFormatError, match="broken.key"):
        SigningKey.load(path)


# --------------------------------------------------------------------------- the README shows the same values


def test_readme_shows_the_worked_example() -> None:
    readme = (Path(protocol.__file__).resolve().parent / "README.md").read_text(encoding="utf-8")
    for value in (SEED_HEX, PUBLIC_KEY_HEX, SIG_JSON_HEX, SIG_MSGPACK_HEX, BODY_JSON_SHA256):
        assert value in readme
    assert BODY_JSON.decode("utf-8") in readme
    assert ENVELOPE_JSON.decode("ascii") in readme
    unwrapped = readme.replace("\n", "")
    assert BODY_MSGPACK.hex() in unwrapped
    msgpack_envelope = encode(Envelope(body=BODY_MSGPACK, sig=bytes.fromhex(SIG_MSGPACK_HEX)), "msgpack")
    assert msgpack_envelope.hex() in unwrapped
    assert f"{len(BODY_JSON)} bytes" in readme and f"{len(ENVELOPE_JSON)} bytes" in readme


def test_libsodium_and_openssl_give_the_same_signatures_and_verdicts() -> None:
    """PyNaCl (libsodium) signs and verifies when installed; FE_ED25519_VERIFY=cryptography forces OpenSSL. Ed25519 is
    deterministic, so both must give the same bytes, and each must accept the other's signatures and refuse a bad one."""
    script = (
        "import sys; from protocol.signing import SigningKey, _NaclSigningKey;"
        "k = SigningKey.from_hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');"
        "m = bytes(range(256)) * 3; s = k.sign(m); v = k.verifier();"
        "bad = bytes([s[0] ^ 1]) + s[1:];"
        "print(_NaclSigningKey is not None, s.hex(), v.verify(m, s), v.verify(m, bad), v.verify(m, s[:63]))"
    )
    out = {}
    for path in ("", "cryptography"):
        env = {**os.environ, "FE_ED25519_VERIFY": path}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=Path(__file__).resolve().parents[2])
        out[path] = done.stdout.split()
    assert out[""][0] == "True" and out["cryptography"][0] == "False"  # the two paths really were taken
    assert out[""][1] == out["cryptography"][1]
    assert out[""][2:] == out["cryptography"][2:] == ["True", "False", "False"]
