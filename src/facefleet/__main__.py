"""python -m facefleet: the same as the facefleet command."""

from facefleet.cli import main

main()
