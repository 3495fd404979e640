"""The fast paths answer exactly what the standard paths answer: the same frames and responses, byte for byte.

Two servers share one PostgreSQL database and one Redis channel prefix, so they see the same events with the same
cursors: one runs the fast paths (the default), the other runs every delivery through graphql-core and every request
through FastAPI and Strawberry's view (`TIDINGS_DELIVERY_FAST_PATH=false`, `TIDINGS_HTTP_FAST_PATH=false`). The same
subscription documents (every one in `graphql/operations/`, the suite's own, and generated selections with aliases,
`__typename`, literals and variables) are subscribed on both, the same events replayed and then delivered live, and
every frame compared as text; the same HTTP requests get the same status, media type and body.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests._client import EVENTS, WAIT, WSClient, create, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tidings.cursors import FeedCursor

OPERATIONS = Path(__file__).resolve().parent.parent / "graphql" / "operations"
EVENT_FIELDS = ["kind", "cursor", "unreadCount", "sequence", "upToSequence", "count", "__typename"]
NOTIFICATION_FIELDS = [
    "id", "userId", "type", "title", "message", "data", "read", "readAt", "createdAt", "sequence", "__typename",
]  # fmt: skip
EVENTS_PER_RUN = 6  # what `_make_events` causes
# The fields of issue 12's inbox (seen, archive, categories) and the events that change them.
INBOX_EVENT_FIELDS = [
    *EVENT_FIELDS,
    "unseenCount",
    "category",
    "categoryCounts { unseenCount __typename category unreadCount }",
    "mutedCategories",
    "deleted { category __typename read archived }",
]
INBOX_NOTIFICATION_FIELDS = [
    *NOTIFICATION_FIELDS, "seen", "seenAt", "archived", "archivedAt", "category",
    "collapseKey", "collapsedCount", "updatedAt", "muted",
]  # fmt: skip
INBOX_EVENTS_PER_RUN = 16  # what `_make_inbox_events` causes


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    workdir = tmp_path_factory.mktemp("delivery-paths")
    with PostgresDatabase() as database:
        env = {**scaled_env(database), "TIDINGS_MAX_OPERATIONS_PER_CONNECTION": "100"}
        projected = ServerProcess(workdir / "projected", env).start()
        standard_env = {**env, "TIDINGS_DELIVERY_FAST_PATH": "false", "TIDINGS_HTTP_FAST_PATH": "false"}
        standard = ServerProcess(workdir / "standard", standard_env).start()
        try:
            yield projected, standard
        finally:
            projected.stop()
            standard.stop()


def _selection(rng: random.Random, fields: list[str]) -> str:
    chosen = rng.sample(fields, rng.randint(1, len(fields)))
    # A field may come with its selection ("categoryCounts { category }"): the alias names the field.
    return " ".join(f"{name.split()[0]}{rng.randint(0, 99)}: {name}" if rng.random() < 0.3 else name for name in chosen)


def generated_documents(
    seed: int,
    count: int,
    event_fields: list[str] = EVENT_FIELDS,
    notification_fields: list[str] = NOTIFICATION_FIELDS,
) -> list[tuple[str, str]]:
    """(document, how `after` is passed): random subsets and orders of fields, aliases, a root alias, names."""
    rng = random.Random(seed)
    documents = []
    for index in range(count):
        inner = _selection(rng, event_fields)
        if rng.random() < 0.8:
            inner += f" notification {{ {_selection(rng, notification_fields)} }}"
        root = "events: notificationEvents" if rng.random() < 0.3 else "notificationEvents"
        if rng.random() < 0.5:
            header, arguments, mode = f"subscription Generated{index}($after: String)", "(after: $after)", "variable"
        else:
            header, arguments, mode = "subscription", '(after: "AFTER")', "literal"
        documents.append((f"{header} {{ {root}{arguments} {{ {inner} }} }}", mode))
    return documents


def documents() -> list[tuple[str, str]]:
    subscriptions = [
        (path.read_text(), "variable")
        for path in sorted(OPERATIONS.glob("*.graphql"))
        if re.search(r"^\s*subscription\b", path.read_text(), re.MULTILINE)
    ]
    assert subscriptions, "graphql/operations/ has no subscription"
    return [*subscriptions, (EVENTS, "variable"), *generated_documents(seed=20261201, count=24)]


async def _frames(client: WSClient, count: int) -> list[str]:
    """The next `count` frames other than pings, as the text the server sent."""
    frames: list[str] = []
    async with asyncio.timeout(WAIT * 2):
        while len(frames) < count:
            text = await client.conn.recv()
            assert isinstance(text, str)
            if orjson.loads(text)["type"] == "ping":
                await client.send({"type": "pong"})
                continue
            frames.append(text)
    return frames


async def _subscribe_all(client: WSClient, docs: list[tuple[str, str]], after: str) -> None:
    for index, (document, mode) in enumerate(docs, start=1):
        if mode == "literal":
            document, variables = document.replace("AFTER", after), {}
        else:
            variables = {"after": after}
        await client.send(
            {"id": f"op{index}", "type": "subscribe", "payload": {"query": document, "variables": variables}}
        )


async def _make_events(url: str, user: str) -> None:
    """Each kind of event, with data that a careless encoder would change: unicode, nesting, numbers, nulls."""
    bearer = token(user)
    first = await create(url, user, "Grüße 🎉", data={"nested": {"list": [1, 2.5, None, "ünï"], "t": True}})
    second = await create(url, user, "plain", type="WARNING")
    await create(url, user, "third", data={"emoji": "💬", "quote": 'say "hi"\n'})
    await gql(url, "mutation($id: ID!) { markNotificationRead(id: $id) { id } }", {"id": first["id"]}, bearer=bearer)
    await gql(url, "mutation($id: ID!) { deleteNotification(id: $id) }", {"id": second["id"]}, bearer=bearer)
    await gql(url, "mutation { markAllNotificationsRead { count } }", bearer=bearer)


async def _make_inbox_events(url: str, user: str) -> None:
    """Each kind of event of the inbox, with and without a category."""
    bearer = token(user)
    first = await create(url, user, "Grüße 🎉", category="comments", data={"n": [1, None]})
    await create(url, user, "plain")
    await create(url, user, "bill", category="billing.invoices")
    one = "mutation($id: ID!) { %s(id: $id) { id } }"
    await gql(url, "mutation { markAllNotificationsSeen { count } }", bearer=bearer)
    await gql(url, one % "markNotificationRead", {"id": first["id"]}, bearer=bearer)
    await gql(url, one % "markNotificationUnread", {"id": first["id"]}, bearer=bearer)
    await gql(url, one % "archiveNotification", {"id": first["id"]}, bearer=bearer)
    await gql(url, one % "unarchiveNotification", {"id": first["id"]}, bearer=bearer)
    await gql(url, "mutation { archiveAllRead { count } }", bearer=bearer)  # nothing read: no event
    await gql(url, one % "markNotificationRead", {"id": first["id"]}, bearer=bearer)
    await gql(url, "mutation { archiveAllRead { count } }", bearer=bearer)
    await create(url, user, "Alice commented", category="comments", collapseKey="post-1")
    await create(url, user, "Alice and Bob commented", category="comments", collapseKey="post-1", data={"n": 2})
    mute = "mutation($c: [String!]!) { setMutedCategories(categories: $c) { cursor } }"
    await gql(url, mute, {"c": ["social", "billing.invoices"]}, bearer=bearer)
    await create(url, user, "quiet", category="social")
    await gql(url, mute, {"c": []}, bearer=bearer)
    delete = 'mutation { deleteNotifications(filter: {category: "social", read: true}) { count } }'
    await gql(url, delete, bearer=bearer)


async def _start_cursor(url: str, user: str) -> str:
    page = await gql(url, "{ notifications(first: 1) { feedCursor } }", bearer=token(user))
    cursor: str = page["data"]["notifications"]["feedCursor"]
    return cursor


async def test_projected_and_standard_paths_send_identical_frames_live_and_replayed(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    await _compare_frames(both_paths, user, documents(), _make_events, EVENTS_PER_RUN)


async def test_inbox_fields_and_kinds_send_identical_frames_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    docs = [
        (EVENTS, "variable"),
        ((OPERATIONS / "NotificationEvents.graphql").read_text(), "variable"),
        *generated_documents(20261202, 24, INBOX_EVENT_FIELDS, INBOX_NOTIFICATION_FIELDS),
    ]
    await _compare_frames(both_paths, user, docs, _make_inbox_events, INBOX_EVENTS_PER_RUN)


async def _compare_frames(
    both_paths: tuple[ServerProcess, ServerProcess],
    user: str,
    docs: list[tuple[str, str]],
    make_events: Callable[[str, str], Awaitable[None]],
    events_per_run: int,
) -> None:
    """The same documents on both servers, the same events live and then replayed: the same frames, as text."""
    projected, standard = both_paths
    before = await _subscribes(projected), await _subscribes(standard)
    start = await _start_cursor(projected.graphql_url, user)
    count = len(docs) * events_per_run
    async with (
        await WSClient.connected(projected.ws_url, token(user)) as on_projected,
        await WSClient.connected(standard.ws_url, token(user)) as on_standard,
    ):
        await _subscribe_all(on_projected, docs, start)
        await _subscribe_all(on_standard, docs, start)
        await make_events(projected.graphql_url, user)  # live (or caught up, if a subscription was still starting)
        live = await asyncio.gather(_frames(on_projected, count), _frames(on_standard, count))
    async with (
        await WSClient.connected(projected.ws_url, token(user)) as on_projected,
        await WSClient.connected(standard.ws_url, token(user)) as on_standard,
    ):
        await _subscribe_all(on_projected, docs, start)  # replayed from the database
        await _subscribe_all(on_standard, docs, start)
        replayed = await asyncio.gather(_frames(on_projected, count), _frames(on_standard, count))
    for frames_projected, frames_standard in (live, replayed):
        by_operation: dict[str, tuple[list[str], list[str]]] = {}
        for text in frames_projected:
            by_operation.setdefault(orjson.loads(text)["id"], ([], []))[0].append(text)
        for text in frames_standard:
            by_operation.setdefault(orjson.loads(text)["id"], ([], []))[1].append(text)
        assert len(by_operation) == len(docs)
        for operation_id, (mine, reference) in by_operation.items():
            assert mine == reference, f"{operation_id}: {docs[int(operation_id[2:]) - 1][0]}"
            assert [orjson.loads(text)["type"] for text in mine] == ["next"] * events_per_run
    # Every document was projected on the fast server, none on the standard one.
    assert _added(before[0], await _subscribes(projected)) == {"projected": 2 * len(docs)}
    assert _added(before[1], await _subscribes(standard)) == {"standard": 2 * len(docs)}


async def test_resync_and_documents_the_projection_does_not_cover_match_too(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """A RESYNC first event, and documents with fragments, directives or merged fields (standard path on both)."""
    projected, standard = both_paths
    start = await _start_cursor(projected.graphql_url, user)
    before = await _subscribes(projected), await _subscribes(standard)
    cases = [
        (EVENTS, {"after": FeedCursor("otherdatabase", 3).encode()}),
        ("subscription($a: String) { notificationEvents(after: $a) { kind ...N } } "
         "fragment N on NotificationEvent { unreadCount }", {"a": start}),
        ("subscription($a: String, $yes: Boolean!) { "
         "notificationEvents(after: $a) { kind @include(if: $yes) cursor } }", {"a": start, "yes": True}),
        ("subscription($a: String) { notificationEvents(after: $a) { kind kind unreadCount } }", {"a": start}),
    ]  # fmt: skip
    async with (
        await WSClient.connected(projected.ws_url, token(user)) as on_projected,
        await WSClient.connected(standard.ws_url, token(user)) as on_standard,
    ):
        for client in (on_projected, on_standard):
            for index, (document, variables) in enumerate(cases, start=1):
                payload = {"query": document, "variables": variables}
                await client.send({"id": f"op{index}", "type": "subscribe", "payload": payload})
        # The RESYNC subscription starts from the feed's position: wait for it before the event.
        first = await asyncio.gather(_frames(on_projected, 1), _frames(on_standard, 1))
        await create(projected.graphql_url, user, "after resync")
        rest = await asyncio.gather(_frames(on_projected, len(cases)), _frames(on_standard, len(cases)))
    frames_projected, frames_standard = sorted(first[0] + rest[0]), sorted(first[1] + rest[1])
    assert frames_projected == frames_standard
    assert sum('"RESYNC"' in text for text in frames_projected) == 1
    # Only the first case is the projection's: fragments, directives and merged fields take the standard path.
    assert _added(before[0], await _subscribes(projected)) == {"projected": 1, "standard": 3}
    assert _added(before[1], await _subscribes(standard)) == {"standard": 4}


def _added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {path: count - before.get(path, 0) for path, count in after.items() if count != before.get(path, 0)}


async def _subscribes(server: ServerProcess) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    counts: dict[str, int] = {}
    for path, value in re.findall(r'^tidings_subscribes_total\{path="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE):
        if float(value):
            counts[path] = int(float(value))
    return counts


def test_generated_documents_cover_every_field() -> None:
    text = " ".join(document for document, _ in generated_documents(seed=20261201, count=24))
    for name in {*EVENT_FIELDS, *NOTIFICATION_FIELDS, "events: notificationEvents", '"AFTER"', "$after"}:
        assert name in text, name
    inbox = " ".join(
        document for document, _ in generated_documents(20261202, 24, INBOX_EVENT_FIELDS, INBOX_NOTIFICATION_FIELDS)
    )
    for name in {*INBOX_EVENT_FIELDS, *INBOX_NOTIFICATION_FIELDS}:
        assert name in inbox, name


async def _post(server: ServerProcess, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.post(server.graphql_url, content=body, headers=headers)
    return response.status_code, response.headers.get("content-type"), response.content


async def test_http_answers_are_the_same_bytes_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """Queries and refusals, each asked twice: the first validates and caches the document, the second is the lane's."""
    projected, standard = both_paths
    created = await create(projected.graphql_url, user, "Grüße 🎉", data={"zz": 1, "a": [1, {"b": None}]})
    other = f"{user}-other"
    mark = "mutation($id: ID!) { markNotificationRead(id: $id) { id read readAt title } }"
    operations = {path.stem: path.read_text() for path in OPERATIONS.glob("*.graphql")}
    cases: list[tuple[str, dict[str, Any] | None, str | None, str | None]] = [
        (operations["Notifications"], {"first": 5}, token(user), None),
        (operations["UnreadCount"], {}, token(user), None),
        ("{ notification(id: $id) { id } }", None, token(user), None),  # does not validate
        ("query($id: ID!) { notification(id: $id) { id title data read sequence } }", {"id": created["id"]},
         token(user), None),
        (operations["UnreadCount"], {}, None, None),  # UNAUTHENTICATED
        ("query($u: ID) { unreadCount(userId: $u) }", {"u": other}, token(user), None),  # FORBIDDEN
        (operations["Notifications"], {"first": 0}, token(user), None),  # BAD_USER_INPUT
        (operations["Notifications"], {"first": "many"}, token(user), None),  # variables do not coerce
        (operations["UnreadCount"], {}, token(user), "NoSuchOperation"),
        (mark, {"id": "not-an-id"}, token(user), None),
        (mark, {"id": "00000000-0000-4000-8000-000000000000"}, token(user), None),  # NOT_FOUND
        (operations["UnreadCount"], {}, token(user), None),
    ]  # fmt: skip
    accepts = [
        None,
        "application/json",
        "*/*",
        "application/graphql-response+json, application/json;q=0.9",
        "application/graphql-response+json",
    ]
    answers: list[list[tuple[int, str | None, bytes]]] = [[], []]
    for index, server in enumerate((projected, standard)):
        for case_number, (query, variables, bearer, operation_name) in enumerate(cases):
            payload: dict[str, Any] = {"query": query, "variables": variables}
            if operation_name is not None:
                payload["operationName"] = operation_name
            headers = {"content-type": "application/json"}
            if bearer is not None:
                headers["authorization"] = f"Bearer {bearer}"
            accept = accepts[case_number % len(accepts)]
            if accept is not None:
                headers["accept"] = accept
            for _ in range(2):
                answers[index].append(await _post(server, orjson.dumps(payload), headers))
        for body in (b"{not json", b"[]", b'{"query": 5}', b""):  # not GraphQL requests: both paths refuse alike
            for accept in accepts[1:]:
                answers[index].append(await _post(server, body, {"content-type": "application/json", "accept": accept}))
        for headers in ({"content-type": "text/plain"}, {"content-type": "application/json", "accept": "text/html"}):
            answers[index].append(await _post(server, b'{"query": "{ __typename }"}', headers))
        async with httpx.AsyncClient(timeout=WAIT) as client:
            for params, accept in [
                ({"query": operations["UnreadCount"]}, accepts[3]),
                ({"query": "mutation { __typename }"}, accepts[3]),
                ({"query": "{"}, accepts[4]),
                ({"query": "{ unreadCount }", "variables": "{"}, accepts[1]),
            ]:
                got = await client.get(server.graphql_url, params=params, headers={"accept": accept})
                answers[index].append((got.status_code, got.headers.get("content-type"), got.content))
    assert answers[0] == answers[1]
    assert await _lane_answers(projected) > 0
    assert await _lane_answers(standard) == 0


