// @tidings/client (clients/js) against a real server: a restart in the middle loses nothing, RESYNC refetches, and
// each close code is retried or not as graphql-ws decides (a fatal one is surfaced as state `failed`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parse, print } from "graphql";
import { createClient } from "graphql-ws";
import WebSocket, { WebSocketServer } from "ws";

import { TidingsClient, operations as clientOperations } from "../../clients/js/dist/index.js";
import { Inbox, env, eventually, pause } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

function tidingsClient(options) {
  const errors = [];
  const retries = [];
  const client = new TidingsClient({
    url: server.graphqlUrl,
    webSocketImpl: WebSocket, // Node 20 has no global WebSocket
    retryDelay: (attempt) => (retries.push(attempt), 200),
    onError: (error) => errors.push(error),
    ...options,
  });
  const states = [];
  client.onStateChange((state) => states.push(state));
  const events = new Inbox();
  client.onEvent((event) => events.push(event));
  return { client, errors, retries, states, events };
}

/** A server of the test's own (TIDINGS_STRICT_URL): at most 10 tokens per document, one connection per user. */
const strict = {
  graphqlUrl: `${env("TIDINGS_STRICT_URL")}/graphql`,
  wsUrl: `${env("TIDINGS_STRICT_URL").replace(/^http/, "ws")}/graphql`,
};

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
    assert.equal(tokenCalls, 2, "once for the connection, once more with the refusal");

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
    assert.ok(errors.some((error) => error?.code === 1012), `the restart closed with 1012: ${errors.map(String)}`);
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
    await createNotification("already there", { category: "before-resync" });
    client.start({ after: env("TIDINGS_FOREIGN_CURSOR") });
    const resync = await events.next();
    assert.equal(resync.kind, "RESYNC");
    assert.equal(refetched?.edges[0].node.title, "already there", "the refetch ran before RESYNC was delivered");
    // The client read the categories' counts again by itself, before delivering RESYNC.
    assert.deepEqual(client.categoryCounts, [{ category: "before-resync", unreadCount: 1, unseenCount: 1 }]);
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

test("two clients of one user: seen, unread again, archive and the category counts, live on both", async () => {
  const laptop = tidingsClient({ getToken: () => server.userToken });
  const phone = tidingsClient({ getToken: () => server.userToken });
  const both = [laptop, phone];
  const counts = (device) => Object.fromEntries(device.client.categoryCounts.map((c) => [c.category, c]));
  const badges = (device, category) => {
    const { unreadCount, unseenCount } = counts(device)[category];
    return [unreadCount, unseenCount];
  };
  /** The next event on both devices: the same one, of `kind`. */
  const next = async (kind) => {
    const [onLaptop, onPhone] = await Promise.all(both.map(({ events }) => events.next(10_000, kind)));
    assert.deepEqual(onPhone, onLaptop);
    assert.equal(onLaptop.kind, kind);
    return onLaptop;
  };
  try {
    // What the earlier tests left: out of the inbox, so that the counts start at zero.
    await laptop.client.markAllRead(null);
    await laptop.client.archiveAllRead(null);
    const page = await laptop.client.notifications();
    assert.deepEqual([page.edges, page.unreadCount, page.unseenCount], [[], 0, 0]);
    const categoryLists = [];
    laptop.client.onCategoryCounts((list) => categoryLists.push(list));
    for (const { client } of both) {
      await client.fetchCategoryCounts(); // after the list: the events after its cursor are newer
      client.start({ after: page.feedCursor, unreadCount: page.unreadCount, unseenCount: page.unseenCount });
    }
    assert.equal(laptop.client.unseenCount, 0);

    const alice = await createNotification("Alice commented", { category: "comments" });
    const invoice = await createNotification("Invoice ready", { category: "billing" });
    const bob = await createNotification("Bob commented", { category: "comments" });
    for (const _ of [alice, invoice, bob]) await next("CREATED");
    for (const device of both) {
      assert.deepEqual([device.client.unreadCount, device.client.unseenCount], [3, 3]);
      assert.deepEqual([badges(device, "comments"), badges(device, "billing")], [[2, 2], [1, 1]]);
    }
    assert.deepEqual(categoryLists.at(-1), laptop.client.categoryCounts);

    // The phone opens the inbox: the bell clears on the laptop too, and the notifications stay unread.
    const seen = await phone.client.markAllSeen();
    assert.deepEqual([seen.count, seen.unseenCount], [3, 0]);
    assert.equal((await next("ALL_SEEN")).count, 3);
    for (const device of both) {
      assert.deepEqual([device.client.unreadCount, device.client.unseenCount], [3, 0]);
      assert.deepEqual([badges(device, "comments"), badges(device, "billing")], [[2, 0], [1, 0]]);
    }

    await laptop.client.archive(alice.id);
    const archived = await next("ARCHIVED");
    assert.deepEqual([archived.notification.id, archived.notification.archived], [alice.id, true]);
    for (const device of both) assert.deepEqual([device.client.unreadCount, badges(device, "comments")], [2, [1, 0]]);
    await phone.client.unarchive(alice.id);
    assert.equal((await next("UNARCHIVED")).notification.archived, false);
    for (const device of both) assert.deepEqual(badges(device, "comments"), [2, 0]);

    await laptop.client.markRead(invoice.id);
    await next("READ");
    for (const device of both) assert.deepEqual(badges(device, "billing"), [0, 0]);
    const unread = await phone.client.markUnread(invoice.id);
    assert.equal(unread.read, false);
    assert.equal((await next("UNREAD")).notification.read, false);
    for (const device of both) assert.deepEqual([device.client.unreadCount, badges(device, "billing")], [3, [1, 0]]);

    // Archive all read, up to the last event the phone delivered: only Bob's comment is read.
    await laptop.client.markRead(bob.id);
    await next("READ");
    const all = await phone.client.archiveAllRead();
    assert.deepEqual([all.count, all.unreadCount, all.unseenCount], [1, 2, 0]);
    assert.equal((await next("ALL_ARCHIVED")).count, 1);
    for (const device of both) {
      const shown = [device.client.unreadCount, badges(device, "comments"), badges(device, "billing")];
      assert.deepEqual(shown, [2, [1, 0], [1, 0]]);
    }
    const archive = await laptop.client.notifications({ filter: { archived: true } });
    const titles = archive.edges.map(({ node }) => node.title); // the earlier tests' ones after Bob's
    assert.equal(titles[0], "Bob commented");
    assert.ok(!titles.includes("Alice commented") && !titles.includes("Invoice ready"), `${titles}`);
    // And what each device keeps is what the server counts.
    const { categoryCounts } = await graphql(operations.CategoryCounts, {}, server.userToken);
    for (const { client } of both) assert.deepEqual(client.categoryCounts, categoryCounts);
    for (const { events } of both) await events.silent();
  } finally {
    await Promise.all(both.map(({ client }) => client.dispose()));
  }
});

