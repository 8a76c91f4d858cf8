#!/usr/bin/env bash
# The demo: sets everything up, then runs a private Mosquitto, the server and simulated devices
# (body-worn recorders, QR terminals, phones), and prints the dashboard's address. Ctrl-C stops it all.
# The broker runs in the secure configuration (server/broker/access.py): TLS with the demo's own CA, one account
# per device, each device limited to its own topics, no anonymous clients.
# Settings (environment): FE_DEMO_DIR (default ./demo-data), FE_DEMO_MQTT_PORT (18830),
# FE_DEMO_HTTP_PORT (8080), FE_DEMO_RATE (events per second per device, default 0.5),
# FE_DEMO_DURATION (seconds; default: until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

dir=${FE_DEMO_DIR:-demo-data}
mqtt_port=${FE_DEMO_MQTT_PORT:-18830}
http_port=${FE_DEMO_HTTP_PORT:-8080}
rate=${FE_DEMO_RATE:-0.5}
mkdir -p "$dir/mosquitto"
dir=$(cd "$dir" && pwd)
py=.venv/bin/python

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$mqtt_port" || { echo "demo: port $mqtt_port is taken; set FE_DEMO_MQTT_PORT" >&2; exit 1; }
port_free "$http_port" || { echo "demo: port $http_port is taken; set FE_DEMO_HTTP_PORT" >&2; exit 1; }

# The demo's CA and the broker's certificate for 127.0.0.1 (devices verify it; see protocol/README.md).
if [ ! -f "$dir/ca/ca.crt" ]; then
  $py -m server.cli ca init --dir "$dir/ca" >/dev/null
  $py -m server.cli ca server-cert --dir "$dir/ca" --host 127.0.0.1 --host localhost >/dev/null
fi

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "demo: stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -d "$dir/devices" ] && ! grep -q '^ca_file = "ca.crt"' "$dir"/devices/*/device.toml 2>/dev/null; then
  echo "demo: $dir/devices was made before the broker was secured (no broker accounts); remove $dir and start again" >&2
  exit 1
fi
if [ ! -d "$dir/devices" ]; then
  add=(devices add --db "$dir/server.db" --out "$dir/devices" --mqtt-port "$mqtt_port" --ca "$dir/ca/ca.crt")
  $py -m server.cli "${add[@]}" --model body_recorder --agency market-regulation --count 2 >/dev/null
  $py -m server.cli "${add[@]}" --model qr_terminal --agency market-regulation --count 2 >/dev/null
  $py -m server.cli "${add[@]}" --model qr_terminal --agency ecology --count 1 >/dev/null
  $py -m server.cli "${add[@]}" --model phone --agency emergency-management --count 2 >/dev/null
  $py -m server.cli demo-seed --db "$dir/server.db" --devices "$dir/devices" >/dev/null
fi
# A demo folder from before the officer account and door pictures: seed again (a second seed adds only what is missing).
[ -d "$dir/doors" ] || $py -m server.cli demo-seed --db "$dir/server.db" --devices "$dir/devices" >/dev/null

# The shipped broker config with access control for the registered devices (accounts and ACL in
# server.db.broker/), this demo's TLS listener, storage folder and log.
broker_args=(--db "$dir/server.db" --port "$mqtt_port" --bind 127.0.0.1 --tls "$dir/ca"
             --persistence-location "$dir/mosquitto" --log-file "$dir/mosquitto/mosquitto.log")
[ "$(id -u)" -eq 0 ] && broker_args+=(--run-as root)
$py -m server.cli broker-config "${broker_args[@]}" >/dev/null

mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$dir/server.db.broker/mosquitto.conf" & pids+=($!)

$py -m server.cli run --db "$dir/server.db" --mqtt-port "$mqtt_port" --mqtt-ca "$dir/ca/ca.crt" --http-port "$http_port" > "$dir/server.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$http_port/health" >/dev/null || { echo "demo: the server did not start; see $dir/server.log" >&2; exit 1; }

sim_args=("$dir/devices" --rate "$rate" --mqtt-port "$mqtt_port")
[ -n "${FE_DEMO_DURATION:-}" ] && sim_args+=(--duration "$FE_DEMO_DURATION")
$py -m edge_agent.cli simulate "${sim_args[@]}" > "$dir/devices.log" 2>&1 & sim=$!; pids+=($sim)

cat <<MSG

  Dashboard (监督大屏):  http://127.0.0.1:$http_port/        (English: ?lang=en)
  Sign in as:           supervisor / fe-demo-2026   (also admin-market-regulation, admin-ecology, ...)
  Officer's phone page: http://127.0.0.1:$http_port/officer   as officer-demo / fe-demo-2026 (no simulated device uses it)
                        door codes to photograph: $dir/doors/door-ordinary.png, door-no-disturb.png (exception: 上级交办)
                        after an inspection starts, 亮码 shows a code the enterprise scans to check you (/check/...)
  Enterprise page:      http://127.0.0.1:$http_port/enterprise   as enterprise-001 / fe-demo-2026
  Cases (案件):         http://127.0.0.1:$http_port/cases   as OFF-MR-1 (officer), OFF-MR-3 (legal reviewer), supervisor
  Public pages:         http://127.0.0.1:$http_port/public/disclosure (decisions disclosed)
                        http://127.0.0.1:$http_port/public/tree-head  (the evidence log's daily signed heads)
  API docs:             http://127.0.0.1:$http_port/schema
  Health / metrics:     http://127.0.0.1:$http_port/health   http://127.0.0.1:$http_port/metrics
  Broker:               mqtts://127.0.0.1:$mqtt_port  (TLS, CA $dir/ca/ca.crt; one account per device, no anonymous clients)
  Logs:                 $dir/server.log, $dir/devices.log
  simulated devices (QR terminals, phones, recorders) scan enterprises and inspect at $rate events/s each, recorded
  from start to end (phones, and body recorders worn by the market-regulation terminals' officers; the ecology
  terminal's officer has none), now and then at a no-disturb enterprise or again at the same one (alerts).
  Ctrl-C stops everything.

MSG
wait "$sim"
