"""tidings.web: the dashboard at /, GraphiQL from the local build, and the dev-token endpoint's gates."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from tests._server import TEST_SECRET
from tidings.app import create_app
from tidings.auth import Role, TokenVerifier
from tidings.config import Settings
from tidings.web import dashboard_link, dev_tokens_enabled, strawberry_ide

GRAPHIQL_HTML = "<!doctype html><title>tidings · GraphiQL</title>"
DASHBOARD_HTML = "<!doctype html><title>tidings · inbox</title>"
CODE = "sign-in-code-for-the-test-suite-0123"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A stand-in for web/dist, so these tests do not depend on npm."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(DASHBOARD_HTML)
    (dist / "graphiql.html").write_text(GRAPHIQL_HTML)
    (dist / "assets" / "index-abc123.js").write_text("console.log('tidings')")
    return dist


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "jwt_secret": TEST_SECRET, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def client(config: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(config))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_dashboard_at_root_and_hashed_assets_cached_forever(tmp_path: Path, built: Path) -> None:
    async with client(settings(tmp_path, web_dir=built)) as http:
        page = await http.get("/")
        asset = await http.get("/assets/index-abc123.js")
    assert page.status_code == 200 and page.text == DASHBOARD_HTML
    assert page.headers["cache-control"] == "no-cache"
    assert asset.status_code == 200 and asset.text == "console.log('tidings')"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_root_says_how_to_build_the_dashboard_when_it_is_not_built(tmp_path: Path) -> None:
    async with client(settings(tmp_path, web_dir=tmp_path / "nothing")) as http:
        page = await http.get("/")
        api = await http.post("/graphql", json={"query": "{ __typename }"})
    assert page.status_code == 200
    assert "make serve" in page.text and "npm ci" in page.text
    assert api.json() == {"data": {"__typename": "Query"}}


async def test_browsers_get_local_graphiql_while_get_and_post_queries_still_run(tmp_path: Path, built: Path) -> None:
    async with client(settings(tmp_path, web_dir=built)) as http:
        page = await http.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
        get_query = await http.get(
            "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
        )
        post_query = await http.post("/graphql", json={"query": "{ __typename }"})
    assert page.status_code == 200 and page.text == GRAPHIQL_HTML
    assert get_query.json() == {"data": {"__typename": "Query"}}
    assert post_query.json() == {"data": {"__typename": "Query"}}


async def test_a_graphiql_link_opened_in_a_browser_gets_graphiql_and_fetch_gets_the_result(
    tmp_path: Path, built: Path
) -> None:
    """A browser navigating to /graphql?query=... (Sec-Fetch-Dest: document) gets the page, which reads the link."""
    link = {"query": "query Q { __typename }", "variables": "{}", "operationName": "Q"}
    navigation = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8", "sec-fetch-dest": "document"}
    from_a_page = {"accept": "*/*", "sec-fetch-dest": "empty", "sec-fetch-mode": "cors"}  # fetch() of a page
    async with client(settings(tmp_path, web_dir=built)) as http:
        opened = await http.get("/graphql", params=link, headers=navigation)
        fetched = await http.get("/graphql", params=link, headers=from_a_page)
    assert opened.status_code == 200 and opened.text == GRAPHIQL_HTML
    assert opened.headers["cache-control"] == "no-cache"
    assert fetched.json() == {"data": {"__typename": "Query"}}


async def test_no_graphiql_at_all_when_it_is_turned_off(tmp_path: Path, built: Path) -> None:
    async with client(settings(tmp_path, web_dir=built, graphiql=False)) as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
        link = await http.get("/graphql", params={"query": "{ __typename }"}, headers={"sec-fetch-dest": "document"})
    assert (page.status_code, page.text) == (404, "Not Found")  # Strawberry's answer with no IDE
    assert link.json() == {"data": {"__typename": "Query"}}
    assert strawberry_ide(settings(tmp_path, web_dir=built, graphiql=False)) is None


def test_strawberry_cdn_graphiql_only_where_ours_is_not_built(tmp_path: Path, built: Path) -> None:
    assert strawberry_ide(settings(tmp_path, web_dir=built)) is None
    assert strawberry_ide(settings(tmp_path, web_dir=tmp_path / "nothing")) == "graphiql"


@pytest.mark.parametrize(
    ("overrides", "enabled"),
    [
        ({}, True),  # the embedded default on 127.0.0.1
        ({"host": "localhost"}, True),
        ({"host": "::1"}, True),
        ({"host": "0.0.0.0"}, False),  # reachable from the network: never by default
        ({"broadcast_url": "redis://127.0.0.1:6379/0"}, False),  # not the embedded default
        ({"database_url": "postgresql://db/tidings"}, False),
        ({"host": "0.0.0.0", "dev_tokens": True}, True),  # explicit setting
        ({"dev_tokens": False}, False),
    ],
)
def test_dev_tokens_are_on_by_default_only_for_the_embedded_default_on_loopback(
    tmp_path: Path, overrides: dict[str, object], enabled: bool
) -> None:
    assert dev_tokens_enabled(settings(tmp_path, **overrides)) is enabled


async def test_dev_token_endpoint_mints_a_service_token_only_when_the_page_asks(tmp_path: Path) -> None:
    config = settings(tmp_path, dev_sign_in_code=CODE)
    async with client(config) as http:
        assert (await http.get("/dashboard/config")).json() == {"devTokens": True, "graphiql": True}
        user_only = await http.post("/dashboard/dev-token", json={"user": "  alice ", "code": CODE})
        with_service = await http.post("/dashboard/dev-token", json={"user": "alice", "code": CODE, "service": True})
    assert user_only.status_code == 200 and with_service.status_code == 200
    verifier = TokenVerifier(config, TEST_SECRET)
    body = user_only.json()
    assert body["user"] == "alice" and body["serviceToken"] is None
    assert verifier.verify(body["token"]).subject == "alice"
    assert verifier.verify(body["token"]).role is Role.USER
    assert verifier.verify(with_service.json()["serviceToken"]).role is Role.SERVICE


async def test_dev_token_endpoint_refuses_a_foreign_host_a_wrong_code_and_a_form(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not get tokens (tests/test_security.py)."""
    async with client(settings(tmp_path, dev_sign_in_code=CODE)) as http:
        ask = {"user": "alice", "code": CODE}
        foreign = await http.post("/dashboard/dev-token", json=ask, headers={"host": "evil.example"})
        wrong = await http.post("/dashboard/dev-token", json={**ask, "code": "x" * len(CODE)})
        form = await http.post("/dashboard/dev-token", data=ask)  # a cross-site form post
        blank = await http.post("/dashboard/dev-token", json={**ask, "user": "   "})
    assert foreign.status_code == 403 and wrong.status_code == 403
    assert "sign-in code" in wrong.json()["detail"]
    assert form.status_code == 422
    assert blank.status_code == 422


