// The dashboard and GraphiQL in headless Chromium (Debian's, driven by playwright-core) against a real server.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { env, eventually, pause } from "./lib/harness.mjs";
import { createNotification, graphql, operations, server } from "./lib/tidings.mjs";

// The flags that work on this kind of machine (FIELD-NOTES.md); launch() gives every run a fresh profile.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WAIT = { timeout: 15_000 };
const artifacts = env("TIDINGS_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

let browser;
const problems = []; // console errors and uncaught exceptions, from every page

before(async () => {
  browser = await chromium.launch({ executablePath: env("TIDINGS_CHROMIUM"), args: FLAGS });
});

after(async () => {
  await browser?.close();
});

/** A device: its own browser context (storage, cookies), one page. */
async function device(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, baseURL: server.url });
  const page = await context.newPage();
  page.on("console", (message) => message.type() === "error" && problems.push(`${page.url()}: ${message.text()}`));
  page.on("pageerror", (error) => problems.push(`${page.url()}: ${error.message}`));
  return { context, page };
}

/** Open the link `tidings serve` printed (it holds the sign-in code), then pick a name. */
async function signInWithName(page, user) {
  await open(page, server.dashboardLink);
  await page.getByLabel("User name").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await live(page);
  assert.equal(new URL(page.url()).hash, "", "the sign-in code is taken out of the address bar");
}

async function signInWithToken(page, token) {
  await open(page, "/");
  await page.getByLabel("User token").fill(token);
  await page.getByRole("button", { name: "Use this token" }).click();
  await live(page);
}

const connection = (page) => page.getByRole("status").filter({ has: page.locator(".dot") });
const live = (page) => connection(page).filter({ hasText: "Live" }).waitFor(WAIT);
const item = (page, title) => page.getByRole("listitem").filter({ has: page.getByText(title, { exact: true }) });
/** The bell's badge: the unseen count (new since the inbox was last opened). */
const bell = (page, unseen) =>
  page.getByRole("button", { name: unseen ? `Notifications, ${unseen} new` : "Notifications, none new" });
/** A tab and its unread badge ("All", a category, or "Archived" with no badge). */
const tab = (page, label, unread) =>
  page.getByRole("tab", { name: unread === undefined ? label : `${label}, ${unread || "none"} unread`, exact: true });
const unreadItem = (page, title) => item(page, title).and(page.locator(".unread"));
const readItem = (page, title) => item(page, title).and(page.locator(":not(.unread)"));

/** Run one operation of a document with several: ▶ offers them once GraphiQL has parsed the editor. */
async function runOperation(page, name) {
  await queryEditor(page).getByText(new RegExp(`(query|mutation|subscription)\\s${name}\\b`)).waitFor(WAIT);
  const menuItem = page.getByRole("menuitem", { name });
  for (let attempt = 1; ; attempt++) {
    await page.getByRole("button", { name: /^Execute query/ }).click(WAIT);
    if (await menuItem.waitFor({ timeout: 2_000 }).then(() => true, () => false)) break;
    await page.keyboard.press("Escape");
    if (attempt === 5) throw new Error(`GraphiQL offered no operation ${name}`);
  }
  await menuItem.click(WAIT);
}

const queryEditor = (page) => page.locator(".graphiql-query-editor");
// The region holds the variables and the headers editors, one of them hidden.
const variablesEditor = (page) =>
  page.getByRole("region", { name: "Variables" }).locator(".monaco-editor").filter({ visible: true });
const activeTab = (page) => page.getByRole("tab", { selected: true });
/** The operation in the address bar, as GraphiQL links carry it. */
const linked = (page) => {
  const params = new URL(page.url()).searchParams;
  return { query: params.get("query"), variables: params.get("variables"), operationName: params.get("operationName") };
};

/** Wait until the address carries `expected` (some of query, variables, operationName). */
async function untilLinked(page, expected) {
  const holds = () => Object.entries(expected).every(([name, value]) => linked(page)[name] === value);
  await eventually(holds, WAIT.timeout, `the address to carry ${JSON.stringify(expected)}`).catch((error) => {
    throw new Error(`${error.message}; it has ${JSON.stringify(linked(page))}`);
  });
}

