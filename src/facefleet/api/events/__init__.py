"""Events: the per-tenant broker (in-process or Redis), its payloads and the stats digest."""
