// The inbox operations of graphql/operations/ (seen, unread again, archive, categories, collapse, mute, bulk delete,
// batch create) from graphql-ws, on two devices.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { Inbox } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

function device() {
  return createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${server.userToken}` }),
    retryAttempts: 0,
  });
}

function follow(client, after) {
  const events = new Inbox();
  const dispose = client.subscribe(
    { query: operations.NotificationEvents, variables: { after } },
    {
      next: (result) => {
        assert.equal(result.errors, undefined, JSON.stringify(result.errors));
        events.push(result.data.notificationEvents);
      },
      error: (error) => events.push({ error: String(error) }),
      complete: () => {},
    },
  );
  return { events, dispose };
}

const me = (query, variables) => graphql(query, variables, server.userToken);

test("two devices see seen, unread again, archive and categories in order; the counts match on both", async () => {
  const page = (await me(operations.Notifications, { first: 20 })).notifications;
  const phone = device();
  const laptop = device();
  try {
    const onPhone = follow(phone, page.feedCursor);
    const onLaptop = follow(laptop, page.feedCursor);
    const comment = await createNotification("Alice commented", { category: "comments" });
    await createNotification("Invoice ready", { category: "billing" });
    const opened = (await me(operations.Notifications, { first: 20 })).notifications;
    assert.equal(opened.unseenCount, 2);
    const seen = (await me(operations.MarkAllNotificationsSeen, { upTo: opened.feedCursor })).markAllNotificationsSeen;
    assert.deepEqual([seen.count, seen.unseenCount], [2, 0]);
    assert.equal((await me(operations.UnseenCount, {})).unseenCount, 0);
    await me(operations.MarkNotificationRead, { id: comment.id });
    const unread = (await me(operations.MarkNotificationUnread, { id: comment.id })).markNotificationUnread;
    assert.equal(unread.read, false);
    const archived = (await me(operations.ArchiveNotification, { id: comment.id })).archiveNotification;
    assert.equal(archived.archived, true);
    const tabs = (await me(operations.CategoryCounts, {})).categoryCounts;
    assert.deepEqual(tabs, [
      { category: "billing", unreadCount: 1, unseenCount: 0 },
      { category: "comments", unreadCount: 0, unseenCount: 0 },
    ]);
    await me(operations.UnarchiveNotification, { id: comment.id });
    await me(operations.MarkNotificationRead, { id: comment.id });
    const all = (await me(operations.ArchiveAllRead, { upTo: null })).archiveAllRead;
    assert.deepEqual([all.count, all.unreadCount, all.unseenCount], [1, 1, 0]);

    const expected = [
      ["CREATED", 1, 1, "comments"],
      ["CREATED", 2, 2, "billing"],
      ["ALL_SEEN", 2, 0, null],
      ["READ", 1, 0, "comments"],
      ["UNREAD", 2, 0, "comments"],
      ["ARCHIVED", 1, 0, "comments"],
      ["UNARCHIVED", 2, 0, "comments"],
      ["READ", 1, 0, "comments"],
      ["ALL_ARCHIVED", 1, 0, null],
    ];
    const phoneEvents = await onPhone.events.take(expected.length);
    const laptopEvents = await onLaptop.events.take(expected.length);
    assert.deepEqual(laptopEvents, phoneEvents);
    assert.deepEqual(
      phoneEvents.map((e) => [e.kind, e.unreadCount, e.unseenCount, e.category]),
      expected,
    );
    // Each event brings the badges of the tabs it changed.
    assert.deepEqual(phoneEvents[2].categoryCounts, [
      { category: "billing", unreadCount: 1, unseenCount: 0 },
      { category: "comments", unreadCount: 1, unseenCount: 0 },
    ]);
    assert.deepEqual(phoneEvents[5].categoryCounts, [{ category: "comments", unreadCount: 0, unseenCount: 0 }]);
    const after = (await me(operations.Notifications, { first: 20 })).notifications;
    assert.deepEqual(
      after.edges.map((edge) => edge.node.title),
      ["Invoice ready"],
    );
    const archive = (await me(operations.Notifications, { first: 20, filter: { archived: true } })).notifications;
    assert.deepEqual(
      archive.edges.map((edge) => [edge.node.title, edge.node.archived, edge.node.category]),
      [["Alice commented", true, "comments"]],
    );
    onPhone.dispose();
    onLaptop.dispose();
  } finally {
    await phone.dispose();
    await laptop.dispose();
  }
});

test("two devices see a collapse update in place, a mute and a bulk delete, in order; the list agrees", async () => {
  const page = (await me(operations.Notifications, { first: 20 })).notifications;
  const phone = device();
  const laptop = device();
  try {
    const onPhone = follow(phone, page.feedCursor);
    const onLaptop = follow(laptop, page.feedCursor);
    const first = await createNotification("Alice commented", { category: "comments", collapseKey: "post-7" });
    const folded = await createNotification("Alice and Bob commented", { category: "comments", collapseKey: "post-7" });
    assert.deepEqual([folded.id, folded.collapsedCount, folded.collapseKey], [first.id, 1, "post-7"]);
    const muted = (await me(operations.SetMutedCategories, { categories: ["social"] })).setMutedCategories;
    assert.deepEqual(muted.mutedCategories, ["social"]);
    assert.deepEqual((await me(operations.MutedCategories, {})).mutedCategories, ["social"]);
    const quiet = await createNotification("Carol followed you", { category: "social" });
    assert.deepEqual([quiet.read, quiet.seen, quiet.muted], [true, true, true]);

    const before = page.unreadCount;
    const expected = [
      ["CREATED", before + 1, "comments", null],
      ["UPDATED", before + 1, "comments", null],
      ["PREFERENCES", before + 1, null, ["social"]],
      ["CREATED", before + 1, "social", null],
    ];
    const phoneEvents = await onPhone.events.take(expected.length);
    const laptopEvents = await onLaptop.events.take(expected.length);
    assert.deepEqual(laptopEvents, phoneEvents);
    assert.deepEqual(
      phoneEvents.map((e) => [e.kind, e.unreadCount, e.category, e.mutedCategories]),
      expected,
    );
    assert.equal(phoneEvents[1].notification.title, "Alice and Bob commented");
    assert.equal(phoneEvents[1].notification.sequence, phoneEvents[1].sequence);
    const after = (await me(operations.Notifications, { first: 2 })).notifications;
    assert.deepEqual(
      after.edges.map((edge) => [edge.node.title, edge.node.collapsedCount, edge.node.muted]),
      [
        ["Carol followed you", 0, true],
        ["Alice and Bob commented", 1, false],
      ],
    );
    await me(operations.SetMutedCategories, { categories: [] });
    const gone = (await me(operations.DeleteNotifications, { filter: { category: "social" } })).deleteNotifications;
    assert.deepEqual([gone.count, gone.hasMore], [1, false]);
    const [preferences, deleted] = await onPhone.events.take(2);
    assert.deepEqual([preferences.kind, preferences.mutedCategories], ["PREFERENCES", []]);
    assert.deepEqual([deleted.kind, deleted.count, deleted.deleted], [
      "BULK_DELETED",
      1,
      { read: null, archived: null, category: "social" },
    ]);
    assert.deepEqual(await onLaptop.events.take(2), [preferences, deleted]);
    onPhone.dispose();
    onLaptop.dispose();
  } finally {
    await phone.dispose();
    await laptop.dispose();
  }
});

test("a service creates a batch in one call; results in input order, both devices see each in order", async () => {
  const page = (await me(operations.Notifications, { first: 20 })).notifications;
  const phone = device();
  const laptop = device();
  try {
    const onPhone = follow(phone, page.feedCursor);
    const onLaptop = follow(laptop, page.feedCursor);
    const inputs = ["first", "second", "third"].map((title) => ({ userId: server.user, title, message: title }));
    const made = (await graphql(operations.CreateNotifications, { inputs }, server.serviceToken)).createNotifications;
    assert.deepEqual(
      made.map((n) => n.title),
      ["first", "second", "third"],
    );
    const phoneEvents = await onPhone.events.take(3);
    assert.deepEqual(await onLaptop.events.take(3), phoneEvents);
    assert.deepEqual(
      phoneEvents.map((e) => [e.kind, e.notification.id]),
      made.map((n) => ["CREATED", n.id]),
    );
    onPhone.dispose();
    onLaptop.dispose();
  } finally {
    await phone.dispose();
    await laptop.dispose();
  }
});

test("a snoozed notification leaves the list and comes back on every device; presence counts the devices", async () => {
  const page = (await me(operations.Notifications, { first: 20 })).notifications;
  const phone = device();
  const laptop = device();
  try {
    const onPhone = follow(phone, page.feedCursor);
    const onLaptop = follow(laptop, page.feedCursor);
    const reminder = await createNotification("Reply to Bob", { category: "snoozing" });
    const until = new Date(Date.now() + 2_000).toISOString();
    const snoozed = (await me(operations.SnoozeNotification, { id: reminder.id, until })).snoozeNotification;
    assert.deepEqual([snoozed.id, snoozed.snoozed], [reminder.id, true]);
    const hidden = (await me(operations.Notifications, { first: 20 })).notifications;
    assert.ok(!hidden.edges.some((edge) => edge.node.id === reminder.id), "out of the list while snoozed");
    const online = (await graphql(operations.Presence, { userId: server.user }, server.serviceToken)).presence;
    assert.deepEqual([online.userId, online.online], [server.user, true]);
    assert.ok(online.devices >= 2, `two devices follow the feed: ${JSON.stringify(online)}`);
    const kinds = ["CREATED", "SNOOZED", "UNSNOOZED"];
    const phoneEvents = await onPhone.events.take(kinds.length, 30_000, "created, snoozed, back");
    const laptopEvents = await onLaptop.events.take(kinds.length, 30_000, "created, snoozed, back");
    assert.deepEqual(laptopEvents, phoneEvents);
    assert.deepEqual(
      phoneEvents.map((e) => [e.kind, e.notification?.id]),
      kinds.map((kind) => [kind, reminder.id]),
    );
    const back = (await me(operations.Notifications, { first: 20 })).notifications;
    assert.equal(back.edges[0].node.id, reminder.id, "back on top");
    assert.equal(back.edges[0].node.read, false);
    // Snoozed for an hour, then unsnoozed now (UnsnoozeNotification.graphql): the same UNSNOOZED on both devices.
    await me(operations.SnoozeNotification, { id: reminder.id, until: new Date(Date.now() + 3_600_000).toISOString() });
    const now = (await me(operations.UnsnoozeNotification, { id: reminder.id })).unsnoozeNotification;
    assert.deepEqual([now.id, now.snoozed, now.read, now.seen], [reminder.id, false, false, false]);
    const [phoneAgain, laptopAgain] = await Promise.all(
      [onPhone, onLaptop].map(({ events }) => events.take(2, 10_000, "snoozed, unsnoozed")),
    );
    assert.deepEqual(laptopAgain, phoneAgain);
    assert.deepEqual(
      phoneAgain.map((e) => [e.kind, e.notification.snoozed]),
      [["SNOOZED", true], ["UNSNOOZED", false]],
    );
    assert.equal(phoneAgain[1].notification.sequence, now.sequence, "on top");
    onPhone.dispose();
    onLaptop.dispose();
  } finally {
    await phone.dispose();
    await laptop.dispose();
  }
});
