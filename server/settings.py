"""The server's settings, from the command line (typed, not a dict of strings)."""

from __future__ import annotations

import enum
import os
from pathlib import Path

import msgspec

from protocol.config import ConfigError
from server.storage.engine import Backend, backend_of

#: Environment variable that makes the ingest pause this many seconds before each commit. For fault
#: tests only: it lets a test SIGKILL the server with messages received but not yet committed.
FAULT_PAUSE_ENV = "FE_FAULT_PAUSE_BEFORE_COMMIT_S"


class Role(enum.StrEnum):
    """What one server process does; several processes of different roles share one database and one broker."""

    ALL = "all"  # API, ingest and scheduler in one process
    API = "api"  # the HTTP API and console (several workers may serve it)
    INGEST = "ingest"  # the MQTT consumer (several share the devices' uplinks through a shared subscription)
    SCHEDULER = "scheduler"  # scheduled jobs (one leader runs them; others stand by)

    @property
    def serves_api(self) -> bool:
        return self in (Role.ALL, Role.API)

    @property
    def runs_ingest(self) -> bool:
        return self in (Role.ALL, Role.INGEST)

    @property
    def runs_scheduler(self) -> bool:
        return self in (Role.ALL, Role.SCHEDULER)


def key_base(db: str | Path, key_dir: Path | None) -> Path:
    """The path the server's key and broker files are named after: the SQLite file itself, or ``<key_dir>/server``
    when the database is PostgreSQL (a URL names no folder)."""
    if backend_of(db) is Backend.SQLITE:
        return Path(db)
    if key_dir is None:
        raise ConfigError("with a PostgreSQL database the key files need a folder of their own: give --key-dir")
    return key_dir / "server"


class SignInLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How many failed sign-ins are tolerated before one account at one address, the address, or the
    account (from anywhere) must wait.

    Failures are counted in a window that starts with the first failure; from the ``pair_failures``-th
    failure of one account from one address in a window (``address_failures``-th for an address whatever
    the account, ``account_failures``-th for an account whatever the address) each further one makes the
    wait twice as long, from ``backoff_s`` up to ``backoff_max_s``. The pair's threshold is low (a guesser
    at one address soon waits, and only for that account); the account's is far higher, so that a guesser
    at one address cannot lock its owner out, while guesses spread over many addresses still are stopped.
    Successful sign-ins never count, so an office of officers behind one address is only limited by its
    mistakes.
    """

    pair_failures: int = 5
    address_failures: int = 100
    account_failures: int = 50
    window_s: float = 900.0
    backoff_s: float = 30.0
    backoff_max_s: float = 900.0


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``create_app`` needs."""

    #: The database: a SQLite file's path, or a ``postgresql://`` URL (server/storage/engine.py).
    db_path: Path | str
    #: Where the server's key files live when the database is PostgreSQL (with SQLite: beside the file).
    key_dir: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_client_id: str = "fe-server"
    #: The server's broker account (server/broker/access.py; the secure broker makes it the client id too).
    mqtt_username: str = "fe-server"
    mqtt_password: str = ""
    #: The project CA's certificate to verify the broker with (TLS); None: plain TCP.
    mqtt_ca_file: Path | None = None
    #: The server's client certificate and key, for a broker that requires one (CN = mqtt_username).
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    key_path: Path | None = None  # default: beside the database
    batch_max: int = 1000
    mqtt_enabled: bool = True
    jobs_enabled: bool = True
    #: What this process runs (``fe-server run --role``); mqtt_enabled / jobs_enabled can still turn parts off.
    role: Role = Role.ALL
    #: With the ingest role: the shared subscription group the ingest processes split the devices' uplinks in
    #: (``$share/<group>/...``); None: a plain subscription (one ingest process).
    mqtt_share_group: str | None = None
    fault_pause_before_commit_s: float = 0.0
    policy_path: Path | None = None  # default: server/policy.toml shipped with the package
    #: Addresses (or networks) of reverse proxies whose X-Forwarded-For is believed; none by default, and
    #: then the HTTP server takes the client address from the connection only.
    trusted_proxies: tuple[str, ...] = ()
    sign_in_limits: SignInLimits = msgspec.field(default_factory=SignInLimits)
    #: Evidence bundles (GET /api/v1/evidence/bundles/...) one user may export per minute (per HTTP process); more
    #: is 429 with Retry-After. A bundle may hold 5000 records with their proofs: a costly request.
    bundle_exports_per_minute: int = 6

    @property
    def policy_file(self) -> Path:
        """The policy file in force."""
        return self.policy_path or Path(__file__).with_name("policy.toml")

    @property
    def db(self) -> str:
        """The database as the storage seam opens it (a path or a URL)."""
        return str(self.db_path)

    @property
    def key_base(self) -> Path:
        """The path the key files are named after (``key_base``)."""
        return key_base(self.db, self.key_dir)

    @property
    def server_key_path(self) -> Path:
        """Where the server's Ed25519 key lives."""
        return self.key_path or self.key_base.with_name(self.key_base.name + ".server.key")

    @classmethod
    def from_env_faults(cls, **kw: object) -> ServerSettings:
        """Settings with fault-injection values taken from the environment."""
        pause = float(os.environ.get(FAULT_PAUSE_ENV, "0") or 0)
        return cls(fault_pause_before_commit_s=pause, **kw)  # type: ignore[arg-type]
