"""Ingest benchmark: end-to-end delivery through one Mosquitto against raw paho QoS 1, the agent alone, and the
server's ingest rate on SQLite and on PostgreSQL with one and several ingest processes.

    python bench/ingest.py                          # full run (a few minutes on 2 cores)
    python bench/ingest.py --quick                  # smaller counts, noisier (about 2 minutes with the backends phase)
    python bench/ingest.py --quick --rates-only     # the raw baseline and the ingest rate per backend only
    python bench/ingest.py --db postgresql://u@host/db --workers 3   # PostgreSQL there, with 1, 2 and 3 ingest processes

What it does, in one run, on 127.0.0.1 with a private memory-only Mosquitto:

1. Raw broker baseline: one paho publisher process sends N 600-byte QoS 1 messages (max_inflight 20),
   one paho subscriber process receives them at QoS 1; messages per second from the first publish to
   the last message received. Measured at the start and again at the end of the run; the better of
   the two is the baseline (the ratio is conservative on a noisy machine).
2. End to end: the server runs as its own process (``python -m server.cli run``); the 50 devices run as
   ``Agent`` objects spread over K child processes of this script (``--device-processes K``, see
   ``devices_child``), so that 50 agents and their ~150 threads do not share one interpreter: a real device is
   a machine of its own. Every device submits a fixed number of events (recordings' metadata, see
   ``event_stream``) with ``submit_async``, no pacing, and the clock runs from the first submit to the last
   receipt processed by the devices. Latency per event: from the moment the agent accepted it (its future
   resolved: on disk) to the moment the agent's link removed it from the outbox on the server's verified
   receipt (``Outbox.remove_receipted`` is wrapped per instance); each child keeps its own times (time.time,
   one host) and they are merged here. Because the saturated run queues everything at once, its latency mostly
   measures queueing, so a second, paced phase submits at a fixed fraction of the measured throughput and
   reports latency too, split into legs with the server's received_ms/stored_ms. Both check that the server
   stored exactly the accepted events. A third phase stops the server, lets every device queue events at the
   broker (the server's persistent session), then STOPS the devices (their outboxes keep the events, their
   persistent sessions their subscription) and subscribes one light paho client (``ReceiptWatch``) to every
   device's down topic; the server is restarted and timed from the first event it takes to the arrival of the
   receipt carrying the last queued event: the server's ingest rate with nothing else on the cores. The
   devices are then started again, empty their outboxes, and the stored count is checked.
3. The agent alone, broker unreachable (device offline): events accepted per second with
   synchronous=FULL, one caller submitting one event at a time, and 16 concurrent callers (group commit).
4. A backlog: a child process running one agent accepts 100,000 events offline (20,000 with --quick);
   its peak RSS (VmHWM from /proc/<pid>/status) is read while they are all queued. Then the same
   device is opened again in this process with the broker and server up, and the time from
   ``Agent.start()`` (reconnecting) to an empty outbox is measured.

5. The ingest rate by backend and process count: SQLite with one ingest process, PostgreSQL (a private cluster
   this run starts with fsync on, or ``--db URL``) with 1..N (``--workers N``, default 2). Each setup gets 50
   fresh devices and runs ``python -m server.cli run --role ingest`` (one process with a client id of its own,
   or N processes ``--ingest-worker K`` that share the uplinks through the shared subscription
   ``$share/fe-ingest/...`` as broker accounts fe-ingest-K; the benchmark's broker is an open one, so no
   ``broker-config`` accounts are needed). After a warm-up the processes are paused (SIGSTOP), the devices
   queue events at the broker and stop, one light subscriber takes their place as in phase 2's restart, the
   processes are resumed at one instant (SIGCONT), and the rate runs from then to the arrival of the receipt
   carrying the last queued event (see ``run_ingest_rate`` for why not a restart); the devices then restart
   and the stored count is checked. ``--rates-only`` runs the raw baseline and this phase alone.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402 - after the path set-up

DEVICES = 50
#: Child processes the e2e phases' devices run in (``--device-processes``); chosen by measuring 1, 2 and 4 (README).
DEVICE_PROCESSES = 4
PACED_FRACTION = 0.5


@dataclass(frozen=True)
class Plan:
    raw_messages: int
    events_per_device: int
    paced_seconds: float
    accept_seconds: float
    backlog_events: int
    restart_events_per_device: int


FULL = Plan(raw_messages=50_000, events_per_device=400, paced_seconds=15.0, accept_seconds=5.0, backlog_events=100_000, restart_events_per_device=200)
QUICK = Plan(raw_messages=20_000, events_per_device=100, paced_seconds=5.0, accept_seconds=2.0, backlog_events=20_000, restart_events_per_device=100)


# ------------------------------------------------------------------------------------------ helpers


def event_stream(agent: Any, seed: int) -> Iterator[Any]:
    """Endless submissions for one device: recordings' metadata (``media_captured``), what the
    simulator sends without a scenario. Scans and inspection events are left out on purpose: the
    server turns them into decisions and register rows that only make sense with seeded registers."""
    from edge_agent.agent import Submission

    rng = random.Random(seed)
    officer = f"OFF-{agent.device_id}"
    while True:
        digest = hashlib.sha256(f"{agent.device_id}:{rng.random()}".encode()).hexdigest()
        fields = {
            "file_name": f"{digest[:8]}.mp4",
            "media_kind": "video",
            "size_bytes": rng.randint(10**6, 10**8),
            "sha256": digest,
            "officer_id": officer,
            "duration_ms": rng.randint(60_000, 1_800_000),
        }
        yield Submission("media_captured", fields)


class Clock:
    """Accept and receipt times (time.time: the server's received_ms is compared with them) per event id, filled from the agents' threads."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.receipted: dict[str, float] = {}
        self.failed = 0

    def on_accepted(self, fut: Future[Any]) -> None:
        now = time.time()
        if fut.exception() is not None:
            self.failed += 1
            return
        self.accepted[fut.result().event_id] = now

    def instrument(self, agent: Any) -> None:
        """Timestamp every (seq, event_id) the agent's link removes from its outbox on a verified receipt."""
        original = agent.outbox.remove_receipted
        receipted = self.receipted

        def remove_receipted(items: Any) -> int:
            pairs = list(items)
            removed = original(pairs)
            now = time.time()
            for _seq, event_id in pairs:
                receipted.setdefault(event_id, now)
            return removed

        agent.outbox.remove_receipted = remove_receipted  # instance attribute: shadows the method

    def latencies_ms(self, ids: Any) -> list[float]:
        return [max(0.0, self.receipted[e] - self.accepted[e]) * 1000 for e in ids if e in self.receipted and e in self.accepted]


def server_metrics(server: c.Server) -> dict[str, float]:
    """A few numbers from the server's /metrics."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name in ("fe_ingest_batch_size_sum", "fe_ingest_batch_size_count", "fe_events_duplicate_total", "fe_receipts_published_total", "fe_events_stored_total"):
            out[name] = float(value)
    return out


def stored_counts(db_path: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT device_id, COUNT(*) FROM events GROUP BY device_id").fetchall())
    finally:
        con.close()


def latency_legs(db_path: Path, clock: Clock, ids: list[str]) -> dict[str, tuple[float, float]]:
    """p50/p99 of each leg of capture->receipt, from the server's received_ms and stored_ms of each event:
    agent accepted -> the server's paho thread took it off the broker -> the writer validated its batch
    (stored_ms is taken just before the INSERTs) -> commit, receipt, agent verified it and deleted the row."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        con.execute("CREATE TEMP TABLE ids(event_id TEXT PRIMARY KEY)")
        con.executemany("INSERT INTO ids VALUES (?)", [(e,) for e in ids])
        rows = con.execute("SELECT e.event_id, e.received_ms, e.stored_ms FROM events e JOIN ids USING (event_id)").fetchall()
    finally:
        con.close()
    legs: dict[str, list[float]] = {"accepted->server took it": [], "took->batch validated": [], "validated->receipt processed": []}
    for event_id, received_ms, stored_ms in rows:
        acc, rec = clock.accepted[event_id] * 1000, clock.receipted[event_id] * 1000
        legs["accepted->server took it"].append(received_ms - acc)
        legs["took->batch validated"].append(stored_ms - received_ms)
        legs["validated->receipt processed"].append(rec - stored_ms)
    return {k: (c.percentile(v, 50), c.percentile(v, 99)) for k, v in legs.items()}


def stop_agents(agents: list[Any]) -> None:
    threads = [threading.Thread(target=a.stop, daemon=True) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def queue_at_broker(agents: list[Any], streams: list[Iterator[Any]], per_device: int, clock: Clock) -> float:
    """Every device submits ``per_device`` events while nothing consumes them (the server is stopped or paused);
    returns once the broker has acknowledged every one (they wait in the server's session), after how many seconds."""
    total = per_device * len(agents)
    acked0 = sum(a.link.stats.broker_acked for a in agents)
    t0 = time.monotonic()
    for _ in range(per_device):
        for a, s in zip(agents, streams, strict=True):
            a.submit_async(next(s)).add_done_callback(clock.on_accepted)
    c.wait_until(lambda: sum(a.link.stats.broker_acked for a in agents) - acked0 >= total, 120, "the broker to hold every event", interval=0.01)
    if clock.failed:
        raise RuntimeError(f"{clock.failed} events were refused by the agents")
    return time.monotonic() - t0


def down_filter() -> str:
    """Subscription filter for every device's down topic (``topics.device_down`` refuses a wildcard as a device id)."""
    from protocol import topics

    return f"{topics.PREFIX}/dev/+/down"


class ReceiptWatch:
    """One light paho client in this process (MQTT v5, clean start, QoS 1) subscribed to every device's down
    topic, in place of the devices, which are stopped while the server drains what they queued (a real device is
    another machine: its work on a receipt is not the server's). The devices' own persistent sessions keep their
    subscription, so the broker also queues each receipt for its device; the devices take them when restarted.

    Each message is opened as a device opens it (``open_server_message``: signature checked with the server's
    public key, body decoded); the arrival time of the receipt that carries the last of ``ids`` ends the clock.
    Other kinds of server message are counted and ignored."""

    def __init__(self, port: int, server_public_key: str, ids: list[str]) -> None:
        from protocol.codec import ProtocolError, open_server_message
        from protocol.messages import Receipt
        from protocol.signing import VerifyKey

        self._open, self._refusal, self._receipt = open_server_message, ProtocolError, Receipt
        self.port = port
        self.key = VerifyKey.from_hex(server_public_key)
        self.pending = set(ids)
        self.total = len(self.pending)
        self.first = 0.0  # arrival of the first receipt carrying one of ids (time.time)
        self.last = 0.0  # ... and of the one that carried the last of them
        self.receipts = self.others = self.refused = 0
        self.done = threading.Event()
        self._subscribed = threading.Event()
        self._client: Any = None

    def start(self) -> ReceiptWatch:
        self._client = c.paho_client(f"bench-receipts-{os.getpid()}", 20)  # MQTT v5; clean start is paho's default
        self._client.on_connect = lambda client, *a: client.subscribe(down_filter(), qos=1)
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(c.HOST, self.port, keepalive=60)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the receipt watch did not subscribe")
        return self

    def _on_message(self, client: Any, userdata: object, msg: Any) -> None:
        now = time.time()
        try:
            message = self._open(bytes(msg.payload), self.key)
        except self._refusal:
            self.refused += 1
            return
        if not isinstance(message, self._receipt):
            self.others += 1
            return
        self.receipts += 1
        hit = False
        for item in message.items:
            if item.event_id in self.pending:
                self.pending.discard(item.event_id)
                hit = True
        if hit:
            self.first = self.first or now
            self.last = now
            if not self.pending:
                self.done.set()

    def wait(self, timeout: float, what: str) -> None:
        if not self.done.wait(timeout):
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what} ({self.total - len(self.pending)}/{self.total} receipted)")

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def reopen_and_drain(cfgs: list[Path], port: int, what: str, timeout: float = 600.0) -> float:
    """The stopped devices started again (new ``Agent`` objects on the same bundles, as a device restarts): they take
    the receipts their sessions kept and empty their outboxes (events whose receipt they have not read yet are sent
    again and merged by the server as duplicates). Returns the seconds until every outbox is empty."""
    from edge_agent.agent import Agent

    agents = [Agent.from_config_file(p, mqtt_port=port) for p in cfgs]
    try:
        t0 = time.monotonic()
        for a in agents:
            a.start(heartbeat=False)
        c.wait_until(lambda: all(a.outbox.depth == 0 for a in agents), timeout, f"{what}: the restarted devices' outboxes to be empty", interval=0.05)
        return time.monotonic() - t0
    finally:
        stop_agents(agents)
        forget_sessions(port, [a.device_id for a in agents])


def forget_sessions(port: int, client_ids: list[str]) -> None:
    """End the broker sessions of these client ids (a clean-start connect, then a disconnect). The next set of
    devices is provisioned on a fresh database and gets the same device ids (BR-00001, ...): without this it
    would resume these sessions and read what is still queued in them (the answer to a time request, the
    receipt of a resent duplicate), signed by another server key."""
    for client_id in client_ids:
        client = c.paho_client(client_id, 20)  # MQTT v5, clean start, session expiry 0
        client.connect(c.HOST, port, keepalive=10)
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            client.loop(0.05)
        client.disconnect()


# ------------------------------------------------------------------------------------ end to end


def devices_child(cfg_list: str, port: int) -> int:
    """Child process: the agents of some of the 50 devices, driven by one JSON command per line on stdin, each
    answered by one JSON line on stdout (after READY once every agent is connected):

    * ``{"cmd": "sat", "n": N, "at": T}``: from wall time T, every device submits N events at once; answered when
      every one is receipted, with each event's accept and receipt times (this process's clocks: time.time).
    * ``{"cmd": "paced", "rate": R, "seconds": S, "at": T}``: from T, R events/s spread over the devices for S s.
    * ``{"cmd": "queue", "n": N}``: every device submits N events and the answer comes once the broker holds them.
    * ``{"cmd": "stop"}``: the agents stop (their outboxes and sessions stay) and the process ends."""
    import json
    import logging
    import zlib

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paho").setLevel(logging.CRITICAL)
    from edge_agent.agent import Agent

    clock = Clock()
    agents = [Agent.from_config_file(p, mqtt_port=port) for p in cfg_list.split(",")]
    streams = [event_stream(a, seed=zlib.crc32(a.device_id.encode())) for a in agents]
    for a in agents:
        clock.instrument(a)
        a.start(heartbeat=False)
    c.wait_until(lambda: all(a.link.stats.connected for a in agents), 60, "every agent to connect")

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def sleep_until(wall: float) -> None:
        delay = wall - time.time()
        if delay > 0:
            time.sleep(delay)

    reply({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "stop":
            break
        run = Clock()
        run.receipted = clock.receipted  # the wrappers keep writing there
        cpu0 = time.process_time()
        first = 0.0
        if cmd["cmd"] == "queue":
            queued_s = queue_at_broker(agents, streams, cmd["n"], run)
            reply({"ids": list(run.accepted), "queued_s": queued_s})
            continue
        sleep_until(cmd["at"])
        first = time.time()
        if cmd["cmd"] == "sat":
            for _ in range(cmd["n"]):
                for a, s in zip(agents, streams, strict=True):
                    a.submit_async(next(s)).add_done_callback(run.on_accepted)
            submitted = cmd["n"] * len(agents)
        else:  # paced: credit accrues every 10 ms tick; each whole event goes to the next device in turn
            tick, credit, submitted = 0.01, 0.0, 0
            start = time.monotonic()
            next_at = start
            while next_at - start < cmd["seconds"]:
                credit += cmd["rate"] * tick
                while credit >= 1.0:
                    k = submitted % len(agents)
                    agents[k].submit_async(next(streams[k])).add_done_callback(run.on_accepted)
                    submitted += 1
                    credit -= 1.0
                next_at += tick
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        c.wait_until(lambda run=run, submitted=submitted: len(run.accepted) + run.failed >= submitted, 120, "every event to be accepted", interval=0.01)
        ids = list(run.accepted)
        last_accepted = max((run.accepted[e] for e in ids), default=first)
        c.wait_until(lambda ids=ids: all(e in clock.receipted for e in ids), 600, "every receipt", interval=0.01)
        reply(
            {
                "first": first,
                "last_accepted": last_accepted,
                "failed": run.failed,
                "accepted": {e: run.accepted[e] for e in ids},
                "receipted": {e: clock.receipted[e] for e in ids},
                "cpu_s": time.process_time() - cpu0,
            }
        )
    stop_agents(agents)
    reply({"stopped": True})
    return 0


class DeviceProcesses:
    """The e2e devices spread over ``k`` child processes (``devices_child``), so that 50 agents do not share one
    interpreter: the benchmark measures the system rather than its own harness."""

    def __init__(self, cfgs: list[Path], port: int, k: int) -> None:
        self.groups = [cfgs[i::k] for i in range(k) if cfgs[i::k]]
        me = str(Path(__file__).resolve())
        self.procs = [c.spawn([sys.executable, me, "--devices-child", ",".join(map(str, g)), "--mqtt-port", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE) for g in self.groups]
        for p in self.procs:
            self._read(p)

    def _read(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        import json

        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a device process ended (exit status {proc.wait(10)}); its error is printed above")
        return json.loads(line)

    def ask(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One command per process (sent to all before any answer is read); their answers, in the same order."""
        import json

        for p, cmd in zip(self.procs, cmds, strict=True):
            assert p.stdin is not None
            p.stdin.write((json.dumps(cmd) + "\n").encode())
            p.stdin.flush()
        return [self._read(p) for p in self.procs]

    def stop(self) -> None:
        """Stop every device's agent (outboxes and broker sessions stay) and end the processes."""
        if not self.procs:
            return
        self.ask([{"cmd": "stop"}] * len(self.procs))
        for p in self.procs:
            p.wait(30)
            c.stop_process(p)
        self.procs = []

    def close(self) -> None:
        for p in self.procs:
            c.stop_process(p)
        self.procs = []


def merged(answers: list[dict[str, Any]]) -> Clock:
    """The children's accept and receipt times in one Clock (one host: their time.time() clocks agree)."""
    clock = Clock()
    for a in answers:
        clock.accepted.update(a["accepted"])
        clock.receipted.update(a["receipted"])
        clock.failed += a["failed"]
    return clock


def run_e2e(cfgs: list[Path], server: c.Server, plan: Plan, processes: int, *, profile: bool = False) -> dict[str, Any]:
    devices = DeviceProcesses(cfgs, server.mqtt_port, processes)
    k = len(devices.groups)
    try:
        before = server_metrics(server)

        # -- saturated: every device submits its events at once -----------------------------------
        total = plan.events_per_device * len(cfgs)
        c.say(f"e2e: {len(cfgs)} devices in {k} process{'es' if k > 1 else ''} x {plan.events_per_device} events = {total}, submitted as fast as possible")
        spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        if profile:  # py-spy on the server and on the first device process, for the saturated run
            assert server.proc is not None
            for name, pid in (("server", server.proc.pid), ("device process 1", devices.procs[0].pid)):
                raw = server.directory / f"e2e-profile-{name.replace(' ', '-')}.txt"
                spies.append((name, raw, c.py_spy(pid, raw, threads=True)))
            time.sleep(1.0)
        answers = devices.ask([{"cmd": "sat", "n": plan.events_per_device, "at": time.time() + 0.2}] * k)
        for name, raw, spy in spies:
            c.stop_py_spy(spy)
            say_profile(f"e2e saturated, {name}", c.profile_summary(raw))
        sat = merged(answers)
        if sat.failed or len(sat.accepted) != total:
            raise RuntimeError(f"{sat.failed} events were refused by the agents, {len(sat.accepted)} of {total} accepted")
        t0 = min(a["first"] for a in answers)
        elapsed = max(sat.receipted.values()) - t0
        rate = total / elapsed
        lat = sat.latencies_ms(list(sat.accepted))
        devices_cpu_us = sum(a["cpu_s"] for a in answers) / total * 1e6
        after = server_metrics(server)
        batches = after["fe_ingest_batch_size_count"] - before.get("fe_ingest_batch_size_count", 0)
        mean_batch = (after["fe_ingest_batch_size_sum"] - before.get("fe_ingest_batch_size_sum", 0)) / max(1, batches)
        c.say(
            f"e2e: {total} events stored and receipted in {elapsed:.2f} s = {rate:.0f} events/s"
            f" (all accepted after {max(a['last_accepted'] for a in answers) - t0:.2f} s); capture->receipt p50 {c.percentile(lat, 50):.0f} ms,"
            f" p99 {c.percentile(lat, 99):.0f} ms; server batches {batches:.0f}, mean {mean_batch:.0f} messages;"
            f" device processes' CPU {devices_cpu_us:.0f} us/event"
        )

        # -- paced: a fixed fraction of that throughput, spread over the processes by their share of devices -----
        target = rate * PACED_FRACTION
        c.say(f"e2e paced: {target:.0f} events/s in total ({PACED_FRACTION:.0%} of the saturated rate) for {plan.paced_seconds:g} s")
        at = time.time() + 0.2
        answers = devices.ask([{"cmd": "paced", "rate": target * len(g) / len(cfgs), "seconds": plan.paced_seconds, "at": at} for g in devices.groups])
        paced = merged(answers)
        if paced.failed:
            raise RuntimeError(f"{paced.failed} paced events were refused by the agents")
        paced_ids = list(paced.accepted)
        submitted = len(paced_ids)
        plat = paced.latencies_ms(paced_ids)
        c.say(f"e2e paced: {submitted} events; capture->receipt p50 {c.percentile(plat, 50):.0f} ms, p99 {c.percentile(plat, 99):.0f} ms")
        legs = latency_legs(server.db_path, paced, paced_ids)
        c.say("e2e paced, where the time goes (p50 / p99 ms): " + ", ".join(f"{name} {v[0]:.0f} / {v[1]:.0f}" for name, v in legs.items()))
        mid = server_metrics(server)
        ids_e2e = device_ids(cfgs)
        got = sum(n for d, n in stored_counts(server.db_path).items() if d in ids_e2e)
        if got != total + submitted:  # exactly once: every accepted event stored, none twice
            raise RuntimeError(f"server stored {got} events of the e2e devices, {total + submitted} accepted")

        # -- server restart: the devices' events wait at the broker; the devices stop; the server comes back ------
        restart_total = plan.restart_events_per_device * len(cfgs)
        c.say(f"e2e server restart: server stopped; {len(cfgs)} devices x {plan.restart_events_per_device} events = {restart_total} queued at the broker, then the devices stop")
        server.stop()
        answers = devices.ask([{"cmd": "queue", "n": plan.restart_events_per_device}] * k)
        restart_ids = [e for a in answers for e in a["ids"]]
        down_s = max(a["queued_s"] for a in answers)
        if len(restart_ids) != restart_total:
            raise RuntimeError(f"{len(restart_ids)} of {restart_total} events queued")
        devices.stop()
        watch = ReceiptWatch(server.mqtt_port, server_public_key(cfgs[0]), restart_ids).start()
        try:
            self_cpu0 = time.process_time()
            t_spawn = time.time()
            server.start()
            watch.wait(600, "receipts after the restart")
            self_cpu = time.process_time() - self_cpu0
        finally:
            watch.stop()
        last = watch.last
        con = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
        try:
            first_ms = con.execute("SELECT MIN(received_ms) FROM events WHERE received_ms >= ?", (int(t_spawn * 1000),)).fetchone()[0]
        finally:
            con.close()
        restart_s = last - first_ms / 1000
        after_restart = server_metrics(server)  # before the devices come back (their resends count as duplicates)
        c.say(
            f"e2e server restart: {restart_total} events (accepted and at the broker after {down_s:.1f} s) stored, receipts seen by one subscriber"
            f" {restart_s:.2f} s after the server took the first one = {restart_total / restart_s:.0f} events/s;"
            f" {last - t_spawn:.1f} s from starting the server process; mean batch"
            f" {after_restart['fe_ingest_batch_size_sum'] / max(1, after_restart['fe_ingest_batch_size_count']):.0f}, duplicates {after_restart.get('fe_events_duplicate_total', 0):.0f};"
            f" benchmark process (the receipt subscriber) CPU {self_cpu / restart_total * 1e6:.0f} us/event from starting the server"
        )
        reopen_s = reopen_and_drain(cfgs, server.mqtt_port, "after the restart")
        got = sum(n for d, n in stored_counts(server.db_path).items() if d in ids_e2e)
        expected = total + submitted + restart_total
        if got != expected:
            raise RuntimeError(f"server stored {got} events of the e2e devices, expected {expected}")
        c.say(f"e2e server restart: the devices restarted and emptied their outboxes in {reopen_s:.1f} s; {got} events stored, as accepted")
        return {
            "device_processes": k,
            "e2e_events": total,
            "e2e_seconds": elapsed,
            "e2e_events_per_s": rate,
            "latency_p50_ms": c.percentile(lat, 50),
            "latency_p99_ms": c.percentile(lat, 99),
            "e2e_devices_cpu_us_per_event": devices_cpu_us,
            "paced_events_per_s": target,
            "paced_latency_p50_ms": c.percentile(plat, 50),
            "paced_latency_p99_ms": c.percentile(plat, 99),
            "paced_legs_ms": {name: [round(v[0], 1), round(v[1], 1)] for name, v in legs.items()},
            "server_mean_batch": mean_batch,
            "server_duplicates": mid.get("fe_events_duplicate_total", 0.0) + after_restart.get("fe_events_duplicate_total", 0.0),
            "restart_events": restart_total,
            "restart_events_per_s": restart_total / restart_s,
            "restart_from_spawn_s": last - t_spawn,
            "restart_bench_cpu_us_per_event": self_cpu / restart_total * 1e6,
        }
    finally:
        devices.close()


def server_public_key(cfg: Path) -> str:
    """The server's public key as a device bundle holds it (hex)."""
    from protocol.config import load_device_config

    identity = load_device_config(cfg).identity
    assert identity is not None
    return identity.server_public_key


def device_ids(cfgs: list[Path]) -> set[str]:
    from protocol.config import load_device_config

    return {load_device_config(p).identity.device_id for p in cfgs}  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ agent alone


def run_accept(cfg: Path, plan: Plan) -> dict[str, float]:
    """Events/s accepted (on disk, synchronous=FULL), broker unreachable: 1 caller, then 16 callers."""
    from edge_agent.agent import Agent

    agent = Agent.from_config_file(cfg, mqtt_port=c.free_port())  # nothing listens there: device offline
    stream = event_stream(agent, seed=1000)
    lock = threading.Lock()

    def one_caller(deadline: float, counter: list[int]) -> None:
        while time.monotonic() < deadline:
            with lock:
                sub = next(stream)
            agent.submit(sub)
            counter[0] += 1

    out: dict[str, float] = {}
    agent.start(heartbeat=False)
    try:
        for callers in (1, 16):
            counters = [[0] for _ in range(callers)]
            t0 = time.monotonic()
            deadline = t0 + plan.accept_seconds
            threads = [threading.Thread(target=one_caller, args=(deadline, n)) for n in counters]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
            n = sum(x[0] for x in counters)
            out[f"agent_accept_per_s_{callers}_caller{'s' if callers > 1 else ''}"] = n / elapsed
            c.say(f"agent alone: {callers:2d} caller(s), one event at a time each: {n} accepted in {elapsed:.2f} s = {n / elapsed:.0f} events/s")
    finally:
        agent.stop()
    return out


def backlog_child(cfg: str, events: int, window: int) -> int:
    """Child process: one agent (offline) accepts ``events`` with up to ``window`` submissions
    outstanding, reports, then waits for a line on stdin before stopping."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("paho").setLevel(logging.CRITICAL)  # paho 2.2 logs ERROR "Client is not connected" while unreachable
    from edge_agent.agent import Agent

    agent = Agent.from_config_file(cfg, mqtt_port=c.free_port())  # nothing listens there: device offline
    agent.start(heartbeat=False)
    stream = event_stream(agent, seed=2000)
    print("STARTED", flush=True)
    sys.stdin.readline()
    pending: list[Future[Any]] = []
    t0 = time.monotonic()
    for _ in range(events):
        pending.append(agent.submit_async(next(stream)))
        if len(pending) >= window:
            for f in pending:
                f.result(60)
            pending.clear()
    for f in pending:
        f.result(60)
    elapsed = time.monotonic() - t0
    print(f"QUEUED {agent.outbox.depth} {elapsed:.3f} {agent.outbox.bytes}", flush=True)
    sys.stdin.readline()
    agent.stop()
    print("STOPPED", flush=True)
    return 0


def run_backlog(cfg: Path, server: c.Server, plan: Plan) -> dict[str, float]:
    from edge_agent.agent import Agent

    n = plan.backlog_events
    argv = [sys.executable, str(Path(__file__).resolve()), "--backlog-child", str(cfg), "--events", str(n)]
    child = c.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def expect(word: str) -> list[str]:
        line = child.stdout.readline().decode().split()  # type: ignore[union-attr]
        if not line or line[0] != word:
            raise RuntimeError(f"backlog child: expected {word}, got {line!r} (exit status {child.poll()})")
        return line[1:]

    expect("STARTED")
    idle = c.rss_mb(child.pid)
    child.stdin.write(b"go\n")
    child.stdin.flush()
    depth, accept_s, nbytes = expect("QUEUED")
    mem = c.rss_mb(child.pid)
    child.stdin.write(b"stop\n")
    child.stdin.flush()
    expect("STOPPED")
    child.wait(30)
    c.stop_process(child)
    if int(depth) != n:
        raise RuntimeError(f"backlog child queued {depth} events, expected {n}")
    db_mb = sum(p.stat().st_size for p in cfg.parent.glob("outbox.db*")) / 1e6
    c.say(
        f"agent alone: {n} events accepted offline in {float(accept_s):.2f} s = {n / float(accept_s):.0f} events/s (up to 500 outstanding);"
        f" peak RSS {mem['VmHWM']:.1f} MB with {n} queued (idle agent {idle['VmRSS']:.1f} MB); outbox {int(nbytes) / 1e6:.1f} MB of payload"
        f" ({int(nbytes) / n:.0f} B per signed event), {db_mb:.1f} MB on disk"
    )

    # Reconnect: the same device opened again here, broker and server up; time to an empty outbox.
    t0 = time.monotonic()
    agent = Agent.from_config_file(cfg, mqtt_port=server.mqtt_port)
    open_s = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        agent.start(heartbeat=False)
        samples = [(0.0, n)]
        deadline = t1 + 900
        while agent.outbox.depth and time.monotonic() < deadline:
            time.sleep(0.05)
            samples.append((time.monotonic() - t1, agent.outbox.depth))
        if agent.outbox.depth:
            raise RuntimeError(f"backlog not drained after 900 s ({agent.outbox.depth} left)")
        drain_s = samples[-1][0]
    finally:
        agent.stop()
    stored = stored_counts(server.db_path).get(agent.device_id, 0)
    if stored != n:
        raise RuntimeError(f"server stored {stored} of the {n} backlog events")
    c.say(f"agent alone: reopening the outbox with {n} queued took {open_s:.2f} s; drained after reconnecting in {drain_s:.2f} s = {n / drain_s:.0f} events/s")
    quarters = []
    for q in range(4):  # events/s while each quarter of the backlog drained (does it slow down as tables grow?)
        hi, lo = n - q * n // 4, n - (q + 1) * n // 4
        t_hi = next(t for t, d in samples if d <= hi)
        t_lo = next(t for t, d in samples if d <= lo)
        quarters.append((hi - lo) / max(t_lo - t_hi, 1e-9))
    c.say("agent alone: drain rate by quarter of the backlog: " + ", ".join(f"{r:.0f}" for r in quarters) + " events/s")
    return {
        "backlog_events": n,
        "backlog_accept_per_s": n / float(accept_s),
        "agent_peak_rss_mb": mem["VmHWM"],
        "agent_idle_rss_mb": idle["VmRSS"],
        "outbox_disk_mb": db_mb,
        "event_payload_bytes": int(nbytes) / n,
        "outbox_reopen_s": open_s,
        "drain_s": drain_s,
        "drain_events_per_s": n / drain_s,
    }


# ------------------------------------------------------------------------- backends and processes


@dataclass(frozen=True)
class IngestSetup:
    """One configuration of the ingest-rate phase: a database and how many ingest processes share the uplinks."""

    backend: str  # "sqlite" or "postgresql"
    workers: int

    @property
    def name(self) -> str:
        return f"{self.backend}_{self.workers}"


def db_scalar(db: str, text: str, **params: Any) -> Any:
    """One value read through the storage seam (either backend)."""
    from server.storage.engine import sql, storage_for

    stmt = sql(text)
    return storage_for(db).read(lambda tx: tx.scalar(stmt, **params))


def ingest_servers(setup: IngestSetup, db: str, key_dir: Path | None, broker_port: int, directory: Path) -> list[c.Server]:
    """The ingest processes of ``setup``: one plain ``--role ingest`` (its own client id), or N ``--role ingest
    --ingest-worker K`` sharing the uplinks in the shared subscription (each signs in as fe-ingest-K, its client id)."""
    if setup.workers == 1:
        args = [["--role", "ingest", "--client-id", f"fe-bench-{setup.name}"]]
    else:
        args = [["--role", "ingest", "--ingest-worker", str(k)] for k in range(1, setup.workers + 1)]
    return [c.Server(directory, broker_port, db=db, key_dir=key_dir, args=a, name=f"ingest-{setup.name}-{k + 1}") for k, a in enumerate(args)]


def run_ingest_rate(setup: IngestSetup, db: str, key_dir: Path | None, broker_port: int, work: Path, plan: Plan, *, profile: bool = False) -> dict[str, Any]:
    """The server's ingest rate for one setup: after a warm-up the ingest processes are paused (SIGSTOP: their
    connections stay up, the broker queues what it cannot deliver in their sessions), every device queues events
    at the broker, the devices stop (a ``ReceiptWatch`` subscriber takes their place), then the processes are
    resumed at one instant (SIGCONT) and timed to the arrival of the receipt that carries the last queued event.
    The devices are then started again and empty their outboxes; the run checks that the server stored each
    event once.

    Pausing rather than restarting them (as the e2e phase does) matters with several processes: Mosquitto gives
    each member of a shared subscription its share when a message is published, also to a member that is offline,
    so with a restart each process drains only its own share, from whenever it happens to be up; a process that
    starts a second later (imports, start-up on a busy machine) then runs after the other instead of beside it.

    ``profile``: py-spy samples every ingest process (all its threads) from the resume to the last receipt; the
    summary (inclusive, self and per-line shares) is printed and returned under ``profile``."""
    from edge_agent.agent import Agent

    directory = work / setup.name
    directory.mkdir()
    servers = ingest_servers(setup, db, key_dir, broker_port, directory)
    cfgs = c.provision_devices(db, directory / "devices", DEVICES, broker_port, key_base=servers[0].key_base)
    clock = Clock()
    agents = [Agent.from_config_file(p, mqtt_port=broker_port) for p in cfgs]
    streams = [event_stream(a, seed=5000 + i) for i, a in enumerate(agents)]
    devices = [a.device_id for a in agents]
    for a in agents:
        clock.instrument(a)
    watch: ReceiptWatch | None = None
    running = False
    try:
        for s in servers:
            s.spawn()
        for s in servers:
            s.wait_ready(120)
        running = True
        for a in agents:
            a.start(heartbeat=False)
        c.wait_until(lambda: all(a.link.stats.connected for a in agents), 30, "all agents to connect")
        warm = 10 * len(agents)  # sessions made, caches and connections warm
        for _ in range(10):
            for a, st in zip(agents, streams, strict=True):
                a.submit_async(next(st)).add_done_callback(clock.on_accepted)
        c.wait_until(lambda: len(clock.receipted) >= warm, 120, f"warm-up receipts ({setup.name})", interval=0.02)
        for s in servers:
            assert s.proc is not None
            s.proc.send_signal(signal.SIGSTOP)
        total = plan.restart_events_per_device * len(agents)
        restart = Clock()
        queued_s = queue_at_broker(agents, streams, plan.restart_events_per_device, restart)
        ids = list(restart.accepted)
        running = False
        stop_agents(agents)  # their outboxes keep the events, their sessions the subscription (and so the receipts)
        watch = ReceiptWatch(broker_port, server_public_key(cfgs[0]), ids).start()
        cpu0 = [c.cpu_seconds(s.proc.pid) for s in servers if s.proc is not None]
        spies = [c.py_spy(s.proc.pid, directory / f"profile-{k + 1}.txt", threads=True) for k, s in enumerate(servers) if s.proc is not None] if profile else []
        if spies:
            time.sleep(1.0)  # py-spy attached (a paused process is sampled as idle until it resumes)
        self_cpu0 = time.process_time()
        t_resume = time.time()
        for s in servers:
            assert s.proc is not None
            s.proc.send_signal(signal.SIGCONT)
        watch.wait(600, f"receipts after resuming ({setup.name})")
        self_cpu = time.process_time() - self_cpu0
        cpu1 = [c.cpu_seconds(s.proc.pid) for s in servers if s.proc is not None]
        for spy in spies:
            c.stop_py_spy(spy)
        watch.stop()
        seconds = watch.last - t_resume
        shares = []
        batch_sum = batch_count = 0.0
        for s in servers:
            m = server_metrics(s)  # counters since this process started: the warm-up's and the measured events
            shares.append(int(m.get("fe_events_stored_total", 0)))
            batch_sum += m.get("fe_ingest_batch_size_sum", 0.0)
            batch_count += m.get("fe_ingest_batch_size_count", 0.0)
        mean_batch = batch_sum / max(1.0, batch_count)
        rate = total / seconds
        c.say(
            f"ingest {setup.backend}, {setup.workers} ingest process{'es' if setup.workers > 1 else ''}: {total} events queued at the broker in {queued_s:.1f} s"
            f" while paused, devices stopped; stored and the last receipt seen {seconds:.2f} s after resuming = {rate:.0f} events/s;"
            f" stored per process (with the warm-up) {shares}, mean batch {mean_batch:.0f}"
        )
        server_cpu_us = sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / total * 1e6
        c.say(f"ingest {setup.name}: server CPU {server_cpu_us:.0f} us/event, benchmark process (the receipt subscriber) CPU {self_cpu / total * 1e6:.0f} us/event")
        reopen_s = reopen_and_drain(cfgs, broker_port, setup.name)
        stored = db_scalar(db, "SELECT count(*) FROM events WHERE device_id IN (:devices)", devices=devices)
        if stored != warm + total:
            raise RuntimeError(f"{setup.name}: {stored} events stored, expected {warm + total}")
        c.say(f"ingest {setup.name}: the devices restarted and emptied their outboxes in {reopen_s:.1f} s; {stored} events stored (warm-up and queued), as accepted")
        summary = {}
        if spies:
            summary = c.profile_summary(directory / "profile-1.txt")
            say_profile(f"ingest {setup.name}, process 1", summary)
        return {"profile": summary, "server_cpu_us_per_event": server_cpu_us, "bench_cpu_us_per_event": self_cpu / total * 1e6, "events": total, "events_per_s": rate, "queued_s": queued_s, "stored_per_process": shares, "mean_batch": mean_batch}
    finally:
        if watch is not None:
            watch.stop()
        if running:
            stop_agents(agents)
        for s in servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            s.stop()


def say_profile(label: str, summary: dict[str, Any], top: int = 18) -> None:
    """Print a profile summary: where the sampled threads spent their time."""
    c.say(f"{label}: profile, {summary['samples']:,} busy samples (all threads; idle waits left out)")
    for title, key in (("threads", "threads"), ("inclusive", "inclusive"), ("self", "self"), ("under the project's lines", "lines")):
        c.say(f"  {title}:")
        for frame, share in summary[key][:top]:
            c.say(f"    {100 * share:5.1f} %  {frame}")


def run_backends(broker_port: int, work: Path, plan: Plan, url: str | None, workers: int, profile: bool = False) -> dict[str, Any]:
    """The ingest rate for SQLite with 1 ingest process and PostgreSQL with 1..``workers`` (a private cluster with
    fsync on, or the database ``url``, migrated here); one fresh set of devices per setup."""
    from server import db as dbmod

    out: dict[str, Any] = {}
    sqlite_dir = work / "ingest-sqlite"
    sqlite_dir.mkdir()
    sqlite_db = str(sqlite_dir / "server.db")
    dbmod.migrate(sqlite_db)
    res = run_ingest_rate(IngestSetup("sqlite", 1), sqlite_db, None, broker_port, work, plan, profile=profile)
    out["sqlite_1"] = res
    if os.environ.get("BENCH_SQLITE_ONLY"):  # profiling aid: the SQLite setup alone
        return out
    pg = None
    try:
        if url is None:
            pg = c.private_postgres(work)
            url = pg.create_database("bench_ingest")
        dbmod.migrate(url)
        key_dir = work / "pg-keys"
        key_dir.mkdir()
        for n in range(1, workers + 1):
            out[f"postgresql_{n}"] = run_ingest_rate(IngestSetup("postgresql", n), url, key_dir, broker_port, work, plan, profile=profile)
    finally:
        from server.storage.engine import close_storage

        if url is not None:
            close_storage(url)
        if pg is not None:
            pg.close()
    return out


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backlog-child", help=argparse.SUPPRESS)
        p.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
        p.add_argument("--devices-child", help=argparse.SUPPRESS)
        p.add_argument("--mqtt-port", type=int, default=0, help=argparse.SUPPRESS)
        p.add_argument("--device-processes", type=int, default=DEVICE_PROCESSES, metavar="K", help=f"child processes the 50 e2e devices run in (default {DEVICE_PROCESSES})")
        p.add_argument("--db", help="a postgresql:// URL for the ingest-rate phase (default: a private cluster this run starts, fsync on)")
        p.add_argument("--workers", type=int, default=2, help="PostgreSQL ingest processes: measured with 1..N (default 2)")
        p.add_argument("--rates-only", action="store_true", help="only the raw baseline and the ingest rates per backend (no e2e, agent or backlog phases)")
        p.add_argument("--rate-events", type=int, default=0, help="events each device queues in the per-backend phase (default 200; 100 with --quick)")
        p.add_argument("--profile", action="store_true", help="py-spy on the server and one device process of the saturated e2e run, and on the ingest processes of the per-backend phase; print where their time goes (rates under py-spy are lower)")

    args = c.bench_args("End-to-end ingest vs raw paho QoS 1, and the agent alone.", extra)
    if args.backlog_child:
        return backlog_child(args.backlog_child, args.events, window=500)
    if args.devices_child:
        return devices_child(args.devices_child, args.mqtt_port)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # paho 2.2 logs ERROR "Client is not connected" from its loop thread while a client is unreachable
    # or just disconnected (normal here: offline devices, agents stopping); keep the output readable.
    logging.getLogger("paho").setLevel(logging.CRITICAL)
    plan = QUICK if args.quick else FULL
    if args.rate_events:
        plan = dataclasses.replace(plan, restart_events_per_device=args.rate_events)
    mode = "quick" if args.quick else "full"
    c.say(f"bench/ingest.py ({mode}): {DEVICES} devices, one Mosquitto, server as a child process, all on 127.0.0.1")
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    figures: dict[str, Any] = {"benchmark": "ingest", "mode": mode}
    with c.bench_session("fe-bench-ingest-", keep=args.keep) as work:
        broker = c.Mosquitto(work / "broker").start()

        raw = c.raw_paho_qos1(broker.port, plan.raw_messages)
        c.say(f"raw paho QoS 1: {raw['messages']} x 600 B, 1 publisher (max_inflight 20) -> 1 subscriber: {raw['msgs_per_s']:.0f} messages/s")

        e2e: dict[str, Any] = {}
        accept: dict[str, float] = {}
        backlog: dict[str, float] = {}
        if not args.rates_only:
            server = c.Server(work / "server", broker.port)
            (work / "server").mkdir()
            cfgs = c.provision_devices(server.db_path, work / "devices", DEVICES, broker.port)
            accept_cfg, backlog_cfg = c.provision_devices(server.db_path, work / "alone", 2, broker.port)
            server.start()

            e2e = run_e2e(cfgs, server, plan, args.device_processes, profile=args.profile)
            accept = run_accept(accept_cfg, plan)
            backlog = run_backlog(backlog_cfg, server, plan)
            server.stop()
        c.say(f"ingest rate by backend: {DEVICES} devices x {plan.restart_events_per_device} events queued while the ingest processes are paused, then they resume together")
        rates = run_backends(broker.port, work, plan, args.db, args.workers, profile=args.profile)
        raw_after = c.raw_paho_qos1(broker.port, plan.raw_messages)
        c.say(f"raw paho QoS 1 again, at the end: {raw_after['msgs_per_s']:.0f} messages/s (the baseline is the better of the two)")
        broker.stop()

    raw_rates = (raw["msgs_per_s"], raw_after["msgs_per_s"])
    raw = max(raw, raw_after, key=lambda r: r["msgs_per_s"])
    base = raw["msgs_per_s"]
    figures.update({"devices": DEVICES, "raw_paho_qos1_msgs_per_s": c.rounded(base), "raw_paho_qos1_runs": [c.rounded(r) for r in raw_rates]})
    if e2e:
        ratio = e2e["e2e_events_per_s"] / base
        c.say(f"ratio e2e / raw: {ratio:.1%} (goal: at least 40%); peak agent RSS {backlog['agent_peak_rss_mb']:.1f} MB (goal: at most 60 MB with 100,000 queued)")
        figures.update(
            {
                "device_processes": e2e["device_processes"],
                "e2e_events": e2e["e2e_events"],
                "e2e_events_per_s": c.rounded(e2e["e2e_events_per_s"]),
                "ratio": round(ratio, 3),
                "latency_p50_ms": c.rounded(e2e["latency_p50_ms"]),
                "latency_p99_ms": c.rounded(e2e["latency_p99_ms"]),
                "e2e_devices_cpu_us_per_event": round(e2e["e2e_devices_cpu_us_per_event"]),
                "paced_events_per_s": c.rounded(e2e["paced_events_per_s"]),
                "paced_latency_p50_ms": c.rounded(e2e["paced_latency_p50_ms"]),
                "paced_latency_p99_ms": c.rounded(e2e["paced_latency_p99_ms"]),
                "paced_legs_ms": e2e["paced_legs_ms"],
                "server_mean_batch": c.rounded(e2e["server_mean_batch"]),
                "server_duplicates": int(e2e["server_duplicates"]),
                "restart_events": e2e["restart_events"],
                "restart_events_per_s": c.rounded(e2e["restart_events_per_s"]),
                "restart_ratio": round(e2e["restart_events_per_s"] / base, 3),
                "restart_from_spawn_s": round(e2e["restart_from_spawn_s"], 2),
                "restart_bench_cpu_us_per_event": round(e2e["restart_bench_cpu_us_per_event"]),
                "agent_accept_per_s_1_caller": c.rounded(accept["agent_accept_per_s_1_caller"]),
                "agent_accept_per_s_16_callers": c.rounded(accept["agent_accept_per_s_16_callers"]),
                "backlog_events": backlog["backlog_events"],
                "backlog_accept_per_s": c.rounded(backlog["backlog_accept_per_s"]),
                "drain_s": round(backlog["drain_s"], 2),
                "drain_events_per_s": c.rounded(backlog["drain_events_per_s"]),
                "outbox_reopen_s": round(backlog["outbox_reopen_s"], 2),
                "agent_peak_rss_mb": c.rounded(backlog["agent_peak_rss_mb"]),
                "agent_idle_rss_mb": c.rounded(backlog["agent_idle_rss_mb"]),
                "outbox_disk_mb": c.rounded(backlog["outbox_disk_mb"]),
                "event_payload_bytes": round(backlog["event_payload_bytes"]),
            }
        )
    for name, r in rates.items():
        figures[f"ingest_{name}_events_per_s"] = c.rounded(r["events_per_s"])
        figures[f"ingest_{name}_ratio"] = round(r["events_per_s"] / base, 3)
        figures[f"ingest_{name}_stored_per_process"] = r["stored_per_process"]
        figures[f"ingest_{name}_mean_batch"] = c.rounded(r["mean_batch"])
        figures[f"ingest_{name}_queued_s"] = round(r["queued_s"], 2)
        figures[f"ingest_{name}_server_cpu_us_per_event"] = round(r["server_cpu_us_per_event"])
        figures[f"ingest_{name}_bench_cpu_us_per_event"] = round(r["bench_cpu_us_per_event"])
    c.say("ingest rate / raw: " + ", ".join(f"{name} {r['events_per_s']:.0f}/s ({r['events_per_s'] / base:.1%})" for name, r in rates.items()))
    figures["ingest_rate_events"] = next(iter(rates.values()))["events"]
    load_end = os.getloadavg()[0]
    c.say(f"done in {time.monotonic() - started:.0f} s; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end ({os.cpu_count()} CPUs)")
    figures.update({"cpus": os.cpu_count(), "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2), "seconds": round(time.monotonic() - started, 1)})
    c.emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
