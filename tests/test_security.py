"""Security controls: an attacker's view of authorization, query cost, sizes, rate limits, tokens, introspection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.exceptions import ConnectionClosed

from tests._client import (
    EVENTS,
    WAIT,
    WSClient,
    create,
    error_codes,
    gql,
    introspection,
    small_window_socket,
    socket_send_buffer_max,
    token,
)
from tests._server import TEST_SECRET, ServerProcess
from tidings.auth import Identity, InvalidToken, Role, TokenVerifier
from tidings.config import Settings
from tidings.errors import UserError
from tidings.limits import RateLimiter

# -- authorization, as an attacker would try it ------------------------------------------------------------------


async def test_user_a_never_sees_or_changes_user_b(server: ServerProcess, user: str) -> None:
    attacker, victim = user + "-a", user + "-b"
    secrets = [await create(server.graphql_url, victim, f"secret {i}", data={"pin": 1234}) for i in range(3)]
    # The attacker's feed stands where the victim's does: an event of the victim's that reached the attacker's
    # follower would fit its next position, and be shown rather than skipped.
    own = [await create(server.graphql_url, attacker, f"own {i}") for i in range(3)]
    victim_ids = {n["id"] for n in secrets}
    before = (await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(victim)))["data"]
    seen: list[str] = []

    def collect(body: Any) -> None:
        text = json.dumps(body)
        seen.extend(i for i in victim_ids if i in text)
        if "secret" in text or "1234" in text:
            seen.append(text)

    a = token(attacker)
    by_id = [
        "query($id: ID!) { notification(id: $id) { id title data } }",
        "mutation($id: ID!) { markNotificationRead(id: $id) { id title } }",
        "mutation($id: ID!) { deleteNotification(id: $id) }",
    ]
    by_user = [
        "query($u: ID) { notifications(userId: $u) { edges { node { id title } } unreadCount feedCursor } }",
        "query($u: ID) { unreadNotifications(userId: $u) { id title } }",
        "query($u: ID) { unreadCount(userId: $u) }",
        "mutation($u: ID) { markAllNotificationsRead(userId: $u) { count unreadCount cursor } }",
    ]
    for query in by_id:
        for notification_id in victim_ids:
            collect(await gql(server.graphql_url, query, {"id": notification_id}, bearer=a))
    for query in by_user:
        collect(await gql(server.graphql_url, query, {"u": victim}, bearer=a))
    forged = {"input": {"userId": victim, "title": "phish", "message": "m"}}
    collect(
        await gql(
            server.graphql_url,
            "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }",
            forged,
            bearer=a,
        )
    )
    async with (
        await WSClient.connected(server.ws_url, a) as socket,
        await WSClient.connected(server.ws_url, token(victim)) as victims,
    ):
        for variables in ({"userId": victim}, {"userId": victim, "after": before["notifications"]["feedCursor"]}):
            refused = await socket.subscribe(EVENTS, variables)
            message = await socket.receive()
            collect(message)
            assert (message["type"], message["id"]) == ("error", refused), message
            assert [error["extensions"]["code"] for error in message["payload"]] == ["FORBIDDEN"]
        # The attacker's own subscription, with the victim's cursor, open while the victim's events are created:
        # it is watched from before the first until after the victim's own socket has had them all, and the window
        # is closed by an event of the attacker's own, which comes after whatever else this socket was sent.
        watching = await socket.subscribe(EVENTS, {"after": before["notifications"]["feedCursor"]})
        followed = await victims.subscribe(EVENTS, {"after": before["notifications"]["feedCursor"]})
        live = [await create(server.graphql_url, victim, f"after the attack started {i}") for i in range(3)]
        victim_ids |= {n["id"] for n in live}
        shown_to_victim = await victims.events(followed, len(live))
        assert [event["notification"]["id"] for event in shown_to_victim] == [n["id"] for n in live]
        marker = await create(server.graphql_url, attacker, "the attacker's own, after the victim's")
        window: list[dict[str, Any]] = []
        marker_came = False
        try:
            while not marker_came:
                window.append(await socket.receive())
                marker_came = _notification_id(window[-1]) == marker["id"]
        except TimeoutError:
            pass  # the marker never came: what came instead is checked below, and then its absence
        await socket.complete(watching)

    for message in window:
        collect(message)
    attacker_ids = {n["id"] for n in [*own, marker]}
    for message in window:
        assert (message["type"], message["id"]) == ("next", watching), message
        event = message["payload"]["data"]["notificationEvents"]
        own_event = event["kind"] == "RESYNC" or _notification_id(message) in attacker_ids
        assert own_event, f"the attacker's socket was sent an event not its own: {event}"
    assert marker_came, f"the attacker's own event never came; its socket was sent: {window}"
    assert seen == [], f"user A saw {len(seen)} of B's notifications or events"
    after = await gql(
        server.graphql_url,
        "{ notifications(first: 100) { edges { node { id read } } unreadCount } }",
        bearer=token(victim),
    )
    nodes = after["data"]["notifications"]["edges"]
    assert {n["node"]["id"] for n in nodes} >= victim_ids, "B's rows A deleted: must be 0"
    assert all(not n["node"]["read"] for n in nodes), "B's rows A marked read: must be 0"
    assert after["data"]["notifications"]["unreadCount"] == len(victim_ids)
    assert "phish" not in json.dumps(after)


def _notification_id(message: dict[str, Any]) -> str | None:
    """The id of the notification a `next` message of notificationEvents carries, if any."""
    data = message.get("payload", {}).get("data") or {}
    notification = (data.get("notificationEvents") or {}).get("notification") or {}
    return notification.get("id")


# -- query cost ----------------------------------------------------------------------------------------------------


async def test_alias_amplification_through_fragments_is_refused(server: ServerProcess, user: str) -> None:
    aliases = " ".join(f"c{i}: unreadCount" for i in range(10))
    spread = " ".join(f"s{i}: notifications {{ ...F }}" for i in range(5))
    # 10 aliases in a fragment, spread 5 times: 55 aliases in all, over the limit of 30.
    document = f"query {{ {spread} }} fragment F on NotificationConnection {{ {aliases} }}"
    body = await gql(server.graphql_url, document, bearer=token(user))
    assert body.get("data") is None and "aliases" in body["errors"][0]["message"].lower(), body


async def test_circular_fragments_are_refused_without_hanging(server: ServerProcess, user: str) -> None:
    document = (
        "query { notifications { ...A } } "
        "fragment A on NotificationConnection { edges { node { id } } ...B } "
        "fragment B on NotificationConnection { unreadCount ...A }"
    )
    async with asyncio.timeout(10):
        body = await gql(server.graphql_url, document, bearer=token(user))
    assert body.get("data") is None and body["errors"], body


async def test_too_many_tokens_are_refused(server: ServerProcess, user: str) -> None:
    document = "{ " + " ".join("__typename" for _ in range(2100)) + " }"
    body = await gql(server.graphql_url, document, bearer=token(user))
    assert body.get("data") is None and "token" in body["errors"][0]["message"].lower(), body


async def test_query_batching_is_off(server: ServerProcess, user: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.graphql_url,
            json=[{"query": "{ unreadCount }"}, {"query": "{ unreadCount }"}],
            headers={"Authorization": f"Bearer {token(user)}"},
        )
    assert response.status_code == 400, response.text


# -- sizes and rates: a server with small limits --------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "TIDINGS_USER_MUTATIONS_PER_SECOND": "0.5",
        "TIDINGS_SERVICE_MUTATIONS_PER_SECOND": "0",
        "TIDINGS_MAX_QUERY_DEPTH": "2",
        "TIDINGS_INTROSPECTION": "false",
        "TIDINGS_GRAPHIQL": "false",
    }
    server = ServerProcess(tmp_path_factory.mktemp("strict"), env).start()
    yield server
    server.stop()


async def test_user_mutations_are_rate_limited_with_retry_after(strict_server: ServerProcess, user: str) -> None:
    for _ in range(5):
        await create(strict_server.graphql_url, user)  # 0 = unlimited for services
    mark_all = "mutation { markAllNotificationsRead { count } }"
    first = await gql(strict_server.graphql_url, mark_all, bearer=token(user))
    assert first["data"]["markAllNotificationsRead"]["count"] == 5
    second = await gql(strict_server.graphql_url, mark_all, bearer=token(user))
    assert error_codes(second) == ["RATE_LIMITED"], second
    assert second["errors"][0]["extensions"]["retryAfter"] > 0
    other = await gql(strict_server.graphql_url, mark_all, bearer=token(user + "-other"))
    assert "errors" not in other, "buckets are per caller"


async def test_depth_limit_names_the_limit_also_through_fragments(strict_server: ServerProcess, user: str) -> None:
    shallow = await gql(strict_server.graphql_url, "{ notifications { unreadCount } }", bearer=token(user))
    assert "errors" not in shallow, shallow
    direct = "{ notifications { edges { node { id } } } }"
    via_fragments = (
        "{ notifications { ...E } } fragment E on NotificationConnection { edges { ...N } } "
        "fragment N on NotificationEdge { node { id } }"
    )
    for document in (direct, via_fragments):
        body = await gql(strict_server.graphql_url, document, bearer=token(user))
        assert body.get("data") is None and "exceeds maximum operation depth of 2" in body["errors"][0]["message"], body


async def test_introspection_and_graphiql_can_be_switched_off(strict_server: ServerProcess, user: str) -> None:
    body = await gql(strict_server.graphql_url, "{ __schema { queryType { name } } }", bearer=token(user))
    assert body.get("data") is None and "introspection" in body["errors"][0]["message"].lower(), body
    async with httpx.AsyncClient() as client:
        page = await client.get(strict_server.graphql_url, headers={"Accept": "text/html"})
    assert page.status_code == 404


async def test_oversized_http_bodies_get_413_before_parsing(server: ServerProcess, user: str) -> None:
    huge = {"query": "{ unreadCount }", "variables": {"pad": "x" * 70_000}}
    async with httpx.AsyncClient() as client:
        declared = await client.post(server.graphql_url, json=huge, headers={"Authorization": f"Bearer {token(user)}"})

        async def chunks():  # type: ignore[no-untyped-def]
            payload = json.dumps(huge).encode()
            for start in range(0, len(payload), 8192):
                yield payload[start : start + 8192]

        streamed = await client.post(
            server.graphql_url,
            content=chunks(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token(user)}"},
        )
    assert declared.status_code == 413 and declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert streamed.status_code == 413


def test_token_bucket_refills_at_the_rate_with_bursts_of_twice_it() -> None:
    now = [0.0]
    limiter = RateLimiter(user_rate=2, service_rate=0, clock=lambda: now[0])
    alice = Identity("alice", Role.USER)
    for _ in range(4):
        limiter.check(alice)  # burst: twice the rate
    with pytest.raises(UserError) as refused:
        limiter.check(alice)
    assert refused.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 0.5}
    now[0] += 0.5
    limiter.check(alice)
    with pytest.raises(UserError):
        limiter.check(alice)
    backend = Identity("backend", Role.SERVICE)
    for _ in range(1000):
        limiter.check(backend)  # 0 = unlimited


# -- tokens --------------------------------------------------------------------------------------------------------


ISSUER, AUDIENCE = "https://id.example", "tidings"
PROVIDER = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": datetime.now(UTC) + timedelta(minutes=5), "iss": ISSUER, "aud": AUDIENCE, **extra}


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_tokens_verify_with_a_public_key_or_jwks(tmp_path: Path, algorithm: str) -> None:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "public.pem").write_bytes(pem)
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "key-1", "alg": algorithm}]}))
    good = jwt.encode(_claims(role="service"), private, algorithm=algorithm, headers={"kid": "key-1"})
    for source in ({"jwt_public_key_file": tmp_path / "public.pem"}, {"jwt_jwks_file": tmp_path / "jwks.json"}):
        verifier = TokenVerifier.from_settings(Settings(jwt_algorithm=algorithm, **source, **PROVIDER))  # type: ignore[arg-type]
        identity = verifier.verify(good)
        assert identity.subject == "alice" and identity.is_service
        # HS/RS confusion: a token "signed" with the public key as an HMAC secret is refused.
        with pytest.raises(InvalidToken):
            verifier.verify(jwt.encode(_claims(), "x" * 64, algorithm="HS256"))
        with pytest.raises(InvalidToken):
            verifier.verify(jwt.encode(_claims(), None, algorithm="none"))
    other = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(InvalidToken):
        TokenVerifier.from_settings(
            Settings(jwt_algorithm=algorithm, jwt_jwks_file=tmp_path / "jwks.json", **PROVIDER)  # type: ignore[arg-type]
        ).verify(jwt.encode(_claims(), other, algorithm=algorithm, headers={"kid": "key-2"}))


def _provider(tmp_path: Path, **settings: Any) -> tuple[rsa.RSAPrivateKey, TokenVerifier]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "public.pem").write_bytes(pem)
    config = Settings(jwt_algorithm="RS256", jwt_public_key_file=tmp_path / "public.pem", **{**PROVIDER, **settings})
    return private, TokenVerifier.from_settings(config)


def test_an_identity_providers_keys_need_issuer_and_audience(tmp_path: Path) -> None:
    (tmp_path / "public.pem").write_text("")
    for missing in ({"jwt_issuer": ISSUER}, {"jwt_audience": AUDIENCE}, {}):
        with pytest.raises(ValueError, match="needs TIDINGS_JWT_ISSUER and TIDINGS_JWT_AUDIENCE"):
            Settings(jwt_algorithm="RS256", jwt_public_key_file=tmp_path / "public.pem", **missing)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-app"}, "wrong audience"),
        ({"iss": "https://elsewhere.example"}, "wrong issuer"),
        ({"aud": None}, "the aud claim is missing"),
        ({"iss": None}, "the iss claim is missing"),
    ],
    ids=["for another application", "from another issuer", "without aud", "without iss"],
)
def test_a_providers_token_for_another_application_is_refused(
    tmp_path: Path, claims: dict[str, Any], reason: str
) -> None:
    private, verifier = _provider(tmp_path)
    token = jwt.encode({k: v for k, v in _claims(**claims).items() if v is not None}, private, algorithm="RS256")
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify(token)
    assert verifier.verify(jwt.encode(_claims(), private, algorithm="RS256")).subject == "alice"  # positive control


def test_the_service_claim_and_value_are_settings(tmp_path: Path) -> None:
    private, verifier = _provider(tmp_path, jwt_service_claim="scope", jwt_service_value="tidings:service")

    def role_of(**claims: Any) -> bool:
        return verifier.verify(jwt.encode(_claims(**claims), private, algorithm="RS256")).is_service

    assert role_of(scope="openid tidings:service profile")
    assert role_of(scope=["tidings:service"])
    assert not role_of(role="service")  # the generic claim another application's tokens may carry
    assert not role_of(scope="openid tidings:services")
    assert not role_of(scope={"tidings:service": True})


def test_leeway_allows_configured_clock_skew() -> None:
    secret = "s" * 40
    expired = jwt.encode({"sub": "alice", "exp": datetime.now(UTC) - timedelta(seconds=5)}, secret, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenVerifier(Settings(jwt_secret=secret), secret).verify(expired)
    assert TokenVerifier(Settings(jwt_secret=secret, jwt_leeway=30), secret).verify(expired).subject == "alice"


def test_settings_refuse_weak_or_mismatched_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(jwt_secret="short")
    with pytest.raises(ValueError, match="needs TIDINGS_JWT_PUBLIC_KEY_FILE"):
        Settings(jwt_algorithm="RS256")
    (tmp_path / "k.pem").write_text("")  # key files must exist (FilePath)
    with pytest.raises(ValueError, match="needs an RS or ES"):
        Settings(jwt_public_key_file=tmp_path / "k.pem")


def test_settings_refuse_a_result_bound_the_send_queue_could_not_hold() -> None:
    with pytest.raises(ValueError, match="TIDINGS_MAX_RESULT_BYTES must not exceed TIDINGS_SEND_QUEUE_BYTES"):
        Settings(send_queue_bytes=64 * 1024, max_result_bytes=128 * 1024)


def test_a_signed_token_with_an_absurd_expiry_is_invalid_not_a_crash() -> None:
    secret = "s" * 40
    absurd = jwt.encode({"sub": "alice", "exp": 10**20}, secret, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenVerifier(Settings(jwt_secret=secret), secret).verify(absurd)


async def test_operations_per_connection_are_bounded_with_the_limit_named(server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as socket:
        for _ in range(20):
            await socket.subscribe(EVENTS, {})
        refused = await socket.subscribe(EVENTS, {})
        message = await socket.receive()
        assert message["type"] == "error" and message["id"] == refused, message
        assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "TIDINGS_MAX_OPERATIONS_PER_CONNECTION" in message["payload"][0]["message"]


# -- dev tokens: the dashboard's sign-in, asked for as an attacker would ------------------------------------------

DEV_CODE = "sign-in-code-for-the-test-suite-0123"
DEV_TOKEN_PATH = "/dashboard/dev-token"


@pytest.fixture(scope="module", params=["loopback default", "TIDINGS_DEV_TOKENS=true"])
def dev_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that mints dev tokens: by default (embedded, loopback) and with the setting explicit."""
    env = {"TIDINGS_DEV_SIGN_IN_CODE": DEV_CODE}
    if request.param == "TIDINGS_DEV_TOKENS=true":
        env["TIDINGS_DEV_TOKENS"] = "true"
    server = ServerProcess(tmp_path_factory.mktemp("dev-tokens"), env).start()
    yield server
    server.stop()


