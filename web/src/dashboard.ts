// The live inbox at `/`: no framework, a keyed list updated in place, on top of @tidings/client.
import "./dashboard.css";

import {
  type ConnectionState,
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
import { fullTime, relativeTime } from "./time";

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
  unreadSummary: $("unread-summary"),
  markAll: $<HTMLButtonElement>("mark-all"),
  list: $<HTMLOListElement>("list"),
  empty: $("empty"),
  loadMore: $<HTMLButtonElement>("load-more"),
  sendForm: $<HTMLFormElement>("send-form"),
  sendUser: $<HTMLInputElement>("send-user"),
  sendTitle: $<HTMLInputElement>("send-title-input"),
  sendMessage: $<HTMLTextAreaElement>("send-message"),
  serviceTokenField: $("service-token-field"),
  serviceToken: $<HTMLTextAreaElement>("service-token"),
  sendStatus: $("send-status"),
};

/** The inbox as shown: notifications by id (newest first when rendered), the next page, the badge. */
const inbox = {
  items: new Map<string, Notification>(),
  endCursor: null as string | null,
  hasNextPage: false,
  unreadCount: 0,
  elements: new Map<string, HTMLLIElement>(),
};

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

function renderBadge(): void {
  const count = inbox.unreadCount;
  ui.badge.hidden = count === 0;
  ui.badge.textContent = count > 99 ? "99+" : String(count);
  ui.bell.setAttribute("aria-label", count === 0 ? "Notifications, none unread" : `Notifications, ${count} unread`);
  ui.unreadSummary.textContent = count === 0 ? "· all read" : `· ${count} unread`;
  ui.markAll.disabled = count === 0;
  document.title = count === 0 ? "tidings · inbox" : `(${count}) tidings · inbox`;
}

function itemElement(notification: Notification): HTMLLIElement {
  let element = inbox.elements.get(notification.id);
  if (!element) {
    element = document.createElement("li");
    element.className = "item";
    element.innerHTML = `
      <span class="icon" aria-hidden="true"></span>
      <div class="body">
        <div class="title-row"><span class="title"></span><time></time></div>
        <p class="message"></p>
      </div>
      <button type="button" class="mark-read">Mark read</button>`;
    const button = element.querySelector<HTMLButtonElement>(".mark-read")!;
    button.addEventListener("click", () => void markRead(notification.id, button));
    inbox.elements.set(notification.id, element);
  }
  element.dataset.id = notification.id;
  element.dataset.type = notification.type;
  element.classList.toggle("unread", !notification.read);
  element.querySelector(".icon")!.textContent = TYPE_ICONS[notification.type];
  element.querySelector(".title")!.textContent = notification.title;
  element.querySelector(".message")!.textContent = notification.message;
  const time = element.querySelector("time")!;
  time.dateTime = notification.createdAt;
  time.title = fullTime(notification.createdAt);
  time.textContent = relativeTime(notification.createdAt);
  const button = element.querySelector<HTMLButtonElement>(".mark-read")!;
  button.setAttribute("aria-label", `Mark “${notification.title}” read`);
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
  ui.loadMore.hidden = !inbox.hasNextPage;
}

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

function apply(event: NotificationEvent): void {
  const notification = event.notification;
  switch (event.kind) {
    case "CREATED":
      if (notification) {
        inbox.items.set(notification.id, notification);
        renderList();
        const element = inbox.elements.get(notification.id);
        element?.classList.add("arrived");
        element?.addEventListener("animationend", () => element.classList.remove("arrived"), { once: true });
      }
      break;
    case "READ":
      if (notification && inbox.items.has(notification.id)) inbox.items.set(notification.id, notification);
      break;
    case "ALL_READ":
      for (const item of inbox.items.values()) {
        if (!item.read && item.sequence <= (event.upToSequence ?? 0)) {
          inbox.items.set(item.id, { ...item, read: true, readAt: new Date().toISOString() });
        }
      }
      break;
    case "DELETED":
      if (notification) inbox.items.delete(notification.id);
      break;
    case "RESYNC": // the list was refetched in onResync before this event was delivered
      break;
  }
  renderList();
}

async function reload(current: TidingsClient): Promise<void> {
  addPage(await current.notifications({ first: PAGE_SIZE }), { replace: true });
}

async function markRead(id: string, button: HTMLButtonElement): Promise<void> {
  if (!client) return;
  button.disabled = true;
  try {
    const result = await client.markRead(id);
    const item = inbox.items.get(id);
    if (item) inbox.items.set(id, { ...item, ...result });
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

async function loadMore(): Promise<void> {
  if (!client || !inbox.endCursor) return;
  ui.loadMore.disabled = true;
  try {
    addPage(await client.notifications({ first: PAGE_SIZE, after: inbox.endCursor }), { replace: false });
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
    onResync: () => (client ? reload(client) : undefined),
    onError: (error) => console.info("tidings: connection", error),
  });
  client.onStateChange(renderConnection);
  client.onUnreadCount((count) => {
    inbox.unreadCount = count ?? 0;
    renderBadge();
  });
  client.onEvent(apply);
  let page: NotificationPage;
  try {
    page = await client.notifications({ first: PAGE_SIZE });
  } catch (error) {
    await signOut(error instanceof TidingsError && error.code === "UNAUTHENTICATED" ? "That token was refused." : error);
    return;
  }
  saveSession(next);
  addPage(page, { replace: true });
  inbox.unreadCount = page.unreadCount;
  renderBadge();
  client.start({ after: page.feedCursor, unreadCount: page.unreadCount });

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
  ui.loadMore.addEventListener("click", () => void loadMore());
  ui.bell.addEventListener("click", () => {
    ui.inboxTitle.scrollIntoView({ behavior: "smooth", block: "start" });
    ui.inboxTitle.focus({ preventScroll: true });
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
