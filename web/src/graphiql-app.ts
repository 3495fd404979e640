// GraphiQL served by tidings itself at /graphql: no CDN. Queries and mutations over HTTP, subscriptions over
// graphql-ws; the Authorization header of the Headers pane is also the WebSocket's connectionParams. Loaded by
// graphiql.ts once the page shows its loading state; Monaco's workers start only when an editor needs them.
import "graphiql/setup-workers/vite";
import "graphiql/style.css";
import "./graphiql.css";

import { type Fetcher, createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { type Client, createClient } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

import { SelectLinkedOperation, linkWriter, readLink } from "./graphiql-link";
import { loadSession } from "./session";

const url = new URL("/graphql", location.href).href;
const wsUrl = url.replace(/^http/, "ws");

const DEFAULT_QUERY = `# tidings GraphiQL, served by tidings itself (no CDN).
#
# Headers pane: {"Authorization": "Bearer <token>"} goes
# with every HTTP request and, for a subscription, as the
# WebSocket's connectionParams. Mint tokens with
#   .venv/bin/tidings token alice
#   .venv/bin/tidings token backend --service
# Signed in on the dashboard (/)? Its token is filled in.
#
# Run "Live" with ▶, then send a notification from the
# dashboard: its events stream into the response pane.

subscription Live($after: String) {
  notificationEvents(after: $after) {
    kind
    cursor
    unreadCount
    notification { id type title message read createdAt }
  }
}

query Inbox {
  notifications(first: 10) {
    edges { node { id type title read createdAt } }
    pageInfo { hasNextPage endCursor }
    unreadCount
    feedCursor
  }
}
`;

function initialHeaders(): string {
  const token = loadSession()?.token ?? "<paste a token: .venv/bin/tidings token alice>";
  return JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
}

function header(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const entry = Object.entries(headers ?? {}).find(([key]) => key.toLowerCase() === name);
  return typeof entry?.[1] === "string" ? entry[1] : undefined;
}

/** A close event (4403: the token was refused) as an error GraphiQL can print. */
function readable(error: unknown): unknown {
  if (error && typeof error === "object" && "code" in error && "reason" in error) {
    const { code, reason } = error as { code: number; reason: string };
    const hint = code === 4403 ? ": put a valid token in the Headers pane" : "";
    return new Error(`WebSocket closed with ${code} ${reason || ""}${hint}`.trim());
  }
  return error;
}

/** One graphql-ws client per Authorization value: changing the header pane reconnects with the new token. */
let current: { authorization: string | undefined; ws: Client; fetcher: Fetcher } | null = null;

function fetcherFor(authorization: string | undefined): Fetcher {
  if (!current || current.authorization !== authorization) {
    void current?.ws.dispose();
    const ws = createClient({
      url: wsUrl,
      lazy: true,
      retryAttempts: 0, // a refused token shows as an error in the response pane instead of retrying silently
      connectionParams: authorization ? { authorization } : {},
    });
    const wsClient: Client = {
      ...ws,
      subscribe: (payload, sink) => ws.subscribe(payload, { ...sink, error: (error) => sink.error(readable(error)) }),
    };
    current = { authorization, ws, fetcher: createGraphiQLFetcher({ url, wsClient }) };
  }
  return current.fetcher;
}

const fetcher: Fetcher = (params, options) =>
  fetcherFor(header(options?.headers as Record<string, unknown> | undefined, "authorization"))(params, options);

/** Replace the loading state in `root` with GraphiQL, opened on the operation of the link if it has one. */
export function mount(root: HTMLElement): void {
  const link = readLink(location.search);
  root.replaceChildren();
  createRoot(root).render(
    createElement(
      GraphiQL,
      {
        fetcher,
        defaultQuery: DEFAULT_QUERY,
        // A link opens exactly its operation: variables left over from another tab do not come with it.
        initialQuery: link.query,
        initialVariables: link.query === undefined ? link.variables : (link.variables ?? ""),
        initialHeaders: initialHeaders(),
        onTabChange: linkWriter(),
        defaultEditorToolsVisibility: link.variables ? "variables" : "headers",
      },
      createElement(
        GraphiQL.Logo,
        null,
        createElement("a", { href: "/", className: "tidings-logo", title: "Back to the dashboard" }, "tidings"),
        createElement("span", { className: "tidings-logo-suffix" }, " GraphiQL"),
      ),
      createElement(SelectLinkedOperation, { name: link.operationName }),
    ),
  );
}
