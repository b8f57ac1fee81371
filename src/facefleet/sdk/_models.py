"""What the client sends and receives: the protocol's models, under the SDK's names."""

from __future__ import annotations

from facefleet.protocol.commands import CommandDelivery
from facefleet.protocol.gallery import GalleryOut
from facefleet.protocol.sightings import SightingBatchResult, SightingIn
from facefleet.protocol.workers import (
    Assignment,
    CameraRequestResponse,
    CurrentAssignments,
    DeregisterResponse,
    HeartbeatResponse,
    LeaseInfo,
    RegisterResponse,
    ReleaseResponse,
    StreamReport,
)

Registration = RegisterResponse
HeartbeatResult = HeartbeatResponse
CameraRequestResult = CameraRequestResponse
ReleaseResult = ReleaseResponse
DeregisterResult = DeregisterResponse
GalleryData = GalleryOut
Sighting = SightingIn
SightingsAccepted = SightingBatchResult
Command = CommandDelivery

__all__ = [
    "Assignment",
    "CameraRequestResult",
    "Command",
    "CurrentAssignments",
    "DeregisterResult",
    "GalleryData",
    "HeartbeatResult",
    "LeaseInfo",
    "Registration",
    "ReleaseResult",
    "Sighting",
    "SightingsAccepted",
    "StreamReport",
]
