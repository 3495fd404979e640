"""Fuzz runs: a fixed set of examples, the same on every run, and a random set whose seed a failure prints."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, seed, settings

# TIDINGS_FUZZ_SEED=N replays the random run that printed N.
_SEED = int(os.environ.get("TIDINGS_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


@dataclass(frozen=True)
class FuzzRun:
    """`derandomize` examples (reproducible, never flaky) or examples of a seed drawn per test session."""

    random: bool
    examples: int

    def __call__(self, check: Callable[[], None]) -> None:
        """Run a `@given` function under this run's settings; a failure of the random run names its seed."""
        configured = settings(
            max_examples=self.examples,
            deadline=None,
            derandomize=not self.random,
            database=None,  # the random run replays by its seed, not by a directory left behind
            suppress_health_check=[HealthCheck.too_slow],
        )(check)
        if not self.random:
            configured()
            return
        try:
            seed(_SEED)(configured)()
        except BaseException as error:
            error.add_note(f"random fuzz run with seed {_SEED}: rerun with TIDINGS_FUZZ_SEED={_SEED}")
            raise


def fuzz_runs(examples: int) -> pytest.MarkDecorator:
    """Parametrize a test with a `run`: `examples` fixed examples, then as many random ones."""
    runs = [FuzzRun(random=False, examples=examples), FuzzRun(random=True, examples=examples)]
    return pytest.mark.parametrize("run", runs, ids=["fixed", "random"])