def raw_post(port: int, version: str, headers: list[str], body: dict[str, Any]) -> tuple[int, bytes]:
    """POST /dashboard/dev-token exactly as written (no Host at all, broken Hosts), over a plain socket."""
    payload = json.dumps(body).encode()
    head = [f"POST {DEV_TOKEN_PATH} {version}", *headers, "Content-Type: application/json"]
    head += [f"Content-Length: {len(payload)}", "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


ASK = {"user": "victim", "code": DEV_CODE, "service": True}
LOCAL = "Host: localhost:{port}"
JWT = b"eyJ"  # how every token's header begins


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        pytest.param("HTTP/1.0", [], id="HTTP/1.0 without Host"),
        pytest.param("HTTP/1.1", ["Host: evil.example"], id="foreign Host"),
        pytest.param("HTTP/1.1", ["Host: evil.example:{port}"], id="foreign Host on our port (DNS rebinding)"),
        pytest.param("HTTP/1.1", ["Host: evil.example:99999"], id="foreign Host with an invalid port"),
        pytest.param("HTTP/1.1", ["Host: evil.example/x"], id="Host with a path"),
        pytest.param("HTTP/1.1", ["Host: localhost:99999"], id="loopback Host with an invalid port"),
        pytest.param("HTTP/1.1", [LOCAL, "Host: evil.example"], id="two Hosts"),
        pytest.param("HTTP/1.1", ["Host: localhost.evil.example"], id="loopback prefix"),
        pytest.param("HTTP/1.1", ["Host: 127.0.0.1.nip.io:{port}"], id="loopback address in a foreign name"),
        pytest.param("HTTP/1.1", [LOCAL, "X-Forwarded-For: 203.0.113.7"], id="X-Forwarded-For"),
        pytest.param("HTTP/1.1", [LOCAL, "X-Forwarded-Host: evil.example"], id="X-Forwarded-Host"),
        pytest.param("HTTP/1.1", [LOCAL, "Forwarded: for=203.0.113.7;host=evil.example"], id="Forwarded"),
        pytest.param("HTTP/1.1", [LOCAL, "Via: 1.1 proxy.example"], id="Via"),
        pytest.param("HTTP/1.1", [LOCAL, "Origin: http://evil.example"], id="cross-site Origin"),
        pytest.param("HTTP/1.1", [LOCAL, "Origin: http://localhost:3000"], id="another loopback page"),
        pytest.param("HTTP/1.1", [LOCAL, "Origin: null"], id="opaque Origin"),
        pytest.param("HTTP/1.1", [LOCAL, "Sec-Fetch-Site: cross-site"], id="Sec-Fetch-Site cross-site"),
        pytest.param("HTTP/1.1", [LOCAL, "Sec-Fetch-Site: same-site"], id="Sec-Fetch-Site same-site"),
    ],
)
def test_dev_tokens_are_refused_to_anything_but_the_page_on_loopback(
    dev_server: ServerProcess, version: str, headers: list[str]
) -> None:
    """Even with the sign-in code: a request that did not come straight from the dashboard's own origin gets none."""
    status, body = raw_post(dev_server.port, version, [h.format(port=dev_server.port) for h in headers], ASK)
    assert (status, JWT in body) == (403, False), body


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        pytest.param("HTTP/1.1", [LOCAL, "Origin: http://localhost:{port}", "Sec-Fetch-Site: same-origin"], id="page"),
        pytest.param("HTTP/1.1", ["Host: 127.0.0.1:{port}"], id="127.0.0.1"),
        pytest.param("HTTP/1.1", ["Host: [::1]:{port}", "Origin: http://[::1]:{port}"], id="[::1]"),
        pytest.param("HTTP/1.0", ["Host: LOCALHOST"], id="HTTP/1.0 with Host, any case, no port"),
    ],
)
def test_dev_tokens_are_minted_for_a_strict_loopback_host_and_the_same_origin(
    dev_server: ServerProcess, version: str, headers: list[str]
) -> None:
    status, body = raw_post(dev_server.port, version, [h.format(port=dev_server.port) for h in headers], ASK)
    assert status == 200, body
    verifier = TokenVerifier(Settings(jwt_secret=TEST_SECRET), TEST_SECRET)
    assert verifier.verify(json.loads(body)["serviceToken"]).is_service


