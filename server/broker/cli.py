"""``fe-server broker-config`` and ``fe-server ca ...``: the broker's configuration, accounts and TLS files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.broker import access as broker
from server.broker.ca import CA_CERT, SERVER_CERT, SERVER_KEY, CaError, client_cert, init_ca, server_cert
from server.rules.registry import active_device_ids
from server.settings import key_base

#: The shipped broker configuration that broker-config starts from.
SHIPPED_CONF = Path(__file__).with_name("mosquitto.conf")
DEFAULT_MQTT_PORT = 1883


def add_broker_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], add_db: object) -> None:
    """Add ``broker-config`` and ``ca`` to the ``fe-server`` subcommands."""
    bc = sub.add_parser(
        "broker-config",
        help="write Mosquitto's configuration, password file and ACL for the registered devices",
        description="Write OUT/mosquitto.conf (server/broker/mosquitto.conf with access control: no anonymous clients, one "
        "account per device, each device limited to its own topics, client id = username), OUT/acl, and OUT/passwd "
        "with the server's account; accounts of revoked or unknown devices are removed. A broker running from OUT "
        "(its pid file) rereads them at once. Run Mosquitto with `mosquitto -c OUT/mosquitto.conf`.",
    )
    add_db(bc)  # type: ignore[operator]
    bc.add_argument("--out", type=Path, help="the broker's folder (default: <db>.broker, where `devices add` puts accounts)")
    bc.add_argument("--port", type=int, default=None, help="listener port (default 1883, or 8883 with --tls)")
    bc.add_argument("--bind", default=None, help="listen on this address only (default: every interface)")
    bc.add_argument("--tls", type=Path, metavar="CA_DIR", help="serve TLS with CA_DIR's ca.crt, server.crt and server.key (see `fe-server ca`)")
    bc.add_argument("--require-certificate", action="store_true", help="with --tls: devices must present a client certificate (its CN is their username)")
    bc.add_argument("--persistence-location", type=Path, help="Mosquitto's data folder (default: as in server/broker/mosquitto.conf)")
    bc.add_argument("--log-file", type=Path, help="log to this file instead of standard error")
    bc.add_argument(
        "--ingest-workers", type=int, metavar="N",
        help="broker accounts fe-ingest-1..N for ingest processes sharing the uplinks (`fe-server run --role ingest "
        "--ingest-worker K`), with their password files; default: as many as the folder already has",
    )
    bc.add_argument("--run-as", metavar="USER", help="the OS user Mosquitto runs as (default: mosquitto); it must be able to read OUT")

    ca = sub.add_parser("ca", help="the project CA for the broker's TLS: init, server-cert, client-cert", description="TLS certificates for the broker and devices.")
    csub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    init = csub.add_parser("init", help="make the CA key and certificate (ca.key, ca.crt)")
    init.add_argument("--dir", type=Path, required=True, help="the CA's folder (keep ca.key private)")
    sc = csub.add_parser("server-cert", help="make the broker's key and certificate (server.key, server.crt) signed by the CA")
    sc.add_argument("--dir", type=Path, required=True, help="the CA's folder")
    sc.add_argument("--host", action="append", required=True, help="a host name or IP address devices connect to; repeatable")
    cc = csub.add_parser("client-cert", help="a device's client certificate (CN = device id), for brokers that require one")
    cc.add_argument("--dir", type=Path, required=True, help="the CA's folder")
    cc.add_argument("--device", required=True, help="the device id")
    cc.add_argument("--out", type=Path, required=True, help="the device's bundle folder (client.crt, and client.key unless --public-key)")
    cc.add_argument("--public-key", type=Path, help="a PEM public key the device made itself: only the certificate is written")


def _broker_config(args: argparse.Namespace) -> int:
    out: Path = (args.out or broker.broker_dir_for(key_base(args.db, args.key_dir))).resolve()
    workers = broker.ingest_workers(out) if args.ingest_workers is None else args.ingest_workers
    if not 0 <= workers <= broker.MAX_INGEST_WORKERS:
        print(f"fe-server: --ingest-workers must be 0 to {broker.MAX_INGEST_WORKERS}, got {workers}", file=sys.stderr)
        return 1
    server_side = broker.prepare(out, ingest_workers=workers)
    devices = active_device_ids(args.db)
    removed = broker.keep_only(out, devices | set(server_side))
    for account in removed:  # an ingest worker no longer asked for: its password goes with its account
        if account.startswith(broker.INGEST_ACCOUNT_PREFIX):
            (out / broker.password_file_name(account)).unlink(missing_ok=True)
    missing = sorted(devices - broker.accounts(out))
    tls = None
    if args.tls:
        d = args.tls.resolve()
        for name in (CA_CERT, SERVER_CERT, SERVER_KEY):
            if not (d / name).exists():
                print(f"fe-server: {d / name} is missing; run `fe-server ca init` and `fe-server ca server-cert` first", file=sys.stderr)
                return 1
        tls = broker.TlsFiles(d / CA_CERT, d / SERVER_CERT, d / SERVER_KEY, require_certificate=args.require_certificate)
    elif args.require_certificate:
        print("fe-server: --require-certificate needs --tls", file=sys.stderr)
        return 1
    port = args.port or (8883 if tls else DEFAULT_MQTT_PORT)
    extra = []
    if args.persistence_location:
        extra.append(f"persistence_location {args.persistence_location.resolve()}/")
    if args.log_file:
        extra.append(f"log_dest file {args.log_file.resolve()}")
    if args.run_as:
        extra.append(f"user {args.run_as}")
    text = broker.mosquitto_conf(SHIPPED_CONF.read_text(), out, port=port, bind=args.bind, tls=tls, extra=extra)
    if args.persistence_location:
        text = text.replace("\npersistence_location /var/lib/mosquitto/\n", "\n# (set below) persistence_location /var/lib/mosquitto/\n")
    if args.log_file:
        text = text.replace("\nlog_dest stderr\n", "\n# (set below) log_dest stderr\n")
    (out / "mosquitto.conf").write_text(text)
    print(
        f"{out / 'mosquitto.conf'}: listener {port}{' (TLS)' if tls else ''}, {len(devices)} device account(s) and the server's"
        + (f", {workers} ingest worker account(s)" if workers else "")
    )
    for d in removed:
        print(f"removed the broker account of {d} (revoked or not registered)")
    for d in missing:
        print(f"warning: device {d} has no broker account; provision it again (its bundle has no password)", file=sys.stderr)
    if broker.reload(out):
        print("the running broker reread its accounts and ACL")
    return 0


def run_broker_command(args: argparse.Namespace) -> int:
    """``fe-server broker-config`` or ``fe-server ca ...``."""
    try:
        if args.command == "broker-config":
            return _broker_config(args)
        if args.ca_command == "init":
            print(init_ca(args.dir))
        elif args.ca_command == "server-cert":
            for p in server_cert(args.dir, args.host):
                print(p)
        else:
            pem = args.public_key.read_bytes() if args.public_key else None
            args.out.mkdir(parents=True, exist_ok=True)
            print(client_cert(args.dir, args.device, args.out, pem))
    except (CaError, broker.BrokerSecurityError, OSError, ValueError) as e:
        print(f"fe-server: {e}", file=sys.stderr)
        return 1
    return 0
