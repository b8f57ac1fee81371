"""The worker's client of the control plane: the seed's name for ``facefleet.sdk``."""

from facefleet.sdk import *  # noqa: F403
from facefleet.sdk import __all__ as __all__
