"""The worker side of facefleet: identity and the control-plane client."""
