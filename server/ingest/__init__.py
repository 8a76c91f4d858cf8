"""The MQTT ingest: subscription, validation, storing, projecting and logging a batch in one transaction."""
