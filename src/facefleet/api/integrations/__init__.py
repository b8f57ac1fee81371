"""Events out to the ecosystem: the outbox every integration reads (MQTT, webhooks)."""