/** Go to `path`: the server must answer with the page itself, not an error page in its place. */
async function open(page, path, options) {
  const before = page.url();
  const response = await page.goto(path, options);
  if (response === null) {
    // Only the fragment changed: the page stays, nothing is loaded.
    assert.equal(page.url().split("#")[0], before.split("#")[0]);
    return response;
  }
  assert.equal(response.status(), 200, `${path}: ${response.status()} ${await response.text()}`);
  assert.match(response.headers()["content-type"], /^text\/html/);
  return response;
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, name), fullPage: true, animations: "disabled" });
}

test("two devices of one user: a notification appears on both; read on one drops the badge on the other", async () => {
  const user = `${server.user}-devices`;
  const laptop = await device();
  const phone = await device({ width: 390, height: 844 });
  await signInWithName(laptop.page, user);
  // Without the printed link, the page asks for the sign-in code, and the server refuses a wrong one.
  await open(phone.page, "/");
  await phone.page.getByLabel("User name").fill(user);
  await phone.page.getByLabel("Sign-in code").fill("not-the-code-0123456789");
  await phone.page.getByRole("button", { name: "Sign in" }).click();
  await phone.page.getByRole("alert").filter({ hasText: "wrong sign-in code" }).waitFor(WAIT);
  const refused = problems.findIndex((problem) => problem.endsWith("status of 403 (Forbidden)"));
  assert.notEqual(refused, -1, "Chromium reports the refused request");
  problems.splice(refused, 1);
  await signInWithName(phone.page, user); // the link, in the tab already open: only its fragment changes
  await bell(laptop.page, 0).waitFor(WAIT);

  await createNotification("Deploy finished", { userId: user, type: "SUCCESS", message: "v2.4.1 is live on prod" });
  await createNotification("Disk almost full", { userId: user, type: "WARNING", message: "db-1 is at 91%" });
  await createNotification("Payment failed", { userId: user, type: "ERROR", message: "Card declined, order #1042" });
  for (const { page } of [laptop, phone]) {
    await item(page, "Payment failed").waitFor(WAIT);
    await bell(page, 3).waitFor(WAIT);
  }

  await laptop.page.getByRole("button", { name: "Mark “Payment failed” read" }).click();
  await bell(phone.page, 2).waitFor(WAIT); // the other device's badge drops
  await item(phone.page, "Payment failed").and(phone.page.locator(":not(.unread)")).waitFor(WAIT);
  assert.ok(await item(phone.page, "Deploy finished").evaluate((li) => li.classList.contains("unread")));

  await laptop.page.getByRole("button", { name: "Mark all read" }).click();
  await bell(phone.page, 0).waitFor(WAIT);
  assert.equal(await phone.page.locator(".item.unread").count(), 0);

  await createNotification("New comment", { userId: user, type: "INFO", message: "Sam replied to your review" });
  await bell(laptop.page, 1).waitFor(WAIT);
  await screenshot(laptop.page, "dashboard.png");
  await screenshot(phone.page, "dashboard-phone.png");

  // GraphiQL on the laptop: signed in on the dashboard, so its token is in the headers pane already.
  const graphiql = await laptop.context.newPage();
  graphiql.on("pageerror", (error) => problems.push(`graphiql: ${error.message}`));
  await open(graphiql, "/graphql");
  await runOperation(graphiql, "Live"); // the default document has Live and Inbox
  await graphiql.getByRole("button", { name: /^Stop query/ }).waitFor(WAIT); // subscribed
  await createNotification("Seen in GraphiQL", { userId: user, type: "SUCCESS" });
  await untilLinked(graphiql, { operationName: "Live" }); // the address names the operation that runs
  const response = graphiql.locator(".graphiql-response");
  // Monaco renders spaces as no-break spaces: match with \s.
  await response.getByText(/"Seen\sin\sGraphiQL"/).waitFor(WAIT);
  const text = await response.innerText();
  assert.match(text, /"kind":\s"CREATED"/);
  assert.match(text, /"unreadCount":\s2/);
  await screenshot(graphiql, "graphiql.png");

  // The send panel: the page asks for a service token only now, and the other device sees what it sent.
  assert.ok(await laptop.page.getByLabel("Service token").isHidden());
  await laptop.page.getByLabel("Title").fill("Sent from the panel");
  await laptop.page.getByRole("button", { name: "Send notification" }).click();
  await laptop.page.getByText("Sent ✓").waitFor(WAIT);
  await item(phone.page, "Sent from the panel").waitFor(WAIT);

  await laptop.context.close();
  await phone.context.close();
  assert.deepEqual(problems, []);
});

