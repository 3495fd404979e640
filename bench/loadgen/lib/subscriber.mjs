// One device: a WebSocket speaking graphql-transport-ws by hand, subscribed to notificationEvents.
import WebSocket from 'ws';
import { nowNs } from './clock.mjs';

export const SUBPROTOCOL = 'graphql-transport-ws';
// The fields a notification list shows; the floor sends exactly these.
export const SUBSCRIPTION =
  'subscription { notificationEvents { kind cursor unreadCount ' +
  'notification { id userId type title message data createdAt } } }';
const OPERATION_ID = '1';
const ACK_TIMEOUT_MS = 15_000;

export class Subscriber {
  /**
   * `onNotification(subscriber, notification, receivedNs, bytes)` is called for every `next` carrying a notification;
   * `onTrouble(text)` for anything else that should not happen (errors, early closes, protocol violations).
   */
  constructor({ url, token, userId, device, onNotification, onTrouble }) {
    Object.assign(this, { url, token, userId, device, onNotification, onTrouble });
    this.ws = null;
    this.closing = false;
  }

  /** Connects, authenticates and subscribes; resolves true once acknowledged, false on failure. */
  open() {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (ok, why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok) {
          this.onTrouble(`${this.userId}/${this.device}: ${why}`);
          this.ws.terminate();
        }
        resolve(ok);
      };
      const timer = setTimeout(() => settle(false, `no connection_ack in ${ACK_TIMEOUT_MS} ms`), ACK_TIMEOUT_MS);
      const ws = new WebSocket(this.url, SUBPROTOCOL, { perMessageDeflate: false });
      this.ws = ws;
      ws.on('open', () => this.#send({ type: 'connection_init', payload: { authorization: `Bearer ${this.token}` } }));
      ws.on('message', (raw, isBinary) => {
        const receivedNs = nowNs(); // before parsing: parsing is the loadgen's time, not the server's
        if (isBinary) return this.onTrouble('binary frame');
        let message;
        try {
          message = JSON.parse(raw);
        } catch {
          return this.onTrouble('unparsable frame');
        }
        if (message.type === 'connection_ack') {
          this.#send({ id: OPERATION_ID, type: 'subscribe', payload: { query: SUBSCRIPTION } });
          settle(true);
        } else if (message.type === 'next') {
          const notification = message.payload?.data?.notificationEvents?.notification;
          if (notification && !message.payload.errors) this.onNotification(this, notification, receivedNs, raw.length);
          else this.onTrouble(`next without a notification: ${JSON.stringify(message.payload).slice(0, 200)}`);
        } else if (message.type === 'ping') {
          this.#send({ type: 'pong' });
        } else if (message.type !== 'pong') {
          this.onTrouble(`${message.type}: ${JSON.stringify(message.payload ?? null).slice(0, 200)}`);
        }
      });
      ws.on('error', (error) => settle(false, error.message));
      ws.on('close', (code, reason) => {
        if (!settled) settle(false, `closed ${code} ${reason}`);
        else if (!this.closing) this.onTrouble(`${this.userId}/${this.device} closed early: ${code} ${reason}`);
      });
    });
  }

  #send(message) {
    this.ws.send(JSON.stringify(message));
  }

  close() {
    this.closing = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }

  get closed() {
    return this.ws.readyState === WebSocket.CLOSED;
  }
}

/** Opens `subscribers` with at most `concurrency` handshakes in flight; returns those that subscribed. */
export async function openAll(subscribers, concurrency) {
  const opened = [];
  let next = 0;
  const worker = async () => {
    while (next < subscribers.length) {
      const subscriber = subscribers[next++];
      if (await subscriber.open()) opened.push(subscriber);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, subscribers.length) }, worker));
  return opened;
}

/** Closes every subscriber, waiting up to 3 s for the closing handshakes. */
export async function closeAll(subscribers) {
  for (const subscriber of subscribers) subscriber.close();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && subscribers.some((s) => !s.closed)) await new Promise((r) => setTimeout(r, 50));
  for (const subscriber of subscribers) if (!subscriber.closed) subscriber.ws.terminate();
}