test("two clients of one user: a collapse key, snooze and unsnooze, mute and bulk delete, live on both", async () => {
  const laptop = tidingsClient({ getToken: () => server.userToken });
  const phone = tidingsClient({ getToken: () => server.userToken });
  const both = [laptop, phone];
  const next = async (kind) => {
    const [onLaptop, onPhone] = await Promise.all(both.map(({ events }) => events.next(10_000, kind)));
    assert.deepEqual(onPhone, onLaptop);
    assert.equal(onLaptop.kind, kind);
    return onLaptop;
  };
  const counts = (device) => [device.client.unreadCount, device.client.unseenCount];
  try {
    // What the earlier tests left, wherever it is: gone, so that the counts start at zero.
    await laptop.client.deleteNotifications({}, null);
    const page = await laptop.client.notifications({ filter: { archived: null, snoozed: null } });
    assert.deepEqual([page.edges, page.unreadCount, page.unseenCount], [[], 0, 0]);
    const mutedLists = [];
    laptop.client.onMutedCategories((list) => mutedLists.push(list));
    for (const { client } of both) {
      await client.fetchCategoryCounts();
      assert.deepEqual(await client.fetchMutedCategories(), []);
      client.start({ after: page.feedCursor, unreadCount: 0, unseenCount: 0 });
    }

    // Two creates with one collapse key: one row, replaced in place, its count one more.
    const alice = await createNotification("Alice commented", { category: "comments", collapseKey: "post-1" });
    assert.equal((await next("CREATED")).notification.collapsedCount, 0);
    await createNotification("Alice and Bob commented", { category: "comments", collapseKey: "post-1" });
    const updated = (await next("UPDATED")).notification;
    assert.deepEqual([updated.id, updated.title, updated.collapsedCount], [alice.id, "Alice and Bob commented", 1]);
    for (const device of both) assert.deepEqual(counts(device), [1, 1]);

    // Snoozed on the phone, out of the counts on both; unsnoozed on the laptop: back on top, unread and unseen.
    const until = new Date(Date.now() + 3_600_000);
    const snoozed = await phone.client.snooze(alice.id, until);
    assert.deepEqual([snoozed.snoozed, Date.parse(snoozed.snoozedUntil)], [true, until.getTime()]);
    assert.equal(Date.parse((await next("SNOOZED")).notification.snoozedUntil), until.getTime());
    for (const device of both) assert.deepEqual(counts(device), [0, 0]);
    const back = await laptop.client.unsnooze(alice.id);
    assert.deepEqual([back.snoozed, back.snoozedUntil, back.read, back.seen], [false, null, false, false]);
    const unsnoozed = await next("UNSNOOZED");
    assert.deepEqual([unsnoozed.sequence, unsnoozed.notification.sequence], [back.sequence, back.sequence]);
    for (const device of both) assert.deepEqual(counts(device), [1, 1]);
    assert.deepEqual(await phone.client.unsnooze(alice.id), back, "not snoozed: unchanged, and no event");

    // Muted on the phone: both keep the new set from the PREFERENCES event; a new one there arrives read, uncounted.
    assert.deepEqual(await phone.client.setMutedCategories(["social"]), ["social"]);
    assert.deepEqual((await next("PREFERENCES")).mutedCategories, ["social"]);
    for (const { client } of both) assert.deepEqual(client.mutedCategories, ["social"]);
    assert.deepEqual(mutedLists, [["social"]]);
    await createNotification("Party on Friday", { category: "social" });
    const party = (await next("CREATED")).notification;
    assert.deepEqual([party.muted, party.read, party.seen], [true, true, true]);
    for (const device of both) assert.deepEqual(counts(device), [1, 1]);

    // Delete all read, up to the last event the phone delivered: the muted one and the comment once read.
    await laptop.client.markRead(alice.id);
    await next("READ");
    const deleted = await phone.client.deleteNotifications({ read: true });
    assert.deepEqual([deleted.count, deleted.hasMore, deleted.unreadCount, deleted.unseenCount], [2, false, 0, 0]);
    const bulk = await next("BULK_DELETED");
    assert.deepEqual([bulk.count, bulk.deleted, bulk.upToSequence], [2, { read: true, archived: null, category: null }, party.sequence]);
    const left = await laptop.client.notifications({ filter: { archived: null, snoozed: null } });
    assert.deepEqual(left.edges, []);

    await laptop.client.setMutedCategories([]); // as the later tests expect
    await next("PREFERENCES");
    for (const { client } of both) assert.deepEqual(client.mutedCategories, []);
    for (const { events } of both) await events.silent();
  } finally {
    await Promise.all(both.map(({ client }) => client.dispose()));
  }
});

