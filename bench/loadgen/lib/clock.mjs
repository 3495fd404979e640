// One monotonic clock for send times and receipts: process.hrtime.bigint() is CLOCK_MONOTONIC, in nanoseconds.
export const nowNs = () => process.hrtime.bigint();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const nsToMs = (ns) => Number(ns) / 1e6;

// Resolves when `ready()` holds (checked whenever `signal` fires and every 50 ms), or false after `timeoutMs`.
export async function until(ready, timeoutMs, signal) {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((resolve) => {
      const timer = setTimeout(done, Math.min(50, left));
      const off = signal.on(() => ready() && done());
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }
  return true;
}

// A minimal many-listener signal: `fire()` calls every current listener; `on(fn)` returns its own removal.
export class Signal {
  #listeners = new Set();
  on(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  fire() {
    for (const fn of this.#listeners) fn();
  }
}
