"""The worker's view of its leases: what it should be streaming, level-triggered.

Lease state reaches the worker in many responses (registration, heartbeats, camera requests,
releases), which can arrive out of order. Each carries the lease generation the control plane
had when it answered; the book applies them so that the newest state wins:

- a heartbeat's lease list is the control plane's whole truth at its generation: older lists
  are ignored, and a lease missing from a list is revoked only if the list is newer than the
  response that granted the lease (a heartbeat answered before a grant cannot show it);
- a grant (an assignment, or the held cameras of a camera request) adds a lease;
- a lease this worker gave up (its stream ended or failed, and it sent the release) is never
  taken up again at that epoch, whatever older lists still say, until the control plane no
  longer lists it;
- an explicit refusal of an epoch (409 StaleEpoch) revokes that lease at once.

``desired()`` is what the worker should stream; the agent reconciles its streams against it
on every heartbeat, so a wrong step heals on the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Held:
    epoch: int
    known_at: int  # the generation of the response that granted or confirmed it


@dataclass
class LeaseBook:
    applied: int = -1  # the newest generation of a whole lease list applied
    held: dict[int, Held] = field(default_factory=dict)
    # (camera, epoch) this worker released or refused: not to be taken up again.
    given_up: set[tuple[int, int]] = field(default_factory=set)

    def apply_list(self, generation: int | None, leases: Iterable[tuple[int, int]]) -> bool:
        """A heartbeat's (or registration's) valid leases; False if it was older than what
        was already applied and changed nothing."""
        if generation is None:
            # A server that predates generations: every list is the whole truth.
            generation = self.applied + 1
        if generation < self.applied:
            return False
        self.applied = generation
        listed = dict(leases)
        for camera_id, held in list(self.held.items()):
            if listed.get(camera_id) != held.epoch and held.known_at < generation:
                del self.held[camera_id]
        for camera_id, epoch in listed.items():
            self._take(camera_id, epoch, generation)
        # Given-up leases the control plane no longer lists are settled.
        self.given_up = {(c, e) for c, e in self.given_up if listed.get(c) == e}
        return True

    def grant(self, generation: int | None, camera_id: int, epoch: int) -> None:
        """A lease granted by a response served at ``generation``."""
        self._take(camera_id, epoch, max(generation or 0, self.applied))

    def _take(self, camera_id: int, epoch: int, known_at: int) -> None:
        if (camera_id, epoch) in self.given_up:
            return
        current = self.held.get(camera_id)
        newer = current is None or (epoch, known_at) > (current.epoch, current.known_at)
        if newer:
            self.held[camera_id] = Held(epoch, known_at)

    def give_up(self, camera_id: int, epoch: int) -> None:
        """This worker released the lease, or the control plane refused its epoch."""
        self.given_up.add((camera_id, epoch))
        current = self.held.get(camera_id)
        if current is not None and current.epoch <= epoch:
            del self.held[camera_id]

    def desired(self) -> dict[int, int]:
        """camera_id -> epoch: what the worker should be streaming."""
        return {camera_id: held.epoch for camera_id, held in self.held.items()}

    def reset(self, generation: int | None, leases: Iterable[tuple[int, int]]) -> None:
        """A registration: a new session whose leases are exactly these."""
        self.applied = generation if generation is not None else -1
        self.held = {c: Held(e, max(self.applied, 0)) for c, e in leases}
        self.given_up = set()