test("tabs by category, the bell cleared by opening, archive and unread: live on a laptop and a phone of one user", async () => {
  const user = `${server.user}-inbox`;
  const laptop = await device();
  const phone = await device({ width: 390, height: 844 });
  await signInWithName(laptop.page, user);
  await signInWithName(phone.page, user);
  for (const { page } of [laptop, phone]) {
    await tab(page, "All", 0).waitFor(WAIT);
    await tab(page, "Archived").waitFor(WAIT);
  }

  await createNotification("Alice commented", { userId: user, category: "comments" });
  await createNotification("Invoice ready", { userId: user, category: "billing", type: "WARNING" });
  await createNotification("Bob commented", { userId: user, category: "comments" });
  for (const { page } of [laptop, phone]) {
    await item(page, "Bob commented").waitFor(WAIT);
    await bell(page, 3).waitFor(WAIT);
    // A tab appears with a category's first notification, its badge from the events' categoryCounts.
    await tab(page, "All", 3).waitFor(WAIT);
    await tab(page, "comments", 2).waitFor(WAIT);
    await tab(page, "billing", 1).waitFor(WAIT);
  }

  // The phone opens the list from the bell: both bells clear, and the notifications stay unread.
  await phone.page.getByRole("button", { name: "Notifications, 3 new" }).click();
  for (const { page } of [laptop, phone]) {
    await bell(page, 0).waitFor(WAIT);
    await page.locator(".item.unseen").first().waitFor({ ...WAIT, state: "detached" });
    assert.equal(await page.locator(".item.unread").count(), 3);
  }

  // Archive on the laptop: gone from the phone's list, and its tab's badge drops.
  await laptop.page.getByRole("button", { name: "Archive “Alice commented”" }).click();
  await item(phone.page, "Alice commented").waitFor({ ...WAIT, state: "detached" });
  await tab(phone.page, "comments", 1).waitFor(WAIT);
  await tab(phone.page, "All", 2).waitFor(WAIT);

  // Read, then unread again on the laptop: both show it on the phone.
  await laptop.page.getByRole("button", { name: "Mark “Bob commented” read" }).click();
  await readItem(phone.page, "Bob commented").waitFor(WAIT);
  await tab(phone.page, "comments", 0).waitFor(WAIT);
  await laptop.page.getByRole("button", { name: "Mark “Bob commented” unread" }).click();
  await unreadItem(phone.page, "Bob commented").waitFor(WAIT);
  await tab(phone.page, "comments", 1).waitFor(WAIT);
  assert.equal(await bell(phone.page, 0).count(), 1, "unread again, but still seen: the bell stays dark");

  // A category's tab shows only its own; the laptop's "Archive all read" reaches it.
  await tab(phone.page, "comments", 1).click();
  await phone.page.getByRole("heading", { name: /Inbox · comments/ }).waitFor(WAIT);
  await item(phone.page, "Invoice ready").waitFor({ ...WAIT, state: "detached" });
  assert.equal(await phone.page.locator(".item").count(), 1);
  await laptop.page.getByRole("button", { name: "Mark “Invoice ready” read" }).click();
  await tab(phone.page, "billing", 0).waitFor(WAIT);
  await laptop.page.getByRole("button", { name: "Archive all read" }).click();
  await item(laptop.page, "Invoice ready").waitFor({ ...WAIT, state: "detached" });
  await screenshot(phone.page, "dashboard-tabs-phone.png");

  // The archive on the phone, and unarchive: back in the laptop's inbox, counted again.
  await tab(phone.page, "Archived").click();
  await item(phone.page, "Invoice ready").waitFor(WAIT);
  await item(phone.page, "Alice commented").waitFor(WAIT);
  assert.equal(await phone.page.locator(".item").count(), 2);
  await phone.page.getByRole("button", { name: "Unarchive “Alice commented”" }).click();
  await item(laptop.page, "Alice commented").waitFor(WAIT);
  await tab(laptop.page, "comments", 2).waitFor(WAIT);
  await item(phone.page, "Alice commented").waitFor({ ...WAIT, state: "detached" });
  // Archived elsewhere while the archive is open: it joins the list live.
  await laptop.page.getByRole("button", { name: "Archive “Bob commented”" }).click();
  await item(phone.page, "Bob commented").waitFor(WAIT);

  // A new category on the way: a new tab on both, and the bell rings again.
  await createNotification("Deploy finished", { userId: user, category: "builds", type: "SUCCESS" });
  for (const { page } of [laptop, phone]) {
    await tab(page, "builds", 1).waitFor(WAIT);
    await bell(page, 1).waitFor(WAIT);
  }
  await item(laptop.page, "Deploy finished").waitFor(WAIT);
  assert.equal(await item(phone.page, "Deploy finished").count(), 0, "not in the archive");
  await screenshot(laptop.page, "dashboard-tabs.png");

  await laptop.context.close();
  await phone.context.close();
  assert.deepEqual(problems, []);
});

