"""Prototype: the e2e phase with the 50 simulated devices spread over K child processes (K = 1, 2, 4 in one run),
against raw paho QoS 1 of the same broker; saturated rate, and latency paced at 50 % of it."""
from __future__ import annotations
import json, os, sys, time, subprocess, threading
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import logging
logging.basicConfig(level=logging.WARNING)
logging.getLogger("paho").setLevel(logging.CRITICAL)


def child(cfg_list: str) -> int:
    from edge_agent.agent import Agent
    from ingest import Clock, event_stream
    cfgs = [Path(p) for p in cfg_list.split(",")]
    port = int(os.environ["E2E_MQTT_PORT"])
    clock = Clock()
    agents = [Agent.from_config_file(p, mqtt_port=port) for p in cfgs]
    streams = [event_stream(a, seed=int(time.time() * 1000) % 100000 + i) for i, a in enumerate(agents)]
    for a in agents:
        clock.instrument(a)
        a.start(heartbeat=False)
    c.wait_until(lambda: all(a.link.stats.connected for a in agents), 60, "connect")
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "STOP":
            break
        mode, n = cmd[0], int(cmd[1])
        rate = float(cmd[2]) if len(cmd) > 2 else 0.0
        acc: dict[str, float] = {}
        local = Clock(); local.receipted = clock.receipted
        cpu0 = time.process_time()
        if mode == "SAT":
            for _ in range(n):
                for a, s in zip(agents, streams):
                    a.submit_async(next(s)).add_done_callback(local.on_accepted)
            total = n * len(agents)
        else:  # PACED: n events in total from this process at `rate` per second
            start = time.monotonic(); i = 0
            while i < n:
                due = int((time.monotonic() - start) * rate) + 1
                while i < min(due, n):
                    k = i % len(agents)
                    agents[k].submit_async(next(streams[k])).add_done_callback(local.on_accepted)
                    i += 1
                time.sleep(0.005)
            total = n
        c.wait_until(lambda: len(local.accepted) + local.failed >= total, 120, "accepted", interval=0.01)
        ids = list(local.accepted)
        c.wait_until(lambda: all(e in clock.receipted for e in ids), 300, "receipts", interval=0.01)
        print(json.dumps({"acc": {e: local.accepted[e] for e in ids}, "rec": {e: clock.receipted[e] for e in ids}, "cpu": time.process_time() - cpu0}), flush=True)
    for a in agents:
        threading.Thread(target=a.stop, daemon=True).start()
    time.sleep(2)
    return 0


def run(cfgs: list[Path], k: int, port: int, per_device: int, paced_s: float) -> dict:
    groups = [cfgs[i::k] for i in range(k)]
    env = {**os.environ, "E2E_MQTT_PORT": str(port)}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", ",".join(map(str, g))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True) for g in groups]
    for p in procs:
        assert p.stdout.readline().strip() == "READY"
    def phase(cmds: list[str]) -> tuple[dict, dict, float]:
        t0 = time.time()
        for p, cmd in zip(procs, cmds):
            p.stdin.write(cmd + "\n"); p.stdin.flush()
        acc, rec, cpu = {}, {}, 0.0
        for p in procs:
            d = json.loads(p.stdout.readline())
            acc.update(d["acc"]); rec.update(d["rec"]); cpu += d["cpu"]
        return acc, rec, t0, cpu
    acc, rec, t0, cpu = phase([f"SAT {per_device}"] * k)
    n = len(acc)
    rate = n / (max(rec.values()) - t0)
    lat = [(rec[e] - acc[e]) * 1000 for e in acc]
    target = rate * 0.5
    pn = int(target * paced_s)
    pacc, prec, _, _ = phase([f"PACED {pn // k} {target / k}"] * k)
    plat = [(prec[e] - pacc[e]) * 1000 for e in pacc]
    for p in procs:
        p.stdin.write("STOP\n"); p.stdin.flush()
    for p in procs:
        p.wait(60)
    return {"k": k, "events": n, "events_per_s": rate, "p50_ms": c.percentile(lat, 50), "p99_ms": c.percentile(lat, 99), "agents_cpu_us_per_event": cpu / n * 1e6,
            "paced_events_per_s": target, "paced_p50_ms": c.percentile(plat, 50), "paced_p99_ms": c.percentile(plat, 99)}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    ks = [int(x) for x in os.environ.get("E2E_KS", "1,2,4").split(",")]
    per_device = int(os.environ.get("E2E_PER_DEVICE", "100"))
    out = {}
    with c.bench_session("fe-bench-e2emp-") as work:
        broker = c.Mosquitto(work / "broker").start()
        raw = c.raw_paho_qos1(broker.port, 20000)["msgs_per_s"]
        server = c.Server(work / "server", broker.port)
        (work / "server").mkdir()
        cfgs = c.provision_devices(server.db_path, work / "devices", 50, broker.port)
        server.start()
        for k in ks:
            r = run(cfgs, k, broker.port, per_device, 5.0)
            r["ratio"] = r["events_per_s"] / raw
            c.say(f"K={k}: {r['events_per_s']:.0f} ev/s ratio {r['ratio']:.3f}; sat p50/p99 {r['p50_ms']:.0f}/{r['p99_ms']:.0f} ms; paced {r['paced_events_per_s']:.0f}/s p50/p99 {r['paced_p50_ms']:.0f}/{r['paced_p99_ms']:.0f} ms; agents CPU {r['agents_cpu_us_per_event']:.0f} us/event")
            out[f"k{k}"] = r
        raw2 = c.raw_paho_qos1(broker.port, 20000)["msgs_per_s"]
        server.stop(); broker.stop()
    out["raw"] = [raw, raw2]
    for k in ks:
        out[f"k{k}"]["ratio_best_raw"] = out[f"k{k}"]["events_per_s"] / max(raw, raw2)
        c.say(f"K={k}: ratio to the better raw run {out[f'k{k}']['ratio_best_raw']:.3f}")
    c.emit(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
