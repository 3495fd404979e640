// @tidings/client: follow one user's notifications over graphql-ws, losing none and showing none twice.
//
// graphql-ws reconnects by itself, but resubscribes with the variables it started with, so a client that passed
// `after: feedCursor` replays from that old cursor, and one that passed nothing misses what came while it was away.
// This client owns the reconnect loop instead: every (re)subscribe passes the cursor of the last event received.
import { CloseCode, type Client as WsClient, createClient } from "graphql-ws";

import * as operations from "./generated/operations.js";
import type {
  ArchiveAllReadMutation,
  ArchiveNotificationMutation,
  CategoryCountsQuery,
  DeleteNotificationsMutation,
  DeleteNotificationsMutationVariables,
  MarkAllNotificationsReadMutation,
  MarkAllNotificationsSeenMutation,
  MarkNotificationReadMutation,
  MarkNotificationUnreadMutation,
  NotificationEventsSubscription,
  NotificationEventsSubscriptionVariables,
  NotificationsQuery,
  NotificationsQueryVariables,
  SnoozeNotificationMutation,
  TypedDocumentString,
  UnarchiveNotificationMutation,
  UnsnoozeNotificationMutation,
} from "./generated/operations.js";

/**
 * The operations of graphql/operations/ as typed text (`operations.Notifications`), with the types of their results
 * and variables (`operations.NotificationsQuery`, `operations.NotificationsQueryVariables`), generated at build time
 * from graphql/schema.graphql.
 */
export { operations };
export type { TypedDocumentString };

/** One change to the user's notifications, as `NotificationEvents.graphql` selects it. */
export type NotificationEvent = NotificationEventsSubscription["notificationEvents"];
/** A notification, as the operations select it. */
export type Notification = NonNullable<NotificationEvent["notification"]>;
export type NotificationType = operations.NotificationType;
export type EventKind = operations.NotificationEventKind;
/** A page of the list (`Notifications.graphql`): subscribe after its `feedCursor` to miss nothing after it. */
export type NotificationPage = NotificationsQuery["notifications"];
export type MarkAllReadResult = MarkAllNotificationsReadMutation["markAllNotificationsRead"];
export type MarkAllSeenResult = MarkAllNotificationsSeenMutation["markAllNotificationsSeen"];
export type ArchiveAllResult = ArchiveAllReadMutation["archiveAllRead"];
export type DeleteNotificationsResult = DeleteNotificationsMutation["deleteNotifications"];
/** What `deleteNotifications` deletes: `{ read: true }`, `{ archived: true }`, `{ category }`, both, or `{}` for all. */
export type DeleteFilter = DeleteNotificationsMutationVariables["filter"];
/** One category's badges: its unread and unseen counts (archived notifications not counted). */
export type CategoryCount = CategoryCountsQuery["categoryCounts"][number];

/**
 * `stopped` before `start()` and after `stop()`; `resyncing` while the `onResync` refetch runs; `failed` after a
 * close that a retry cannot mend (see `failure`), until `start()` tries again.
 */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "resyncing" | "stopped" | "failed";

/** A WebSocket close: why the client stopped by itself (state `failed`), or why a token was refused. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * Why the client stopped by itself (state `failed`): a close code and reason, or the `extensions.code` and message of
 * an error the server answered the subscription with that a retry would get again (the document does not parse or
 * validate, the operation is refused).
 */
export interface Failure {
  code: number | string;
  reason: string;
}

/** Errors the server answers a subscription with before it starts, and would answer again on every retry. */
const FATAL_ERROR_CODES: ReadonlySet<unknown> = new Set([
  "GRAPHQL_PARSE_FAILED",
  "GRAPHQL_VALIDATION_FAILED",
  "OPERATION_RESOLUTION_FAILURE",
  "FORBIDDEN",
]);

/** A GraphQL error answered by the server, with its `extensions.code` (`UNAUTHENTICATED`, `BAD_USER_INPUT`...). */
export class TidingsError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "TidingsError";
  }
}