test("snooze and its return, a collapse key's update in place, mute and delete all read: live on a laptop and a phone of one user", async () => {
  const user = `${server.user}-snooze`;
  const laptop = await device();
  const phone = await device({ width: 390, height: 844 });
  await signInWithName(laptop.page, user);
  await signInWithName(phone.page, user);
  const both = [laptop, phone];
  const first = (page) => page.locator(".item").first();

  // A collapse key: the second and third creates update the one row in place, on both, with its count.
  const thread = { userId: user, category: "comments", collapseKey: "post-7:comments" };
  await createNotification("Alice commented", thread);
  for (const { page } of both) await item(page, "Alice commented").waitFor(WAIT);
  await createNotification("Report ready", { userId: user, category: "reports" });
  for (const { page } of both) await item(page, "Report ready").waitFor(WAIT);
  await createNotification("Alice and Bob commented", thread);
  await createNotification("Alice, Bob and Carol commented", thread);
  for (const { page } of both) {
    const row = item(page, "Alice, Bob and Carol commented");
    await row.filter({ hasText: "+2 more" }).waitFor(WAIT);
    assert.equal(await page.locator(".item").count(), 2, "one row for the thread, beside the report");
    assert.equal(await first(page).locator(".title").innerText(), "Alice, Bob and Carol commented", "on top");
    await tab(page, "comments", 1).waitFor(WAIT);
    await bell(page, 2).waitFor(WAIT);
  }
  await screenshot(phone.page, "dashboard-collapse-phone.png");

  // Snoozed from the laptop's menu: gone from both inboxes and their counts, listed in the phone's Snoozed tab.
  await laptop.page.getByRole("combobox", { name: "Snooze “Report ready”" }).selectOption("Tomorrow 9:00");
  for (const { page } of both) {
    await item(page, "Report ready").waitFor({ ...WAIT, state: "detached" });
    await tab(page, "All", 1).waitFor(WAIT);
  }
  await tab(phone.page, "Snoozed").click();
  await phone.page.getByRole("heading", { name: "Snoozed" }).waitFor(WAIT);
  const snoozed = item(phone.page, "Report ready");
  await snoozed.filter({ hasText: "Snoozed until" }).waitFor(WAIT);
  assert.equal(await phone.page.locator(".item").count(), 1);
  await screenshot(phone.page, "dashboard-snoozed-phone.png");

  // Unsnoozed on the phone: back on top of the laptop's inbox, unread and unseen (the bell rings again).
  assert.ok(await phone.page.getByRole("button", { name: "Mark all read" }).isHidden(), "the inbox's actions only");
  await laptop.page.getByRole("button", { name: "Notifications, 1 new" }).click(); // the thread: seen
  await bell(phone.page, 0).waitFor(WAIT);
  await phone.page.getByRole("button", { name: "Unsnooze “Report ready”" }).click();
  await item(phone.page, "Report ready").waitFor({ ...WAIT, state: "detached" });
  await unreadItem(laptop.page, "Report ready").and(laptop.page.locator(".unseen")).waitFor(WAIT);
  assert.equal(await first(laptop.page).locator(".title").innerText(), "Report ready", "on top");
  for (const { page } of both) await bell(page, 1).waitFor(WAIT);

  // Snoozed for a moment by another device of the user (the API): the server's timer brings it back on its own.
  const [reportRow] = await laptop.page.locator(".item").evaluateAll((items) => items.map((li) => li.dataset.id));
  const until = new Date(Date.now() + 3_000).toISOString();
  await graphql(operations.SnoozeNotification, { id: reportRow, until }, server.serviceToken);
  await item(phone.page, "Report ready").waitFor(WAIT); // the phone's Snoozed tab lists it, and then lets it go
  await item(phone.page, "Report ready").waitFor({ ...WAIT, state: "detached" });
  await unreadItem(laptop.page, "Report ready").waitFor(WAIT);
  assert.equal(await first(laptop.page).locator(".title").innerText(), "Report ready", "back on top");

  // Muted from the comments tab on the phone: both tabs say so; a new comment arrives read, and no bell rings.
  await tab(phone.page, "comments", 1).click();
  await phone.page.getByRole("button", { name: "Mute comments" }).click();
  for (const { page } of both) await tab(page, "comments, muted", 1).waitFor(WAIT);
  await phone.page.getByRole("button", { name: "Unmute comments" }).waitFor(WAIT);
  await createNotification("Dave commented elsewhere", { userId: user, category: "comments" });
  for (const { page } of both) await readItem(page, "Dave commented elsewhere").waitFor(WAIT);
  for (const { page } of both) await bell(page, 1).waitFor(WAIT);
  await phone.page.getByRole("button", { name: "Unmute comments" }).click();
  for (const { page } of both) await tab(page, "comments", 1).waitFor(WAIT);

  // Delete all read on the laptop, after it asks: the read ones go from both lists, the unread ones stay.
  laptop.page.once("dialog", (dialog) => void dialog.accept());
  await laptop.page.getByRole("button", { name: "Delete all read" }).click();
  for (const { page } of both) {
    await item(page, "Dave commented elsewhere").waitFor({ ...WAIT, state: "detached" });
  }
  await item(laptop.page, "Report ready").waitFor(WAIT);
  await item(laptop.page, "Alice, Bob and Carol commented").waitFor(WAIT);
  await screenshot(laptop.page, "dashboard-snooze.png");

  await laptop.context.close();
  await phone.context.close();
  assert.deepEqual(problems, []);
});

