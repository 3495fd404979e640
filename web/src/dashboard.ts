// The live inbox at `/`: no framework, a keyed list updated in place, on top of @tidings/client.
import "./dashboard.css";

import {
  type CategoryCount,
  type ConnectionState,
  type DeleteFilter,
  type Notification,
  type NotificationEvent,
  type NotificationPage,
  TidingsClient,
  TidingsError,
} from "@tidings/client";

import createNotification from "../../graphql/operations/CreateNotification.graphql?raw";
import {
  DevTokensRefused,
  type Session,
  claims,
  clearSession,
  dashboardConfig,
  expiresSoon,
  forgetSignInCode,
  loadSession,
  mintDevTokens,
  rememberSignInCode,
  saveSession,
  takeSignInCode,
} from "./session";
import { SNOOZE_PRESETS, fullTime, relativeTime } from "./time";

const PAGE_SIZE = 20;
const GRAPHQL_URL = new URL("/graphql", location.href).href;
const STATE_LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  resyncing: "Resyncing…",
  stopped: "Offline",
  failed: "Disconnected",
};
const TYPE_ICONS: Record<Notification["type"], string> = { INFO: "i", SUCCESS: "✓", WARNING: "!", ERROR: "×" };

function $<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

const ui = {
  loading: $("loading"),
  connection: $("connection"),
  bell: $<HTMLButtonElement>("bell"),
  badge: $("badge"),
  account: $("account"),
  accountName: $("account-name"),
  signOut: $<HTMLButtonElement>("sign-out"),
  signIn: $("sign-in"),
  devSignIn: $<HTMLFormElement>("dev-sign-in"),
  devUser: $<HTMLInputElement>("dev-user"),
  devCodeField: $("dev-code-field"),
  devCode: $<HTMLInputElement>("dev-code"),
  signInOr: $("sign-in-or"),
  tokenSignIn: $<HTMLFormElement>("token-sign-in"),
  token: $<HTMLTextAreaElement>("token"),
  signInError: $("sign-in-error"),
  workspace: $("workspace"),
  inboxTitle: $("inbox-title"),
  viewTitle: $("view-title"),
  unreadSummary: $("unread-summary"),
  markAll: $<HTMLButtonElement>("mark-all"),
  archiveAll: $<HTMLButtonElement>("archive-all"),
  deleteRead: $<HTMLButtonElement>("delete-read"),
  emptyArchive: $<HTMLButtonElement>("empty-archive"),
  mute: $<HTMLButtonElement>("mute"),
  tabs: $("tabs"),
  list: $<HTMLOListElement>("list"),
  empty: $("empty"),
  emptyText: $("empty-text"),
  loadMore: $<HTMLButtonElement>("load-more"),
  sendForm: $<HTMLFormElement>("send-form"),
  sendUser: $<HTMLInputElement>("send-user"),
  sendTitle: $<HTMLInputElement>("send-title-input"),
  sendMessage: $<HTMLTextAreaElement>("send-message"),
  sendCategory: $<HTMLInputElement>("send-category"),
  serviceTokenField: $("service-token-field"),
  serviceToken: $<HTMLTextAreaElement>("service-token"),
  sendStatus: $("send-status"),
};

/** What the list shows: the inbox (all of it, or one category's tab), the snoozed ones, or the archive. */
type View = { list: "inbox"; category: string | null } | { list: "snoozed" } | { list: "archived" };
const ALL: View = { list: "inbox", category: null };
const MAX_DELETE_CALLS = 100; // "delete all read" / "empty archive": calls of at most TIDINGS_MAX_BULK_DELETE each

/** The list as shown: notifications by id (newest first when rendered), the next page, the badges. */
const inbox = {
  view: ALL as View,
  items: new Map<string, Notification>(),
  endCursor: null as string | null,
  hasNextPage: false,
  unreadCount: 0,
  unseenCount: 0,
  categories: [] as readonly CategoryCount[],
  muted: [] as readonly string[],
  elements: new Map<string, HTMLLIElement>(),
  tabs: new Map<string, HTMLButtonElement>(), // by key: "all", "snoozed", "archived", "category:<name>"
};
/** Events that arrived while a page of the list was on its way: applied on top of it once it is there. */
let heldEvents: NotificationEvent[] | null = null;
let reloads = 0;