async def _lane_answers(server: ServerProcess) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    return sum(float(value) for value in re.findall(r"^tidings_http_fast_path_answers_total ([0-9.e+]+)$", text, re.M))


async def test_create_notification_answers_alike_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """Refusals are the same bytes; a created notification differs only in what makes it new (id, time, position)."""
    projected, standard = both_paths
    create_document = (OPERATIONS / "CreateNotification.graphql").read_text()
    aliased = "mutation($input: CreateNotificationInput!) { made: createNotification(input: $input) { t: title id } }"
    good = {"userId": user, "title": "Grüße", "message": "m", "data": {"zz": 1, "a": [True]}, "type": "WARNING"}
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        (create_document, {"input": good}, service_token()),
        (aliased, {"input": {**good, "type": None}}, service_token()),
        (create_document, {"input": {**good, "title": "  "}}, service_token()),
        (create_document, {"input": {**good, "message": "x" * 10_001}}, service_token()),
        (create_document, {"input": {**good, "data": [1, 2]}}, service_token()),
        (create_document, {"input": {**good, "type": "NOPE"}}, service_token()),
        (create_document, {"input": {"userId": user, "message": "m"}}, service_token()),
        (create_document, {"input": good}, token(user)),
        (create_document, {"input": good}, None),
        (create_document, {"input": {**good, "idempotencyKey": ""}}, service_token()),
        # Past the plan's own coercion of plain inputs, to graphql-core's: the same answers.
        (create_document, {"input": {**good, "extra": 1}}, service_token()),
        (create_document, {"input": {**good, "title": None}}, service_token()),
        (create_document, {"input": {**good, "category": 7}}, service_token()),
        (create_document, {"input": {**good, "type": "warning"}}, service_token()),
    ]
    answers: list[list[tuple[int, str | None, Any]]] = [[], []]
    for index, server in enumerate((projected, standard)):
        for document, variables, bearer in cases:
            headers = {"content-type": "application/json"}
            if bearer is not None:
                headers["authorization"] = f"Bearer {bearer}"
            for _ in range(2):  # the first validates and caches the document, the second is the fast path's
                status, media_type, body = await _post(
                    server, orjson.dumps({"query": document, "variables": variables}), headers
                )
                answers[index].append((status, media_type, _without_what_is_new(body)))
    assert answers[0] == answers[1]


