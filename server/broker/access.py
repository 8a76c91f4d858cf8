"""The broker's access control, with Mosquitto's own mechanisms: a password file, an ACL file, a reload.

Mechanism (chosen for Mosquitto 2.0.11 as Debian ships it, and checked by tests/system/test_broker_security.py):

* ``password_file`` holds one PBKDF2-SHA512 hash per account, made by Mosquitto's own ``mosquitto_passwd``
  (never hashed here). Accounts: one per device (username = device id) and one for the server.
* ``acl_file`` has fixed rules: ``pattern`` lines give every device (``%u`` = its username) its own uplink,
  time-request, presence and downlink topics only; the server's account alone may read every uplink and write downlinks.
* ``use_username_as_clientid true`` (on every listener): the broker replaces whatever client id a client sends with its
  username, so no client can take another device's session, nor the server's persistent one.
* Revocation rewrites the password file without the device and sends SIGHUP to the broker (pid file):
  Mosquitto 2.0.11 reloads both files and disconnects at once every connected client whose account is gone.

The dynamic-security plugin would give the same without a signal, but needs an admin account talking to
the running broker over MQTT for every change, and its JSON file cannot be written while the broker is down;
the files here are plain text made from the register, readable and reproducible by ``fe-server broker-config``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: The server's MQTT account (and so, with use_username_as_clientid, its persistent session's client id).
SERVER_ACCOUNT = "fe-server"
PASSWD_FILE = "passwd"
ACL_FILE = "acl"
PID_FILE = "mosquitto.pid"
#: Accounts of ingest processes that share the devices' uplinks (``fe-server run --role ingest --ingest-worker K``):
#: each has its own client id and persistent session, so a restarted worker gets back what was queued for it.
INGEST_ACCOUNT_PREFIX = "fe-ingest-"
#: Ingest worker accounts broker-config makes at most (each one's password is hashed by mosquitto_passwd: a typo of
#: 100000 would hash for twenty minutes).
MAX_INGEST_WORKERS = 64
#: The shared subscription group the ingest processes split the uplinks in (``$share/<group>/...``).
INGEST_SHARE_GROUP = "fe-ingest"


def password_file_name(account: str) -> str:
    """The file holding a server-side account's broker password, readable by the server's OS user only."""
    return f"{account}.password"


def ingest_account(worker: int) -> str:
    """The broker account (and client id) of ingest worker ``worker`` (1, 2, ...)."""
    if worker < 1:
        raise BrokerSecurityError(f"ingest worker numbers start at 1, got {worker}")
    return f"{INGEST_ACCOUNT_PREFIX}{worker}"


#: The server's own broker password.
SERVER_PASSWORD_FILE = password_file_name(SERVER_ACCOUNT)
_LOCK_FILE = ".lock"
#: Bytes of randomness in a generated broker password (URL-safe base64 text of 32 characters).
PASSWORD_BYTES = 24
#: Mosquitto's tool that hashes passwords; overridable for unusual installs.
MOSQUITTO_PASSWD_ENV = "FE_MOSQUITTO_PASSWD"
#: Options whose lines in a base config are replaced by broker-config's own.
_SECURITY_KEYS = frozenset(
    {"per_listener_settings", "allow_anonymous", "password_file", "acl_file", "use_username_as_clientid", "pid_file",
     "listener", "cafile", "capath", "certfile", "keyfile", "require_certificate", "use_identity_as_username", "tls_version"}
)


class BrokerSecurityError(RuntimeError):
    """The broker's credential files cannot be written as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The broker listener's TLS files (PEM), and whether devices must present a client certificate."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


def broker_dir_for(db_path: Path) -> Path:
    """The default folder of the broker's credential files: beside the server's database."""
    return db_path.with_name(db_path.name + ".broker")


