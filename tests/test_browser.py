"""The dashboard and GraphiQL in headless Chromium against a real server (tests/node/browser.test.mjs).

Screenshots land in test-artifacts/ (not committed): look at them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._node import NodeScript, create_while_away, node_env, require_node
from tests._server import ServerProcess, free_port
from tests._services import in_ci

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("TIDINGS_TEST_CHROMIUM", "/usr/bin/chromium"))
WEB = ROOT / "web"
DASHBOARD = WEB / "dist" / "index.html"


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


def fresh_artifacts(*names: str) -> list[Path]:
    """The screenshots a test must take, removed first: a file left by an earlier run proves nothing."""
    paths = [ARTIFACTS / name for name in names]
    for path in paths:
        path.unlink(missing_ok=True)
    return paths


def assert_screenshots(paths: list[Path]) -> None:
    for path in paths:
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot {path}"


def test_two_devices_see_the_notification_and_the_read_and_graphiql_streams_events(
    browser_server: ServerProcess, user: str
) -> None:
    screenshots = fresh_artifacts("dashboard.png", "dashboard-phone.png", "graphiql.png")
    args = ("--test-name-pattern=two devices",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.finish(tests=1)
    assert_screenshots(screenshots)


def test_two_devices_see_tabs_the_bell_cleared_by_opening_archive_and_unread(
    browser_server: ServerProcess, user: str
) -> None:
    """Categories as tabs with live badges, seen vs read, archive, unarchive and unread again, on two devices."""
    screenshots = fresh_artifacts("dashboard-tabs.png", "dashboard-tabs-phone.png")
    args = ("--test-name-pattern=tabs by category",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.finish(tests=1)
    assert_screenshots(screenshots)


def test_two_devices_see_a_snooze_and_its_return_a_collapse_in_place_mute_and_delete_all_read(
    browser_server: ServerProcess, user: str
) -> None:
    """Snooze from the menu and unsnooze from the Snoozed tab, the server's timer bringing one back, a collapse key's
    updates as one row with its count, a muted tab, and "delete all read", on two devices."""
    screenshots = fresh_artifacts("dashboard-collapse-phone.png", "dashboard-snoozed-phone.png", "dashboard-snooze.png")
    args = ("--test-name-pattern=snooze and its return",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.finish(tests=1)
    assert_screenshots(screenshots)


def test_graphiql_link_opens_its_operation_and_follows_the_editors(browser_server: ServerProcess, user: str) -> None:
    """?query=, ?variables= and ?operationName= in and out; the loading state paints before any script runs."""
    screenshots = fresh_artifacts("graphiql-loading.png", "graphiql-link.png")
    args = ("--test-name-pattern=GraphiQL link",)
    with NodeScript("browser.test.mjs", browser_env(browser_server, user), args=args) as script:
        script.finish(tests=1)
    assert_screenshots(screenshots)


def test_page_shows_every_notification_of_a_server_restart_gap_once(browser_server: ServerProcess, user: str) -> None:
    screenshots = fresh_artifacts("dashboard-reconnecting.png")
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
        script.finish(tests=1)
    assert_screenshots(screenshots)


@pytest.fixture
def vite_dev(browser_server: ServerProcess, tmp_path: Path) -> Iterator[str]:
    """`cd web && npm run dev`, as the README says, proxying the API to the browser tests' server; its address."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed (node is)"
    port = free_port()
    log_path = tmp_path / "vite.log"
    env = {**os.environ, "TIDINGS_API_URL": browser_server.url, "NO_COLOR": "1"}
    with log_path.open("wb") as log:
        # A session of its own: npm starts vite as a child, and both must end with the test.
        vite = subprocess.Popen(
            [npm, "run", "dev", "--", "--port", str(port), "--strictPort", "--host", "127.0.0.1"],
            cwd=WEB,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert vite.poll() is None, f"npm run dev exited with {vite.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"npm run dev did not answer in 60 s:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/graphiql.html", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
        assert vite.poll() is None, f"npm run dev exited with {vite.returncode}:\n{log_path.read_text()}"
    finally:
        if vite.poll() is None:
            os.killpg(vite.pid, signal.SIGTERM)
            try:
                vite.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(vite.pid, signal.SIGKILL)
                vite.wait()


def test_npm_run_dev_serves_graphiql_and_the_dashboard_from_source(
    browser_server: ServerProcess, vite_dev: str, user: str
) -> None:
    """The README's command for work on the pages: Vite serves them from web/src and proxies the API."""
    env = {**browser_env(browser_server, user), "TIDINGS_DEV_URL": vite_dev}
    with NodeScript("browser.test.mjs", env, args=("--test-name-pattern=npm run dev",), timeout=180) as script:
        script.finish(tests=1)
