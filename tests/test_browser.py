"""The dashboard and GraphiQL in headless Chromium against a real server (tests/node/browser.test.mjs).

Screenshots land in test-artifacts/ (not committed): look at them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._node import NodeScript, create_while_away, node_env, require_node
from tests._server import ServerProcess
from tests._services import in_ci

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("TIDINGS_TEST_CHROMIUM", "/usr/bin/chromium"))
DASHBOARD = ROOT / "web" / "dist" / "index.html"


def require_browser() -> None:
    """Node, Debian's Chromium and the built dashboard; skip with the reason (fail under CI=true) otherwise."""
    require_node()
    reason = None
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    elif not DASHBOARD.is_file():
        reason = "the dashboard is not built: `make test` builds web/ with npm"
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests are required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded default on loopback, as `make serve` runs it: the dashboard signs in with dev tokens."""
    require_browser()
    server = ServerProcess(tmp_path_factory.mktemp("browser"), {"TIDINGS_WEB_DIR": str(DASHBOARD.parent)}).start()
    try:
        yield server
    finally:
        server.stop()


def browser_env(server: ServerProcess, user: str) -> dict[str, str]:
    return {
        **node_env(server, user),
        "TIDINGS_DASHBOARD_LINK": server.printed_dashboard_link(),  # as a user opens it from the terminal
        "TIDINGS_CHROMIUM": str(CHROMIUM),
        "TIDINGS_ARTIFACTS": str(ARTIFACTS),
    }


def test_two_devices_see_the_notification_and_the_read_and_graphiql_streams_events(
    browser_server: ServerProcess, user: str
) -> None:
    args = ("--test-name-pattern=two devices",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.finish()
    assert (ARTIFACTS / "dashboard.png").is_file() and (ARTIFACTS / "graphiql.png").is_file()


def test_page_shows_every_notification_of_a_server_restart_gap_once(browser_server: ServerProcess, user: str) -> None:
    args = ("--test-name-pattern=server restart",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.paused("stop")
        browser_server.stop()
        script.resume("stop")
        away = script.paused("start")
        created = ["while away 1", "while away 2", "while away 3"]
        create_while_away(browser_server, away["user"], created)
        browser_server.start()
        script.resume("start", created=created)
        script.finish()
