"""Identifiers and integers both sides agree on."""

from __future__ import annotations

import re
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import StringConstraints

WORKER_ID_MAX = 128
WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_WORKER_ID = re.compile(WORKER_ID_PATTERN)

WorkerId = Annotated[str, StringConstraints(pattern=WORKER_ID_PATTERN)]

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
# Worker labels and the labels a camera requires.
Label = Annotated[str, StringConstraints(pattern=LABEL_PATTERN, strip_whitespace=True)]


class InvalidWorkerId(ValueError):
    pass


def validate_worker_id(value: str | None, source: str) -> str:
    """``value`` if it is a valid worker id, else InvalidWorkerId naming ``source``."""
    if not value:
        raise InvalidWorkerId(f"WORKER_ID from {source} is empty")
    if len(value) > WORKER_ID_MAX:
        raise InvalidWorkerId(
            f"WORKER_ID from {source} is {len(value)} characters long; "
            f"the maximum is {WORKER_ID_MAX}"
        )
    # "$" also matches before a trailing newline, which the pattern must not accept.
    if _WORKER_ID.match(value) is None or value.endswith("\n"):
        raise InvalidWorkerId(
            f"WORKER_ID from {source} is {value!r}: it must start with a letter or digit and "
            "contain only letters, digits, '.', '_' or '-'"
        )
    return value


# Every integer the API takes fits the column it is compared with or stored in: INTEGER
# (32 bits on PostgreSQL) for most ids, epochs and counts, BIGINT for the tables that grow
# fastest (sightings, webhook deliveries). A larger one is a 422 with a message, never an
# overflow in the driver.
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# A row id of an INTEGER key (database ids start at 1).
Id = Annotated[int, Ge(1), Le(INT32_MAX)]
# A row id of a BIGINT key (sightings, webhook deliveries).
BigId = Annotated[int, Ge(1), Le(INT64_MAX)]
# A lease's fencing epoch (0 before a camera was ever assigned).
Epoch = Annotated[int, Ge(0), Le(INT32_MAX)]
# A count stored in an INTEGER column (a sighting's frames).
Count = Annotated[int, Ge(0), Le(INT32_MAX)]
# A count that is only reported, never stored in a column (a stream's frame counters).
BigCount = Annotated[int, Ge(0), Le(INT64_MAX)]
# A page offset, or a position in an event sequence.
Offset = Annotated[int, Ge(0), Le(INT64_MAX)]
# Any other integer a client sends (a worker's metric values): signed 64 bits.
BigInt = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]
