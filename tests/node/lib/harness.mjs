// The Node side of tests/_node.py: configuration from the environment, and pauses where pytest acts on the server.
import { createInterface } from "node:readline";

const MARK = "@@tidings ";

/** A required environment variable set by pytest (tests/_node.py). */
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through pytest (tests/_node.py)`);
  return value;
}

/** Tell pytest we reached `name` (with data), and wait for its answer: it stops, starts or writes meanwhile. */
export async function pause(name, data = {}, timeoutMs = 60_000) {
  process.stdout.write(`${MARK}${JSON.stringify({ pause: name, ...data })}\n`);
  const lines = createInterface({ input: process.stdin });
  try {
    const line = await withTimeout(
      new Promise((resolve) => lines.once("line", resolve)),
      timeoutMs,
      `pytest did not resume "${name}"`,
    );
    const reply = JSON.parse(line);
    if (reply.resume !== name) throw new Error(`expected resume of "${name}", got ${line}`);
    return reply;
  } finally {
    lines.close();
  }
}

/** Reject when `promise` takes longer than `ms`: every wait in these tests is bounded. */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Values pushed by callbacks, taken in order by tests with a bounded wait. */
export class Inbox {
  #items = [];
  #waiters = [];

  push(item) {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  /** The next item, waiting at most `ms`. */
  next(ms = 10_000, what = "an item") {
    if (this.#items.length) return Promise.resolve(this.#items.shift());
    let resolve;
    const promise = new Promise((r) => {
      resolve = r;
      this.#waiters.push(r);
    });
    return withTimeout(promise, ms, `waiting for ${what}`).catch((error) => {
      this.#waiters = this.#waiters.filter((w) => w !== resolve);
      throw error;
    });
  }

  /** The next `count` items. */
  async take(count, ms = 10_000, what = "items") {
    const items = [];
    for (let i = 0; i < count; i++) items.push(await this.next(ms, `${what} (${i + 1} of ${count})`));
    return items;
  }

  /** Nothing arrives within `ms` (proves something is not delivered). */
  async silent(ms = 500) {
    if (this.#items.length) throw new Error(`unexpected: ${JSON.stringify(this.#items[0])}`);
    await new Promise((r) => setTimeout(r, ms));
    if (this.#items.length) throw new Error(`unexpected: ${JSON.stringify(this.#items[0])}`);
  }

  get pending() {
    return this.#items.length;
  }
}

/** Poll `check` until it returns a truthy value, at most `ms`. */
export async function eventually(check, ms = 10_000, what = "a condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
