"""Simulated devices: one agent per device bundle, each with its own key, sequence and outbox.

Each simulated officer repeats a realistic day: scan an enterprise's code, start or join the inspection
when allowed, end it with a result, and report the recording of it (a video started before the scan and stopped
after the end, so the inspection counts as recorded from start to end); heartbeats go out as on a real device.
An officer whose device cannot record (a QR terminal) wears a body recorder when the scenario pairs one with them
(``worn_by``): the recorder reports the recording. Now and then an officer scans a no-disturb enterprise (sometimes
citing its complaint ticket) or inspects the same enterprise again in the same field (a repeat), as real officers
do, so that the supervisors' alerts have something to show.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.agent import Agent, Submission
from edge_agent.errors import EdgeAgentError
from edge_agent.scanner import Scanner
from protocol.messages import ExceptionBasis

log = logging.getLogger(__name__)

RESULTS = ("no_violation", "no_violation", "no_violation", "rectification_ordered", "case_opened")
#: Share of scans aimed at a few "busy" enterprises, so that agencies meet there and inspect jointly.
HOT_SHARE = 0.4
#: Share of scans that inspect the officer's last enterprise again in the same field (a repeat inspection).
REPEAT_SHARE = 0.05
#: Share of scans aimed at enterprises on the no-disturb list; half of those cite the enterprise's complaint ticket.
NO_DISTURB_SHARE = 0.05
#: A recorder is switched on this long before the scan (and off when the officer ends the inspection).
RECORDING_LEAD_MS = 20_000
SCENARIO_FILE = "scenario.json"


@dataclass(frozen=True, slots=True)
class ScanStep:
    """Scan an enterprise's code (the decision is sent back into the story)."""

    field: str
    code_text: str
    exception: ExceptionBasis | None = None


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording of an inspection, handed by an officer to the body recorder they wear."""

    inspection_id: str
    started_ms: int
    ended_ms: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def bundle_configs(directory: str | Path) -> list[Path]:
    """Every device bundle's config under a folder (``*/device.toml``)."""
    found = sorted(Path(directory).glob("*/device.toml"))
    if not found:
        raise EdgeAgentError(f"{directory}: no device bundles (*/device.toml) found; make them with `fe-server devices add --count N --out {directory}`")
    return found


