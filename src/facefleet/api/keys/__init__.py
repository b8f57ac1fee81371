"""/v1/keys: the tenant's API keys, created, listed, rotated and revoked by its admins."""
