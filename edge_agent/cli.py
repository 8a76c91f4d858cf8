"""``fe-agent``: the edge agent's command line."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from edge_agent.errors import EdgeAgentError
from protocol.config import ConfigError, load_device_config
from protocol.signing import KeyFormatError

#: File (beside device.toml) where a running agent writes the local interface's port.
PORT_FILE = "local_api.port"
#: File (beside device.toml) an agent holds locked while it runs: one agent per bundle.
LOCK_FILE = "agent.lock"


def _add_mqtt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt-host", help="broker host (default: the config's mqtt.host)")
    p.add_argument("--mqtt-port", type=int, help="broker port (default: the config's mqtt.port)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fe-agent",
        description="Edge agent for body-worn recorders, QR terminals and phones: keeps every event in a durable "
        "outbox and delivers it over MQTT until the server's signed receipt says it is stored.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent for one device", description="Run the agent for one device bundle until SIGTERM or Ctrl-C.")
    run.add_argument("--config", required=True, type=Path, help="the device bundle's device.toml")
    _add_mqtt(run)

    submit = sub.add_parser(
        "submit",
        help="submit one event to a running agent",
        description="Submit one event through the running agent's local interface; prints the outcome as JSON. "
        "Exit status 0 accepted, 1 refused (invalid or outbox full), 2 agent unreachable.",
    )
    submit.add_argument("--config", required=True, type=Path, help="the device bundle's device.toml")
    submit.add_argument("type", help="event type, e.g. enterprise_scanned, inspection_started, inspection_ended, media_captured")
    submit.add_argument("--json", dest="fields", default="{}", help='the event\'s own fields as a JSON object, e.g. \'{"officer_id": "..."}\'')
    submit.add_argument("--event-id", help="your own event id, to make a retried submission idempotent")

    status = sub.add_parser("status", help="show a running agent's status", description="Outbox depth, oldest unsent age, last receipt time, connection state.")
    status.add_argument("--config", required=True, type=Path, help="the device bundle's device.toml")

    scan = sub.add_parser(
        "scan",
        help="scan an enterprise's code (a photo, or its text) through a running agent",
        description="Decode the photo, record the scan through the outbox, and print the decision: the server's, or, when the "
        "server does not answer in time, a provisional one from the terminal's snapshot. Exit status 0 allowed or join, "
        "3 repeat or refused, 1 the scan could not be made, 2 agent unreachable.",
    )
    scan.add_argument("image", nargs="?", type=Path, help="photo of the code (PNG/JPEG); or use --text")
    scan.add_argument("--config", required=True, type=Path, help="the device bundle's device.toml")
    scan.add_argument("--text", help="the code's text instead of a photo")
    scan.add_argument("--officer", required=True, help="officer id of the person scanning")
    scan.add_argument("--field", required=True, help="enforcement field of the inspection, e.g. food")
    scan.add_argument("--matter", default="", help="what will be checked")
    scan.add_argument("--reason", default="", help="why the inspection is made")
    scan.add_argument("--exception-kind", choices=["complaint", "random_draw", "major_risk", "rectification_follow_up", "superior_assignment"])
    scan.add_argument("--exception-ref", help="complaint ticket, plan id, order number ... (with --exception-kind)")

    check = sub.add_parser("check-config", help="validate a device config file", description="Decode a config strictly; errors name the file and the key.")
    check.add_argument("config", type=Path)

    sim = sub.add_parser(
        "simulate",
        help="run simulated devices, one per bundle in DIR",
        description="Run one simulated device per bundle in DIR (made by `fe-server devices add --count N --out DIR`), "
        "each with its own key, sequence and outbox, producing realistic inspections.",
    )
    sim.add_argument("dir", type=Path, help="folder of device bundles")
    sim.add_argument("--rate", type=float, default=1.0, help="events per second per device (default 1)")
    sim.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    sim.add_argument("--events", type=int, help="stop each device after this many accepted events, then wait for their receipts")
    _add_mqtt(sim)
    return parser


def _local_url(config_path: Path) -> str:
    cfg = load_device_config(config_path)
    port = cfg.local_api.port
    if port == 0:
        try:
            port = int((config_path.parent / PORT_FILE).read_text())
        except FileNotFoundError:
            raise EdgeAgentError(f"{config_path.parent / PORT_FILE}: not found; is the agent running?") from None
    return f"http://{cfg.local_api.host}:{port}"


def _request(url: str, data: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent
    from edge_agent.local_api import LocalApi
    from edge_agent.scanner import Scanner

    lock = _lock_bundle(args.config.resolve().parent)  # held until the process exits
    agent = Agent.from_config_file(args.config, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port)
    api = LocalApi(agent, Scanner(agent), agent.config.local_api.host, agent.config.local_api.port)
    watcher = None
    if agent.config.can_record and agent.config.media.watch_dir:
        from edge_agent.media import MediaWatcher

        watcher = MediaWatcher(agent)
    agent.start()
    api.start()
    if watcher is not None:
        watcher.start()
    port_file = args.config.resolve().parent / PORT_FILE
    tmp = port_file.with_name(PORT_FILE + ".tmp")
    tmp.write_text(str(api.port))
    os.replace(tmp, port_file)  # readers never see a half-written port
    logging.info("agent %s running; local interface http://%s:%d", agent.device_id, api.host, api.port)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    if watcher is not None:
        watcher.stop()
    api.stop()
    agent.stop()
    port_file.unlink(missing_ok=True)
    lock.close()
    return 0


def _lock_bundle(bundle: Path) -> TextIO:
    """Lock the bundle for this process, or EdgeAgentError if another agent runs it (two would share one outbox)."""
    f = open(bundle / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - kept open (and locked) while the agent runs
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise EdgeAgentError(f"another agent (pid {holder}) is already running the bundle {bundle}: one agent per device") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _cmd_simulate(args: argparse.Namespace) -> int:
    from edge_agent.simulate import run_simulation

    summary = run_simulation(args.dir, args.rate, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, duration=args.duration, limit=args.events)
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fe-agent``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "simulate":
            return _cmd_simulate(args)
        if args.command == "check-config":
            cfg = load_device_config(args.config)
            print(f"{args.config}: ok (model {cfg.model}, kind {cfg.kind})")
            return 0
        url = _local_url(args.config)
        try:
            if args.command == "status":
                code, body = _request(url + "/v1/status")
            elif args.command == "scan":
                if (args.image is None) == (args.text is None):
                    print("fe-agent: give a photo or --text, not both", file=sys.stderr)
                    return 1
                req: dict[str, Any] = {"officer_id": args.officer, "field": args.field, "matter": args.matter, "reason": args.reason}
                if args.image is not None:
                    req["image_path"] = str(args.image.resolve())
                else:
                    req["code_text"] = args.text
                if args.exception_kind:
                    req["exception_basis"] = {"kind": args.exception_kind, "reference": args.exception_ref or ""}
                code, body = _request(url + "/v1/scan", req)
                print(json.dumps(body, ensure_ascii=False, indent=2))
                if code >= 400:
                    return 1
                return 0 if body.get("outcome") in ("allowed", "join") else 3
            else:
                try:
                    fields = json.loads(args.fields)
                except json.JSONDecodeError as e:
                    print(f"fe-agent: --json is not valid JSON: {e}", file=sys.stderr)
                    return 1
                if not isinstance(fields, dict):
                    print("fe-agent: --json must be a JSON object", file=sys.stderr)
                    return 1
                payload = {**fields, "type": args.type, **({"event_id": args.event_id} if args.event_id else {})}
                code, body = _request(url + "/v1/events", payload)
        except OSError as e:
            print(f"fe-agent: cannot reach the agent at {url}: {e}", file=sys.stderr)
            return 2
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0 if code < 400 else 1
    except (ConfigError, EdgeAgentError, KeyFormatError) as e:
        print(f"fe-agent: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
