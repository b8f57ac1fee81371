"""facefleet: face recognition for camera fleets."""

__version__ = "0.1.0"
