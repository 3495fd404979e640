"""tests/_node.py counts the Node tests that ran: a run that selects nothing, or skips, must not pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._node import NodeScript

SCRIPT = """
import { test } from "node:test";
test("first of two", () => {});
test("second of two", () => {});
"""


def run(tmp_path: Path, source: str, *, args: tuple[str, ...] = (), tests: int | None = None) -> None:
    script = tmp_path / "script.test.mjs"
    script.write_text(source)
    with NodeScript(str(script), {}, args=args) as node:
        node.finish(tests=tests)


def test_every_test_of_a_script_runs_and_passes(tmp_path: Path) -> None:
    run(tmp_path, SCRIPT, tests=2)


def test_a_name_pattern_runs_the_tests_it_selects(tmp_path: Path) -> None:
    run(tmp_path, SCRIPT, args=("--test-name-pattern=second",), tests=1)


def test_a_name_pattern_that_selects_nothing_fails(tmp_path: Path) -> None:
    """Node's runner exits 0 when the pattern matches no test."""
    with pytest.raises(AssertionError, match="ran no test"):
        run(tmp_path, SCRIPT, args=("--test-name-pattern=no such test",))


@pytest.mark.parametrize("skip", ['{ skip: "not today" }', "{ todo: true }"])
def test_a_skipped_or_todo_test_fails(tmp_path: Path, skip: str) -> None:
    with pytest.raises(AssertionError, match="skipped tests"):
        run(tmp_path, SCRIPT + f'test("third", {skip}, () => {{}});\n')


def test_fewer_tests_than_expected_fail(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="not 3 tests"):
        run(tmp_path, SCRIPT, tests=3)


def test_a_failed_test_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="failed"):
        run(tmp_path, SCRIPT + 'test("broken", () => { throw new Error("broken"); });\n')
