"""The process's timer wheel: every member ticked once per interval, removed members never again."""

from __future__ import annotations

import asyncio

from tidings.wheel import TimerWheel


async def test_each_member_is_ticked_once_per_interval_until_it_leaves() -> None:
    wheel = TimerWheel(0.2, slots=4)
    ticks = {name: 0 for name in ("a", "b", "c")}

    def counter(name: str) -> object:
        def tick() -> None:
            ticks[name] += 1

        return tick

    handles = {name: wheel.add(counter(name)) for name in ticks}  # type: ignore[arg-type]
    await asyncio.sleep(0.5)  # two and a half intervals: two or three ticks each, by the phase of their bucket
    assert set(ticks.values()) <= {2, 3}
    wheel.remove(handles["b"])
    left_at = ticks["b"]
    await asyncio.sleep(0.4)
    assert ticks["b"] == left_at
    assert ticks["a"] > left_at and ticks["c"] > left_at
    assert len(wheel) == 2
    await wheel.close()


async def test_a_failing_tick_does_not_stop_the_others(caplog: object) -> None:
    wheel = TimerWheel(0.1, slots=2)
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    wheel.add(broken)
    wheel.add(lambda: seen.append("ok"))
    await asyncio.sleep(0.35)
    assert len(seen) >= 2
    await wheel.close()


async def test_members_that_join_at_once_are_spread_over_the_interval() -> None:
    """A burst of sockets is ticked a bucket at a time, not all at one step."""
    wheel = TimerWheel(60, slots=8)
    for _ in range(403):
        wheel.add(lambda: None)
    loads = wheel.loads()
    assert sum(loads) == 403 and max(loads) - min(loads) <= 1
    await wheel.close()