async def test_collapsing_creates_answer_alike_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """A create that folds into an unread one, its retry, a refused key and a muted create: the same bytes on the plan
    and off it."""
    create_document = (OPERATIONS / "CreateNotification.graphql").read_text()
    answers: list[list[tuple[int, str | None, Any]]] = [[], []]
    for index, server in enumerate(both_paths):
        good = {"userId": f"{user}-{index}", "title": "Grüße", "message": "m", "collapseKey": "post-1"}
        mute = 'mutation($u: ID) { setMutedCategories(categories: ["social"], userId: $u) { cursor } }'
        assert "errors" not in await gql(server.graphql_url, mute, {"u": good["userId"]}, bearer=service_token())
        for variables in (
            {"input": good},
            {"input": {**good, "title": "again", "idempotencyKey": "i"}},  # then its retry: the same answer
            {"input": {**good, "title": "changed", "idempotencyKey": "i"}},  # the key with another payload
            {"input": {**good, "collapseKey": ""}},
            {"input": {**good, "collapseKey": "k" * 201}},
            {"input": {**good, "collapseKey": 5}},  # does not coerce
            {"input": {**good, "collapseKey": None, "category": "social"}},  # muted: read and seen
        ):
            headers = {"content-type": "application/json", "authorization": f"Bearer {service_token()}"}
            for _ in range(2):  # the first validates and caches the document, the second is the fast path's
                body = orjson.dumps({"query": create_document, "variables": variables})
                status, media_type, answer = await _post(server, body, headers)
                answers[index].append((status, media_type, _without_what_is_new(answer)))
    assert answers[0] == answers[1]
    # Folded in once, then once more; the retry is the same answer, not a third collapse.
    folded = [re.findall(r'"collapsedCount":(\d+)', answer) for *_, answer in answers[0]]
    assert folded == [["0"], ["1"], ["2"], ["2"], [], [], [], [], [], [], [], [], ["0"], ["0"]]
    assert answers[0][-1][2].count('"muted":true') == 1 and '"read":true' in answers[0][-1][2]


