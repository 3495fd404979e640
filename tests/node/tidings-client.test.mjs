// @tidings/client (clients/js) against a real server: a restart in the middle loses nothing, RESYNC refetches.
import assert from "node:assert/strict";
import { test } from "node:test";

import WebSocket from "ws";

import { TidingsClient } from "../../clients/js/dist/index.js";
import { Inbox, env, eventually, pause } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

function tidingsClient(options) {
  const errors = [];
  const client = new TidingsClient({
    url: server.graphqlUrl,
    webSocketImpl: WebSocket, // Node 20 has no global WebSocket
    retryDelay: () => 200,
    onError: (error) => errors.push(error),
    ...options,
  });
  const states = [];
  client.onStateChange((state) => states.push(state));
  const events = new Inbox();
  client.onEvent((event) => events.push(event));
  return { client, errors, states, events };
}

const titles = (events) => events.map((event) => event.notification.title);

test("a 4403 gets a fresh token; a server restart in the middle: every notification once, in order", async () => {
  let tokenCalls = 0;
  const getToken = () => (tokenCalls++ === 0 ? server.expiredToken : server.userToken);
  const page = (await graphql(operations.Notifications, { first: 20 }, server.userToken)).notifications;
  const { client, errors, states, events } = tidingsClient({ getToken });
  try {
    client.start({ after: page.feedCursor, unreadCount: page.unreadCount });
    await eventually(() => client.state === "live", 10_000, "live");
    assert.deepEqual(states, ["connecting", "reconnecting", "live"]);
    assert.equal(errors[0]?.code, 4403, "the expired token was refused with 4403");
    assert.equal(tokenCalls, 2);

    for (const title of ["before 1", "before 2", "before 3"]) await createNotification(title);
    assert.deepEqual(titles(await events.take(3)), ["before 1", "before 2", "before 3"]);
    assert.equal(client.unreadCount, 3);

    // pytest stops the server, creates notifications through another process on the same database while this one
    // is away, then starts the server again on the same port.
    const { created } = await pause("restart");
    for (const title of ["after 1", "after 2"]) await createNotification(title);
    const rest = await events.take(created.length + 2, 30_000, "events after the restart");
    assert.deepEqual(titles(rest), [...created, "after 1", "after 2"]);
    await events.silent(); // and nothing twice
    assert.ok(states.slice(3).includes("reconnecting"), `states: ${states}`);
    assert.equal(client.state, "live");
    assert.equal(client.unreadCount, 5 + created.length);

    await client.markRead(rest[0].notification.id);
    const read = await events.next();
    assert.deepEqual([read.kind, read.notification.id, read.unreadCount], ["READ", rest[0].notification.id, 4 + created.length]);
    const all = await client.markAllRead(); // up to the last delivered event
    assert.equal(all.count, 4 + created.length);
    const allRead = await events.next();
    assert.deepEqual([allRead.kind, allRead.count, allRead.unreadCount], ["ALL_READ", all.count, 0]);
    assert.equal(client.unreadCount, 0);
  } finally {
    await client.dispose();
  }
  assert.equal(client.state, "stopped");
});

test("a cursor of another database: RESYNC calls the refetch callback first, then events continue", async () => {
  let refetched = null;
  const { client, states, events } = tidingsClient({
    getToken: () => server.userToken,
    onResync: async (event) => {
      assert.equal(event.kind, "RESYNC");
      refetched = await client.notifications({ first: 20 });
    },
  });
  try {
    await createNotification("already there");
    client.start({ after: env("TIDINGS_FOREIGN_CURSOR") });
    const resync = await events.next();
    assert.equal(resync.kind, "RESYNC");
    assert.equal(refetched?.edges[0].node.title, "already there", "the refetch ran before RESYNC was delivered");
    assert.ok(states.includes("resyncing"), `states: ${states}`);
    await eventually(() => client.state === "live", 10_000, "live after the refetch");
    assert.equal(client.cursor, resync.cursor);

    await createNotification("after the resync");
    const created = await events.next();
    assert.equal(created.kind, "CREATED");
    assert.equal(created.notification.title, "after the resync");
    const all = await client.markAllRead(); // the new cursor belongs to this database
    assert.equal(all.count, 2);
  } finally {
    await client.dispose();
  }
});
