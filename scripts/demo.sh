#!/usr/bin/env bash
# The demo: sets everything up, then runs a private Mosquitto, the server and simulated devices
# (body-worn recorders, QR terminals, phones), and prints the dashboard's address. Ctrl-C stops it all.
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

# The shipped broker config, with this demo's listener, storage folder and log.
{
  grep -vE '^(listener|persistence_location|log_dest|user) ' server/mosquitto.conf
  echo "listener $mqtt_port 127.0.0.1"
  echo "persistence_location $dir/mosquitto/"
  echo "log_dest file $dir/mosquitto/mosquitto.log"
  [ "$(id -u)" -eq 0 ] && echo "user root"
} > "$dir/mosquitto/mosquitto.conf"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "demo: stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$dir/mosquitto/mosquitto.conf" & pids+=($!)

if [ ! -d "$dir/devices" ]; then
  $py -m server.cli devices add --db "$dir/server.db" --model body_recorder --agency market-regulation --count 2 --out "$dir/devices" --mqtt-port "$mqtt_port" >/dev/null
  $py -m server.cli devices add --db "$dir/server.db" --model qr_terminal --agency market-regulation --count 2 --out "$dir/devices" --mqtt-port "$mqtt_port" >/dev/null
  $py -m server.cli devices add --db "$dir/server.db" --model qr_terminal --agency ecology --count 1 --out "$dir/devices" --mqtt-port "$mqtt_port" >/dev/null
  $py -m server.cli devices add --db "$dir/server.db" --model phone --agency emergency-management --count 2 --out "$dir/devices" --mqtt-port "$mqtt_port" >/dev/null
  $py -m server.cli demo-seed --db "$dir/server.db" --devices "$dir/devices" >/dev/null
fi

$py -m server.cli run --db "$dir/server.db" --mqtt-port "$mqtt_port" --http-port "$http_port" > "$dir/server.log" 2>&1 & pids+=($!)
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
  Sign in as:           supervisor / fe-demo-2026   (also admin-market-regulation, admin-ecology, ...;
                        officers OFF-QT-00001 ... on /officer; the enterprise page is /enterprise)
  API docs:             http://127.0.0.1:$http_port/schema
  Health / metrics:     http://127.0.0.1:$http_port/health   http://127.0.0.1:$http_port/metrics
  Broker:               mqtt://127.0.0.1:$mqtt_port
  Logs:                 $dir/server.log, $dir/devices.log
  simulated devices (QR terminals, phones, recorders) scan enterprises and inspect at $rate events/s each. Ctrl-C stops everything.

MSG
wait "$sim"
