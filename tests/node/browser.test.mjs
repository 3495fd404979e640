// The dashboard and GraphiQL in headless Chromium (Debian's, driven by playwright-core) against a real server.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { env, pause } from "./lib/harness.mjs";
import { createNotification, server } from "./lib/tidings.mjs";

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
  await page.goto(server.dashboardLink);
  await page.getByLabel("User name").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await live(page);
  assert.equal(new URL(page.url()).hash, "", "the sign-in code is taken out of the address bar");
}

async function signInWithToken(page, token) {
  await page.goto("/");
  await page.getByLabel("User token").fill(token);
  await page.getByRole("button", { name: "Use this token" }).click();
  await live(page);
}

const connection = (page) => page.getByRole("status").filter({ has: page.locator(".dot") });
const live = (page) => connection(page).filter({ hasText: "Live" }).waitFor(WAIT);
const item = (page, title) => page.getByRole("listitem").filter({ has: page.getByText(title, { exact: true }) });
const bell = (page, unread) =>
  page.getByRole("button", { name: unread ? `Notifications, ${unread} unread` : "Notifications, none unread" });

/** Run one operation of a document with several: ▶ offers them once GraphiQL has parsed the editor. */
async function runOperation(page, name) {
  await page.locator(".graphiql-query-editor").getByText(`subscription ${name}`).waitFor(WAIT);
  const menuItem = page.getByRole("menuitem", { name });
  for (let attempt = 1; ; attempt++) {
    await page.getByRole("button", { name: /^Execute query/ }).click(WAIT);
    if (await menuItem.waitFor({ timeout: 2_000 }).then(() => true, () => false)) break;
    await page.keyboard.press("Escape");
    if (attempt === 5) throw new Error(`GraphiQL offered no operation ${name}`);
  }
  await menuItem.click(WAIT);
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
  await phone.page.goto("/");
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
  await graphiql.goto("/graphql");
  await runOperation(graphiql, "Live"); // the default document has Live and Inbox
  await graphiql.getByRole("button", { name: /^Stop query/ }).waitFor(WAIT); // subscribed
  await createNotification("Seen in GraphiQL", { userId: user, type: "SUCCESS" });
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