export interface TidingsClientOptions {
  /** The GraphQL endpoint, e.g. `https://tidings.example.com/graphql`. */
  url: string;
  /** The WebSocket endpoint; default: `url` with `ws:`/`wss:`. */
  wsUrl?: string;
  /**
   * Called for every connection and request, so a refreshed token is used on the next reconnect. After the server
   * refused a connection's token (`4403`: expired, invalid, too many connections), it is called with that close:
   * return a fresh token to reconnect with it, or the refused one to give up (state `failed`).
   */
  getToken: (refused?: CloseInfo) => string | Promise<string>;
  /**
   * Events were missed beyond recovery (`RESYNC`), or the server refused the cursor it was given (null): refetch the
   * list. Later events wait until it settles.
   */
  onResync?: (event: NotificationEvent | null) => void | Promise<void>;
  /** Connection problems (the close event, the GraphQL errors...) and callback failures, fatal or not. */
  onError?: (error: unknown) => void;
  /** Milliseconds before reconnect attempt `attempt` (1, 2, ...). Default: 0.25-0.5 s doubling up to 15-30 s. */
  retryDelay?: (attempt: number) => number;
  /** A WebSocket implementation where there is no global one (Node < 22: the `ws` package). */
  webSocketImpl?: unknown;
  /** A fetch implementation; default: the global one. */
  fetch?: typeof fetch;
  /** How many recent cursors to remember for deduplication (default 1000). */
  dedupeWindow?: number;
}

export interface StartOptions {
  /** Deliver what happened after this cursor (a list's `feedCursor`, or a cursor kept from before); default: now. */
  after?: string | null;
  /** The unread count read with that list, until the first event brings a newer one. */
  unreadCount?: number | null;
  /** The unseen count (the bell) read with that list, until the first event brings a newer one. */
  unseenCount?: number | null;
  /**
   * The categories' counts (`CategoryCounts.graphql`), read after that list: events after its cursor then bring each
   * category they change up to date (their `categoryCounts` hold the counts right after them).
   */
  categoryCounts?: readonly CategoryCount[];
  /** The user's muted categories (`MutedCategories.graphql`), read after that list; PREFERENCES events keep them. */
  mutedCategories?: readonly string[];
}

type Listener<T> = (value: T) => void;

const defaultRetryDelay = (attempt: number): number =>
  Math.min(30_000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);

function graphqlErrors(error: unknown): readonly { message: string; extensions?: { code?: unknown } }[] | null {
  return Array.isArray(error) ? error : null;
}

function closeInfo(error: unknown): CloseInfo | null {
  if (typeof error !== "object" || error === null || !("code" in error) || typeof error.code !== "number") return null;
  return { code: error.code, reason: "reason" in error && typeof error.reason === "string" ? error.reason : "" };
}

/** WebSocket close codes of RFC 6455 that graphql-ws clients retry: the connection, not the request, went wrong. */
const WebSocketClose = {
  NormalClosure: 1000,
  GoingAway: 1001, // tidings: keep-alive timeout
  NoStatusReceived: 1005,
  AbnormalClosure: 1006, // network error, no close frame
  ServiceRestart: 1012, // tidings: shutting down
  TryAgainLater: 1013, // tidings: slow consumer
  BadGateway: 1014,
} as const;
const RETRIED_WEBSOCKET_CODES: ReadonlySet<number> = new Set(Object.values(WebSocketClose));

const FATAL_PROTOCOL_CODES: ReadonlySet<number> = new Set([
  CloseCode.InternalServerError, // 4500
  CloseCode.InternalClientError, // 4005
  CloseCode.BadRequest, // 4400: e.g. a document over the server's limits
  CloseCode.BadResponse, // 4004
  CloseCode.Unauthorized, // 4401
  CloseCode.SubprotocolNotAcceptable, // 4406
  CloseCode.SubscriberAlreadyExists, // 4409
  CloseCode.TooManyInitialisationRequests, // 4429
]);