let session: Session | null = null;
let client: TidingsClient | null = null;
/** What the development endpoint wants with every request: from the printed link, or typed in once. */
let signInCode: string | null = null;

// ---- rendering -------------------------------------------------------------------------------------------------

function renderConnection(state: ConnectionState): void {
  ui.connection.dataset.state = state;
  ui.connection.querySelector(".label")!.textContent = STATE_LABELS[state];
  // Why it gave up (the server's close reason), for the one who hovers.
  ui.connection.title = state === "failed" && client?.failure ? `${client.failure.code} ${client.failure.reason}` : "";
}

const badgeText = (count: number): string => (count > 99 ? "99+" : String(count));

/** The bell shows what is new (unseen); the heading, the tabs and the title what is unread. */
function renderBadge(): void {
  const unseen = inbox.unseenCount;
  ui.badge.hidden = unseen === 0;
  ui.badge.textContent = badgeText(unseen);
  ui.bell.setAttribute("aria-label", unseen === 0 ? "Notifications, none new" : `Notifications, ${unseen} new`);
  const count = inbox.unreadCount;
  const view = inbox.view;
  const shown = view.list !== "inbox" ? null : view.category === null ? count : categoryCount(view.category).unreadCount;
  ui.unreadSummary.textContent = shown === null ? "" : shown === 0 ? "· all read" : `· ${shown} unread`;
  ui.markAll.disabled = count === 0;
  ui.markAll.hidden = ui.archiveAll.hidden = ui.deleteRead.hidden = view.list !== "inbox";
  ui.emptyArchive.hidden = view.list !== "archived";
  // Mute from a category's tab: its new notifications arrive read and seen, and ring no bell.
  ui.mute.hidden = view.list !== "inbox" || view.category === null;
  if (view.list === "inbox" && view.category !== null) {
    const action = inbox.muted.includes(view.category) ? "Unmute" : "Mute";
    ui.mute.textContent = `${action} ${view.category}`;
    ui.mute.setAttribute("aria-pressed", String(action === "Unmute"));
  }
  document.title = count === 0 ? "tidings · inbox" : `(${count}) tidings · inbox`;
  renderTabs();
}

function categoryCount(category: string): CategoryCount {
  return inbox.categories.find((c) => c.category === category) ?? { category, unreadCount: 0, unseenCount: 0 };
}

const viewKey = (view: View): string =>
  view.list !== "inbox" ? view.list : view.category === null ? "all" : `category:${view.category}`;

/**
 * All, a tab per category the user has had (by name) with its unread badge and whether it is muted, Snoozed,
 * Archived; in place, like the list.
 */
