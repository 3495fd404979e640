// @urql/core with subscriptionExchange over graphql-ws: the full inbox flow on two devices of one user.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient } from "graphql-ws";
import WebSocket from "ws";

import { Inbox } from "./lib/harness.mjs";
import { operations, server } from "./lib/tidings.mjs";

/** The urql setup of a frontend: HTTP for queries and mutations, graphql-ws for subscriptions, one token. */
function urqlClient(token) {
  const ws = createWsClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${token}` }),
  });
  const client = new Client({
    url: server.graphqlUrl,
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  return { client, dispose: () => ws.dispose() };
}

async function run(client, kind, document, variables) {
  const result = await client[kind](document, variables).toPromise();
  assert.equal(result.error, undefined, result.error?.message);
  return result.data;
}

/** A device: lists the inbox, then follows events after the list's feedCursor. */
async function openDevice(client) {
  const list = (await run(client, "query", operations.Notifications, { first: 20 })).notifications;
  const events = new Inbox();
  const subscription = client
    .subscription(operations.NotificationEvents, { after: list.feedCursor })
    .subscribe((result) => {
      assert.equal(result.error, undefined, result.error?.message);
      events.push(result.data.notificationEvents);
    });
  return { list, events, stop: () => subscription.unsubscribe() };
}

test("urql: created on both devices, READ and ALL_READ with the unread count on the other", async () => {
  const phone = urqlClient(server.userToken);
  const laptop = urqlClient(server.userToken);
  const backend = urqlClient(server.serviceToken);
  try {
    const [onPhone, onLaptop] = [await openDevice(phone.client), await openDevice(laptop.client)];
    assert.equal(onPhone.list.unreadCount, 0);
    assert.deepEqual(onPhone.list.edges, []);

    const input = { userId: server.user, title: "Deploy finished", message: "v2 is live", type: "SUCCESS" };
    const created = (await run(backend.client, "mutation", operations.CreateNotification, { input })).createNotification;
    for (const device of [onPhone, onLaptop]) {
      const event = await device.events.next();
      assert.equal(event.kind, "CREATED");
      assert.equal(event.unreadCount, 1);
      assert.deepEqual(
        { id: event.notification.id, title: event.notification.title, type: event.notification.type },
        { id: created.id, title: "Deploy finished", type: "SUCCESS" },
      );
    }

    const marked = await run(phone.client, "mutation", operations.MarkNotificationRead, { id: created.id });
    assert.equal(marked.markNotificationRead.read, true);
    const read = await onLaptop.events.next();
    assert.equal(read.kind, "READ");
    assert.equal(read.unreadCount, 0);
    assert.equal(read.notification.id, created.id);
    assert.equal(read.notification.read, true);
    assert.equal((await onPhone.events.next()).kind, "READ");

    // Mark all read up to what the laptop has seen: both devices get one ALL_READ.
    for (const title of ["one", "two"]) {
      await run(backend.client, "mutation", operations.CreateNotification, { input: { ...input, title } });
    }
    const seen = await onLaptop.events.take(2);
    const all = await run(laptop.client, "mutation", operations.MarkAllNotificationsRead, { upTo: seen[1].cursor });
    assert.equal(all.markAllNotificationsRead.count, 2);
    assert.equal(all.markAllNotificationsRead.unreadCount, 0);
    await onPhone.events.take(2);
    for (const device of [onPhone, onLaptop]) {
      const event = await device.events.next();
      assert.equal(event.kind, "ALL_READ");
      assert.equal(event.count, 2);
      assert.equal(event.unreadCount, 0);
      assert.equal(event.upToSequence, seen[1].sequence);
      assert.equal(event.cursor, all.markAllNotificationsRead.cursor);
    }
    onPhone.stop();
    onLaptop.stop();
  } finally {
    await Promise.all([phone.dispose(), laptop.dispose(), backend.dispose()]);
  }
});