def new_password() -> str:
    """A fresh random broker password."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _mosquitto_passwd() -> str:
    exe = os.environ.get(MOSQUITTO_PASSWD_ENV) or shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(exe).exists():
        raise BrokerSecurityError("mosquitto_passwd not found (install the mosquitto package, or set FE_MOSQUITTO_PASSWD)")
    return exe


def hash_passwords(creds: dict[str, str]) -> dict[str, str]:
    """``{username: password-file line}`` hashed by ``mosquitto_passwd -U`` (one run for all accounts).

    The plain passwords pass through a temporary file readable by this user only (never a command line,
    which other users can read in the process table).
    """
    for user, pw in creds.items():
        if not user or ":" in user or "\n" in user or "\n" in pw:
            raise BrokerSecurityError(f"account {user!r}: a username may not be empty nor contain ':' or a newline")
    if not creds:
        return {}
    with tempfile.TemporaryDirectory(prefix="fe-passwd-") as tmp:
        plain = Path(tmp) / "plain"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{u}:{p}\n" for u, p in creds.items())
        done = subprocess.run([_mosquitto_passwd(), "-U", str(plain)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerSecurityError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout.strip()}")
        return _parse_passwd(plain.read_text())


def _parse_passwd(text: str) -> dict[str, str]:
    lines = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            lines[line.split(":", 1)[0]] = line
    return lines


def _write_private(path: Path, text: str) -> None:
    """Replace a file atomically, readable by its owner only (Mosquitto never sees a half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(broker_dir: Path) -> Iterator[None]:
    """Serialise changes to the credential files between concurrent commands."""
    broker_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(broker_dir / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def accounts(broker_dir: Path) -> set[str]:
    """Usernames currently in the password file."""
    try:
        return set(_parse_passwd((broker_dir / PASSWD_FILE).read_text()))
    except FileNotFoundError:
        return set()


def add_accounts(broker_dir: Path, creds: dict[str, str]) -> None:
    """Add (or replace the password of) these accounts in the password file."""
    hashed = hash_passwords(creds)
    with _locked(broker_dir):
        path = broker_dir / PASSWD_FILE
        current = _parse_passwd(path.read_text()) if path.exists() else {}
        current.update(hashed)
        _write_private(path, "".join(line + "\n" for line in current.values()))


def remove_accounts(broker_dir: Path, users: Iterable[str]) -> list[str]:
    """Remove accounts from the password file; returns those that were there."""
    gone = set(users)
    with _locked(broker_dir):
        path = broker_dir / PASSWD_FILE
        current = _parse_passwd(path.read_text()) if path.exists() else {}
        removed = sorted(gone & set(current))
        if removed:
            _write_private(path, "".join(line + "\n" for u, line in current.items() if u not in gone))
        return removed


def keep_only(broker_dir: Path, allowed: set[str]) -> list[str]:
    """Remove every account not in ``allowed`` (revoked or unknown devices); returns those removed."""
    return remove_accounts(broker_dir, accounts(broker_dir) - allowed)


def acl_text(server_accounts: Iterable[str] = (SERVER_ACCOUNT,)) -> str:
    """The ACL file: each device its own topics (protocol/topics.py), the server's accounts every device's.

    Mosquitto applies these ``read`` lines to a shared subscription's topic without its ``$share/<group>/`` prefix,
    so the ingest workers' ``$share/fe-ingest/fe/v1/dev/+/up`` is allowed by ``topic read fe/v1/dev/+/up``."""
    server_blocks = "".join(
        f"\nuser {account}\n"
        "topic read fe/v1/dev/+/up\n"
        "topic read fe/v1/dev/+/time\n"
        "topic read fe/v1/dev/+/presence\n"
        "topic write fe/v1/dev/+/down\n"
        "topic write fe/v1/lists/+\n"
        for account in server_accounts
    )
    return (
        "# Written by fe-server (server/broker/access.py); rewritten by `fe-server broker-config`.\n"
        "# Mosquitto denies whatever no line allows. A denied publish is answered with PUBACK reason 0x87\n"
        "# (MQTT v5) and dropped; a denied subscription receives nothing.\n\n"
        "# Every device (%u = its username = its device id = its client id): its own topics only.\n"
        "pattern write fe/v1/dev/%u/up\n"
        "pattern write fe/v1/dev/%u/time\n"
        "pattern readwrite fe/v1/dev/%u/presence\n"
        "pattern read fe/v1/dev/%u/down\n"
        "# Shared list snapshots (no %u: Mosquitto logs a harmless warning for this line at each load).\n"
        "pattern read fe/v1/lists/+\n\n"
        "# The server (and its ingest workers): every device's uplink and presence, every downlink and list snapshot.\n"
        + server_blocks
    )


def server_password(broker_dir: Path, server_account: str = SERVER_ACCOUNT) -> str:
    """A server-side account's broker password, made (and the account added) on first use."""
    path = broker_dir / password_file_name(server_account)
    if path.exists() and server_account in accounts(broker_dir):
        return path.read_text().strip()
    password = new_password()
    add_accounts(broker_dir, {server_account: password})
    _write_private(path, password + "\n")
    return password


def ingest_workers(broker_dir: Path) -> int:
    """How many ingest worker accounts the password file has (fe-ingest-1 .. fe-ingest-N)."""
    n = 0
    while ingest_account(n + 1) in accounts(broker_dir):
        n += 1
    return n


def prepare(broker_dir: Path, server_account: str = SERVER_ACCOUNT, *, ingest_workers: int = 0) -> list[str]:
    """Make the folder with the ACL, the server's accounts (with their password files) and a password file
    (idempotent); returns the server's accounts."""
    broker_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = [server_account, *(ingest_account(k) for k in range(1, ingest_workers + 1))]
    for name in names:
        server_password(broker_dir, name)
    with _locked(broker_dir):
        _write_private(broker_dir / ACL_FILE, acl_text(names))
    return names


def security_lines(broker_dir: Path) -> list[str]:
    """The global Mosquitto lines that turn this access control on (with ``per_listener_settings false``)."""
    return [
        "allow_anonymous false",
        f"password_file {broker_dir / PASSWD_FILE}",
        f"acl_file {broker_dir / ACL_FILE}",
        f"pid_file {broker_dir / PID_FILE}",
    ]


#: A listener option in Mosquitto 2.0.11 (even with per_listener_settings false): every listener needs it,
#: and before any `listener` line it would open a default listener on 1883.
CLIENTID_LINE = "use_username_as_clientid true"


def listener_lines(port: int, bind: str | None, tls: TlsFiles | None) -> list[str]:
    """A listener and, with TLS, its certificate lines (they belong to the listener above them)."""
    lines = [f"listener {port}" + (f" {bind}" if bind else ""), CLIENTID_LINE]
    if tls is not None:
        lines += [f"cafile {tls.cafile}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", "tls_version tlsv1.2"]
        if tls.require_certificate:
            # The device's certificate (its CN is the device id) is its identity: no password is asked.
            lines += ["require_certificate true", "use_identity_as_username true"]
    return lines


def mosquitto_conf(base: str, broker_dir: Path, *, port: int, bind: str | None = None, tls: TlsFiles | None = None, extra: Iterable[str] = ()) -> str:
    """The shipped config ``base`` with its security and listener lines replaced by this broker's."""
    out = ["# Written by `fe-server broker-config` from server/broker/mosquitto.conf.", "per_listener_settings false"]
    for raw in base.splitlines():
        words = raw.split()
        if words and not words[0].startswith("#") and words[0] in _SECURITY_KEYS:
            out.append(f"# (set below) {raw}")
        else:
            out.append(raw)
    out += ["", "# --- Access control (server/broker/access.py) ---", *security_lines(broker_dir), *listener_lines(port, bind, tls), *extra]
    return "\n".join(out) + "\n"


def reload(broker_dir: Path) -> bool:
    """SIGHUP the broker whose pid file is in ``broker_dir``: it rereads the password and ACL files and
    disconnects clients whose account is gone. False if no such broker is running (it reads the files when
    it starts)."""
    try:
        pid = int((broker_dir / PID_FILE).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return False
    try:
        # A stale pid file may name a process that is no longer Mosquitto: never signal that.
        if Path(f"/proc/{pid}/comm").read_text().strip() != "mosquitto":
            return False
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return True
