"""The argument parser of ``fe-server``: every subcommand and its help (server/cli.py runs them)."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from server.broker.access import SERVER_ACCOUNT
from server.broker.cli import add_broker_parsers
from server.copy_cli import add_copy_parser
from server.imports import add_import_parser
from server.settings import Role
from server.storage.engine import POSTGRES_SCHEMES, redact

DEFAULT_DB = "fe-server.db"


def database(text: str) -> str:
    """A ``--db`` value: a ``postgresql://`` URL as given, or a SQLite file's path made absolute."""
    if text.startswith(POSTGRES_SCHEMES):
        return text
    if "://" in text:
        raise argparse.ArgumentTypeError(f"{redact(text)!r}: give a SQLite file's path or a postgresql:// URL")
    return str(Path(text).resolve())


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", type=database, default=database(DEFAULT_DB),
        help=f"the server's database: a SQLite file (default: {DEFAULT_DB}) or a postgresql://user@host:port/name URL",
    )
    p.add_argument(
        "--key-dir", type=Path,
        help="folder of the server's key files and broker files when --db is a PostgreSQL URL (with SQLite they lie beside the file)",
    )
    p.add_argument("--key", type=Path, help="the server's Ed25519 key file (default: <db>.server.key, created on first use)")


def _add_mqtt(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--mqtt-host", default=None, help=f"broker host {what} (default: 127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, default=None, help=f"broker port {what} (default: 1883)")


def _proxy_address(text: str) -> str:
    """An IP address or network, as given (argparse type of --trusted-proxy)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fe-server",
        description="Field-enforcement supervision server: stores every device event exactly once, answers with "
        "signed receipts, and serves the supervision API and dashboard.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the server (HTTP API + MQTT ingest + jobs), or one role of it",
        description="Run the Litestar server, its MQTT ingest and its scheduled jobs until SIGTERM or Ctrl-C; with --role, "
        "one part only, so that several processes (on several machines, over one PostgreSQL database and one broker) "
        "share the work. Every role serves /health, /metrics and /ping on its HTTP port.",
    )
    _add_db(run)
    run.add_argument(
        "--role", choices=[r.value for r in Role], default=Role.ALL.value,
        help="all (default): everything in one process; api: the HTTP API and console; ingest: the MQTT consumer; "
        "scheduler: the scheduled jobs (one leader runs them, others stand by)",
    )
    run.add_argument("--workers", type=int, default=1, help="HTTP worker processes (the api role only; default 1)")
    run.add_argument(
        "--ingest-worker", type=int, metavar="K",
        help="with --role ingest: this process is ingest worker K (1, 2, ...) of several that share the devices' uplinks "
        "through one shared subscription; it signs in as broker account fe-ingest-K (`fe-server broker-config "
        "--ingest-workers N`). Without it the ingest subscribes alone as fe-server.",
    )
    _add_mqtt(run, "to subscribe to")
    run.add_argument("--http-host", default="127.0.0.1", help="address to serve HTTP on (default: 127.0.0.1)")
    run.add_argument("--http-port", type=int, default=8080, help="HTTP port (default: 8080)")
    run.add_argument("--client-id", default=None, help="MQTT client id of the persistent session (default: fe-server; a secure broker uses the --mqtt-username instead)")
    run.add_argument("--mqtt-username", default=None, help=f"the server's broker account (default: {SERVER_ACCOUNT}, or fe-ingest-K with --ingest-worker K)")
    run.add_argument(
        "--mqtt-password-file", type=Path, help="file holding the server's broker password (default: <db>.broker/fe-server.password, if there)"
    )
    run.add_argument("--mqtt-ca", type=Path, metavar="CA_CRT", help="connect with TLS, verifying the broker against this CA certificate")
    run.add_argument("--mqtt-cert", type=Path, metavar="CRT", help="with --mqtt-ca: the server's client certificate (CN fe-server), if the broker requires one")
    run.add_argument("--mqtt-key", type=Path, metavar="KEY", help="the key of --mqtt-cert")
    run.add_argument("--policy", type=Path, help="the decision policy file (default: server/policy.toml)")
    run.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=_proxy_address,
        metavar="ADDR",
        help="address or network (CIDR) of a reverse proxy whose X-Forwarded-For is believed; repeatable. "
        "Default: none, and the client address is the connection's own (a forged header changes nothing)",
    )

    devices = sub.add_parser("devices", help="register devices and write their bundles", description="The device register.")
    dsub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    add = dsub.add_parser(
        "add",
        help="register devices and write their bundles",
        description="Create devices (id, model, agency), register their new public keys, and write each device's bundle "
        "(device.key, device.toml made from its firmware_configs model) to OUT/<device id>/.",
    )
    _add_db(add)
    add.add_argument("--model", required=True, help="device model: a file stem in firmware_configs (body_recorder, qr_terminal, phone)")
    add.add_argument("--agency", required=True, help="agency id the device belongs to")
    add.add_argument("--id", dest="device_id", help="device id (default: generated, e.g. BR-00001)")
    add.add_argument("--count", type=int, default=1, help="how many devices to provision (default 1)")
    add.add_argument("--out", type=Path, default=Path("devices"), help="folder for the bundles (default: ./devices)")
    add.add_argument("--region", default="", help="region code the device works in (default: its agency's region); its offline snapshot covers it")
    _add_mqtt(add, "written into the bundles' configs")
    add.add_argument("--broker-dir", type=Path, help="the broker's folder whose password file gets the devices' accounts (default: <db>.broker)")
    add.add_argument("--ca", type=Path, metavar="CA_CRT", help="the project CA certificate: copied into each bundle, whose device then uses TLS")
    add.add_argument(
        "--public-key", metavar="HEX", help="register one device with the Ed25519 public key it made itself (hex); its bundle then has no device.key"
    )
    lst = dsub.add_parser("list", help="list registered devices with their delivery state")
    _add_db(lst)
    rev = dsub.add_parser("revoke", help="revoke a device: its messages are rejected from now on")
    _add_db(rev)
    rev.add_argument("device_id")
    rev.add_argument("--broker-dir", type=Path, help="the broker's folder to remove the device's account from (default: <db>.broker)")

    gaps = sub.add_parser("gaps", help="show sequence gaps per device", description="Sequence numbers devices used that never arrived.")
    _add_db(gaps)
    gaps.add_argument("--device", help="only this device")

    rejected = sub.add_parser(
        "rejected",
        help="list rejected messages with their reasons",
        description="The newest rejected messages (size, SHA-256 and bytes still kept), then each reason's total since the database began.",
    )
    _add_db(rejected)
    rejected.add_argument("--limit", type=int, default=50)

    qr = sub.add_parser(
        "qr",
        help="issue an enterprise's signed QR code as PNG, SVG or text",
        description="Issue (or reuse today's) signed code of a registered enterprise and write it with the enterprise's name "
        "under it. The format follows the --out file's extension: .png, .svg or .txt; without --out the text is printed.",
    )
    _add_db(qr)
    qr.add_argument("enterprise", help="the enterprise's unified social credit code")
    qr.add_argument("--out", type=Path, help="file to write (.png, .svg or .txt)")
    qr.add_argument("--revoke", metavar="REASON", help="revoke every code issued to the enterprise instead, giving the reason")

    ver = sub.add_parser(
        "verify",
        help="recompute the evidence log and name every record changed, added or removed",
        description="Check every stored record against the tamper-evident log, the log against every signed tree head, "
        "and each device's event chain. Exit status 0 when everything checks out, 1 when anything was tampered with.",
    )
    _add_db(ver)
    ver.add_argument("--signatures", action="store_true", help="also check every record's device signature (slower)")
    ver.add_argument("--workers", type=int, default=0, help="processes that check ranges of records (default: one per CPU; 1: this process only)")
    ver.add_argument("--json", action="store_true", help="print the whole report as JSON")

    sth = sub.add_parser(
        "tree-head",
        help="sign and print the evidence log's tree head (export it), or check an exported one",
        description="Without --check: sign a tree head for the log as it is and print it as JSON, for safekeeping outside "
        "the server. With --check FILE: prove that the log now is consistent with that exported head (it only grew).",
    )
    _add_db(sth)
    sth.add_argument("--check", type=Path, metavar="FILE", help="an exported tree head (JSON) to check the log against")

    evidence = sub.add_parser(
        "evidence",
        help="evidence bundles (证据包): export the records of an inspection, a case, an enterprise's or a device's period",
        description="export: one ZIP with the records, their inclusion proofs, the signed tree head, the server's key and a "
        "summary in Chinese; anyone checks it offline with `python -m protocol.verify_bundle FILE` (protocol/README.md §15.8).",
    )
    esub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    exp = esub.add_parser("export", help="write an evidence bundle (ZIP)")
    _add_db(exp)
    what = exp.add_mutually_exclusive_group(required=True)
    what.add_argument("--inspection", metavar="ID", help="one inspection")
    what.add_argument("--case", metavar="CASE_ID", help="one case (案件): its steps' records and its inspections'")
    what.add_argument("--enterprise", metavar="CREDIT_CODE", help="an enterprise's inspections opened in the period (--from, --to)")
    what.add_argument("--device", metavar="DEVICE_ID", help="a device's events stamped in the period (--from, --to)")
    exp.add_argument("--from", dest="from_day", metavar="DAY", help="first day, YYYY-MM-DD (China Standard Time) or epoch ms")
    exp.add_argument("--to", dest="to_day", metavar="DAY", help="last day, YYYY-MM-DD, included (or epoch ms, excluded)")
    exp.add_argument("--out", type=Path, required=True, help="the ZIP file to write")

    users = sub.add_parser(
        "users",
        help="console users: add, list, disable, enable, reset a password",
        description="Users of the web console and the API, with their role. Every change is recorded with who made it (cli:<OS user>) and when.",
    )
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    uadd = usub.add_parser(
        "add",
        help="add a user (the password is read from standard input, or from FE_PASSWORD)",
        description="Roles: officer (needs --agency and --officer), agency_admin (needs --agency), supervisor, enterprise (needs --enterprise).",
    )
    _add_db(uadd)
    uadd.add_argument("username")
    uadd.add_argument("--role", required=True, choices=["officer", "agency_admin", "supervisor", "enterprise", "monitor"])
    uadd.add_argument("--agency", help="agency id (officers and agency administrators)")
    uadd.add_argument("--officer", help="officer id (officers)")
    uadd.add_argument("--enterprise", help="credit code (enterprise users)")
    ulist = usub.add_parser("list", help="list users as JSON lines: role, agency, disabled since, active sessions, last change")
    _add_db(ulist)
    for action, what in (
        ("disable", "disable a user: their sessions end at once and they cannot sign in"),
        ("enable", "enable a disabled user"),
        ("reset-password", "set a user's new password (read from standard input, or from FE_PASSWORD); their sessions end"),
    ):
        one = usub.add_parser(action, help=what)
        _add_db(one)
        one.add_argument("username")

    demo = sub.add_parser(
        "demo-seed",
        help="fill the registers with a demo district for the devices provisioned, and write the simulator's scenario",
        description="Agencies, fields, enterprises with signed codes, one credentialed officer per registered device, a "
        "no-disturb list and complaint tickets; writes scenario.json into the bundles' folder for `fe-agent simulate`.",
    )
    _add_db(demo)
    demo.add_argument("--devices", type=Path, required=True, help="the folder of device bundles")
    demo.add_argument("--enterprises", type=int, default=200, help="how many enterprises (default 200)")

    keys = sub.add_parser(
        "key", help="print the server's public key (devices verify receipts with it)",
        description="Prints the server's Ed25519 public key as 64 lower-case hex digits on one line; with --fingerprint a second "
        "line holds its fingerprint, the SHA-256 of the key's 32 bytes in 64 lower-case hex digits (protocol/README.md §15.3).",
    )
    _add_db(keys)
    keys.add_argument("--fingerprint", action="store_true", help="also print the key's fingerprint on a second line")
    add_import_parser(sub, _add_db)
    add_copy_parser(sub, _add_db)
    add_broker_parsers(sub, _add_db)
    return parser
