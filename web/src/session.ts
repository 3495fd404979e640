// Who is signed in, shared by the dashboard and GraphiQL (same origin, localStorage), and the dev-token endpoint.

export interface Session {
  user: string;
  token: string;
  /** Only from the development endpoint: lets the "send a test notification" panel create notifications. */
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
  serviceToken: string;
}

const KEY = "tidings.session";
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

/** Ask the development endpoint for a user token (and a service token for the send panel). */
export async function mintDevTokens(user: string): Promise<Session> {
  const response = await fetch("/dashboard/dev-token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = (await response.json().catch(() => ({}))) as Partial<DevTokens> & { detail?: string };
  if (!response.ok || !body.token || !body.user) throw new Error(body.detail ?? `HTTP ${response.status}`);
  return { user: body.user, token: body.token, serviceToken: body.serviceToken ?? null, dev: true };
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
