"""Simulated devices: one agent per device bundle, each with its own key, sequence and outbox.

Each simulated officer repeats a realistic day: scan an enterprise's code, start or join the inspection
when allowed, record media, end it with a result; heartbeats go out as on a real device.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

log = logging.getLogger(__name__)

RESULTS = ("no_violation", "no_violation", "no_violation", "rectification_ordered", "case_opened")
#: Share of scans aimed at a few "busy" enterprises, so that agencies meet there and inspect jointly.
HOT_SHARE = 0.4
SCENARIO_FILE = "scenario.json"


@dataclass(frozen=True, slots=True)
class ScanStep:
    """Scan an enterprise's code (the decision is sent back into the story)."""

    field: str
    code_text: str


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

    def __init__(self, agent: Agent, rate: float, seed: int, scenario: dict[str, Any] | None) -> None:
        self.agent = agent
        self.rate = rate
        self.rng = random.Random(seed)
        self.scanner = Scanner(agent) if agent.config.can_scan else None
        me = (scenario or {}).get("devices", {}).get(agent.device_id)
        self.officer_id = me["officer_id"] if me else f"OFF-{agent.device_id}"
        self.fields: list[str] = me["fields"] if me else ["food_safety"]
        self.codes: list[str] = [c["text"] for c in (scenario or {}).get("codes", [])]
        self.scripted = bool(me and self.codes and self.scanner)
        self.accepted = 0
        self.refused = 0
        self.outcomes: dict[str, int] = {}

    def _media(self, inspection_id: str | None) -> Submission:
        digest = hashlib.sha256(f"{self.agent.device_id}:{self.rng.random()}".encode()).hexdigest()
        fields: dict[str, Any] = {
            "file_name": f"{digest[:8]}.mp4", "media_kind": "video", "size_bytes": self.rng.randint(10**6, 10**8), "sha256": digest,
            "officer_id": self.officer_id, "duration_ms": self.rng.randint(60_000, 1_800_000),
        }  # fmt: skip
        if inspection_id:
            fields["inspection_id"] = inspection_id
        return Submission("media_captured", fields)

    def story(self) -> Generator[Submission | ScanStep, dict[str, Any] | None, None]:
        """An endless day's work; a ScanStep is answered with the decision."""
        rng = self.rng
        while True:
            if not self.scripted:
                yield self._media(None)
                continue
            hot = self.codes[:5]
            code = rng.choice(hot if rng.random() < HOT_SHARE else self.codes)
            field = rng.choice(self.fields)
            decision = yield ScanStep(field, code)
            if not decision or decision.get("outcome") not in ("allowed", "join") or not decision.get("inspection_id"):
                continue
            insp, scan_id = decision["inspection_id"], decision["scan_id"]
            part = {"inspection_id": insp, "officer_id": self.officer_id, "agency_id": self.agent.identity.agency_id, "field": field, "scan_event_id": scan_id}
            if decision["outcome"] == "allowed":
                yield Submission("inspection_started", {**part, "credit_code": code.split(":")[1]})
            else:
                yield Submission("inspection_joined", part)
            if self.agent.config.can_record:
                yield self._media(insp)
            yield Submission("inspection_ended", {"inspection_id": insp, "officer_id": self.officer_id, "result": rng.choice(RESULTS)})

    def run(self, stop: threading.Event, limit: int | None = None) -> None:
        """Act at ``rate`` steps per second until stopped (or ``limit`` events accepted)."""
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        story = self.story()
        step = next(story)
        while not stop.is_set() and (limit is None or self.accepted < limit):
            answer: dict[str, Any] | None = None
            try:
                if isinstance(step, ScanStep):
                    assert self.scanner is not None
                    answer = self.scanner.scan(self.officer_id, step.field, code_text=step.code_text)
                    self.outcomes[answer["code"]] = self.outcomes.get(answer["code"], 0) + 1
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
    officers = [SimulatedOfficer(a, rate, seed=i, scenario=scenario) for i, a in enumerate(agents)]
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
