// The tidings server under test: its address, tokens from pytest, and the documented operations in graphql/operations/.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { env } from "./harness.mjs";

const OPERATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "graphql", "operations");

/** `{ Notifications: "query Notifications(...) {...}", ... }`: the files users copy are the ones tested. */
export const operations = Object.fromEntries(
  readdirSync(OPERATIONS_DIR)
    .filter((name) => name.endsWith(".graphql"))
    .map((name) => [name.slice(0, -".graphql".length), readFileSync(join(OPERATIONS_DIR, name), "utf8")]),
);

export const server = {
  get url() {
    return env("TIDINGS_URL");
  },
  get graphqlUrl() {
    return `${env("TIDINGS_URL")}/graphql`;
  },
  /** The WebSocket endpoint: TIDINGS_WS_URL when pytest puts a proxy in front of the server, else the server's. */
  get wsUrl() {
    return process.env.TIDINGS_WS_URL || `${env("TIDINGS_URL").replace(/^http/, "ws")}/graphql`;
  },
  /** The dashboard link `tidings serve` printed, with its sign-in code (the browser tests). */
  get dashboardLink() {
    return env("TIDINGS_DASHBOARD_LINK");
  },
  get user() {
    return env("TIDINGS_USER");
  },
  get userToken() {
    return env("TIDINGS_USER_TOKEN");
  },
  get serviceToken() {
    return env("TIDINGS_SERVICE_TOKEN");
  },
  get expiredToken() {
    return env("TIDINGS_EXPIRED_TOKEN");
  },
};

/** One GraphQL request over HTTP; throws on transport or GraphQL errors. */
export async function graphql(query, variables, token) {
  const response = await fetch(server.graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await response.json();
  if (!response.ok || body.errors) throw new Error(`GraphQL failed (${response.status}): ${JSON.stringify(body)}`);
  return body.data;
}

/** A backend service notifies the user (CreateNotification.graphql with the service token). */
export async function createNotification(title, fields = {}) {
  const input = { userId: server.user, title, message: `${title}: message`, ...fields };
  const data = await graphql(operations.CreateNotification, { input }, server.serviceToken);
  return data.createNotification;
}
