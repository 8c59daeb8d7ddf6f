"""The event-loop runner the pipeline and the evaluation use."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

from selfinstruct.lm import eventloop


async def _loop_module_and_value() -> tuple[str, int]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__, 42


def test_runs_the_coroutine_on_uvloop_when_installed_and_unfreezes_the_collector() -> None:
    module, value = eventloop.run(_loop_module_and_value())
    assert value == 42
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert module.split(".")[0] == expected
    assert gc.get_freeze_count() == 0  # the startup heap is frozen only while the loop runs


def test_an_exception_propagates_and_still_unfreezes() -> None:
    async def boom() -> None:
        raise ValueError("from the coroutine")

    with pytest.raises(ValueError, match="from the coroutine"):
        eventloop.run(boom())
    assert gc.get_freeze_count() == 0