def _without_what_is_new(body: bytes) -> Any:
    """The body, with the id, times and position of a created notification blanked, key order kept."""
    text = body.decode()
    text = re.sub(r'"id":"[0-9a-f-]{36}"', '"id":"…"', text)
    text = re.sub(r'"(createdAt|updatedAt|readAt|seenAt)":"[^"]+"', r'"\1":"…"', text)
    text = re.sub(r'"userId":"user-[0-9a-f]+-[01]"', '"userId":"…"', text)
    return re.sub(r'"sequence":\d+', '"sequence":0', text)


async def test_inbox_requests_answer_alike_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """Categories on the createNotification plan, the inbox's queries and their refusals: the same bytes."""
    projected, standard = both_paths
    create_document = (OPERATIONS / "CreateNotification.graphql").read_text()
    operations = {path.stem: path.read_text() for path in OPERATIONS.glob("*.graphql")}
    reader = f"{user}-reader"  # whose inbox does not change while both servers are asked
    made = await create(projected.graphql_url, reader, "Grüße", category="comments")
    await create(projected.graphql_url, reader, "bill", category="billing")
    archive = "mutation($id: ID!) { archiveNotification(id: $id) { id } }"
    await gql(projected.graphql_url, archive, {"id": made["id"]}, bearer=token(reader))
    good = {"userId": user, "title": "Grüße", "message": "m", "category": "comments"}
    counts = "query($c: String) { unreadCount(category: $c) unseenCount(category: $c) }"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (create_document, {"input": good}, service_token()),
        (create_document, {"input": {**good, "category": None}}, service_token()),
        (create_document, {"input": {**good, "category": "no spaces"}}, service_token()),
        (create_document, {"input": {**good, "category": "x" * 65}}, service_token()),
        (create_document, {"input": {**good, "category": 5}}, service_token()),  # does not coerce
        (operations["Notifications"], {"filter": {"category": "comments"}}, token(reader)),
        (operations["Notifications"], {"filter": {"archived": True}}, token(reader)),
        (operations["Notifications"], {"filter": {"archived": None, "category": "-"}}, token(reader)),
        (operations["CategoryCounts"], {}, token(reader)),
        (operations["UnseenCount"], {}, token(reader)),
        (counts, {"c": "billing"}, token(reader)),
        (counts, {"c": ""}, token(reader)),
    ]
    answers: list[list[tuple[int, str | None, Any]]] = [[], []]
    for index, server in enumerate((projected, standard)):
        for document, variables, bearer in cases:
            headers = {"content-type": "application/json", "authorization": f"Bearer {bearer}"}
            for _ in range(2):  # the first validates and caches the document, the second is the fast path's
                status, media_type, body = await _post(
                    server, orjson.dumps({"query": document, "variables": variables}), headers
                )
                answers[index].append((status, media_type, _without_what_is_new(body)))
    assert answers[0] == answers[1]
    assert '"category":"comments"' in answers[0][0][2]
    assert '"archived":true' in answers[0][12][2]


