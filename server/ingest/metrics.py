"""Prometheus metrics of the ingest, in a registry of the app's own (not the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class IngestMetrics:
    """Counters and gauges the ingest updates and /metrics serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter("fe_messages_received", "MQTT messages taken off the broker", registry=r)
        self.stored = Counter("fe_events_stored", "Events stored for the first time", registry=r)
        self.duplicates = Counter("fe_events_duplicate", "Resent events merged with the stored copy (and receipted again)", registry=r)
        self.rejected = Counter("fe_messages_rejected", "Messages kept aside in the rejected table", ["reason"], registry=r)
        self.receipts = Counter("fe_receipts_published", "Signed receipts published to devices", registry=r)
        self.batches = Histogram("fe_ingest_batch_size", "Messages per committed batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000), registry=r)
        self.lag = Histogram("fe_ingest_lag_seconds", "From taking a message off the broker to its commit", buckets=_LATENCY_BUCKETS, registry=r)
        self.delivery_delay = Histogram("fe_event_delivery_delay_seconds", "From the device's timestamp to the commit", buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("fe_ingest_queue_depth", "Messages received and waiting for the ingest writer", registry=r)
        self.connected = Gauge("fe_mqtt_connected", "1 while the server is connected to the broker", registry=r)
        self.storage_ok = Gauge("fe_ingest_storage_ok", "0 while the database cannot write and the ingest is paused", registry=r)
        self.storage_ok.set(1)
        self.storage_failures = Counter("fe_ingest_storage_failures", "Attempts to write that failed (disk full, I/O), each retried", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
