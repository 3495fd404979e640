// createNotification over HTTP keep-alive on a fixed schedule, never waiting for responses (open loop).
import http from 'node:http';
import { nowNs, nsToMs, sleep } from './clock.mjs';
import { quantile } from './tally.mjs';

export const MUTATION =
  'mutation Create($input: CreateNotificationInput!) { createNotification(input: $input) { id } }';
const REQUEST_TIMEOUT_MS = 30_000;
// Pooled connections idle this long are closed by us, before uvicorn's keep-alive timeout (5 s) can close one under a
// request being written to it.
const IDLE_CLOSE_MS = 4_000;
const MAX_ERRORS_KEPT = 5;

export const PENDING = 0;
export const OK = 1;
export const FAILED = 2;

/** The request body for message `msgId` to `userId`: it carries its send time and id in `data`. */
export function mutationBody(msgId, userId, sentNs) {
  return JSON.stringify({
    query: MUTATION,
    operationName: 'Create',
    variables: {
      input: {
        userId,
        type: 'INFO',
        title: 'Build finished',
        message: `Pipeline #${msgId} passed: 148 tests, 3 artifacts.`,
        data: { sentAt: String(sentNs), msgId },
      },
    },
  });
}

export class Sender {
  constructor({ url, token, messages, connections, maxInflight, onSettled }) {
    this.target = new URL(url);
    this.token = token;
    this.maxInflight = maxInflight;
    this.onSettled = onSettled;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections, timeout: IDLE_CLOSE_MS });
    this.status = new Uint8Array(messages); // PENDING, OK or FAILED per msgId
    this.latenciesUs = [];
    this.measuredFrom = 0;
    this.sent = 0;
    this.ok = 0;
    this.failed = 0;
    this.skipped = 0; // not sent: maxInflight requests were already waiting (counted as failed)
    this.inflight = 0;
    this.errors = [];
  }

  send(msgId, userId) {
    if (this.inflight >= this.maxInflight) {
      this.skipped++;
      this.#settle(msgId, false, null, 'in-flight cap reached');
      return;
    }
    const sentNs = nowNs();
    const body = mutationBody(msgId, userId, sentNs);
    this.sent++;
    this.inflight++;
    const request = http.request(
      {
        agent: this.agent,
        host: this.target.hostname,
        port: this.target.port,
        path: this.target.pathname,
        method: 'POST',
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${this.token}`,
        },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let id = null;
          try {
            const reply = JSON.parse(text);
            if (!reply.errors) id = reply.data?.createNotification?.id ?? null;
          } catch {
            // reported below
          }
          const ok = response.statusCode === 200 && id != null;
          this.#settle(msgId, ok, sentNs, ok ? null : `HTTP ${response.statusCode}: ${text.slice(0, 200)}`);
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no response in ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', (error) => this.#settle(msgId, false, sentNs, error.message));
    request.end(body);
  }

  #settle(msgId, ok, sentNs, error) {
    if (this.status[msgId] !== PENDING) return; // an error after the response ended
    if (sentNs !== null) this.inflight--;
    this.status[msgId] = ok ? OK : FAILED;
    if (ok) {
      this.ok++;
      if (msgId >= this.measuredFrom) this.latenciesUs.push(Number(nowNs() - sentNs) / 1e3);
    } else {
      this.failed++;
      if (this.errors.length < MAX_ERRORS_KEPT) this.errors.push(error);
    }
    this.onSettled();
  }

  close() {
    this.agent.destroy();
  }
}

/**
 * Calls `fire(i)` for i in [0, count) at `rate` per second: call i is due at start + i / rate, whatever the server
 * does, so a slow server makes requests queue and the queueing shows in latency (no coordinated omission). Returns
 * how late the calls were against that schedule (timer granularity, a busy loadgen): a large lag means the offered
 * load was not what the run claims.
 */
export async function onSchedule(count, rate, fire) {
  const start = nowNs();
  const intervalNs = 1e9 / rate;
  const due = (i) => start + BigInt(Math.round(i * intervalNs));
  const lagMs = new Float64Array(count);
  let i = 0;
  while (i < count) {
    for (let now = nowNs(); i < count && due(i) <= now; i++) {
      lagMs[i] = nsToMs(now - due(i));
      fire(i);
    }
    // Sleep at least 1 ms even when the next call is due sooner: spinning on setImmediate would use the loadgen's
    // whole core at a few thousand calls per second. What falls due meanwhile goes out together on waking.
    if (i < count) await sleep(Math.min(Math.max(nsToMs(due(i) - nowNs()), 1), 50));
  }
  lagMs.sort();
  return { p50: quantile(lagMs, 0.5), p99: quantile(lagMs, 0.99), max: quantile(lagMs, 1) };
}
