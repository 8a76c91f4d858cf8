"""``fe-server``: the server's command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from protocol.config import ConfigError
from protocol.creditcode import CreditCodeError
from protocol.signing import KeyFormatError
from server import db as dbmod
from server.broker.access import INGEST_SHARE_GROUP, SERVER_ACCOUNT, BrokerSecurityError, broker_dir_for, ingest_account, password_file_name
from server.broker.cli import run_broker_command
from server.cli_parser import DEFAULT_DB, build_parser
from server.copy_cli import run_copy
from server.imports import run_import
from server.evidence.keys import load_or_create_server_key
from server.rules.registry import RegistryError, provision, revoke
from server.settings import Role, ServerSettings, key_base
from server.storage import console
from server.storage.engine import Backend, backend_of, redact
from server.storage.failures import DRIVER_ERRORS
from server.ingest.store import REJECTED_COLUMNS, recent_rejected, rejected_counts, sequence_gaps

__all__ = ["DEFAULT_DB", "build_parser", "main"]

#: HTTP worker processes one ``fe-server run --role api`` may start (a typo of 100000 must not fork a machine to death).
MAX_HTTP_WORKERS = 64


def _settings(args: argparse.Namespace) -> ServerSettings:
    role = Role(args.role)
    if not 1 <= args.workers <= MAX_HTTP_WORKERS:
        raise ConfigError(f"--workers {args.workers}: give 1 to {MAX_HTTP_WORKERS} (one process each; more belong on another machine)")
    if args.workers > 1 and role is not Role.API:
        raise ConfigError(f"--workers {args.workers}: several HTTP workers serve the api role only (run the ingest and the scheduler as processes of their own)")
    share_group = None
    username = args.mqtt_username or SERVER_ACCOUNT
    if args.ingest_worker is not None:
        if role is not Role.INGEST:
            raise ConfigError("--ingest-worker goes with --role ingest")
        username = args.mqtt_username or ingest_account(args.ingest_worker)
        share_group = INGEST_SHARE_GROUP
    password_file = args.mqtt_password_file or broker_dir_for(_key_base(args)) / password_file_name(username)
    password = ""
    if args.mqtt_password_file or password_file.exists():
        password = password_file.read_text().strip()
    return ServerSettings.from_env_faults(
        mqtt_username=username,
        mqtt_password=password,
        mqtt_ca_file=args.mqtt_ca.resolve() if args.mqtt_ca else None,
        mqtt_cert_file=args.mqtt_cert.resolve() if args.mqtt_cert else None,
        mqtt_key_file=args.mqtt_key.resolve() if args.mqtt_key else None,
        db_path=args.db,
        key_dir=args.key_dir.resolve() if args.key_dir else None,
        key_path=args.key.resolve() if args.key else None,
        http_host=args.http_host,
        http_port=args.http_port,
        mqtt_host=args.mqtt_host or "127.0.0.1",
        mqtt_port=args.mqtt_port or 1883,
        mqtt_client_id=args.client_id or username,
        role=role,
        mqtt_share_group=share_group,
        policy_path=args.policy.resolve() if args.policy else None,
        trusted_proxies=tuple(args.trusted_proxy),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import SETTINGS_ENV, SUPERVISOR_ENV, create_app, prepare, settings_for_workers

    settings = _settings(args)
    if settings.role.serves_api:
        logging.info("dashboard: http://%s:%d/  API docs: http://%s:%d/schema", settings.http_host, settings.http_port, settings.http_host, settings.http_port)
    else:
        logging.info("role %s: health and metrics on http://%s:%d/health", settings.role, settings.http_host, settings.http_port)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: only configured proxies are.
    proxies = list(settings.trusted_proxies)
    options = {"host": settings.http_host, "port": settings.http_port, "log_level": "warning", "proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or None}
    if args.workers > 1:
        # Worker processes import the app by name; they get the settings from the environment this process gives them.
        os.environ[SETTINGS_ENV] = settings_for_workers(settings)
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # uvicorn's supervisor is this process
        prepare(settings)  # migrate and make the keys once here, not in N workers at once
        uvicorn.run("server.app:app_from_env", factory=True, workers=args.workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    return 0


def _cmd_qr(args: argparse.Namespace) -> int:
    from server.rules.codes import CodeRegistryError, issue_code, render_png, render_svg, revoke_codes

    try:
        with dbmod.writing(args.db) as con:
            if args.revoke:
                n = revoke_codes(con, args.enterprise, args.revoke)
                print(f"revoked {n} code(s) of {args.enterprise}")
            else:
                text, name = issue_code(con, _key_base(args), args.enterprise)
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

    from server.console.accounts import check_new_password, cli_actor, disable_account, enable_account, list_accounts, record_change, reset_password
    from server.console.auth import AuthError, Principal, add_user, hash_password
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

    from protocol import merkle
    from server.evidence.log import TreeHead, leaf_hashes, sign_tree_head
    from server.evidence.verify import verify_parallel

    key = load_or_create_server_key(_server_key_path(args))
    if args.command == "tree-head" and not args.check:
        with dbmod.writing(args.db) as tx:
            head = sign_tree_head(tx, key)
        print(msgspec.json.encode(head).decode())
        return 0
    if args.command == "verify":
        report = verify_parallel(args.db, key.public_hex, signatures=args.signatures, workers=args.workers or None)
    with dbmod.reading(args.db) as con:
        if args.command == "verify":
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
    raise AssertionError(f"not an evidence command: {args.command}")


def _cmd_export(args: argparse.Namespace) -> int:
    """``fe-server evidence export``: a bundle, written by the operator (every record may be exported)."""
    from server.errors import DomainError
    from server.evidence.bundle import Selector, day_bounds, export

    try:
        if args.inspection:
            sel = Selector(kind="inspection", inspection_id=args.inspection)
        elif args.case:
            sel = Selector(kind="case", case_id=args.case)
        else:
            if not (args.from_day and args.to_day):
                raise ConfigError("--enterprise and --device need the period: --from DAY --to DAY")
            lo, hi = day_bounds(args.from_day, args.to_day)
            sel = Selector(kind="enterprise", credit_code=args.enterprise, from_ms=lo, to_ms=hi) if args.enterprise else Selector(kind="device", device_id=args.device, from_ms=lo, to_ms=hi)
        data, manifest = export(args.db, load_or_create_server_key(_server_key_path(args)), sel, None)
    except DomainError as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1
    args.out.write_bytes(data)
    c = manifest["counts"]
    print(f"{args.out}: {c['records']} records ({c['events']} device events, {c['server_records']} server records), {c['media']} recordings, "
          f"proved against the signed head of {manifest['tree_size']}; key fingerprint {manifest['key_fingerprint']}")
    print(f"check it anywhere: python -m protocol.verify_bundle {args.out} --key {manifest['server_public_key']}")
    return 0


def _key_base(args: argparse.Namespace) -> Path:
    return key_base(args.db, args.key_dir)


def _server_key_path(args: argparse.Namespace) -> Path:
    return args.key or ServerSettings(db_path=args.db, key_dir=args.key_dir).server_key_path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fe-server``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "import":
            return run_import(args)
        if args.command == "copy-db":  # before the migration below: a mistyped --db must not become an empty file
            return run_copy(args)
        if args.command in ("broker-config", "ca"):
            if args.command == "broker-config":
                dbmod.migrate(args.db)
            return run_broker_command(args)
        if _reads_only(args):
            _must_exist(args.db)  # a mistyped --db of a command that only reads must not become a new database
        dbmod.migrate(args.db)
        if args.command == "key":
            public = load_or_create_server_key(_server_key_path(args)).public_hex
            print(public)
            if args.fingerprint:
                from protocol.bundle import fingerprint

                print(fingerprint(public))
        elif args.command == "devices" and args.devices_command == "add":
            key = load_or_create_server_key(_server_key_path(args))
            made = provision(
                args.db, key, model=args.model, agency_id=args.agency, out_dir=args.out, device_id=args.device_id, count=args.count, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, region=args.region,
                broker_dir=args.broker_dir or broker_dir_for(_key_base(args)), ca_file=args.ca, public_key=args.public_key,
            )
            for p in made:
                print(f"{p.device_id}\t{p.bundle_dir}")
        elif args.command == "users":
            return _cmd_users(args)
        elif args.command in ("verify", "tree-head"):
            return _cmd_evidence(args)
        elif args.command == "evidence":
            return _cmd_export(args)
        elif args.command == "demo-seed":
            from server.demo import seed_demo

            print(json.dumps(seed_demo(args.db, args.devices, enterprises=args.enterprises, key_base=_key_base(args))))
        elif args.command == "qr":
            return _cmd_qr(args)
        elif args.command == "devices" and args.devices_command == "revoke":
            told = revoke(args.db, args.device_id, args.broker_dir or broker_dir_for(_key_base(args)))
            print(f"revoked {args.device_id}" + ("; the broker disconnected it" if told else "; no running broker was told (it has no broker account now)"))
        else:
            with dbmod.reading(args.db) as con:
                if args.command == "devices":  # list
                    for r in console.device_list(con):
                        print(json.dumps(dict(zip(console.DEVICE_LIST_COLUMNS, r, strict=True))))
                elif args.command == "gaps":
                    ids = [args.device] if args.device else [r[0] for r in console.device_list(con)]
                    for d in ids:
                        for a, b in sequence_gaps(con, d):
                            print(json.dumps({"device_id": d, "seq_from": a, "seq_to": b, "missing": b - a + 1}))
                elif args.command == "rejected":
                    for r in recent_rejected(con, args.limit):
                        print(json.dumps(dict(zip(REJECTED_COLUMNS, r, strict=True)), ensure_ascii=False))
                    for c in rejected_counts(con):  # totals, also of rows pruned or removed by retention
                        print(json.dumps({"reason_code": c.reason_code, "total": c.count, "last_ms": c.last_ms}))
        return 0
    except (RegistryError, ConfigError, KeyFormatError, BrokerSecurityError) as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1
    except DRIVER_ERRORS as e:  # a database that cannot be opened or reached, or is no database
        print(redact(f"fe-server: database {getattr(args, 'db', '')}: {e}".strip()), file=sys.stderr)
        return 1
    except OSError as e:  # a key folder that is a file, a password file that is not there
        print(redact(f"fe-server: {e}"), file=sys.stderr)
        return 1


def _reads_only(args: argparse.Namespace) -> bool:
    """The command only reads the database, so it never creates one."""
    action = getattr(args, "devices_command", None) or getattr(args, "users_command", None)
    return args.command in ("gaps", "rejected", "verify", "evidence") or (args.command in ("devices", "users") and action == "list")


def _must_exist(db: str) -> None:
    if backend_of(db) is Backend.SQLITE and not Path(db).is_file():
        raise ConfigError(f"no database at {db} (this command only reads one: check --db)")


if __name__ == "__main__":
    raise SystemExit(main())