function renderTabs(): void {
  const tabs: { key: string; label: string; view: View; unread: number | null; muted: boolean }[] = [
    { key: "all", label: "All", view: ALL, unread: inbox.unreadCount, muted: false },
    ...inbox.categories.map(({ category, unreadCount }) => ({
      key: `category:${category}`,
      label: category,
      view: { list: "inbox", category } as View,
      unread: unreadCount,
      muted: inbox.muted.includes(category),
    })),
    { key: "snoozed", label: "Snoozed", view: { list: "snoozed" }, unread: null, muted: false },
    { key: "archived", label: "Archived", view: { list: "archived" }, unread: null, muted: false },
  ];
  const selected = viewKey(inbox.view);
  tabs.forEach(({ key, label, view, unread, muted }, index) => {
    let tab = inbox.tabs.get(key);
    if (!tab) {
      tab = document.createElement("button");
      tab.type = "button";
      tab.className = "tab";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", "list");
      tab.innerHTML = `<span class="tab-label"></span><span class="tab-muted" aria-hidden="true">muted</span>
        <span class="tab-badge" aria-hidden="true"></span>`;
      tab.querySelector(".tab-label")!.textContent = label;
      tab.addEventListener("click", () => void choose(view));
      inbox.tabs.set(key, tab);
    }
    tab.dataset.key = key;
    tab.setAttribute("aria-selected", String(key === selected));
    tab.tabIndex = key === selected ? 0 : -1;
    const name = muted ? `${label}, muted` : label;
    tab.setAttribute("aria-label", unread === null ? name : `${name}, ${unread === 0 ? "none" : unread} unread`);
    tab.querySelector<HTMLElement>(".tab-muted")!.hidden = !muted;
    const badge = tab.querySelector<HTMLElement>(".tab-badge")!;
    badge.hidden = !unread;
    badge.textContent = badgeText(unread ?? 0);
    if (ui.tabs.children[index] !== tab) ui.tabs.insertBefore(tab, ui.tabs.children[index] ?? null);
  });
  const keys = new Set(tabs.map(({ key }) => key));
  for (const [key, tab] of inbox.tabs) {
    if (!keys.has(key)) {
      tab.remove();
      inbox.tabs.delete(key);
    }
  }
}

function itemElement(notification: Notification): HTMLLIElement {
  let element = inbox.elements.get(notification.id);
  if (!element) {
    element = document.createElement("li");
    element.className = "item";
    element.innerHTML = `
      <span class="icon" aria-hidden="true"></span>
      <div class="body">
        <div class="title-row">
          <span class="heading"><span class="title"></span> <span class="collapsed"></span></span><time></time>
        </div>
        <p class="message"></p>
        <p class="snoozed-until"></p>
      </div>
      <div class="actions">
        <button type="button" class="mark-read"></button>
        <select class="snooze secondary"><option value="" selected>Snooze…</option></select>
        <button type="button" class="unsnooze secondary"></button>
        <button type="button" class="archive secondary"></button>
      </div>`;
    const id = notification.id;
    const markButton = element.querySelector<HTMLButtonElement>(".mark-read")!;
    markButton.addEventListener("click", () => {
      const item = inbox.items.get(id);
      if (client && item) void act(markButton, item.read ? client.markUnread(id) : client.markRead(id), id);
    });
    const archiveButton = element.querySelector<HTMLButtonElement>(".archive")!;
    archiveButton.addEventListener("click", () => {
      const item = inbox.items.get(id);
      if (client && item) void act(archiveButton, item.archived ? client.unarchive(id) : client.archive(id), id);
    });
    // Snooze until a preset time, in the user's time zone; the server brings it back then, on every device.
    const snoozeMenu = element.querySelector<HTMLSelectElement>(".snooze")!;
    for (const preset of SNOOZE_PRESETS) snoozeMenu.add(new Option(preset.label, preset.label));
    snoozeMenu.addEventListener("change", () => {
      const preset = SNOOZE_PRESETS.find(({ label }) => label === snoozeMenu.value);
      snoozeMenu.value = "";
      if (client && preset) void act(snoozeMenu, client.snooze(id, preset.until(new Date())), id);
    });
    const unsnoozeButton = element.querySelector<HTMLButtonElement>(".unsnooze")!;
    unsnoozeButton.addEventListener("click", () => {
      if (client) void act(unsnoozeButton, client.unsnooze(id), id);
    });
    inbox.elements.set(notification.id, element);
  }
  element.dataset.id = notification.id;
  element.dataset.type = notification.type;
  element.classList.toggle("unread", !notification.read);
  element.classList.toggle("unseen", !notification.seen);
  element.classList.toggle("muted-item", notification.muted);
  element.querySelector(".icon")!.textContent = TYPE_ICONS[notification.type];
  element.querySelector(".title")!.textContent = notification.title;
  // A collapse key folded later creates into it: "Alice commented +3 more" is one row, updated in place.
  const collapsed = element.querySelector<HTMLElement>(".collapsed")!;
  collapsed.hidden = notification.collapsedCount === 0;
  collapsed.textContent = `+${notification.collapsedCount} more`;
  element.querySelector(".message")!.textContent = notification.message;
  const until = element.querySelector<HTMLElement>(".snoozed-until")!;
  until.hidden = notification.snoozedUntil == null;
  until.textContent = notification.snoozedUntil == null ? "" : `Snoozed until ${fullTime(notification.snoozedUntil)}`;
  // The time of its latest news: a collapsed one's last update.
  const shownAt = notification.updatedAt ?? notification.createdAt;
  const time = element.querySelector("time")!;
  time.dateTime = shownAt;
  time.title = fullTime(shownAt);
  time.textContent = relativeTime(shownAt);
  const markButton = element.querySelector<HTMLButtonElement>(".mark-read")!;
  markButton.textContent = notification.read ? "Mark unread" : "Mark read";
  markButton.setAttribute("aria-label", `Mark “${notification.title}” ${notification.read ? "unread" : "read"}`);
  const archiveButton = element.querySelector<HTMLButtonElement>(".archive")!;
  const archiveAction = notification.archived ? "Unarchive" : "Archive";
  archiveButton.textContent = archiveAction;
  archiveButton.setAttribute("aria-label", `${archiveAction} “${notification.title}”`);
  const snoozeMenu = element.querySelector<HTMLSelectElement>(".snooze")!;
  snoozeMenu.hidden = notification.snoozed || notification.archived;
  snoozeMenu.setAttribute("aria-label", `Snooze “${notification.title}”`);
  const unsnoozeButton = element.querySelector<HTMLButtonElement>(".unsnooze")!;
  unsnoozeButton.hidden = !notification.snoozed;
  unsnoozeButton.textContent = "Unsnooze";
  unsnoozeButton.setAttribute("aria-label", `Unsnooze “${notification.title}”`);
  return element;
}

