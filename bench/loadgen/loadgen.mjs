// The tidings bench's load generator. Run by bench/run.py; usable alone:
//
//   node loadgen.mjs --url http://127.0.0.1:8000/graphql --secret S --server-pid 1234 --users 1000 --devices 2 \
//        --rate 300 --duration 20
//   node loadgen.mjs --mode idle --url ... --secret S --server-pid 1234 --sockets 4000 --step 1000 --devices 2
//
// fanout: U users x D devices subscribed sockets; createNotification at R/s for T s to the users in turn, open loop.
//         Each carries data = {sentAt: <CLOCK_MONOTONIC ns at send>, msgId}; every device's receipt is timed against
//         it on the same clock and counted per (message, device): lost, duplicated, misrouted. D = 0 measures
//         createNotification alone.
// idle:   subscribed sockets opened in steps of S up to K; the server's RSS at each step.
//
// Writes JSON lines to stdout: {"event": "progress", ...} while running, then one {"event": "result", ...}.
import { parseArgs } from 'node:util';
import { Signal, nowNs, nsToMs, sleep, until } from './lib/clock.mjs';
import { MachineCpu, cpuSeconds, rssKiB, withDescendants } from './lib/proc.mjs';
import { FAILED, OK, Sender, onSchedule } from './lib/sender.mjs';
import { Subscriber, closeAll, openAll } from './lib/subscriber.mjs';
import { Tally, latencySummary, quantile } from './lib/tally.mjs';
import { mint } from './lib/token.mjs';

// A run is invalid when the loadgen, not the server, was the bottleneck, or something else shared the machine.
const LOADGEN_CORE_LIMIT = 0.8;
const SEND_LAG_P99_LIMIT_MS = 25;
const OTHER_CORE_LIMIT = 0.2;
const MAX_TROUBLES_KEPT = 5;

