"""The standalone verifier of evidence bundles (protocol/README.md §15.8), as an outside party runs it: in a process
that holds only the ``protocol`` package and ``cryptography`` (no server, no msgspec, no network), and in a clean
virtual environment; the worked example of §15.8 is the one the code makes; random flipped bytes are all refused.

``python tests/protocol/test_verify_bundle.py`` prints the worked example's texts for the README."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import bundle as fmt
from protocol.signing import SigningKey
from protocol.verify_bundle import main as verify_main
from protocol.verify_bundle import render, verify_bytes

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "protocol" / "README.md"
EXAMPLES = ROOT / "protocol" / "examples"
SERVER_KEY = SigningKey.from_seed(bytes(range(32, 64)))  # §15.6's server key
DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))  # §4.2's seed, the phone's key in §15.6
#: §15.6: example file, received_ms, stored_ms, the phone's signature of the body.
RECORDS = [
    ("device_status.v2.json", 1795488125391, 1795488125398),
    ("enterprise_scanned.v3.json", 1795488321574, 1795488321803),
    ("provisional_decision.v2.json", 1795488321575, 1795488321803),
]
HEAD_MS = 1795488330000  # §15.6's head of 3
DAILY_MS = HEAD_MS - 86_400_000  # the day before's published head, of 2
EXPORTED_MS = 1795488340000


def _row(i: int) -> list[Any]:
    name, received, stored = RECORDS[i]
    raw = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    body = json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return [raw["event_id"], raw["device_id"], raw["seq"], raw["type"], raw["device_time_ms"], raw["clock_error_ms"], received, stored, "json", body, DEVICE_KEY.sign(body)]


def worked_example() -> bytes:
    """The bundle of §15.8: record 1 (seq 2) of §15.6's log, proved against its head of 3, with the day before's head of
    2 as the published head, made by the server's own ``assemble``."""
    from protocol import merkle
    from server.evidence.bundle import Selection, Selector, assemble
    from server.evidence.log import TreeHead, row_leaf_hash, sth_bytes

    rows = [_row(i) for i in range(3)]
    leaves = [row_leaf_hash(r) for r in rows]

    def head(size: int, ts: int) -> TreeHead:
        root = merkle.root(leaves[:size])
        return TreeHead(tree_size=size, timestamp_ms=ts, root_hash=root.hex(), signature=SERVER_KEY.sign(sth_bytes(size, ts, root)).hex(), public_key=SERVER_KEY.public_hex)

    ev = rows[1]
    cols = {c: (base64.b64encode(v).decode() if isinstance(v, bytes) else v) for c, v in zip(fmt.EVENT_COLUMNS, ev, strict=True)}
    item = {"log_index": 1, "leaf_hash": leaves[1].hex(), "audit_path": [h.hex() for h in merkle.inclusion_proof(leaves, 1)], "event": cols}
    sel = Selector(kind="device", device_id=ev[1], from_ms=ev[4], to_ms=ev[4] + 1)
    s = Selection(title={"zh": f"设备 {ev[1]} 2026-11-24 至 2026-11-24 的记录", "en": f"Records of device {ev[1]} from 2026-11-24 to 2026-11-24"})
    s.events[ev[0]] = tuple(ev)
    data, _ = assemble(
        SERVER_KEY, sel, s, [item], [], head(3, HEAD_MS), (head(2, DAILY_MS), merkle.consistency_proof(leaves, 2)), {ev[1]: DEVICE_KEY.public_hex}, [],
        "fe-server (operator)", EXPORTED_MS,
    )  # fmt: skip
    return data


def example_texts() -> dict[str, str]:
    """The texts §15.8 shows, each checked to be in the README verbatim."""
    blob = worked_example()
    pairs, _ = fmt.read_zip(blob)
    files = dict(pairs)
    listing = "\n".join(f"{len(d):>6}  {n}" for n, d in pairs) + f"\n{len(blob):>6}  (the ZIP; SHA-256 {hashlib.sha256(blob).hexdigest()})"
    report = render(verify_bytes(blob, SERVER_KEY.public_hex), "example.zip")
    texts = {"listing": listing, "report": report}
    for name in ("manifest.json", "manifest.sig", "tree-head.json", "published-head.json", "server-key.txt", "records.json"):
        texts[name] = files[name].decode().rstrip("\n")
    return texts


def test_the_worked_example_of_the_spec_is_what_the_code_makes() -> None:
    section = README.read_text(encoding="utf-8").split("### 15.8", 1)[1].split("\n## ", 1)[0]
    for name, text in example_texts().items():
        assert f"```\n{text}\n```" in section, f"§15.8's {name} differs from what the code makes (python tests/protocol/test_verify_bundle.py)"