/** Put the list in order, touching only what changed (a focused button keeps its focus). */
function renderList(): void {
  const ordered = [...inbox.items.values()].sort((a, b) => b.sequence - a.sequence);
  ordered.forEach((notification, index) => {
    const element = itemElement(notification);
    if (ui.list.children[index] !== element) ui.list.insertBefore(element, ui.list.children[index] ?? null);
  });
  for (const [id, element] of inbox.elements) {
    if (!inbox.items.has(id)) {
      element.remove();
      inbox.elements.delete(id);
    }
  }
  ui.empty.hidden = ordered.length > 0;
  ui.emptyText.textContent = EMPTY_TEXT[inbox.view.list];
  ui.loadMore.hidden = !inbox.hasNextPage;
}

const EMPTY_TEXT: Record<View["list"], string> = {
  inbox: "Nothing here yet. Send a test notification and watch it arrive.",
  snoozed: "Nothing snoozed. Snooze a notification to have it come back, unread, when you want it.",
  archived: "Nothing archived. Archive what you are done with, and find it here.",
};

function refreshTimes(): void {
  for (const element of ui.list.querySelectorAll("time")) element.textContent = relativeTime(element.dateTime);
}

// ---- the inbox ---------------------------------------------------------------------------------------------------

function addPage(page: NotificationPage, { replace }: { replace: boolean }): void {
  if (replace) inbox.items.clear();
  for (const { node } of page.edges) inbox.items.set(node.id, node);
  inbox.endCursor = page.pageInfo.endCursor;
  inbox.hasNextPage = page.pageInfo.hasNextPage;
  renderList();
}

function filter(view: View): { archived: boolean; snoozed: boolean; category?: string | null } {
  if (view.list === "archived") return { archived: true, snoozed: false };
  if (view.list === "snoozed") return { archived: false, snoozed: true };
  return { archived: false, snoozed: false, category: view.category };
}

