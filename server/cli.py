"""``fe-server``: the server's command line."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from pathlib import Path

from protocol.config import ConfigError
from protocol.creditcode import CreditCodeError
from protocol.signing import KeyFormatError
from server import db as dbmod
from server.broker import SERVER_ACCOUNT, SERVER_PASSWORD_FILE, BrokerSecurityError, broker_dir_for
from server.broker_cli import add_broker_parsers, run_broker_command
from server.imports import add_import_parser, run_import
from server.keys import load_or_create_server_key
from server.registry import RegistryError, provision, revoke
from server.settings import ServerSettings
from server.store import REJECTED_COLUMNS, recent_rejected, rejected_counts, sequence_gaps

DEFAULT_DB = Path("fe-server.db")


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"the server's SQLite database (default: {DEFAULT_DB})")
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

    run = sub.add_parser("run", help="run the server (HTTP API + MQTT ingest)", description="Run the Litestar server and its MQTT ingest until SIGTERM or Ctrl-C.")
    _add_db(run)
    _add_mqtt(run, "to subscribe to")
    run.add_argument("--http-host", default="127.0.0.1", help="address to serve HTTP on (default: 127.0.0.1)")
    run.add_argument("--http-port", type=int, default=8080, help="HTTP port (default: 8080)")
    run.add_argument("--client-id", default="fe-server", help="MQTT client id of the persistent session (default: fe-server; a secure broker uses the --mqtt-username instead)")
    run.add_argument("--mqtt-username", default=SERVER_ACCOUNT, help=f"the server's broker account (default: {SERVER_ACCOUNT})")
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
    ver.add_argument("--json", action="store_true", help="print the whole report as JSON")

    sth = sub.add_parser(
        "tree-head",
        help="sign and print the evidence log's tree head (export it), or check an exported one",
        description="Without --check: sign a tree head for the log as it is and print it as JSON, for safekeeping outside "
        "the server. With --check FILE: prove that the log now is consistent with that exported head (it only grew).",
    )
    _add_db(sth)
    sth.add_argument("--check", type=Path, metavar="FILE", help="an exported tree head (JSON) to check the log against")

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
    uadd.add_argument("--role", required=True, choices=["officer", "agency_admin", "supervisor", "enterprise"])
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

    keys = sub.add_parser("key", help="print the server's public key (devices verify receipts with it)")
    _add_db(keys)
    add_import_parser(sub)
    add_broker_parsers(sub, _add_db)
    return parser


def _settings(args: argparse.Namespace) -> ServerSettings:
    password_file = args.mqtt_password_file or broker_dir_for(args.db.resolve()) / SERVER_PASSWORD_FILE
    password = ""
    if args.mqtt_password_file or password_file.exists():
        password = password_file.read_text().strip()
    return ServerSettings.from_env_faults(
        mqtt_username=args.mqtt_username,
        mqtt_password=password,
        mqtt_ca_file=args.mqtt_ca.resolve() if args.mqtt_ca else None,
        mqtt_cert_file=args.mqtt_cert.resolve() if args.mqtt_cert else None,
        mqtt_key_file=args.mqtt_key.resolve() if args.mqtt_key else None,
        db_path=args.db.resolve(),
        key_path=args.key.resolve() if args.key else None,
        http_host=args.http_host,
        http_port=args.http_port,
        mqtt_host=args.mqtt_host or "127.0.0.1",
        mqtt_port=args.mqtt_port or 1883,
        mqtt_client_id=args.client_id,
        policy_path=args.policy.resolve() if args.policy else None,
        trusted_proxies=tuple(args.trusted_proxy),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app

    settings = _settings(args)
    app = create_app(settings)
    logging.info("dashboard: http://%s:%d/  API docs: http://%s:%d/schema", settings.http_host, settings.http_port, settings.http_host, settings.http_port)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: only configured proxies are.
    proxies = list(settings.trusted_proxies)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning", proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
    return 0


def _cmd_qr(args: argparse.Namespace) -> int:
    from server.codes import CodeRegistryError, issue_code, render_png, render_svg, revoke_codes

    try:
        with dbmod.writing(args.db) as con:
            if args.revoke:
                n = revoke_codes(con, args.enterprise, args.revoke)
                print(f"revoked {n} code(s) of {args.enterprise}")
            else:
                text, name = issue_code(con, args.db, args.enterprise)
    except (CodeRegistryError, CreditCodeError) as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1
    if args.revoke:
        return 0
    if args.out is None:
        print(text)
        return 0
    kind = args.out.suffix.lower()
    renderers = {".png": lambda: render_png(text, name), ".svg": lambda: render_svg(text, name), ".txt": lambda: (text + "\n").encode()}
    if kind not in renderers:
        print(f"fe-server: {args.out}: unknown format {kind!r}; use .png, .svg or .txt", file=sys.stderr)
        return 1
    args.out.write_bytes(renderers[kind]())
    print(f"{args.out}: code of {name} ({args.enterprise})")
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    import dataclasses
    import os
    import time

    from server.accounts import check_new_password, cli_actor, disable_account, enable_account, list_accounts, record_change, reset_password
    from server.auth import AuthError, Principal, add_user, hash_password
    from server.errors import DomainError

    action = args.users_command
    try:
        if action == "list":
            with dbmod.reading(args.db) as con:
                for a in list_accounts(con, Principal(username=cli_actor(), role="supervisor"), int(time.time() * 1000)):
                    print(json.dumps(dataclasses.asdict(a), ensure_ascii=False))
            return 0
        password = password_hash = ""
        if action in ("add", "reset-password"):
            password = os.environ.get("FE_PASSWORD") or sys.stdin.readline().rstrip("\n")
            check_new_password(password)
            password_hash = hash_password(password)  # scrypt before the write transaction, not inside it
        now = int(time.time() * 1000)
        with dbmod.writing(args.db) as con:
            if action == "add":
                add_user(con, args.username, password, args.role, agency_id=args.agency, officer_id=args.officer, credit_code=args.enterprise, password_hash=password_hash)
                record_change(con, args.username, "created", cli_actor(), now)
                done = f"user {args.username} ({args.role}) added"
            elif action == "disable":
                done = f"user {args.username} disabled, sessions ended" if disable_account(con, args.username, cli_actor(), now) else f"user {args.username} was already disabled"
            elif action == "enable":
                done = f"user {args.username} enabled" if enable_account(con, args.username, cli_actor(), now) else f"user {args.username} was not disabled"
            else:
                reset_password(con, args.username, password_hash, cli_actor(), now)
                done = f"password of {args.username} reset, sessions ended"
    except (AuthError, DomainError) as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1
    print(done)
    return 0


def _cmd_evidence(args: argparse.Namespace) -> int:
    import msgspec

    from server import merkle
    from server.evidence import TreeHead, leaf_hashes, sign_tree_head
    from server.verify import verify

    key = load_or_create_server_key(_server_key_path(args))
    con = dbmod.connect(args.db)
    try:
        if args.command == "verify":
            report = verify(con, key.public_hex, signatures=args.signatures)
            if args.json:
                print(msgspec.json.encode(report).decode())
            else:
                print(f"{report.events} records, log of {report.log_size}, {len(report.tree_heads)} tree heads, {report.seconds} s")
                for p in report.problems:
                    print(f"TAMPERED {p.problem}: event {p.event_id} (device {p.device_id}, seq {p.seq}, log index {p.log_index}): {p.detail}")
                for h in report.tree_heads:
                    if not (h.root_matches and h.signature_valid):
                        print(f"TAMPERED log: tree head of size {h.tree_size} at {h.timestamp_ms} no longer matches (root {h.root_matches}, signature {h.signature_valid})")
                for c in report.chains:
                    for seq in c.broken_at:
                        print(f"CHAIN BREAK device {c.device_id} at seq {seq}: its predecessor's body differs from what it was")
                    for seq in c.missing_predecessor:
                        print(f"CHAIN BREAK device {c.device_id} at seq {seq}: its predecessor never arrived (deleted on the device?)")
                print("OK: nothing was changed, added or removed" if report.ok else "FAILED: see above")
            return 0 if report.ok else 1
        if args.check:
            try:
                old = msgspec.json.decode(args.check.read_bytes(), type=TreeHead)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                print(f"fe-server: {args.check}: not an exported tree head: {e}", file=sys.stderr)
                return 1
            leaves = leaf_hashes(con)
            if not old.verify(key.verifier()):
                print(f"FAILED: {args.check} is not signed by this server's key")
                return 1
            if old.tree_size > len(leaves):
                print(f"FAILED: the exported head has {old.tree_size} records but the log only {len(leaves)}: records were removed")
                return 1
            proof = merkle.consistency_proof(leaves, old.tree_size)
            ok = merkle.verify_consistency(old.tree_size, len(leaves), bytes.fromhex(old.root_hash), merkle.root(leaves), proof)
            print(f"OK: the log of {len(leaves)} records extends the exported head of {old.tree_size}" if ok else "FAILED: the log is not consistent with the exported head: it was rewritten")
            return 0 if ok else 1
        with dbmod.transaction(con):
            head = sign_tree_head(con, key)
        print(msgspec.json.encode(head).decode())
        return 0
    finally:
        con.close()


def _server_key_path(args: argparse.Namespace) -> Path:
    return args.key or args.db.with_name(args.db.name + ".server.key")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fe-server``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "import":
            return run_import(args)
        if args.command in ("broker-config", "ca"):
            if args.command == "broker-config":
                dbmod.migrate(args.db)
            return run_broker_command(args)
        dbmod.migrate(args.db)
        if args.command == "key":
            print(load_or_create_server_key(_server_key_path(args)).public_hex)
        elif args.command == "devices" and args.devices_command == "add":
            key = load_or_create_server_key(_server_key_path(args))
            made = provision(
                args.db, key, model=args.model, agency_id=args.agency, out_dir=args.out, device_id=args.device_id, count=args.count, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, region=args.region,
                broker_dir=args.broker_dir, ca_file=args.ca, public_key=args.public_key,
            )
            for p in made:
                print(f"{p.device_id}\t{p.bundle_dir}")
        elif args.command == "users":
            return _cmd_users(args)
        elif args.command in ("verify", "tree-head"):
            return _cmd_evidence(args)
        elif args.command == "demo-seed":
            from server.demo import seed_demo

            print(json.dumps(seed_demo(args.db, args.devices, enterprises=args.enterprises)))
        elif args.command == "qr":
            return _cmd_qr(args)
        elif args.command == "devices" and args.devices_command == "revoke":
            told = revoke(args.db, args.device_id, args.broker_dir)
            print(f"revoked {args.device_id}" + ("; the broker disconnected it" if told else "; no running broker was told (it has no broker account now)"))
        else:
            con = dbmod.connect(args.db, readonly=True)
            try:
                if args.command == "devices":
                    rows = con.execute(
                        "SELECT d.device_id, d.model, d.agency_id, COALESCE(s.stored_count, 0), COALESCE(s.max_seq, 0), s.last_seen_ms, d.revoked_ms"
                        " FROM devices d LEFT JOIN device_state s USING (device_id) ORDER BY d.device_id"
                    )
                    for r in rows:
                        print(json.dumps(dict(zip(("device_id", "model", "agency_id", "stored", "max_seq", "last_seen_ms", "revoked_ms"), r, strict=True))))
                elif args.command == "gaps":
                    ids = [args.device] if args.device else [d for (d,) in con.execute("SELECT device_id FROM devices ORDER BY device_id")]
                    for d in ids:
                        for a, b in sequence_gaps(con, d):
                            print(json.dumps({"device_id": d, "seq_from": a, "seq_to": b, "missing": b - a + 1}))
                elif args.command == "rejected":
                    for r in recent_rejected(con, args.limit):
                        print(json.dumps(dict(zip(REJECTED_COLUMNS, r, strict=True)), ensure_ascii=False))
                    for c in rejected_counts(con):  # totals, also of rows pruned or removed by retention
                        print(json.dumps({"reason_code": c.reason_code, "total": c.count, "last_ms": c.last_ms}))
            finally:
                con.close()
        return 0
    except (RegistryError, ConfigError, KeyFormatError, BrokerSecurityError) as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