async def test_dev_tokens_need_the_sign_in_code(dev_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=dev_server.url) as client:
        missing = await client.post(DEV_TOKEN_PATH, json={"user": "victim"})
        wrong = await client.post(DEV_TOKEN_PATH, json={"user": "victim", "code": DEV_CODE[:-1] + "x"})
        right = await client.post(DEV_TOKEN_PATH, json={"user": "victim", "code": DEV_CODE})
    assert (missing.status_code, wrong.status_code, right.status_code) == (403, 403, 200), (missing.text, wrong.text)
    assert JWT.decode() not in missing.text + wrong.text
    assert right.json()["serviceToken"] is None, "a service token only when the page asks for one"


async def test_serve_prints_a_new_sign_in_code_in_the_dashboard_link(embedded_server: ServerProcess) -> None:
    """`tidings serve` with no configuration: the link it prints is the way in, and nothing else is."""
    link = urlsplit(embedded_server.printed_dashboard_link())
    code = parse_qs(link.fragment)["code"][0]  # a fragment: never sent to the server, never in an access log
    assert (link.scheme, link.netloc, link.path) == ("http", f"127.0.0.1:{embedded_server.port}", "/")
    assert len(code) >= 22, "at least 128 bits"
    async with httpx.AsyncClient(base_url=embedded_server.url) as client:
        signed_in = await client.post(DEV_TOKEN_PATH, json={"user": "alice", "code": code})
        guessed = await client.post(DEV_TOKEN_PATH, json={"user": "alice", "code": DEV_CODE})
    assert signed_in.status_code == 200 and guessed.status_code == 403