class SimulatedOfficer:
    """Acts out one officer's day on one device, at a given rate of steps per second.

    With a scenario (``fe-server demo-seed``), officers scan real signed codes and inspect when allowed;
    without one, the device only records media metadata (nothing the registers could check).
    """

    def __init__(
        self, agent: Agent, rate: float, seed: int, scenario: dict[str, Any] | None, recorders: dict[str, queue.Queue[Recording]] | None = None
    ) -> None:
        self.agent = agent
        self.rate = rate
        self.rng = random.Random(seed)
        self.scanner = Scanner(agent) if agent.config.can_scan else None
        me = (scenario or {}).get("devices", {}).get(agent.device_id)
        self.officer_id = me["officer_id"] if me else f"OFF-{agent.device_id}"
        self.fields: list[str] = me["fields"] if me else ["food_safety"]
        self.codes: list[str] = [c["text"] for c in (scenario or {}).get("codes", [])]
        quiet = set((scenario or {}).get("no_disturb", []))
        self.quiet_codes: list[str] = [c["text"] for c in (scenario or {}).get("codes", []) if c["credit_code"] in quiet]
        self.tickets: dict[str, str] = dict((scenario or {}).get("complaints", {}))  # credit code -> an open complaint ticket
        self.scripted = bool(me and self.codes and self.scanner)
        #: Recordings handed over by the officer who wears this recorder (None: the recorder is worn by nobody simulated).
        self.worn_for: queue.Queue[Recording] | None = None
        self.wearer_done: threading.Event | None = None
        self.done = threading.Event()
        recorders = recorders if recorders is not None else {}
        if me and me.get("worn_by") and not self.scanner:
            self.worn_for = recorders.setdefault(me["worn_by"], queue.Queue())
        self.accepted = 0
        self.refused = 0
        self.outcomes: dict[str, int] = {}
        self._recorders = recorders

    def _media(self, inspection_id: str | None, started_ms: int | None = None, ended_ms: int | None = None) -> Submission:
        digest = hashlib.sha256(f"{self.agent.device_id}:{self.rng.random()}".encode()).hexdigest()
        fields: dict[str, Any] = {
            "file_name": f"{digest[:8]}.mp4", "media_kind": "video", "size_bytes": self.rng.randint(10**6, 10**8), "sha256": digest,
            "officer_id": self.officer_id, "duration_ms": self.rng.randint(60_000, 1_800_000),
        }  # fmt: skip
        if started_ms is not None and ended_ms is not None:
            fields.update(started_ms=started_ms, ended_ms=ended_ms, duration_ms=ended_ms - started_ms)
        if inspection_id:
            fields["inspection_id"] = inspection_id
        return Submission("media_captured", fields)

    def _next_scan(self, last: tuple[str, str] | None) -> ScanStep:
        """What to scan next: mostly a busy or a random enterprise; now and then the last one again (a repeat) or a
        no-disturb enterprise (with its complaint ticket half the time)."""
        rng = self.rng
        roll = rng.random()
        if last is not None and roll < REPEAT_SHARE:
            return ScanStep(last[1], last[0])
        if self.quiet_codes and roll < REPEAT_SHARE + NO_DISTURB_SHARE:
            code = rng.choice(self.quiet_codes)
            ticket = self.tickets.get(code.split(":")[1])
            exception = ExceptionBasis(kind="complaint", reference=ticket) if ticket and rng.random() < 0.5 else None
            return ScanStep(rng.choice(self.fields), code, exception)
        code = rng.choice(self.codes[:5] if rng.random() < HOT_SHARE else self.codes)
        return ScanStep(rng.choice(self.fields), code)

    def story(self) -> Generator[Submission | ScanStep | None, dict[str, Any] | None, None]:
        """An endless day's work; a ScanStep is answered with the decision; None is a step with nothing to do."""
        if self.worn_for is not None:
            yield from self._recorder_story(self.worn_for)
            return
        rng = self.rng
        last: tuple[str, str] | None = None
        while True:
            if not self.scripted:
                yield self._media(None)
                continue
            step = self._next_scan(last)
            scanned_ms = _now_ms()
            decision = yield step
            if not decision or decision.get("outcome") not in ("allowed", "join") or not decision.get("inspection_id"):
                continue
            insp, scan_id = decision["inspection_id"], decision["scan_id"]
            part = {"inspection_id": insp, "officer_id": self.officer_id, "agency_id": self.agent.identity.agency_id, "field": step.field, "scan_event_id": scan_id}
            if decision["outcome"] == "allowed":
                yield Submission("inspection_started", {**part, "credit_code": step.code_text.split(":")[1]})
            else:
                yield Submission("inspection_joined", part)
            yield Submission("inspection_ended", {"inspection_id": insp, "officer_id": self.officer_id, "result": rng.choice(RESULTS)})
            last = (step.code_text, step.field)
            # The file is finished, hashed and reported after the recorder stops, which is after the inspection ended.
            recording = Recording(insp, scanned_ms - RECORDING_LEAD_MS, _now_ms())
            if self.agent.config.can_record:
                yield self._media(insp, recording.started_ms, recording.ended_ms)
            elif self.officer_id in self._recorders:
                self._recorders[self.officer_id].put(recording)

    def _recorder_story(self, jobs: queue.Queue[Recording]) -> Generator[Submission | None, dict[str, Any] | None, None]:
        """A body recorder worn by a simulated officer: it reports each recording the officer made, and idles between."""
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                yield None
                continue
            yield self._media(job.inspection_id, job.started_ms, job.ended_ms)

    def idle_for_good(self) -> bool:
        """A worn recorder with nothing left to report whose wearer stopped."""
        return self.worn_for is not None and self.worn_for.empty() and self.wearer_done is not None and self.wearer_done.is_set()

    def run(self, stop: threading.Event, limit: int | None = None) -> None:
        """Act at ``rate`` steps per second until stopped (or ``limit`` events accepted)."""
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        story = self.story()
        step = next(story)
        try:
            self._run(stop, limit, interval, next_at, story, step)
        finally:
            self.done.set()

    def _run(self, stop: threading.Event, limit: int | None, interval: float, next_at: float, story: Generator[Any, Any, None], step: Any) -> None:
        while not stop.is_set() and (limit is None or self.accepted < limit) and not self.idle_for_good():
            answer: dict[str, Any] | None = None
            try:
                if step is None:
                    pass  # nothing to do this step (a worn recorder between recordings)
                elif isinstance(step, ScanStep):
                    assert self.scanner is not None
                    answer = self.scanner.scan(self.officer_id, step.field, code_text=step.code_text, exception=step.exception)
                    self.outcomes[answer["code"]] = self.outcomes.get(answer["code"], 0) + 1
                    self.accepted += 1
                else:
                    self.agent.submit(step)
                    self.accepted += 1
            except EdgeAgentError as e:
                self.refused += 1
                log.warning("%s: event refused: %s", self.agent.device_id, e)
            step = story.send(answer)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return


def load_scenario(directory: str | Path) -> dict[str, Any] | None:
    """The demo scenario beside the bundles, if there is one."""
    path = Path(directory) / SCENARIO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def run_simulation(directory: str | Path, rate: float, *, mqtt_host: str | None, mqtt_port: int | None, duration: float | None, limit: int | None) -> dict[str, Any]:
    """Run every bundle in ``directory`` until ``duration`` passes, ``limit`` events each, or Ctrl-C."""
    agents = [Agent.from_config_file(p, mqtt_host=mqtt_host, mqtt_port=mqtt_port) for p in bundle_configs(directory)]
    stop = threading.Event()
    scenario = load_scenario(directory)
    recorders: dict[str, queue.Queue[Recording]] = {}
    officers = [SimulatedOfficer(a, rate, seed=i, scenario=scenario, recorders=recorders) for i, a in enumerate(agents)]
    by_officer = {o.officer_id: o for o in officers if o.worn_for is None}
    for o in officers:
        if o.worn_for is not None:
            wearer = by_officer.get(o.officer_id)
            o.wearer_done = wearer.done if wearer else threading.Event()
            if wearer is None:
                o.wearer_done.set()
    threads = [threading.Thread(target=o.run, args=(stop, limit), daemon=True) for o in officers]
    for a in agents:
        a.start()
    for t in threads:
        t.start()
    log.info("simulating %d devices at %.2f events/s each", len(agents), rate)
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while any(t.is_alive() for t in threads) and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        if limit is not None:
            # Every device made its events: wait for their receipts before stopping.
            while any(a.outbox.depth for a in agents) and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        summary = {
            "devices": len(agents),
            "accepted": sum(o.accepted for o in officers),
            "refused": sum(o.refused for o in officers),
            "unreceipted": sum(a.outbox.depth for a in agents),
            "scan_decisions": {k: sum(o.outcomes.get(k, 0) for o in officers) for k in sorted({k for o in officers for k in o.outcomes})},
        }
        for a in agents:
            a.stop()
    return summary