function inView(notification: Notification): boolean {
  const view = inbox.view;
  if (view.list === "archived") return notification.archived;
  if (view.list === "snoozed") return notification.snoozed;
  return (
    !notification.archived &&
    !notification.snoozed &&
    (view.category === null || notification.category === view.category)
  );
}

/** Show a notification as an event left it: in this view or not, where its sequence puts it. */
function upsert(notification: Notification): boolean {
  let oldest = Infinity;
  for (const item of inbox.items.values()) oldest = Math.min(oldest, item.sequence);
  // Older than every item loaded while more pages follow: "Load more" brings it, in its place.
  const loaded = inbox.items.has(notification.id) || !inbox.hasNextPage || notification.sequence > oldest;
  if (inView(notification) && loaded) {
    const arrived = !inbox.items.has(notification.id);
    inbox.items.set(notification.id, notification);
    return arrived;
  }
  inbox.items.delete(notification.id);
  return false;
}

/** Change the items at or before `upTo` (a bulk event's `upToSequence`) that `which` selects. */
function each(
  upTo: number | null | undefined,
  which: (item: Notification) => boolean,
  change: (item: Notification) => void,
): void {
  for (const item of [...inbox.items.values()]) if (item.sequence <= (upTo ?? 0) && which(item)) change(item);
}

function apply(event: NotificationEvent): void {
  if (heldEvents) {
    heldEvents.push(event); // a page is on its way: on top of it, in order
    return;
  }
  const notification = event.notification;
  const now = new Date().toISOString();
  let arrived: string | null = null;
  switch (event.kind) {
    case "CREATED":
      if (notification && upsert(notification)) arrived = notification.id;
      break;
    case "READ":
    case "UNREAD":
    case "ARCHIVED":
    case "UNARCHIVED":
    case "SNOOZED":
      if (notification) upsert(notification);
      break;
    case "UNSNOOZED": // back on top, unread and unseen
    case "UPDATED": // a collapse key folded a create into it: replaced, on top, its count one more
      if (notification && (upsert(notification) || inbox.items.has(notification.id))) arrived = notification.id;
      break;
    case "ALL_READ":
      each(event.upToSequence, (item) => !item.read, (item) => {
        inbox.items.set(item.id, { ...item, read: true, readAt: now, seen: true, seenAt: item.seenAt ?? now });
      });
      break;
    case "ALL_SEEN":
      each(event.upToSequence, (item) => !item.seen, (item) => {
        inbox.items.set(item.id, { ...item, seen: true, seenAt: now });
      });
      break;
    case "ALL_ARCHIVED":
      if (inbox.view.list === "archived") {
        reload().catch(report); // they join the archive, and the event does not list them
        return;
      }
      each(event.upToSequence, (item) => item.read, (item) => inbox.items.delete(item.id));
      break;
    case "DELETED":
    case "EXPIRED": // carried as it was last: gone
      if (notification) inbox.items.delete(notification.id);
      break;
    case "BULK_DELETED": {
      // Exactly the rows that matched its filter at or before its position went.
      const deleted = event.deleted;
      const matches = (item: Notification): boolean =>
        deleted != null &&
        (deleted.read == null || item.read === deleted.read) &&
        (deleted.archived == null || item.archived === deleted.archived) &&
        (deleted.category == null || item.category === deleted.category);
      each(event.upToSequence, matches, (item) => inbox.items.delete(item.id));
      break;
    }
    case "PREFERENCES": // the muted categories: the client keeps them (onMutedCategories), the list is as it was
    case "RESYNC": // the list was refetched in onResync before this event was delivered
      break;
    default:
      // A kind this page does not know yet: an event of one notification carries it as it is now; for any other,
      // ask for the list again.
      if (notification) upsert(notification);
      else reload().catch(report);
  }
  renderList();
  if (arrived) {
    const element = inbox.elements.get(arrived);
    element?.classList.add("arrived");
    element?.addEventListener("animationend", () => element.classList.remove("arrived"), { once: true });
  }
}

/**
 * The first page of the view again. Events delivered meanwhile are held and applied on top of it: each carries the
 * state after it, so applying one the page already shows changes nothing.
 */