def test_no_sign_in_code_where_dev_tokens_are_off(scaled_server: ServerProcess) -> None:
    assert "#code=" not in scaled_server.log()


# -- clients that never read -----------------------------------------------------------------------------------------

ATTACK_BOUND = 6 * WAIT  # a bound on the waits below, not a measurement: the server executes 100+ introspections


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default send bounds, with 1 s for each write and a ping every second; one socket per user, and 200
    operations at once on it, so that all of an attacker's subscribes run without it having to pace them."""
    env = {
        "TIDINGS_SEND_TIMEOUT": "1",
        "TIDINGS_KEEPALIVE_INTERVAL": "1",
        "TIDINGS_MAX_CONNECTIONS_PER_USER": "1",
        "TIDINGS_MAX_OPERATIONS_PER_CONNECTION": "200",
    }
    server = ServerProcess(tmp_path_factory.mktemp("impatient"), env).start()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()


def _resident_bytes(server: ServerProcess) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/<pid>/status")


async def _tasks(server: ServerProcess) -> int:
    async with httpx.AsyncClient(timeout=ATTACK_BOUND) as client:  # executing introspections, the server is busy
        text = (await client.get(f"{server.url}/metrics")).text
    match = re.search(r"^tidings_asyncio_tasks (\S+)$", text, re.MULTILINE)
    assert match is not None, text
    return int(float(match.group(1)))


