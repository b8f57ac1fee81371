"""Supervised loops: a failure restarts the loop; failing again and again ends the worker."""

from __future__ import annotations

import pytest

from facefleet.worker.supervisor import LoopFailed, supervise


async def test_a_failing_loop_is_restarted_until_it_succeeds() -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("transient")

    await supervise("flaky", flaky, backoff=0.01)
    assert runs == [0, 1, 2]


async def test_a_loop_that_keeps_failing_gives_up() -> None:
    async def broken() -> None:
        raise ValueError("device://front-door cannot be opened")

    with pytest.raises(LoopFailed, match="the broken loop failed 4 times") as raised:
        await supervise("broken", broken, max_failures=4, backoff=0.01)
    assert raised.value.name == "broken"
    assert isinstance(raised.value.__cause__, ValueError)
