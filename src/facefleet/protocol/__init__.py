"""The contract between the control plane and its workers, imported by both sides.

Wire models, identifiers, the source-URL rule and its masking, command types and error
names are defined here once. The package depends on pydantic only, so a worker installs
it without the control plane's code.
"""
