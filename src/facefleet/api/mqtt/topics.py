"""Every topic facefleet publishes, in one place (docs/integrations.md describes them).

    <prefix>/availability                              online / offline (retained, last will)
    <prefix>/<tenant>/sightings                        one message per new or updated sighting
    <prefix>/<tenant>/cameras/<camera id>/person       the last person seen live (retained)
    <prefix>/<tenant>/people/<person id>/presence      ON when a known person is seen
    <prefix>/<tenant>/workers/<worker id>/status       online / draining / offline (retained)
    <discovery>/sensor/<node>/camera_<id>_last_person/config      Home Assistant discovery
    <discovery>/binary_sensor/<node>/person_<id>_presence/config

Tenant names, worker ids and camera ids contain no '/', '+' or '#' (their own rules);
discovery node ids use the tenant's id, as Home Assistant allows only [a-zA-Z0-9_-] there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Topics:
    prefix: str
    discovery_prefix: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def home_assistant_status(self) -> str:
        """Home Assistant's birth message: configs are sent again when it says online."""
        return f"{self.discovery_prefix}/status"

    def sightings(self, tenant: str) -> str:
        return f"{self.prefix}/{tenant}/sightings"

    def camera_person(self, tenant: str, camera_id: int) -> str:
        return f"{self.prefix}/{tenant}/cameras/{camera_id}/person"

    def presence(self, tenant: str, person_id: int) -> str:
        return f"{self.prefix}/{tenant}/people/{person_id}/presence"

    def worker_status(self, tenant: str, worker_id: str) -> str:
        return f"{self.prefix}/{tenant}/workers/{worker_id}/status"

    def node_id(self, tenant_id: str) -> str:
        return _NODE_UNSAFE.sub("_", f"{self.prefix}_{tenant_id}")

    def camera_config(self, tenant_id: str, camera_id: int) -> str:
        node = self.node_id(tenant_id)
        return f"{self.discovery_prefix}/sensor/{node}/camera_{camera_id}_last_person/config"

    def presence_config(self, tenant_id: str, person_id: int) -> str:
        node = self.node_id(tenant_id)
        return f"{self.discovery_prefix}/binary_sensor/{node}/person_{person_id}_presence/config"