test("a GraphiQL link opens its operation, and the address follows the editors", async () => {
  const { context, page } = await device();
  await signInWithToken(page, server.userToken);
  const query = [
    "subscription Live {\n  notificationEvents {\n    kind\n  }\n}",
    "query Inbox($first: Int) {\n  notifications(first: $first) {\n    unreadCount\n  }\n}",
  ].join("\n\n");
  const link = `/graphql?${new URLSearchParams({ query, variables: '{"first":3}', operationName: "Inbox" })}`;

  // Hold every script and style sheet: the HTML alone must paint the loading state.
  let release;
  const released = new Promise((resolve) => (release = resolve));
  const held = [];
  await page.route("**/assets/**", async (route) => {
    held.push(route.request().url());
    await released;
    await route.continue();
  });
  await open(page, link, { waitUntil: "commit" });
  const loading = page.getByRole("status").filter({ hasText: "Loading GraphiQL…" });
  await loading.waitFor(WAIT);
  await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0, null, WAIT);
  await screenshot(page, "graphiql-loading.png");
  assert.ok(held.length > 0, "the page asked for its script");
  release(); // and the route lets everything through from now on

  // The editors hold the link's operation, and the linked one of its two is selected (by itself GraphiQL selects
  // the first): the tab is named after it.
  await queryEditor(page).getByText("subscription Live {").waitFor(WAIT);
  await queryEditor(page).getByText("query Inbox($first: Int) {").waitFor(WAIT);
  await variablesEditor(page).getByText(/"first":\s3/).waitFor(WAIT);
  await activeTab(page).filter({ hasText: "Inbox" }).waitFor(WAIT);
  await loading.waitFor({ ...WAIT, state: "detached" });

  // Edit the document and the variables, run one operation: the address follows, and never carries the headers
  // (the token). (GraphiQL 5.4 selects the first operation again after an edit; running one selects it.)
  await queryEditor(page).locator(".view-lines").click();
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Escape"); // no completion menu in the way
  await page.keyboard.insertText("\n# edited in the browser");
  const edited = `${query}\n# edited in the browser`;
  await untilLinked(page, { query: edited });
  await variablesEditor(page).locator(".view-lines").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText('{ "first": 5 }');
  await untilLinked(page, { variables: '{"first":5}' });
  await runOperation(page, "Inbox");
  await page.locator(".graphiql-response").getByText(/"unreadCount":\s0/).waitFor(WAIT);
  await untilLinked(page, { query: edited, variables: '{"first":5}', operationName: "Inbox" });
  const shared = page.url();
  assert.ok(!shared.includes(server.userToken) && !new URL(shared).searchParams.has("headers"), shared);

  // The address, opened on another device (nothing in its storage), is the same operation.
  const other = await device();
  await open(other.page, shared);
  await queryEditor(other.page).getByText("# edited in the browser").waitFor(WAIT);
  await variablesEditor(other.page).getByText(/"first":\s5/).waitFor(WAIT);
  await activeTab(other.page).filter({ hasText: "Inbox" }).waitFor(WAIT);
  await screenshot(other.page, "graphiql-link.png");
  await context.close();
  await other.context.close();
  assert.deepEqual(problems, []);

  // GraphiQL's chunk does not come (a network gone, a deploy that removed it): the loading state says so.
  const offline = await browser.newContext({ baseURL: server.url }); // its failed request is no problem here
  const stranded = await offline.newPage();
  await stranded.route("**/assets/graphiql-app-*", (route) => route.abort("internetdisconnected"));
  await open(stranded, "/graphql");
  await stranded.getByRole("alert").filter({ hasText: "GraphiQL could not load" }).waitFor(WAIT);
  await offline.close();
});

