"""/metrics can be closed to the public: a bearer token of its own, or off."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests._server import ServerProcess

METRICS_TOKEN = "metrics-token-for-the-test-suite"


def test_metrics_with_a_token_answer_only_that_token(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"TIDINGS_METRICS_TOKEN": METRICS_TOKEN}).start()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
            refused = httpx.get(f"{server.url}/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert "tidings_" not in refused.text and refused.headers["www-authenticate"].startswith("Bearer")
        allowed = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200 and "tidings_subscriptions " in allowed.text
    finally:
        server.stop()


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"TIDINGS_METRICS": "false"}).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # positive control: the server is up
    finally:
        server.stop()