test("a refused token that getToken cannot replace (4403): failed, not retried; start() with a fresh one goes live", async () => {
  const refusals = [];
  let token = server.expiredToken;
  const { client, errors, retries, states } = tidingsClient({
    getToken: (refused) => {
      if (refused) refusals.push(refused);
      return token;
    },
  });
  try {
    client.start();
    await eventually(() => client.state === "failed", 10_000, "failed");
    assert.deepEqual(states, ["connecting", "reconnecting", "failed"]);
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0].code, 4403);
    assert.deepEqual(client.failure, refusals[0]);
    assert.match(client.failure.reason, /forbidden|expired/i); // the server's close reason
    assert.deepEqual(retries, [], "no reconnect with the refused token");
    assert.equal(errors[0]?.code, 4403, "onError got the close");

    token = server.userToken; // the app signed in again
    client.start();
    await eventually(() => client.state === "live", 10_000, "live");
    assert.equal(client.failure, null);
    assert.deepEqual(states.slice(3), ["connecting", "live"]);
  } finally {
    await client.dispose();
  }
});

test("too many connections (4403 with the same token): failed with the server's reason", async () => {
  // A plain graphql-ws connection of the same user holds the one slot the strict server allows.
  const holder = createClient({
    url: strict.wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${server.userToken}` },
  });
  const { client, retries } = tidingsClient({ url: strict.graphqlUrl, getToken: () => server.userToken });
  try {
    await new Promise((resolve, reject) => {
      holder.on("connected", resolve);
      holder.on("closed", (event) => reject(new Error(`the holder was closed: ${event.code} ${event.reason}`)));
    });
    client.start();
    await eventually(() => client.state === "failed", 10_000, "failed");
    assert.deepEqual(client.failure, { code: 4403, reason: "Too many connections" });
    assert.deepEqual(retries, []);
  } finally {
    await client.dispose();
    await holder.dispose();
  }
});

test("a document over the server's limits: failed with GRAPHQL_PARSE_FAILED and the reason, not retried", async () => {
  const { client, errors, retries, states } = tidingsClient({
    url: strict.graphqlUrl,
    getToken: () => env("TIDINGS_SECOND_USER_TOKEN"),
  });
  try {
    client.start();
    await eventually(() => client.state === "failed", 10_000, "failed");
    assert.equal(client.failure.code, "GRAPHQL_PARSE_FAILED");
    assert.match(client.failure.reason, /10 tokens/);
    assert.deepEqual(states, ["connecting", "live", "failed"]);
    assert.deepEqual(retries, [], "no reconnect");
    assert.equal(errors.length, 1);
  } finally {
    await client.dispose();
  }
  assert.equal(client.state, "stopped");
  assert.equal(client.failure, null);
});

test("a token that comes later than the server waits (4408): retried, then live", async () => {
  let calls = 0;
  const { client, errors, retries, states } = tidingsClient({
    getToken: async () => {
      // The first one only once the server gave up waiting for connection_init (TIDINGS_CONNECTION_INIT_TIMEOUT).
      if (calls++ === 0) await eventually(() => errors.length > 0, 30_000, "the server's close");
      return server.userToken;
    },
  });
  try {
    client.start();
    await eventually(() => client.state === "live", 30_000, "live");
    assert.deepEqual(
      errors.map((error) => [error.code, error.reason]),
      [[4408, "Connection initialisation timeout"]],
    );
    assert.deepEqual(retries, [1]);
    assert.deepEqual(states, ["connecting", "reconnecting", "live"]);
  } finally {
    await client.dispose();
  }
});

/**
 * A graphql-transport-ws peer that closes each connection after its connection_init with the next of `closes`
 * ([code, reason], "drop" for a connection lost without a close frame, "none" for one without a code), and accepts
 * it once they have run out. For the codes no tidings server sends on purpose.
 */
async function closingPeer(closes) {
  const peer = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => peer.once("listening", resolve));
  const state = { connections: 0, url: `ws://127.0.0.1:${peer.address().port}/graphql`, close: () => peer.close() };
  peer.on("connection", (socket) => {
    const close = closes[state.connections++];
    socket.on("message", (data) => {
      if (JSON.parse(String(data)).type !== "connection_init") return;
      if (close === undefined) socket.send(JSON.stringify({ type: "connection_ack" }));
      else if (close === "drop") socket.terminate();
      else if (close === "none") socket.close();
      else socket.close(...close);
    });
  });
  return state;
}

const FATAL_CODES = [1002, 1003, 1007, 1008, 1009, 1010, 1011, 4004, 4005, 4400, 4401, 4406, 4409, 4429, 4500];
const RETRIED = [[1000], [1001], ["none", 1005], ["drop", 1006], [1012], [1013], [1014], [4403], [4408], [4499], [4504]];

test("every close graphql-ws treats as fatal: failed with its code and reason, no second connection", async () => {
  for (const code of FATAL_CODES) {
    const peer = await closingPeer([[code, `closed with ${code}`]]);
    const { client, retries } = tidingsClient({ wsUrl: peer.url, getToken: () => "token" });
    try {
      client.start();
      await eventually(() => client.state !== "connecting", 10_000, `a state after ${code}`);
      assert.deepEqual([client.state, client.failure], ["failed", { code, reason: `closed with ${code}` }]);
      assert.deepEqual([retries, peer.connections], [[], 1], `${code}`);
    } finally {
      await client.dispose();
      peer.close();
    }
  }
});

test("every close graphql-ws retries: reconnects with backoff and goes live", async () => {
  for (const [close, code = close] of RETRIED) {
    const peer = await closingPeer([typeof close === "number" ? [close, "try again"] : close]);
    // A 4403 asks getToken again: this peer takes any token.
    let token = 0;
    const { client, errors } = tidingsClient({ wsUrl: peer.url, getToken: () => `token ${token++}` });
    try {
      client.start();
      await eventually(() => client.state === "live", 10_000, `live after ${code}`);
      assert.equal(peer.connections, 2, `${code}`);
      assert.equal(client.failure, null);
      if (code !== 1000) assert.equal(errors[0]?.code, code); // graphql-ws retries a 1000 by itself, unreported
    } finally {
      await client.dispose();
      peer.close();
    }
  }
});

test("a getToken that fails is reported and retried like a network error", async () => {
  let calls = 0;
  const { client, errors, retries } = tidingsClient({
    getToken: () => {
      if (calls++ === 0) throw new Error("the sign-in service is unreachable");
      return server.userToken;
    },
  });
  try {
    client.start();
    await eventually(() => client.state === "live", 10_000, "live");
    assert.deepEqual(errors.map((error) => error.message), ["the sign-in service is unreachable"]);
    assert.deepEqual(retries, [1]);
  } finally {
    await client.dispose();
  }
});

test("the client's operations are those of graphql/operations/, generated at build time", () => {
  assert.deepEqual(Object.keys(clientOperations).sort(), Object.keys(operations).sort());
  for (const [name, text] of Object.entries(operations)) assert.equal(clientOperations[name], print(parse(text)), name);
});