# -- snooze and expiry ------------------------------------------------------------------------------------------

TIMER_NOTIFICATION_FIELDS = [*INBOX_NOTIFICATION_FIELDS, "snoozed", "snoozedUntil", "expiresAt"]
TIMER_EVENTS_PER_RUN = 5  # what `_make_timer_events` causes


async def _make_timer_events(url: str, user: str) -> None:
    """SNOOZED, then UNSNOOZED and EXPIRED from the server's timer a few seconds later."""
    origin = datetime.now(UTC)
    expiring = await create(
        url, user, "expiring", category="comments", expiresAt=(origin + timedelta(seconds=5)).isoformat()
    )
    assert expiring["id"]
    snoozed = await create(url, user, "snoozed")
    until = (origin + timedelta(seconds=3)).isoformat()
    body = await gql(
        url, "mutation($id: ID!, $until: DateTime!) { snoozeNotification(id: $id, until: $until) { id } }",
        {"id": snoozed["id"], "until": until}, bearer=token(user),
    )  # fmt: skip
    assert "errors" not in body, body


async def test_timer_fields_and_kinds_send_identical_frames_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    docs = [
        ((OPERATIONS / "NotificationEvents.graphql").read_text(), "variable"),
        *generated_documents(20261203, 12, INBOX_EVENT_FIELDS, TIMER_NOTIFICATION_FIELDS),
    ]
    text = " ".join(document for document, _ in docs)
    assert all(name in text for name in ("snoozedUntil", "expiresAt", "snoozed "))
    await _compare_frames(both_paths, user, docs, _make_timer_events, TIMER_EVENTS_PER_RUN)


