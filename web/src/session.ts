// Who is signed in, shared by the dashboard and GraphiQL (same origin, localStorage), and the dev-token endpoint.

export interface Session {
  user: string;
  token: string;
  /** Lets the "send a test notification" panel create notifications: pasted, or minted on first use (dev). */
  serviceToken: string | null;
  /** Minted by the development endpoint, so it can be minted again when it expires. */
  dev: boolean;
}

export interface DashboardConfig {
  devTokens: boolean;
  graphiql: boolean;
}

interface DevTokens {
  user: string;
  token: string;
  serviceToken: string | null;
}

const KEY = "tidings.session";
const CODE_KEY = "tidings.signInCode";
const REFRESH_MARGIN_S = 60;

export function loadSession(): Session | null {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? "null") as Session | null;
    return session && typeof session.token === "string" && typeof session.user === "string" ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  localStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
}

export async function dashboardConfig(): Promise<DashboardConfig> {
  const response = await fetch("/dashboard/config", { headers: { accept: "application/json" } });
  if (!response.ok) return { devTokens: false, graphiql: true };
  return (await response.json()) as DashboardConfig;
}

/**
 * The development endpoint's sign-in code: from the link `tidings serve` printed (`/#code=...`), which is then taken
 * out of the address bar, or the one this origin kept from an earlier visit.
 */
export function takeSignInCode(): string | null {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) {
    rememberSignInCode(code);
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  return localStorage.getItem(CODE_KEY);
}

export function rememberSignInCode(code: string): void {
  localStorage.setItem(CODE_KEY, code);
}

/** The server refused it (it makes a new one at every start). */
export function forgetSignInCode(): void {
  localStorage.removeItem(CODE_KEY);
}

/** Ask the development endpoint for a user token, and with `service` a service token for the send panel. */
export async function mintDevTokens(user: string, code: string, { service = false } = {}): Promise<Session> {
  const response = await fetch("/dashboard/dev-token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user, code, service }),
  });
  const body = (await response.json().catch(() => ({}))) as Partial<DevTokens> & { detail?: string };
  if (!response.ok || !body.token || !body.user) {
    throw new DevTokensRefused(body.detail ?? `HTTP ${response.status}`, response.status);
  }
  return { user: body.user, token: body.token, serviceToken: body.serviceToken ?? null, dev: true };
}

/** The development endpoint said no: 403 for a wrong sign-in code (or a request not from this page). */
export class DevTokensRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The token's claims, read without verifying (the server verifies); null when it is not a JWT. */
export function claims(token: string): { sub?: string; exp?: number; role?: string } | null {
  try {
    const payload = token.split(".")[1] ?? "";
    return JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { sub?: string; exp?: number };
  } catch {
    return null;
  }
}

export function expiresSoon(token: string): boolean {
  const exp = claims(token)?.exp;
  return exp !== undefined && exp - REFRESH_MARGIN_S < Date.now() / 1000;
}
