// A slow consumer: graphql-ws and @tidings/client behind a proxy that pytest stalls (tests/test_node_clients.py).
// The server's writes stop getting through, it closes with 1013 "Try again later", and the client comes back
// by itself after its last cursor: every notification once, in order.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { TidingsClient } from "../../clients/js/dist/index.js";
import { Inbox, eventually, pause } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

const RETRY_WAIT_MS = 250; // the library's default backoff (1 s, 2 s, 4 s... plus up to 3 s) only slows the test
const WAIT_MS = 20_000; // per event after the stall: the replay of a few hundred 16 KiB notifications

const titles = (events) => events.map((event) => event.notification.title);

async function page() {
  return (await graphql(operations.Notifications, { first: 1 }, server.userToken)).notifications;
}

/** pytest stalls the proxy, creates notifications until the server gives up on the socket, then lets it flow. */
async function slowConsumer() {
  const { created } = await pause("slow consumer");
  assert.ok(created.length > 0);
  return created;
}

function assertInOrder(events) {
  const sequences = events.map((event) => event.sequence);
  for (let i = 1; i < sequences.length; i++) assert.ok(sequences[i] > sequences[i - 1], `sequences: ${sequences}`);
}

test("graphql-ws: closed with 1013 as a slow consumer, it reconnects and resubscribes by itself", async () => {
  const log = { connected: 0, closed: [] };
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${server.userToken}` }),
    retryWait: () => new Promise((resolve) => setTimeout(resolve, RETRY_WAIT_MS)),
    // The default shouldRetry and retryAttempts: 1013 is one of the close codes the library retries by itself.
    on: {
      connected: () => log.connected++,
      closed: (event) => log.closed.push(event.code),
    },
  });
  try {
    // graphql-ws serializes this payload again at every (re)subscribe: keeping `after` at the last cursor received
    // makes its own resubscribe resume there, instead of replaying from the first cursor (see graphql-ws.test.mjs).
    const variables = { after: (await page()).feedCursor };
    const events = new Inbox();
    const ended = new Inbox();
    const dispose = client.subscribe(
      { query: operations.NotificationEvents, variables },
      {
        next: (result) => {
          assert.equal(result.errors, undefined, JSON.stringify(result.errors));
          const event = result.data.notificationEvents;
          variables.after = event.cursor;
          events.push(event);
        },
        error: (error) => ended.push({ error }),
        complete: () => ended.push({ complete: true }),
      },
    );
    await createNotification("before the stall");
    assert.deepEqual(titles([await events.next()]), ["before the stall"]);

    const created = await slowConsumer();
    await createNotification("after the reconnect");
    const rest = await events.take(created.length + 1, WAIT_MS, "events after the stall");
    assert.deepEqual(titles(rest), [...created, "after the reconnect"]);
    assertInOrder(rest);
    await events.silent(); // and nothing twice
    assert.deepEqual(log.closed, [1013], `close codes: ${log.closed}`);
    assert.equal(log.connected, 2, "one reconnect, by the library");
    assert.equal(ended.pending, 0, "the subscription survived the reconnect");
    dispose();
    assert.deepEqual(await ended.next(), { complete: true });
  } finally {
    await client.dispose();
  }
});

test("@tidings/client: closed with 1013 as a slow consumer, it resumes after its last cursor", async () => {
  const errors = [];
  const client = new TidingsClient({
    url: server.graphqlUrl,
    wsUrl: server.wsUrl,
    webSocketImpl: WebSocket,
    getToken: () => server.userToken,
    retryDelay: () => RETRY_WAIT_MS,
    onError: (error) => errors.push(error),
  });
  const states = [];
  client.onStateChange((state) => states.push(state));
  const events = new Inbox();
  client.onEvent((event) => events.push(event));
  try {
    const first = await page();
    client.start({ after: first.feedCursor, unreadCount: first.unreadCount });
    await eventually(() => client.state === "live", 10_000, "live");
    await createNotification("before the stall");
    assert.deepEqual(titles([await events.next()]), ["before the stall"]);

    const created = await slowConsumer();
    await createNotification("after the reconnect");
    const rest = await events.take(created.length + 1, WAIT_MS, "events after the stall");
    assert.deepEqual(titles(rest), [...created, "after the reconnect"]);
    assertInOrder(rest);
    await events.silent(); // and nothing twice
    assert.deepEqual(
      errors.map((error) => error?.code),
      [1013],
      `errors: ${errors.map((error) => error?.code ?? error)}`,
    );
    assert.deepEqual(states, ["connecting", "live", "reconnecting", "live"]);
    assert.equal(client.unreadCount, first.unreadCount + created.length + 2);
  } finally {
    await client.dispose();
  }
});