/**
 * The closes after which reconnecting would only be refused the same way, as graphql-ws decides
 * (`isFatalInternalCloseCode` and its list of fatal `CloseCode`s): every other 1xxx code (1009: a message too big
 * for the server, 1011: a server error...) and the protocol errors. 4403 (token refused), 4408 (init timeout), 4499,
 * 4504 and any other code are retried.
 */
function isFatal(code: number): boolean {
  if (code >= 1000 && code <= 1999) return !RETRIED_WEBSOCKET_CODES.has(code);
  return FATAL_PROTOCOL_CODES.has(code);
}

export class TidingsClient {
  readonly #options: TidingsClientOptions;
  readonly #ws: WsClient;
  readonly #events = new Set<Listener<NotificationEvent>>();
  readonly #states = new Set<Listener<ConnectionState>>();
  readonly #counts = new Set<Listener<number | null>>();
  readonly #unseenCounts = new Set<Listener<number | null>>();
  readonly #categoryListeners = new Set<Listener<readonly CategoryCount[]>>();
  readonly #mutedListeners = new Set<Listener<readonly string[]>>();
  readonly #seen = new Set<string>(); // insertion-ordered: the oldest cursor is forgotten first
  #state: ConnectionState = "stopped";
  #failure: Failure | null = null;
  #connectionToken: string | null = null; // the token sent on the last connection: a 4403 refused it
  #nextToken: string | null = null; // fresh token from getToken(refused), for the next connection
  #unreadCount: number | null = null;
  #unseenCount: number | null = null;
  #categoryCounts = new Map<string, CategoryCount>();
  #mutedCategories: readonly string[] = [];
  #delivered: string | null = null; // cursor of the last event handed to listeners
  #received: string | null = null; // cursor of the last event received (possibly still queued): resume after it
  #running = false;
  #connected = false;
  #attempt = 0;
  #session = 0; // bumped by stop(): events queued before it are not delivered after a new start()
  #generation = 0; // a subscription's callbacks act only while it is the current one
  #unsubscribe: (() => void) | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #delivery: Promise<void> = Promise.resolve(); // one event at a time, in order, a RESYNC refetch included