async def _unread(server: ServerProcess, user: str) -> int:
    async with httpx.AsyncClient(timeout=ATTACK_BOUND) as client:  # see _tasks
        response = await client.post(
            server.graphql_url, json={"query": "{ unreadCount }"}, headers={"Authorization": f"Bearer {token(user)}"}
        )
    count: int = response.json()["data"]["unreadCount"]
    return count


async def _result_bytes(server: ServerProcess, user: str, document: str) -> int:
    """The size of the document's result, asked over HTTP (which also warms the server's caches up)."""
    body = await gql(server.graphql_url, document, bearer=token(user))
    assert "errors" not in body
    return len(json.dumps(body, separators=(",", ":")))


@contextlib.asynccontextmanager
async def _never_reading(server: ServerProcess, user: str) -> AsyncIterator[WSClient]:
    """Acknowledged, then reading nothing more (websockets stops reading its socket, whose window is tiny); no
    keep-alive of its own, whose unread pongs would close it from this side."""
    client = await WSClient.open(
        server.ws_url, sock=small_window_socket(server.port), compression=None, max_queue=1, ping_interval=None
    )
    try:
        await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
        assert await client.receive() == {"type": "connection_ack"}
        yield client
    finally:
        client.conn.transport.abort()


async def _pong_until_closed(client: WSClient) -> None:
    """An unsolicited `pong` every half second: frames that keep the keep-alive content."""
    while True:
        await client.send({"type": "pong"})
        await asyncio.sleep(0.5)


