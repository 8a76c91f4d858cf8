"""Simulated devices: one agent per device bundle, each with its own key, sequence and outbox.

Each simulated officer repeats a realistic day: scan an enterprise, start an inspection, record media,
end it with a result; heartbeats go out as on a real device.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edge_agent.agent import Agent, Submission
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
FIELDS = ("market_regulation", "ecology", "emergency_management", "urban_management", "health", "culture_tourism")
RESULTS = ("no_violation", "no_violation", "no_violation", "rectification_ordered", "case_opened")


def credit_code(rng: random.Random) -> str:
    """A random unified social credit code with a valid GB 32100-2015 check character."""
    body = "91" + "110108" + "".join(rng.choice(_CHARSET) for _ in range(9))
    total = sum(_CHARSET.index(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
    return body + _CHARSET[(31 - total % 31) % 31]


def bundle_configs(directory: str | Path) -> list[Path]:
    """Every device bundle's config under a folder (``*/device.toml``)."""
    found = sorted(Path(directory).glob("*/device.toml"))
    if not found:
        raise EdgeAgentError(f"{directory}: no device bundles (*/device.toml) found; make them with `fe-server devices add --count N --out {directory}`")
    return found


class SimulatedOfficer:
    """Feeds one agent with inspection events at a given rate."""

    def __init__(self, agent: Agent, rate: float, seed: int) -> None:
        self.agent = agent
        self.rate = rate
        self.rng = random.Random(seed)
        self.enterprises = [credit_code(self.rng) for _ in range(20)]
        self.officer_id = f"OFF-{agent.device_id}"
        self.accepted = 0
        self.refused = 0

    def events(self) -> Any:
        """An endless stream of submissions telling realistic inspections."""
        rng = self.rng
        agency = self.agent.identity.agency_id
        while True:
            code = rng.choice(self.enterprises)
            scan_id = str(uuid.uuid4())
            insp = str(uuid.uuid4())
            field = rng.choice(FIELDS)
            yield Submission("enterprise_scanned", {"officer_id": self.officer_id, "code_text": f"FE1:{code}", "credit_code": code, "reason": "routine"}, scan_id)
            yield Submission(
                "inspection_started",
                {"inspection_id": insp, "officer_id": self.officer_id, "agency_id": agency, "credit_code": code, "field": field, "scan_event_id": scan_id},
            )
            if self.agent.config.can_record:
                digest = hashlib.sha256(insp.encode()).hexdigest()
                yield Submission(
                    "media_captured",
                    {"file_name": f"{insp[:8]}.mp4", "media_kind": "video", "size_bytes": rng.randint(10**6, 10**8), "sha256": digest, "officer_id": self.officer_id, "inspection_id": insp},
                )
            yield Submission("inspection_ended", {"inspection_id": insp, "officer_id": self.officer_id, "result": rng.choice(RESULTS)})

    def run(self, stop: threading.Event, limit: int | None = None) -> None:
        """Submit events at ``rate`` per second until stopped (or ``limit`` accepted)."""
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        for sub in self.events():
            if stop.is_set() or (limit is not None and self.accepted >= limit):
                return
            try:
                self.agent.submit(sub)
                self.accepted += 1
            except EdgeAgentError as e:
                self.refused += 1
                log.warning("%s: event refused: %s", self.agent.device_id, e)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return


def run_simulation(directory: str | Path, rate: float, *, mqtt_host: str | None, mqtt_port: int | None, duration: float | None, limit: int | None) -> dict[str, Any]:
    """Run every bundle in ``directory`` until ``duration`` passes, ``limit`` events each, or Ctrl-C."""
    agents = [Agent.from_config_file(p, mqtt_host=mqtt_host, mqtt_port=mqtt_port) for p in bundle_configs(directory)]
    stop = threading.Event()
    officers = [SimulatedOfficer(a, rate, seed=i) for i, a in enumerate(agents)]
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
        }
        for a in agents:
            a.stop()
    return summary