  constructor(options: TidingsClientOptions) {
    this.#options = options;
    this.#ws = createClient({
      url: options.wsUrl ?? options.url.replace(/^http/, "ws"),
      ...(options.webSocketImpl === undefined ? {} : { webSocketImpl: options.webSocketImpl }),
      lazy: true,
      // Our loop retries, so that every resubscribe carries the last cursor rather than the first one.
      retryAttempts: 0,
      connectionParams: async () => {
        const token = this.#nextToken ?? (await options.getToken());
        this.#nextToken = null;
        this.#connectionToken = token;
        return { authorization: `Bearer ${token}` };
      },
      on: {
        connected: () => {
          this.#connected = true;
          this.#attempt = 0;
          if (this.#running && this.#state !== "resyncing") this.#setState("live");
        },
        closed: () => {
          this.#connected = false;
        },
      },
    });
  }

  /** `connecting`, `live`, `reconnecting`, `resyncing`, `stopped` or `failed`. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * In state `failed`: the close code and reason that stopped the client (4400, 4500, a refused token...), or the
   * `extensions.code` and message of an error every retry would get (`GRAPHQL_VALIDATION_FAILED`...); else null.
   */
  get failure(): Failure | null {
    return this.#failure;
  }

  /** The unread count after the last event delivered (or the one passed to `start`); null when unknown. */
  get unreadCount(): number | null {
    return this.#unreadCount;
  }

  /** The unseen count (the bell's badge) after the last event delivered (or the one passed to `start`). */
  get unseenCount(): number | null {
    return this.#unseenCount;
  }

  /**
   * Every category the user has had a notification in, by name, with its unread and unseen counts as of the last event
   * delivered: from `start({ categoryCounts })` or `fetchCategoryCounts()`, then kept by the events (a new category
   * appears with its first notification; a `RESYNC` fetches them all again).
   */
  get categoryCounts(): readonly CategoryCount[] {
    return [...this.#categoryCounts.values()].sort((a, b) => (a.category < b.category ? -1 : 1));
  }

  /**
   * The categories the user muted, by name, as of the last event delivered: from `start({ mutedCategories })` or
   * `fetchMutedCategories()`, then kept by PREFERENCES events (a `RESYNC` fetches them again).
   */
  get mutedCategories(): readonly string[] {
    return this.#mutedCategories;
  }

  /** The cursor of the last event delivered: keep it to resume later with `start({ after })`. */
  get cursor(): string | null {
    return this.#delivered;
  }

  /** Every event, in feed order, once. Returns a function that removes the listener. */
  onEvent(listener: Listener<NotificationEvent>): () => void {
    return this.#listen(this.#events, listener);
  }

  onStateChange(listener: Listener<ConnectionState>): () => void {
    return this.#listen(this.#states, listener);
  }

  onUnreadCount(listener: Listener<number | null>): () => void {
    return this.#listen(this.#counts, listener);
  }

  onUnseenCount(listener: Listener<number | null>): () => void {
    return this.#listen(this.#unseenCounts, listener);
  }

  /** Called with every category's counts (`categoryCounts`) whenever one of them changes. */
  onCategoryCounts(listener: Listener<readonly CategoryCount[]>): () => void {
    return this.#listen(this.#categoryListeners, listener);
  }

  /** Called with the muted categories whenever they change (a PREFERENCES event, from any device). */
  onMutedCategories(listener: Listener<readonly string[]>): () => void {
    return this.#listen(this.#mutedListeners, listener);
  }

  /** Start following the user's events (again, after `stop()` or a failure). */
  start({ after, unreadCount, unseenCount, categoryCounts, mutedCategories }: StartOptions = {}): void {
    if (this.#running) return;
    this.#failure = null;
    this.#attempt = 0;
    if (after !== undefined) this.#delivered = this.#received = after;
    if (unreadCount !== undefined) this.#setUnreadCount(unreadCount);
    if (unseenCount !== undefined) this.#setUnseenCount(unseenCount);
    if (categoryCounts !== undefined) this.#setCategoryCounts(categoryCounts, { replace: true });
    if (mutedCategories !== undefined) this.#setMutedCategories(mutedCategories);
    this.#running = true;
    this.#setState("connecting");
    this.#subscribe();
  }

  /** Stop following; `start()` continues after the last delivered event. */
  stop(): void {
    this.#halt();
    this.#failure = null;
    this.#setState("stopped");
  }

  /** Stop and close the socket. */
  async dispose(): Promise<void> {
    this.stop();
    await this.#ws.dispose();
  }

  /** A page of notifications, newest first (`Notifications.graphql`). */
  async notifications(variables: NotificationsQueryVariables = {}): Promise<NotificationPage> {
    return (await this.request(operations.Notifications, variables)).notifications;
  }

  /** Mark one notification read; every device gets `READ`. */
  async markRead(id: string): Promise<MarkNotificationReadMutation["markNotificationRead"]> {
    return (await this.request(operations.MarkNotificationRead, { id })).markNotificationRead;
  }

  /**
   * Mark read what the user has seen: those created up to `upTo`, by default the last event delivered, so one that
   * arrived after is not silently marked read. Every device gets one `ALL_READ`.
   */
  async markAllRead(upTo: string | null = this.#delivered): Promise<MarkAllReadResult> {
    return (await this.request(operations.MarkAllNotificationsRead, { upTo })).markAllNotificationsRead;
  }

  /** Mark one notification unread again (it stays seen); every device gets `UNREAD`. */
  async markUnread(id: string): Promise<MarkNotificationUnreadMutation["markNotificationUnread"]> {
    return (await this.request(operations.MarkNotificationUnread, { id })).markNotificationUnread;
  }

  /**
   * The inbox was opened: mark seen what the user has seen, up to `upTo` (by default the last event delivered), to
   * clear the bell on every device (one `ALL_SEEN`). They stay unread.
   */
  async markAllSeen(upTo: string | null = this.#delivered): Promise<MarkAllSeenResult> {
    return (await this.request(operations.MarkAllNotificationsSeen, { upTo })).markAllNotificationsSeen;
  }

  /** Move one notification out of the inbox and its counts; every device gets `ARCHIVED`. */
  async archive(id: string): Promise<ArchiveNotificationMutation["archiveNotification"]> {
    return (await this.request(operations.ArchiveNotification, { id })).archiveNotification;
  }

  /** Bring an archived notification back to the inbox; every device gets `UNARCHIVED`. */
  async unarchive(id: string): Promise<UnarchiveNotificationMutation["unarchiveNotification"]> {
    return (await this.request(operations.UnarchiveNotification, { id })).unarchiveNotification;
  }

  /** Archive the read notifications up to `upTo` (by default the last event delivered): one `ALL_ARCHIVED`. */
  async archiveAllRead(upTo: string | null = this.#delivered): Promise<ArchiveAllResult> {
    return (await this.request(operations.ArchiveAllRead, { upTo })).archiveAllRead;
  }

  /**
   * Snooze one notification until `until` (in the future, at most 366 days ahead): out of the inbox and its counts,
   * every device gets `SNOOZED`; when the time comes the server brings it back on top, unread, with `UNSNOOZED`.
   */
  async snooze(id: string, until: Date | string): Promise<SnoozeNotificationMutation["snoozeNotification"]> {
    const at = typeof until === "string" ? until : until.toISOString();
    return (await this.request(operations.SnoozeNotification, { id, until: at })).snoozeNotification;
  }

  /** End a snooze now: back on top, unread and unseen, with `UNSNOOZED` on every device. Not snoozed: unchanged. */
  async unsnooze(id: string): Promise<UnsnoozeNotificationMutation["unsnoozeNotification"]> {
    return (await this.request(operations.UnsnoozeNotification, { id })).unsnoozeNotification;
  }

  /**
   * Replace the user's muted categories: new notifications in them arrive read and seen, not counted. Every device
   * gets `PREFERENCES` (and `mutedCategories` follows it); returns the muted set as the server keeps it.
   */
  async setMutedCategories(categories: readonly string[]): Promise<readonly string[]> {
    const result = await this.request(operations.SetMutedCategories, { categories: [...categories] });
    return result.setMutedCategories.mutedCategories;
  }

  /** Read the user's muted categories (`MutedCategories.graphql`) and keep them as `mutedCategories` from now on. */
  async fetchMutedCategories(): Promise<readonly string[]> {
    this.#setMutedCategories((await this.request(operations.MutedCategories)).mutedCategories);
    return this.#mutedCategories;
  }

  /**
   * Delete the notifications matching `filter` up to `upTo` (by default the last event delivered, so that one that
   * arrived after the user looked stays): one `BULK_DELETED`. A call deletes at most the server's limit, the oldest
   * first; `hasMore` says when more remain (call again with the same `upTo`).
   */
  async deleteNotifications(
    filter: DeleteFilter,
    upTo: string | null = this.#delivered,
  ): Promise<DeleteNotificationsResult> {
    return (await this.request(operations.DeleteNotifications, { filter, upTo })).deleteNotifications;
  }

  /**
   * Read every category's counts (`CategoryCounts.graphql`) and keep them as `categoryCounts` from now on. Read them
   * after the list whose cursor you `start` after, so that the events replayed after it are newer than what was read.
   */
  async fetchCategoryCounts(): Promise<readonly CategoryCount[]> {
    this.#setCategoryCounts((await this.request(operations.CategoryCounts)).categoryCounts, { replace: true });
    return this.categoryCounts;
  }

  /**
   * Any GraphQL operation over HTTP with the current token: one of `operations` (its result and variables typed), or
   * any document text with the result type you expect.
   */
  request<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    ...variables: Record<string, never> extends TVariables ? [TVariables?] : [TVariables]
  ): Promise<TResult>;
  request<TResult>(query: string & { readonly __apiType?: never }, variables?: Record<string, unknown>): Promise<TResult>;
  async request(query: string, variables: unknown = {}): Promise<unknown> {
    const fetcher = this.#options.fetch ?? fetch;
    const response = await fetcher(this.#options.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await this.#options.getToken()}` },
      body: JSON.stringify({ query, variables }),
    });
    let body: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
    try {
      body = await response.json();
    } catch {
      throw new TidingsError(`HTTP ${response.status} ${response.statusText}`, undefined);
    }
    const error = body.errors?.[0];
    if (error) throw new TidingsError(error.message, error.extensions?.code);
    if (!response.ok || body.data === undefined) throw new TidingsError(`HTTP ${response.status}`, undefined);
    return body.data;
  }

  #subscribe(): void {
    const generation = ++this.#generation;
    const current = () => generation === this.#generation && this.#running;
    const variables: NotificationEventsSubscriptionVariables = { after: this.#received };
    this.#unsubscribe = this.#ws.subscribe<NotificationEventsSubscription>(
      { query: operations.NotificationEvents, variables },
      {
        next: (result) => {
          if (!current()) return;
          const event = result.data?.notificationEvents;
          if (event) this.#receive(event);
          else if (result.errors) this.#retry(result.errors);
        },
        error: (error) => {
          if (current()) this.#retry(error);
        },
        complete: () => {
          if (current()) this.#retry(null); // the server ended it (shutting down): follow again
        },
      },
    );
  }

  #halt(): void {
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#session++;
    this.#seen.clear(); // the next start() resumes after the last delivered event: nothing to repeat
    this.#received = this.#delivered;
    this.#nextToken = null;
  }

  /** Stop by ourselves: a retry would be refused the same way. */
  #fail(failure: Failure): void {
    this.#halt();
    this.#failure = failure;
    this.#setState("failed");
  }

  #retry(error: unknown): void {
    this.#generation++; // ignore whatever the old subscription still says
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (error !== null) this.#report(error);
    const close = closeInfo(error);
    if (close !== null && isFatal(close.code)) {
      this.#fail(close);
      return;
    }
    if (close?.code === CloseCode.Forbidden) {
      this.#setState(this.#state === "resyncing" ? "resyncing" : "reconnecting");
      void this.#refreshToken(close, this.#generation);
      return;
    }
    const errors = graphqlErrors(error) ?? [];
    const fatal = errors.find((e) => FATAL_ERROR_CODES.has(e.extensions?.code));
    if (fatal !== undefined) {
      this.#fail({ code: String(fatal.extensions?.code), reason: fatal.message });
      return;
    }
    const codes = errors.map((e) => e.extensions?.code);
    if (codes.includes("BAD_USER_INPUT")) {
      // The cursor is not one this server can read: start from now, and let the app refetch what it shows.
      this.#received = null;
      const session = this.#session;
      this.#delivery = this.#delivery.then(() => (session === this.#session ? this.#resync(null) : undefined));
    }
    this.#setState(this.#state === "resyncing" ? "resyncing" : "reconnecting");
    this.#reconnectLater();
  }

  /** After a 4403: reconnect with a fresh token, or fail if the app has none but the refused one. */
  async #refreshToken(refused: CloseInfo, generation: number): Promise<void> {
    const used = this.#connectionToken;
    let token: string | null = null;
    try {
      token = await this.#options.getToken(refused);
    } catch (error) {
      this.#report(error); // the next connection asks again
    }
    if (generation !== this.#generation || !this.#running) return; // stopped meanwhile
    if (token !== null && token === used) {
      this.#fail(refused);
      return;
    }
    this.#nextToken = token;
    this.#reconnectLater();
  }

  #reconnectLater(): void {
    const delay = (this.#options.retryDelay ?? defaultRetryDelay)(++this.#attempt);
    this.#retryTimer = setTimeout(() => {
      if (this.#running) this.#subscribe();
    }, delay);
  }

  #receive(event: NotificationEvent): void {
    if (this.#seen.has(event.cursor)) return;
    this.#seen.add(event.cursor);
    if (this.#seen.size > (this.#options.dedupeWindow ?? 1000)) {
      this.#seen.delete(this.#seen.values().next().value as string);
    }
    this.#received = event.cursor;
    const session = this.#session;
    this.#delivery = this.#delivery.then(() => (session === this.#session ? this.#deliver(event) : undefined));
  }

  async #deliver(event: NotificationEvent): Promise<void> {
    if (event.kind === "RESYNC") await this.#resync(event);
    this.#delivered = event.cursor;
    this.#setUnreadCount(event.unreadCount);
    this.#setUnseenCount(event.unseenCount);
    this.#setCategoryCounts(event.categoryCounts, { replace: false });
    if (event.kind === "PREFERENCES" && event.mutedCategories) this.#setMutedCategories(event.mutedCategories);
    for (const listener of [...this.#events]) {
      try {
        listener(event);
      } catch (error) {
        this.#report(error);
      }
    }
  }

  async #resync(event: NotificationEvent | null): Promise<void> {
    this.#setState("resyncing");
    // The missed events changed categories (and perhaps the muted ones) we cannot name: read them again, beside the
    // app's refetch.
    const settled = await Promise.allSettled([
      this.fetchCategoryCounts(),
      this.fetchMutedCategories(),
      this.#options.onResync?.(event),
    ]);
    for (const result of settled) if (result.status === "rejected") this.#report(result.reason);
    if (this.#running) this.#setState(this.#connected ? "live" : "reconnecting");
  }

  #setState(state: ConnectionState): void {
    if (state === this.#state) return;
    this.#state = state;
    for (const listener of [...this.#states]) listener(state);
  }

  #setUnreadCount(count: number | null): void {
    if (count === this.#unreadCount) return;
    this.#unreadCount = count;
    for (const listener of [...this.#counts]) listener(count);
  }

  #setUnseenCount(count: number | null): void {
    if (count === this.#unseenCount) return;
    this.#unseenCount = count;
    for (const listener of [...this.#unseenCounts]) listener(count);
  }

  /** Take `counts` as they are now: all of them (`replace`), or those an event changed. */
  #setCategoryCounts(counts: readonly CategoryCount[], { replace }: { replace: boolean }): void {
    const changed = (count: CategoryCount) => {
      const kept = this.#categoryCounts.get(count.category);
      return kept?.unreadCount !== count.unreadCount || kept.unseenCount !== count.unseenCount;
    };
    if (!(replace && counts.length !== this.#categoryCounts.size) && !counts.some(changed)) return;
    if (replace) this.#categoryCounts.clear();
    for (const { category, unreadCount, unseenCount } of counts) {
      this.#categoryCounts.set(category, { category, unreadCount, unseenCount });
    }
    const snapshot = this.categoryCounts;
    for (const listener of [...this.#categoryListeners]) listener(snapshot);
  }

  #setMutedCategories(categories: readonly string[]): void {
    const sorted = [...categories].sort();
    if (sorted.length === this.#mutedCategories.length && sorted.every((c, i) => c === this.#mutedCategories[i])) {
      return;
    }
    this.#mutedCategories = sorted;
    for (const listener of [...this.#mutedListeners]) listener(sorted);
  }

  #listen<T>(listeners: Set<Listener<T>>, listener: Listener<T>): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  #report(error: unknown): void {
    this.#options.onError?.(error);
  }
}