async function reload(): Promise<void> {
  if (!client) return;
  const ticket = ++reloads;
  heldEvents ??= [];
  let page: NotificationPage;
  try {
    page = await client.notifications({ first: PAGE_SIZE, filter: filter(inbox.view) });
  } catch (error) {
    if (ticket === reloads) heldEvents = null;
    throw error;
  }
  if (ticket !== reloads) return; // a later reload (another tab chosen) holds the events now
  addPage(page, { replace: true });
  const held = heldEvents ?? [];
  heldEvents = null;
  for (const event of held) apply(event);
}

function setView(view: View): void {
  inbox.view = view;
  ui.viewTitle.textContent =
    view.list === "archived"
      ? "Archived"
      : view.list === "snoozed"
        ? "Snoozed"
        : view.category === null
          ? "Inbox"
          : `Inbox · ${view.category}`;
}

async function choose(view: View): Promise<void> {
  if (viewKey(view) === viewKey(inbox.view)) return;
  setView(view);
  inbox.items.clear();
  inbox.hasNextPage = false;
  renderList();
  renderBadge();
  inbox.tabs.get(viewKey(view))?.focus();
  await reload().catch(report);
}

/** Run one item's action; what the server answers shows at once, and the event brings it to the other devices. */
async function act(
  button: HTMLButtonElement | HTMLSelectElement,
  action: Promise<Partial<Notification> & { id: string }>,
  id: string,
): Promise<void> {
  button.disabled = true;
  try {
    const result = await action;
    const item = inbox.items.get(id);
    if (item) upsert({ ...item, ...result });
    renderList();
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

async function markAllRead(): Promise<void> {
  if (!client) return;
  ui.markAll.disabled = true;
  try {
    await client.markAllRead(); // up to the last event shown: a notification arriving meanwhile stays unread
  } catch (error) {
    report(error);
  } finally {
    renderBadge();
  }
}

async function archiveAllRead(): Promise<void> {
  if (!client) return;
  ui.archiveAll.disabled = true;
  try {
    await client.archiveAllRead(); // up to the last event shown, like "Mark all read"
  } catch (error) {
    report(error);
  } finally {
    ui.archiveAll.disabled = false;
  }
}

/**
 * Delete what `filter` names, up to the last event shown (one that arrives meanwhile stays), in as many calls as the
 * server's bound per call needs; every device drops them on each BULK_DELETED.
 */
async function deleteAll(button: HTMLButtonElement, question: string, which: DeleteFilter): Promise<void> {
  if (!client || !window.confirm(question)) return;
  button.disabled = true;
  const upTo = client.cursor;
  try {
    for (let call = 0; call < MAX_DELETE_CALLS; call++) {
      if (!(await client.deleteNotifications(which, upTo)).hasMore) break;
    }
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

/** Mute or unmute the category of the tab shown: its new notifications arrive read and seen, and ring no bell. */
async function toggleMute(): Promise<void> {
  const view = inbox.view;
  if (!client || view.list !== "inbox" || view.category === null) return;
  const category = view.category;
  const muted = inbox.muted.includes(category)
    ? inbox.muted.filter((name) => name !== category)
    : [...inbox.muted, category];
  ui.mute.disabled = true;
  try {
    await client.setMutedCategories(muted); // the PREFERENCES event updates every device, this one included
  } catch (error) {
    report(error);
  } finally {
    ui.mute.disabled = false;
  }
}

/** The bell opens the inbox: what it shows is seen now, on every device (one ALL_SEEN clears their bells). */
async function openInbox(): Promise<void> {
  ui.inboxTitle.scrollIntoView({ behavior: "smooth", block: "start" });
  ui.inboxTitle.focus({ preventScroll: true });
  if (!client || inbox.unseenCount === 0) return;
  try {
    await client.markAllSeen(); // upTo: the cursor of the last event shown, as a list's feedCursor
  } catch (error) {
    report(error);
  }
}

async function loadMore(): Promise<void> {
  if (!client || !inbox.endCursor) return;
  ui.loadMore.disabled = true;
  try {
    const page = await client.notifications({ first: PAGE_SIZE, after: inbox.endCursor, filter: filter(inbox.view) });
    addPage(page, { replace: false });
  } catch (error) {
    report(error);
  } finally {
    ui.loadMore.disabled = false;
  }
}

function report(error: unknown): void {
  console.warn("tidings:", error);
  ui.sendStatus.textContent = error instanceof Error ? error.message : String(error);
}

// ---- sign-in and the connection ----------------------------------------------------------------------------------

/** Ask for the sign-in code only while the page has none that works. */
function askForCode(ask: boolean): void {
  ui.devCodeField.hidden = !ask;
  ui.devCode.required = ask;
}

/** Mint with the code the page has; a refused code (the server restarted) is forgotten, and asked for again. */
async function devTokens(user: string, service = false): Promise<Session> {
  try {
    return await mintDevTokens(user, signInCode ?? "", { service });
  } catch (error) {
    if (error instanceof DevTokensRefused && error.status === 403) {
      signInCode = null;
      forgetSignInCode();
      askForCode(true);
    }
    throw error;
  }
}

async function getToken(): Promise<string> {
  if (!session) throw new Error("signed out");
  if (session.dev && expiresSoon(session.token)) {
    const { user, token } = await devTokens(session.user).catch((error: unknown) => {
      void signOut(error);
      throw error;
    });
    session = { ...session, user, token };
    saveSession(session);
  }
  return session.token;
}

/** The send panel's token: a dev session mints one the first time it sends (and when it expires). */
async function serviceToken(): Promise<string> {
  if (!session?.dev) return session?.serviceToken ?? ui.serviceToken.value.trim();
  if (!session.serviceToken || expiresSoon(session.serviceToken)) {
    const minted = await devTokens(session.user, true);
    session = { ...session, serviceToken: minted.serviceToken };
    saveSession(session);
  }
  return session.serviceToken ?? "";
}

async function open(next: Session): Promise<void> {
  session = next;
  client = new TidingsClient({
    url: GRAPHQL_URL,
    getToken,
    onResync: () => reload(),
    onError: (error) => console.info("tidings: connection", error),
  });
  client.onStateChange(renderConnection);
  client.onUnreadCount((count) => {
    inbox.unreadCount = count ?? 0;
    renderBadge();
  });
  client.onUnseenCount((count) => {
    inbox.unseenCount = count ?? 0;
    renderBadge();
  });
  client.onCategoryCounts((categories) => {
    inbox.categories = categories;
    renderBadge();
  });
  client.onMutedCategories((muted) => {
    inbox.muted = muted;
    renderBadge();
  });
  client.onEvent(apply);
  let page: NotificationPage;
  try {
    page = await client.notifications({ first: PAGE_SIZE, filter: filter(inbox.view) });
    // After the list: the events after its cursor bring them up to date.
    await Promise.all([client.fetchCategoryCounts(), client.fetchMutedCategories()]);
  } catch (error) {
    await signOut(error instanceof TidingsError && error.code === "UNAUTHENTICATED" ? "That token was refused." : error);
    return;
  }
  saveSession(next);
  addPage(page, { replace: true });
  inbox.unreadCount = page.unreadCount;
  inbox.unseenCount = page.unseenCount;
  renderBadge();
  client.start({ after: page.feedCursor, unreadCount: page.unreadCount, unseenCount: page.unseenCount });

  ui.accountName.textContent = next.user;
  ui.sendUser.value = next.user;
  ui.serviceTokenField.hidden = next.dev || next.serviceToken !== null;
  show("workspace");
}

async function signOut(reason?: unknown): Promise<void> {
  await client?.dispose();
  client = null;
  session = null;
  clearSession();
  inbox.items.clear();
  inbox.categories = [];
  inbox.muted = [];
  heldEvents = null;
  setView(ALL);
  renderList();
  renderConnection("stopped");
  ui.signInError.textContent = reason === undefined ? "" : reason instanceof Error ? reason.message : String(reason);
  show("sign-in");
}

function show(view: "sign-in" | "workspace"): void {
  ui.loading.hidden = true;
  ui.signIn.hidden = view !== "sign-in";
  ui.workspace.hidden = view !== "workspace";
  ui.account.hidden = ui.bell.hidden = view !== "workspace";
}

async function send(): Promise<void> {
  const type = new FormData(ui.sendForm).get("type");
  ui.sendStatus.textContent = "Sending…";
  const response = await fetch(GRAPHQL_URL, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await serviceToken()}` },
    body: JSON.stringify({
      query: createNotification,
      variables: {
        input: {
          userId: ui.sendUser.value.trim(),
          type,
          title: ui.sendTitle.value,
          message: ui.sendMessage.value,
          category: ui.sendCategory.value.trim() || null,
        },
      },
    }),
  });
  const body = (await response.json()) as { errors?: { message: string }[] };
  ui.sendStatus.textContent = body.errors ? `Not sent: ${body.errors[0]!.message}` : "Sent ✓";
}

async function main(): Promise<void> {
  renderConnection("stopped");
  const config = await dashboardConfig();
  ui.devSignIn.hidden = ui.signInOr.hidden = !config.devTokens;
  signInCode = takeSignInCode();
  askForCode(signInCode === null);
  // The printed link opened in a tab already on the page: only the fragment changes, the page does not reload.
  window.addEventListener("hashchange", () => {
    signInCode = takeSignInCode() ?? signInCode;
    askForCode(signInCode === null);
  });

  ui.devSignIn.addEventListener("submit", (event) => {
    event.preventDefault();
    signInCode ??= ui.devCode.value.trim();
    devTokens(ui.devUser.value.trim()).then(
      (next) => {
        if (signInCode) rememberSignInCode(signInCode);
        askForCode(false);
        return open(next);
      },
      (error: unknown) => void signOut(error),
    );
  });
  ui.tokenSignIn.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = ui.token.value.trim();
    const user = claims(token)?.sub;
    if (!user) return void signOut("That is not a JWT.");
    void open({ user, token, serviceToken: null, dev: false });
  });
  ui.signOut.addEventListener("click", () => void signOut());
  ui.markAll.addEventListener("click", () => void markAllRead());
  ui.archiveAll.addEventListener("click", () => void archiveAllRead());
  ui.deleteRead.addEventListener("click", () => {
    const view = inbox.view;
    const category = view.list === "inbox" ? view.category : null;
    const where = category === null ? "the inbox" : category;
    const question = `Delete every read notification in ${where}? This cannot be undone.`;
    void deleteAll(ui.deleteRead, question, { read: true, archived: false, category });
  });
  ui.emptyArchive.addEventListener("click", () => {
    void deleteAll(ui.emptyArchive, "Delete everything in the archive? This cannot be undone.", { archived: true });
  });
  ui.mute.addEventListener("click", () => void toggleMute());
  ui.loadMore.addEventListener("click", () => void loadMore());
  ui.bell.addEventListener("click", () => void openInbox());
  ui.tabs.addEventListener("keydown", (event) => {
    // Arrow keys move between tabs (the WAI-ARIA tabs pattern); Tab leaves the list of them.
    const tabs = [...ui.tabs.querySelectorAll<HTMLButtonElement>(".tab")];
    const at = tabs.findIndex((tab) => tab.dataset.key === viewKey(inbox.view));
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (step === 0 || at === -1) return;
    event.preventDefault();
    tabs[(at + step + tabs.length) % tabs.length]?.click();
  });
  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    send().catch(report);
  });
  setInterval(refreshTimes, 30_000);

  const saved = loadSession();
  if (saved && !(saved.dev && !config.devTokens)) await open(saved);
  else show("sign-in");
}

void main();