async def test_a_client_that_never_reads_large_results_holds_no_memory(
    impatient_server: ServerProcess, user: str
) -> None:
    """The finding: 120 subscribes to an introspection of some 570 KB of result, nothing read, pongs. Each result is
    over TIDINGS_MAX_RESULT_BYTES, so none is queued: once the operations have run, the server has grown by far less
    than those results (it used to keep them all, for as long as the pongs came; what remains is the allocator's).
    Reading at last, the client finds a RESULT_TOO_LARGE for each operation."""
    document, operations = introspection(15), 120
    result_bytes = await _result_bytes(impatient_server, user, document)
    await create(impatient_server.graphql_url, user, "unread")
    async with _never_reading(impatient_server, user) as client:
        pongs = asyncio.create_task(_pong_until_closed(client))
        try:
            tasks, resident = await _tasks(impatient_server), _resident_bytes(impatient_server)
            ids = [await client.subscribe(document) for _ in range(operations)]
            # Frames are handled in order: once this last one has taken effect, every operation has been started.
            last = await client.subscribe("mutation { markAllNotificationsRead { count } }")
            async with asyncio.timeout(ATTACK_BOUND):
                while await _unread(impatient_server, user):
                    await asyncio.sleep(0.1)
                while await _tasks(impatient_server) > tasks:  # and now they have all ended
                    await asyncio.sleep(0.1)
            grown = _resident_bytes(impatient_server) - resident
            assert grown < operations * result_bytes / 2, f"{grown} bytes more after {operations} x {result_bytes}"
        finally:
            pongs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pongs

        answers: dict[str, list[dict[str, Any]]] = {operation: [] for operation in [*ids, last]}
        async with asyncio.timeout(WAIT):
            while sum(map(len, answers.values())) < 2 * len(answers):
                message = await client.receive()
                answers[message["id"]].append(message)
    assert answers.pop(last)[0]["payload"] == {"data": {"markAllNotificationsRead": {"count": 1}}}
    for operation, (result, complete) in answers.items():
        assert result["type"] == "next" and result["payload"]["data"] is None, result
        assert [error["extensions"]["code"] for error in result["payload"]["errors"]] == ["RESULT_TOO_LARGE"]
        assert complete == {"id": operation, "type": "complete"}


