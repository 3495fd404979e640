// @tidings/client: follow one user's notifications over graphql-ws, losing none and showing none twice.
//
// graphql-ws reconnects by itself, but resubscribes with the variables it started with, so a client that passed
// `after: feedCursor` replays from that old cursor, and one that passed nothing misses what came while it was away.
// This client owns the reconnect loop instead: every (re)subscribe passes the cursor of the last event received.
import { type Client as WsClient, createClient } from "graphql-ws";

import * as operations from "./operations.js";

export { operations };

export type NotificationType = "INFO" | "SUCCESS" | "WARNING" | "ERROR";
export type EventKind = "CREATED" | "READ" | "ALL_READ" | "DELETED" | "RESYNC";
/** `stopped` before `start()` and after `stop()`; `resyncing` while the `onResync` refetch runs. */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "resyncing" | "stopped";

export interface Notification {
  id: string;
  userId: string;
  type: NotificationType;
  title: string;
  message: string;
  data: Record<string, unknown> | null;
  read: boolean;
  readAt: string | null;
  createdAt: string;
  sequence: number;
}

export interface NotificationEvent {
  kind: EventKind;
  /** Resume point: the client passes the last one as `after` when it resubscribes. */
  cursor: string;
  sequence: number;
  unreadCount: number;
  upToSequence: number | null;
  count: number | null;
  notification: Notification | null;
}

export interface NotificationPage {
  edges: { cursor: string; node: Notification }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  unreadCount: number;
  /** Subscribe after this to miss nothing that happened after the page was read. */
  feedCursor: string;
}

export interface MarkAllReadResult {
  count: number;
  unreadCount: number;
  cursor: string;
}

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
  /** Called for every connection and request, so a refreshed token is used on the next reconnect. */
  getToken: () => string | Promise<string>;
  /**
   * Events were missed beyond recovery (`RESYNC`), or the server refused the cursor it was given (null): refetch the
   * list. Later events wait until it settles.
   */
  onResync?: (event: NotificationEvent | null) => void | Promise<void>;
  /** Connection problems and callback failures (the client keeps going). */
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
}

type Listener<T> = (value: T) => void;

const defaultRetryDelay = (attempt: number): number =>
  Math.min(30_000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);

function graphqlErrors(error: unknown): readonly { message: string; extensions?: { code?: unknown } }[] | null {
  return Array.isArray(error) ? error : null;
}

export class TidingsClient {
  readonly #options: TidingsClientOptions;
  readonly #ws: WsClient;
  readonly #events = new Set<Listener<NotificationEvent>>();
  readonly #states = new Set<Listener<ConnectionState>>();
  readonly #counts = new Set<Listener<number | null>>();
  readonly #seen = new Set<string>(); // insertion-ordered: the oldest cursor is forgotten first
  #state: ConnectionState = "stopped";
  #unreadCount: number | null = null;
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
      connectionParams: async () => ({ authorization: `Bearer ${await options.getToken()}` }),
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

  /** `connecting`, `live`, `reconnecting`, `resyncing` or `stopped`. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The unread count after the last event delivered (or the one passed to `start`); null when unknown. */
  get unreadCount(): number | null {
    return this.#unreadCount;
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

  /** Start following the user's events. */
  start({ after, unreadCount }: StartOptions = {}): void {
    if (this.#running) return;
    if (after !== undefined) this.#delivered = this.#received = after;
    if (unreadCount !== undefined) this.#setUnreadCount(unreadCount);
    this.#running = true;
    this.#setState("connecting");
    this.#subscribe();
  }

  /** Stop following; `start()` continues after the last delivered event. */
  stop(): void {
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#retryTimer);
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#session++;
    this.#seen.clear(); // the next start() resumes after the last delivered event: nothing to repeat
    this.#received = this.#delivered;
    this.#setState("stopped");
  }

  /** Stop and close the socket. */
  async dispose(): Promise<void> {
    this.stop();
    await this.#ws.dispose();
  }

  /** A page of notifications, newest first (`Notifications.graphql`). */
  async notifications(variables: { first?: number; after?: string | null } = {}): Promise<NotificationPage> {
    const data = await this.request<{ notifications: NotificationPage }>(operations.Notifications, variables);
    return data.notifications;
  }

  /** Mark one notification read; every device gets `READ`. */
  async markRead(id: string): Promise<Pick<Notification, "id" | "read" | "readAt">> {
    const data = await this.request<{ markNotificationRead: Pick<Notification, "id" | "read" | "readAt"> }>(
      operations.MarkNotificationRead,
      { id },
    );
    return data.markNotificationRead;
  }

  /**
   * Mark read what the user has seen: those created up to `upTo`, by default the last event delivered, so one that
   * arrived after is not silently marked read. Every device gets one `ALL_READ`.
   */
  async markAllRead(upTo: string | null = this.#delivered): Promise<MarkAllReadResult> {
    const data = await this.request<{ markAllNotificationsRead: MarkAllReadResult }>(
      operations.MarkAllNotificationsRead,
      { upTo },
    );
    return data.markAllNotificationsRead;
  }

  /** Any GraphQL operation over HTTP with the current token. */
  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const fetcher = this.#options.fetch ?? fetch;
    const response = await fetcher(this.#options.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await this.#options.getToken()}` },
      body: JSON.stringify({ query, variables }),
    });
    let body: { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
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
    this.#unsubscribe = this.#ws.subscribe<{ notificationEvents: NotificationEvent }>(
      { query: operations.NotificationEvents, variables: { after: this.#received } },
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

  #retry(error: unknown): void {
    this.#generation++; // ignore whatever the old subscription still says
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (error !== null) this.#report(error);
    const codes = graphqlErrors(error)?.map((e) => e.extensions?.code) ?? [];
    if (codes.includes("BAD_USER_INPUT")) {
      // The cursor is not one this server can read: start from now, and let the app refetch what it shows.
      this.#received = null;
      const session = this.#session;
      this.#delivery = this.#delivery.then(() => (session === this.#session ? this.#resync(null) : undefined));
    }
    this.#setState(this.#state === "resyncing" ? "resyncing" : "reconnecting");
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
    try {
      await this.#options.onResync?.(event);
    } catch (error) {
      this.#report(error);
    }
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

  #listen<T>(listeners: Set<Listener<T>>, listener: Listener<T>): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  #report(error: unknown): void {
    this.#options.onError?.(error);
  }
}