async def test_an_app_built_without_a_sign_in_code_makes_one_and_logs_the_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside `tidings serve` (uvicorn --factory, tests): the code is this process's own, and the log says it."""
    with caplog.at_level(logging.WARNING, logger="tidings"):
        app = create_app(settings(tmp_path))
    logged = re.search(r"sign in at http://127\.0\.0\.1:8000/#code=(\S+)", caplog.text)
    assert logged is not None, caplog.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        response = await http.post("/dashboard/dev-token", json={"user": "alice", "code": logged.group(1)})
    assert response.status_code == 200 and response.json()["user"] == "alice"


@pytest.mark.parametrize(
    ("host", "link"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/#code=c"),
        ("0.0.0.0", "http://127.0.0.1:8000/#code=c"),  # a browser here reaches a wildcard bind on loopback
        ("::1", "http://[::1]:8000/#code=c"),
        ("::", "http://[::1]:8000/#code=c"),
    ],
)
def test_the_dashboard_link_is_one_a_browser_on_this_machine_opens(tmp_path: Path, host: str, link: str) -> None:
    assert dashboard_link(settings(tmp_path, host=host), "c") == link


def test_a_pinned_sign_in_code_must_be_long(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        settings(tmp_path, dev_sign_in_code="1234")


async def test_dev_token_endpoint_does_not_exist_when_disabled(tmp_path: Path) -> None:
    async with client(settings(tmp_path, host="0.0.0.0")) as http:
        assert (await http.get("/dashboard/config")).json() == {"devTokens": False, "graphiql": True}
        response = await http.post("/dashboard/dev-token", json={"user": "alice"})
    assert response.status_code == 404