async def test_a_client_that_never_reads_is_reset_whatever_frames_it_sends(
    impatient_server: ServerProcess, user: str
) -> None:
    """Results under TIDINGS_MAX_RESULT_BYTES (some 230 KB each), twice what the socket buffers and the send queue
    take, nothing read, pongs. The keep-alive is content, but no write finishes within TIDINGS_SEND_TIMEOUT: the
    server gives up (a 1013 it cannot send), and since the connection never drains, resets it; the user's
    connection slot is free again."""
    # As many copies as stay under the limit: the schema, and so its introspection, grows with every feature.
    copies = (Settings.model_fields["max_result_bytes"].default - 4096) // await _result_bytes(
        impatient_server, user, introspection(1)
    )
    document = introspection(copies)
    result_bytes = await _result_bytes(impatient_server, user, document)
    held = socket_send_buffer_max() + 1024 * 1024 + 64 * 1024 + result_bytes  # kernel, queue, uvicorn, one frame
    async with _never_reading(impatient_server, user) as client:
        for _ in range(-(-2 * held // result_bytes)):
            await client.subscribe(document)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(ATTACK_BOUND):
                await _pong_until_closed(client)
    # No close frame either way: it never read the server's, and never sent one; the server reset the connection.
    assert (closed.value.rcvd, closed.value.sent) == (None, None), closed.value
    async with await WSClient.connected(impatient_server.ws_url, token(user)) as again:
        await again.send({"type": "ping"})
        assert await again.receive() == {"type": "pong"}
