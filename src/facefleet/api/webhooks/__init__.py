"""Webhooks: per-tenant endpoints, signed JSON deliveries, retries and dead letters."""
