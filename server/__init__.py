"""The central supervision server: MQTT ingest, registers, rules and the web console (Litestar)."""
