"""The committed SDL is the live schema, and the documented client operations are valid and work."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, parse, validate

from tests._client import WSClient, gql, service_token, token
from tests._server import ServerProcess
from tidings.cli import export_schema_sdl

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "graphql" / "schema.graphql"
OPERATIONS = ROOT / "graphql" / "operations"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


def test_committed_schema_matches_the_live_one() -> None:
    assert SCHEMA_FILE.read_text() == export_schema_sdl(), (
        "graphql/schema.graphql is stale: run `tidings export-schema -o graphql/schema.graphql`"
    )


def test_every_operation_is_valid_against_the_schema() -> None:
    schema = build_schema(SCHEMA_FILE.read_text())
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert files
    for path in files:
        errors = validate(schema, parse(path.read_text()))
        assert not errors, (path.name, errors)


def test_contract_names_are_present() -> None:
    sdl = SCHEMA_FILE.read_text()
    for fragment in (
        "notifications(first: Int! = 20, after: String = null, filter: NotificationFilter = null, userId: ID = null): NotificationConnection!",  # noqa: E501
        "unreadNotifications(first: Int! = 50, userId: ID = null): [Notification!]!",
        "unreadCount(userId: ID = null, category: String = null): Int!",
        "notification(id: ID!): Notification",
        "createNotification(input: CreateNotificationInput!): Notification!",
        "markNotificationRead(id: ID!): Notification!",
        "markAllNotificationsRead(userId: ID = null, upTo: String = null): MarkAllReadResult!",
        "deleteNotification(id: ID!): ID!",
        "notificationEvents(after: String = null, userId: ID = null): NotificationEvent!",
        "enum NotificationEventKind {\n  CREATED\n  READ\n  ALL_READ\n  DELETED\n  RESYNC\n",  # then issue 12's kinds
    ):
        assert fragment in sdl, fragment


async def test_documented_operations_run_the_whole_flow(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    listing = (await gql(url, operation("Notifications"), bearer=me))["data"]["notifications"]
    async with await WSClient.connected(server.ws_url, me) as device:
        subscription = await device.subscribe(operation("NotificationEvents"), {"after": listing["feedCursor"]})
        created = await gql(
            url,
            operation("CreateNotification"),
            {"input": {"userId": user, "title": "Build finished", "message": "main is green", "type": "SUCCESS"}},
            bearer=service_token(),
        )
        notification = created["data"]["createNotification"]
        assert (await device.next_event(subscription))["notification"] == notification
        second = (await gql(url, operation("Notifications"), bearer=me))["data"]["notifications"]
        assert second["unreadCount"] == 1 and (await gql(url, operation("UnreadCount"), bearer=me))["data"] == {
            "unreadCount": 1
        }
        read = await gql(url, operation("MarkNotificationRead"), {"id": notification["id"]}, bearer=me)
        assert read["data"]["markNotificationRead"]["read"] is True
        assert (await device.next_event(subscription))["kind"] == "READ"
        await gql(
            url,
            operation("CreateNotification"),
            {"input": {"userId": user, "title": "t", "message": "m"}},
            bearer=service_token(),
        )
        assert (await device.next_event(subscription))["kind"] == "CREATED"
        marked = await gql(url, operation("MarkAllNotificationsRead"), {"upTo": second["feedCursor"]}, bearer=me)
        assert marked["data"]["markAllNotificationsRead"]["count"] == 0  # the newer one was not seen yet
        deleted = await gql(url, operation("DeleteNotification"), {"id": notification["id"]}, bearer=me)
        assert deleted["data"]["deleteNotification"] == notification["id"]
        assert (await device.next_event(subscription))["kind"] == "DELETED"