def test_the_worked_example_verifies_and_names_what_it_checked() -> None:
    report = verify_bytes(worked_example(), SERVER_KEY.public_hex)
    assert report.ok, report.failures
    assert any("1 of 1 records proved" in c for c in report.checked) and any("extends the daily head (2)" in c for c in report.checked)
    other = SigningKey.from_seed(bytes(32)).public_hex
    wrong = verify_bytes(worked_example(), other)  # the bundle's key is not the one the auditor knows
    assert not wrong.ok and any("not the one given" in f for f in wrong.failures) and any(f.startswith("tree-head.json") for f in wrong.failures)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_is_refused(data: st.DataObject) -> None:
    blob = bytearray(worked_example_bytes())
    at = data.draw(st.integers(0, len(blob) - 1), label="byte")
    blob[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    try:
        report = verify_bytes(bytes(blob), SERVER_KEY.public_hex)
    except fmt.BundleError:
        return  # not readable as a bundle at all: refused too (exit 2)
    assert not report.ok and report.failures


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=70), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3), max_leaves=6)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (a key of an object or an index of a list), depth first."""
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _put(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    value[at[0]] = _put(value[at[0]], at[1:], new)
    return value


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_value_changed_to_anything_is_refused_without_a_crash(data: st.DataObject) -> None:
    """A hostile bundle (any value of any JSON member replaced by any JSON) is refused and named, never a crash."""
    pairs, _ = fmt.read_zip(worked_example_bytes())
    names = [n for n, _ in pairs if n.endswith(".json")]
    name = data.draw(st.sampled_from(names), label="member")
    value = json.loads(dict(pairs)[name])
    at = data.draw(st.sampled_from(_paths(value)), label="at")
    new = data.draw(_JSON, label="new")
    changed = _put(value, at, new)
    if changed == json.loads(dict(pairs)[name]):
        return
    blob = fmt.write_zip([(n, json.dumps(changed).encode() if n == name else d) for n, d in pairs])
    report = verify_bytes(blob, SERVER_KEY.public_hex)
    assert not report.ok and any(name in f for f in report.failures), report.failures


@pytest.mark.parametrize("sig", [b" ", b"\r\n", b"\n\n", b"", b"\x0b"])
def test_the_manifest_signature_has_one_spelling(sig: bytes) -> None:
    """manifest.sig is the only member the manifest cannot list: any other spelling of it is refused (the CRC too is
    made anew here, as a forger would)."""
    pairs, _ = fmt.read_zip(worked_example_bytes())
    blob = fmt.write_zip([(n, d.rstrip(b"\n") + sig if n == "manifest.sig" else d) for n, d in pairs])
    assert fmt.read_zip(blob)[1] == []
    assert any(f.startswith("manifest.sig") for f in verify_bytes(blob, SERVER_KEY.public_hex).failures)


_CACHE: dict[str, bytes] = {}


def worked_example_bytes() -> bytes:
    if "b" not in _CACHE:
        _CACHE["b"] = worked_example()
    return _CACHE["b"]


def _site(*names: str) -> list[Path]:
    """The installed files of these distributions (cryptography and what it imports: cffi), to copy nothing else."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    found = [purelib / n for n in names if (purelib / n).exists()] + list(purelib.glob("_cffi_backend*"))
    assert purelib / "cryptography" in found
    return found


def _isolated(tmp_path: Path) -> Path:
    """A folder holding a copy of the protocol package and links to cryptography (with cffi), nothing else."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copytree(ROOT / "protocol", lib / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    for p in _site("cryptography", "cffi", "pycparser"):
        (lib / p.name).symlink_to(p)
    return lib


#: Run in the child: no socket can be opened, then the verifier; it fails if anything of the server or msgspec was imported.
_CHILD = """
import socket, sys
def _no_network(*a, **k):
    raise OSError("no network for the verifier")
socket.socket = _no_network
socket.create_connection = _no_network
sys.path.insert(0, sys.argv[1])
from protocol.verify_bundle import main
code = main(sys.argv[2:])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("server", "msgspec", "nacl", "litestar", "sqlalchemy", "psycopg"))
if bad:
    print("IMPORTED", bad)
    code = 3
sys.exit(code)
"""


def _no_net_prefix() -> list[str]:
    """``unshare -rn`` (a network namespace with no interface) when this machine allows it."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def test_the_verifier_runs_isolated_with_protocol_and_cryptography_only(tmp_path: Path) -> None:
    lib = _isolated(tmp_path)
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(worked_example_bytes())
    changed = bytearray(worked_example_bytes())
    changed[len(changed) // 2] ^= 0x04
    bad.write_bytes(bytes(changed))
    run = [*_no_net_prefix(), sys.executable, "-I", "-S", "-c", _CHILD, str(lib)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    ok = subprocess.run([*run, str(good), "--key", SERVER_KEY.public_hex], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED 验证通过" in ok.stdout and "1 of 1 records proved" in ok.stdout
    no = subprocess.run([*run, str(bad), "--key", SERVER_KEY.public_hex], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert no.returncode == 1 and "NOT VERIFIED" in no.stdout and "FAILED" in no.stdout, no.stdout + no.stderr
    missing = subprocess.run([*run, str(tmp_path / "none.zip")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert missing.returncode == 2, missing.stdout + missing.stderr


def test_the_verifier_runs_in_a_clean_venv(tmp_path: Path) -> None:
    """A virtual environment of its own (no project, no site packages) where only protocol and cryptography are
    installed (a .pth naming the folder that holds them, as pip would leave them), run as ``python -m``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    lib = _isolated(tmp_path)
    (site,) = list((venv / "lib").glob("python3*/site-packages"))
    (site / "installed.pth").write_text(f"{lib}\n")
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(worked_example_bytes())
    py = venv / "bin" / "python"
    check = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('msgspec', 'server', 'nacl') if u.find_spec(m)])"], capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert check.stdout.strip() == "[]", check.stdout + check.stderr
    r = subprocess.run([*_no_net_prefix(), str(py), "-m", "protocol.verify_bundle", str(bundle), "--key", SERVER_KEY.public_hex, "--json"], capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"] is True


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "b.zip"
    f.write_bytes(worked_example_bytes())
    assert verify_main([str(f)]) == 0
    assert "carried by the bundle" in capsys.readouterr().out  # no --key: the verdict says whose key it trusted
    assert verify_main([str(f), "--key", "xyz"]) == 2
    f.write_bytes(b"PK not a zip")
    assert verify_main([str(f)]) == 2
    assert verify_main([str(tmp_path / "absent.zip")]) == 2
    assert verify_main([]) == 2


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    for k, v in example_texts().items():
        print(f"--- {k}\n```\n{v}\n```")
