// @apollo/client with GraphQLWsLink + HttpLink split: query, subscribeToMore after feedCursor, normalized cache.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient as createWsClient } from "graphql-ws";
import WebSocket from "ws";

import { Inbox, eventually } from "./lib/harness.mjs";
import { createNotification, operations, server } from "./lib/tidings.mjs";

const NOTIFICATIONS = gql(operations.Notifications);
const NOTIFICATION_EVENTS = gql(operations.NotificationEvents);
const MARK_READ = gql(operations.MarkNotificationRead);
const DELETE = gql(operations.DeleteNotification);
const UNREAD_COUNT = gql(operations.UnreadCount);
const READ_STATE = gql`
  fragment ReadState on Notification {
    read
    readAt
  }
`;

/** The Apollo setup of a frontend: subscriptions over graphql-ws, everything else over HTTP. */
function apolloClient(token) {
  const ws = createWsClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${token}` }),
  });
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(ws),
    new HttpLink({ uri: server.graphqlUrl, headers: { authorization: `Bearer ${token}` } }),
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return { client, dispose: () => ws.dispose() };
}

/** The README's pattern: watch the list, then subscribeToMore after its feedCursor, merging events in updateQuery. */
async function openInbox(client) {
  const query = client.watchQuery({ query: NOTIFICATIONS, variables: { first: 20 } });
  const results = new Inbox();
  const watching = query.subscribe({ next: (result) => result.data?.notifications && results.push(result.data) });
  const first = await results.next(10_000, "the first list");
  const events = new Inbox();
  const stop = query.subscribeToMore({
    document: NOTIFICATION_EVENTS,
    variables: { after: first.notifications.feedCursor },
    updateQuery(_, { subscriptionData, previousData }) {
      const event = subscriptionData.data.notificationEvents;
      events.push(event);
      const list = previousData.notifications;
      switch (event.kind) {
        case "CREATED":
          return {
            notifications: {
              ...list,
              unreadCount: event.unreadCount,
              edges: [{ __typename: "NotificationEdge", cursor: "", node: event.notification }, ...list.edges],
            },
          };
        case "DELETED":
          return {
            notifications: {
              ...list,
              unreadCount: event.unreadCount,
              edges: list.edges.filter((edge) => edge.node.id !== event.notification.id),
            },
          };
        default: // READ: the normalized cache has already updated the notification by its id
          return { notifications: { ...list, unreadCount: event.unreadCount } };
      }
    },
  });
  const latest = () => client.readQuery({ query: NOTIFICATIONS, variables: { first: 20 } }).notifications;
  return { first, events, latest, stop: () => (stop(), watching.unsubscribe()) };
}

test("Apollo: created on both devices; marked read on one, the other's normalized cache shows it read", async () => {
  const phone = apolloClient(server.userToken);
  const laptop = apolloClient(server.userToken);
  try {
    const onPhone = await openInbox(phone.client);
    const onLaptop = await openInbox(laptop.client);
    assert.equal(onLaptop.first.notifications.unreadCount, 0);

    const created = await createNotification("Payment received", { type: "SUCCESS", data: { amount: 42 } });
    for (const inbox of [onPhone, onLaptop]) {
      assert.equal((await inbox.events.next()).kind, "CREATED");
      const list = await eventually(() => inbox.latest().edges.length === 1 && inbox.latest(), 10_000, "CREATED merged");
      assert.equal(list.unreadCount, 1);
      assert.equal(list.edges[0].node.id, created.id);
      assert.deepEqual(list.edges[0].node.data, { amount: 42 });
      assert.equal(list.edges[0].node.read, false);
    }

    // The laptop's cache holds the notification once, normalized by __typename and id.
    const cacheId = laptop.client.cache.identify({ __typename: "Notification", id: created.id });
    assert.equal(cacheId, `Notification:${created.id}`);
    assert.ok(cacheId in laptop.client.cache.extract(), "the notification is normalized in the cache");

    const { data } = await phone.client.mutate({ mutation: MARK_READ, variables: { id: created.id } });
    assert.equal(data.markNotificationRead.read, true);

    const read = await onLaptop.events.next();
    assert.equal(read.kind, "READ");
    assert.equal(read.unreadCount, 0);
    // Nothing in updateQuery touched the node: the READ event's notification {id, read} updated the cache entry.
    const fragment = laptop.client.cache.readFragment({ id: cacheId, fragment: READ_STATE });
    assert.equal(fragment.read, true);
    assert.equal(typeof fragment.readAt, "string");
    const list = await eventually(() => onLaptop.latest().unreadCount === 0 && onLaptop.latest(), 10_000, "badge 0");
    assert.equal(list.edges[0].node.read, true);
    // The phone's own mutation result wrote the same entry.
    assert.equal(phone.client.cache.readFragment({ id: cacheId, fragment: READ_STATE }).read, true);

    // Deleted on the phone: the laptop's list drops it.
    const unread = await createNotification("Still unread");
    await onLaptop.events.next();
    const deleted = await phone.client.mutate({ mutation: DELETE, variables: { id: created.id } });
    assert.equal(deleted.data.deleteNotification, created.id);
    const gone = await onLaptop.events.next();
    assert.equal(gone.kind, "DELETED");
    assert.equal(gone.notification.id, created.id);
    const left = await eventually(() => onLaptop.latest().edges.length === 1 && onLaptop.latest(), 10_000, "deleted");
    assert.equal(left.edges[0].node.id, unread.id);
    assert.equal(left.unreadCount, 1);
    const count = await laptop.client.query({ query: UNREAD_COUNT, fetchPolicy: "network-only" });
    assert.equal(count.data.unreadCount, 1);
    onPhone.stop();
    onLaptop.stop();
  } finally {
    await Promise.all([phone.dispose(), laptop.dispose()]);
  }
});