async def test_create_with_expires_at_answers_alike_on_both_paths(
    both_paths: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    """expiresAt on the createNotification plan and its refusals: the same bytes as the standard path."""
    projected, standard = both_paths
    document = (OPERATIONS / "CreateNotification.graphql").read_text()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    good = {"userId": user, "title": "t", "message": "m"}
    cases = [
        {**good, "expiresAt": later},
        {**good, "expiresAt": None},
        {**good, "expiresAt": past},
        {**good, "expiresAt": later.replace("+00:00", "")},  # no offset
        {**good, "expiresAt": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
    ]
    headers = {"content-type": "application/json", "authorization": f"Bearer {service_token()}"}
    answers: list[list[tuple[int, str | None, Any]]] = [[], []]
    for index, server in enumerate((projected, standard)):
        for variables in cases:
            for _ in range(2):  # the first validates and caches the document, the second is the fast path's
                body = orjson.dumps({"query": document, "variables": {"input": variables}})
                status, media_type, answer = await _post(server, body, headers)
                answers[index].append((status, media_type, _without_what_is_new(answer)))
    assert answers[0] == answers[1]
    assert f'"expiresAt":"{later}"' in answers[0][0][2] and '"snoozed":false' in answers[0][0][2]
    assert [answer[2].count("BAD_USER_INPUT") for answer in answers[0]] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
