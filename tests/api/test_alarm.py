"""The background loops' alarm: a request is served by the first pass at or after its time,
whether the loop's period ends before it or not."""

from __future__ import annotations

import asyncio

from facefleet.api.background.alarm import Alarm

LONG = 30.0  # far longer than the test: a wait that ends sooner was ended by the alarm


async def test_a_request_due_after_the_period_survives_the_period() -> None:
    loop = asyncio.get_running_loop()
    alarm = Alarm()
    started = loop.time()
    alarm.after(0.3)
    await alarm.wait(0.05)  # the period ends first
    assert loop.time() - started < 0.3
    await alarm.wait(LONG)  # the request is still there
    waited = loop.time() - started
    assert 0.3 <= waited < LONG / 2


async def test_a_served_request_is_gone() -> None:
    loop = asyncio.get_running_loop()
    alarm = Alarm()
    alarm.set()
    await alarm.wait(LONG)
    started = loop.time()
    await alarm.wait(0.2)
    assert loop.time() - started >= 0.2


async def test_an_earlier_request_does_not_hide_a_later_one() -> None:
    # Two workers' presence graces ending 0.2 s apart: a pass at each end.
    loop = asyncio.get_running_loop()
    alarm = Alarm()
    started = loop.time()
    alarm.after(0.25)
    alarm.after(0.05)
    await alarm.wait(LONG)
    first = loop.time() - started
    await alarm.wait(LONG)
    second = loop.time() - started
    assert 0.05 <= first < 0.25 <= second < LONG / 2
