// graphql-ws, the client under Apollo's GraphQLWsLink and urql's subscriptionExchange, against a real tidings server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { Inbox, pause } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

const RETRY_WAIT_MS = 250; // the library's default backoff (1 s, 2 s, 4 s... plus up to 3 s) only slows the test

/** A graphql-ws client whose connectionParams is a function, so every (re)connection asks `tokens` afresh. */
function connect(tokens) {
  const log = { params: 0, connected: 0, closed: [] };
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${tokens[Math.min(log.params++, tokens.length - 1)]}` }),
    retryAttempts: 60,
    retryWait: () => new Promise((resolve) => setTimeout(resolve, RETRY_WAIT_MS)),
    // By default only close events are retried: a refused connection while the server restarts is an error event
    // and would end every subscription. Retry those too (the fatal close codes stay fatal).
    shouldRetry: () => true,
    on: {
      connected: () => log.connected++,
      closed: (event) => log.closed.push(event.code),
    },
  });
  return { client, log };
}

function subscribe(client, variables) {
  const events = new Inbox();
  const ended = new Inbox();
  const dispose = client.subscribe(
    { query: operations.NotificationEvents, variables },
    {
      next: (result) => {
        assert.equal(result.errors, undefined, JSON.stringify(result.errors));
        events.push(result.data.notificationEvents);
      },
      error: (error) => ended.push({ error }),
      complete: () => ended.push({ complete: true }),
    },
  );
  return { events, ended, dispose };
}

async function feedCursor() {
  const data = await graphql(operations.Notifications, { first: 5 }, server.userToken);
  return data.notifications.feedCursor;
}

test("4403 on an expired token: the library reconnects, asking connectionParams for a fresh token", async () => {
  const { client, log } = connect([server.expiredToken, server.userToken]);
  try {
    const { events, ended, dispose } = subscribe(client, { after: await feedCursor() });
    const created = await createNotification("after a refused token", { type: "WARNING" });
    const [event] = await events.take(1);
    assert.equal(event.kind, "CREATED");
    assert.equal(event.notification.id, created.id);
    assert.equal(event.notification.type, "WARNING");
    assert.equal(event.unreadCount, 1);
    assert.deepEqual(log.closed, [4403]);
    assert.equal(log.params, 2);
    assert.equal(log.connected, 1);

    // complete: the subscription ends on our side, and the server delivers nothing more for it.
    dispose();
    assert.deepEqual(await ended.next(), { complete: true });
    await createNotification("after complete");
    await events.silent();
  } finally {
    await client.dispose();
  }
});

test("1012 on a server restart: the library reconnects and resubscribes with the same variables", async () => {
  const { client, log } = connect([server.userToken]);
  try {
    const after = await feedCursor();
    const { events, dispose } = subscribe(client, { after });
    const before = await createNotification("before the restart");
    assert.equal((await events.next()).notification.id, before.id);

    await pause("restart");
    const resumed = await createNotification("after the restart");
    const received = await events.take(2, 20_000, "events after the restart");
    // graphql-ws re-sends the subscribe message it started with: `after` is still the first feedCursor, so the
    // server replays "before" again. @tidings/client passes the last cursor instead and deduplicates.
    assert.deepEqual(
      received.map((e) => e.notification.id),
      [before.id, resumed.id],
    );
    assert.ok(log.closed.includes(1012), `close codes: ${log.closed}`);
    assert.equal(log.connected, 2);
    assert.ok(log.params >= 2);
    dispose();
  } finally {
    await client.dispose();
  }
});