test("npm run dev: GraphiQL and the dashboard from web/src, the API through Vite's proxy", async () => {
  const dev = env("TIDINGS_DEV_URL");
  const { context, page } = await device();
  const link = new URLSearchParams({ query: "query Probe {\n  __typename\n}", operationName: "Probe" });
  await open(page, `${dev}/graphiql.html?${link}`);
  await queryEditor(page).getByText("query Probe {").waitFor({ timeout: 120_000 }); // Vite transforms on demand
  await page.getByRole("button", { name: /^Execute query/ }).click(WAIT);
  await page.locator(".graphiql-response").getByText(/"__typename":\s"Query"/).waitFor(WAIT);

  await open(page, `${dev}/`);
  await page.getByLabel("User token").fill(server.userToken);
  await page.getByRole("button", { name: "Use this token" }).click();
  await live(page); // the WebSocket through the proxy too
  await createNotification("Seen through Vite");
  await item(page, "Seen through Vite").waitFor(WAIT);
  await context.close();
  assert.deepEqual(problems, []);
});

test("a server restart while the page is open: every notification of the gap once, none twice", async () => {
  const { context, page } = await device();
  await signInWithToken(page, server.userToken); // the other way in: a pasted token
  for (const title of ["before 1", "before 2"]) await createNotification(title);
  await item(page, "before 2").waitFor(WAIT);

  await pause("stop");
  await connection(page).filter({ hasText: "Reconnecting…" }).waitFor(WAIT);
  await screenshot(page, "dashboard-reconnecting.png");
  // Meanwhile another process on the same database creates notifications; then the server starts again.
  const { created } = await pause("start", { user: server.user });
  await createNotification("after 1");
  await live(page);
  const titles = ["before 1", "before 2", ...created, "after 1"];
  for (const title of titles) await item(page, title).waitFor(WAIT);
  for (const title of titles) assert.equal(await item(page, title).count(), 1, `"${title}" once`);
  assert.equal(await page.locator(".item").count(), titles.length);
  await bell(page, titles.length).waitFor(WAIT);
  await context.close();
  // A console error while the server was down is the browser reporting the refused WebSocket: expected.
  const unexpected = problems.filter((problem) => !/WebSocket connection to .* failed/.test(problem));
  assert.deepEqual(unexpected, []);
});