const { values: options } = parseArgs({
  options: {
    mode: { type: 'string', default: 'fanout' },
    url: { type: 'string' },
    secret: { type: 'string', default: process.env.TIDINGS_JWT_SECRET },
    'server-pid': { type: 'string' },
    users: { type: 'string', default: '1000' },
    devices: { type: 'string', default: '2' },
    rate: { type: 'string', default: '300' },
    duration: { type: 'string', default: '20' },
    drain: { type: 'string', default: '10' }, // seconds to wait for responses, then for deliveries
    sockets: { type: 'string', default: '4000' },
    step: { type: 'string', default: '1000' },
    settle: { type: 'string', default: '3' },
    progress: { type: 'string', default: '2' }, // seconds between progress lines while measuring
    'http-connections': { type: 'string', default: '64' },
    'max-inflight': { type: 'string', default: '20000' },
    'connect-concurrency': { type: 'string', default: '100' },
    'user-prefix': { type: 'string', default: `lg-${Date.now().toString(36)}-` },
  },
});
const number = (name) => {
  const value = Number(options[name]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number`);
  return value;
};
for (const name of ['url', 'secret', 'server-pid']) if (!options[name]) throw new Error(`--${name} is required`);

const emit = (event, fields) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const wsUrl = options.url.replace(/^http/, 'ws');
const serverPids = withDescendants([number('server-pid')]);
const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
const serverRss = () => serverPids.reduce((sum, pid) => sum + rssKiB(pid), 0);
const troubles = { count: 0, first: [] };
const trouble = (text) => {
  troubles.count++;
  if (troubles.first.length < MAX_TROUBLES_KEPT) troubles.first.push(text);
};
const usToMs = (us) => (us == null ? null : us / 1e3);
const userId = (i) => `${options['user-prefix']}${i}`;

// Sockets [first, first + count): socket n is device n % D of user n / D.
async function openSubscribers(first, count, devices, onNotification) {
  const subscribers = Array.from({ length: count }, (_, i) => {
    const user = userId(Math.floor((first + i) / devices));
    return new Subscriber({
      url: wsUrl,
      token: mint(options.secret, user),
      userId: user,
      device: (first + i) % devices,
      onNotification,
      onTrouble: trouble,
    });
  });
  return openAll(subscribers, number('connect-concurrency'));
}

function loadgenCores(since, wallS) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6 / wallS;
}

async function fanout() {
  const users = number('users');
  const devices = number('devices');
  const rate = number('rate');
  const measured = Math.round(rate * number('duration'));
  // Warm-up: one notification per user, delivered to every device before measuring, proves every subscription live
  // (graphql-transport-ws does not acknowledge a subscribe) and warms pools and caches.
  const warm = users;
  const total = warm + measured;
  const changed = new Signal();
  const tally = new Tally(total, devices, warm);
  let frameBytes = 0;
  let frames = 0;
  const onNotification = (subscriber, notification, receivedNs, bytes) => {
    frames++;
    frameBytes += bytes;
    const data = notification.data ?? {};
    tally.receive({
      msgId: data.msgId,
      device: subscriber.device,
      userId: notification.userId,
      expectedUser: subscriber.userId,
      sentNs: BigInt(data.sentAt ?? 0),
      receivedNs,
    });
    changed.fire();
  };
  const sender = new Sender({
    url: options.url,
    token: mint(options.secret, 'bench-service', { service: true }),
    messages: total,
    connections: number('http-connections'),
    maxInflight: number('max-inflight'),
    onSettled: () => changed.fire(),
  });
  const countStatus = (from, to, status) => {
    let n = 0;
    for (let i = from; i < to; i++) if (sender.status[i] === status) n++;
    return n;
  };

  const openedAt = Date.now();
  const subscribers = await openSubscribers(0, users * devices, Math.max(devices, 1), onNotification);
  const failedToOpen = users * devices - subscribers.length;
  const openS = (Date.now() - openedAt) / 1000;
  emit('progress', { phase: 'open', sockets: subscribers.length, failed: failedToOpen, seconds: openS });
  await sleep(500 + subscribers.length / 4); // let the server finish its subscribes

  const warmStarted = Date.now();
  await onSchedule(warm, Math.min(Math.max(rate, 200), 1000), (i) => sender.send(i, userId(i)));
  await until(() => sender.inflight === 0, 30_000, changed);
  const warmExpected = countStatus(0, warm, OK) * devices;
  const warmComplete = await until(() => tally.first >= warmExpected, 30_000, changed);
  const warmS = (Date.now() - warmStarted) / 1000;
  emit('progress', { phase: 'warm-up', delivered: tally.first, expected: warmExpected, seconds: warmS });

  sender.measuredFrom = warm;
  const machine = new MachineCpu(serverPids);
  const ownCpu = process.cpuUsage();
  const serverCpu0 = serverCpu();
  const t0 = nowNs();
  const sentBefore = sender.sent;
  const progress = setInterval(() => {
    emit('progress', {
      phase: 'measure',
      t: Math.round(nsToMs(nowNs() - t0) / 100) / 10,
      sent: sender.sent - sentBefore,
      ok: countStatus(warm, total, OK),
      failed: countStatus(warm, total, FAILED),
      inflight: sender.inflight,
      delivered: tally.firstMeasured,
    });
  }, number('progress') * 1000);
  const sendLagMs = await onSchedule(measured, rate, (i) => sender.send(warm + i, userId((warm + i) % users)));
  const sendEnd = nowNs();
  const drainMs = number('drain') * 1000;
  await until(() => sender.inflight === 0, drainMs, changed);
  const expected = countStatus(warm, total, OK) * devices;
  await until(() => tally.firstMeasured >= expected, drainMs, changed);
  // Creates still unanswered now count as failed: a saturated server that never answers loses those notifications.
  const unacknowledged = measured - countStatus(warm, total, OK) - countStatus(warm, total, FAILED);
  const t1 = nowNs();
  clearInterval(progress);
  const serverCpuS = serverCpu() - serverCpu0;
  const wallS = nsToMs(t1 - t0) / 1000;
  const cores = machine.cores();
  const rss = serverRss();

  let delivered = 0;
  let deliveredForFailed = 0;
  for (let i = warm; i < total; i++) {
    if (sender.status[i] === OK) delivered += tally.reached(i);
    else deliveredForFailed += tally.reached(i);
  }
  // Rates over the nominal send window (measured / rate), or over the span the deliveries took when longer: a server
  // that falls behind spreads them past the window.
  const sendS = Math.max(measured / rate, nsToMs(sendEnd - t0) / 1000);
  const spanS = Math.max(sendS, tally.lastMeasuredNs > t0 ? nsToMs(tally.lastMeasuredNs - t0) / 1000 : 0);
  const mutationLatency = Float64Array.from(sender.latenciesUs).sort();
  const ownCores = loadgenCores(ownCpu, wallS);
  const invalid = [];
  const percent = (cores) => `${(cores * 100).toFixed(0)}%`;
  if (ownCores > LOADGEN_CORE_LIMIT) {
    invalid.push(`the loadgen used ${percent(ownCores)} of its core: it, not the server, may be the limit`);
  }
  if (sendLagMs.p99 > SEND_LAG_P99_LIMIT_MS) {
    invalid.push(`sends lagged the schedule by ${sendLagMs.p99.toFixed(1)} ms at p99`);
  }
  if (cores.other > OTHER_CORE_LIMIT) {
    const busiest = cores.other_busiest.map((o) => o.comm).join(', ');
    invalid.push(`other processes used ${percent(cores.other)} of a core (${busiest})`);
  }
  if (failedToOpen) invalid.push(`${failedToOpen} sockets did not subscribe`);
  if (!warmComplete) invalid.push(`warm-up delivered ${tally.first} of ${warmExpected}`);
  await closeAll(subscribers);
  sender.close();
  return {
    mode: 'fanout',
    users,
    devices,
    sockets: subscribers.length,
    rate,
    duration_s: number('duration'),
    offered_deliveries_per_s: rate * devices,
    window_s: wallS,
    mutations: {
      offered: measured,
      ok: countStatus(warm, total, OK),
      failed: countStatus(warm, total, FAILED),
      unacknowledged,
      skipped_inflight_cap: sender.skipped,
      ok_per_s: countStatus(warm, total, OK) / sendS,
      latency_ms: {
        p50: usToMs(quantile(mutationLatency, 0.5)),
        p99: usToMs(quantile(mutationLatency, 0.99)),
        max: usToMs(quantile(mutationLatency, 1)),
      },
      first_errors: sender.errors,
    },
    deliveries: {
      expected,
      delivered,
      lost: expected - delivered,
      duplicates: tally.duplicates,
      misrouted: tally.misrouted,
      unknown: tally.unknown,
      for_failed_mutations: deliveredForFailed,
      per_s: delivered / spanS,
      frame_bytes_mean: frames ? frameBytes / frames : null,
    },
    latency_ms: latencySummary(tally.sortedLatenciesUs()),
    send_lag_ms: sendLagMs,
    cpu: {
      server_s: serverCpuS,
      server_us_per_delivery: delivered ? (serverCpuS * 1e6) / delivered : null,
      server_us_per_mutation: countStatus(warm, total, OK) ? (serverCpuS * 1e6) / countStatus(warm, total, OK) : null,
      cores,
    },
    server_rss_kib: rss,
    troubles,
    valid: invalid.length === 0,
    invalid_reasons: invalid,
  };
}

async function idle() {
  const devices = Math.max(number('devices'), 1);
  const target = number('sockets');
  const step = Math.max(number('step'), 1);
  const ownCpu = process.cpuUsage();
  const startedAt = Date.now();
  const subscribers = [];
  const points = [];
  const stray = () => trouble('a notification on an idle socket');
  for (let count = 0; count <= target; count += step) {
    const first = subscribers.length;
    subscribers.push(...(await openSubscribers(first, count - first, devices, stray)));
    await sleep(number('settle') * 1000);
    points.push({ sockets: subscribers.length, rss_kib: serverRss() });
    emit('progress', { phase: 'idle', ...points.at(-1) });
  }
  const ownCores = loadgenCores(ownCpu, (Date.now() - startedAt) / 1000);
  await closeAll(subscribers);
  const failed = Math.floor(target / step) * step - subscribers.length;
  return {
    mode: 'idle',
    devices,
    sockets: subscribers.length,
    points,
    loadgen_cores: ownCores,
    troubles,
    valid: failed === 0,
    invalid_reasons: failed ? [`${failed} sockets did not subscribe`] : [],
  };
}

const result = options.mode === 'idle' ? await idle() : await fanout();
emit('result', result);
process.exit(0);
