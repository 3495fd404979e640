// Exact delivery accounting per (message, device) and latency statistics.

/** Receipts of messages [0, messages) on devices [0, devices): first receipts, duplicates, strays. */
export class Tally {
  constructor(messages, devices, measuredFrom) {
    this.devices = devices;
    this.measuredFrom = measuredFrom;
    this.receipts = new Uint8Array(messages * devices); // receipts per (message, device), saturating at 255
    this.latenciesUs = new Float64Array(Math.max(0, messages - measuredFrom) * devices);
    this.latencyCount = 0;
    this.first = 0; // first receipts, warm-up included
    this.firstMeasured = 0;
    this.duplicates = 0;
    this.misrouted = 0; // a notification for another user arrived on this device
    this.unknown = 0; // a msgId this run never sent
    this.lastMeasuredNs = 0n;
  }

  /** Records that `device` of `userId` received message `msgId` for `expectedUser` at `receivedNs`. */
  receive({ msgId, device, userId, expectedUser, sentNs, receivedNs }) {
    if (userId !== expectedUser) {
      this.misrouted++;
      return;
    }
    const slot = msgId * this.devices + device;
    if (!Number.isInteger(msgId) || msgId < 0 || slot >= this.receipts.length) {
      this.unknown++;
      return;
    }
    if (this.receipts[slot] < 255) this.receipts[slot]++;
    if (this.receipts[slot] > 1) {
      this.duplicates++;
      return;
    }
    this.first++;
    if (msgId < this.measuredFrom) return;
    this.firstMeasured++;
    this.lastMeasuredNs = receivedNs;
    this.latenciesUs[this.latencyCount++] = Number(receivedNs - sentNs) / 1e3;
  }

  /** Devices that received message `msgId` at least once. */
  reached(msgId) {
    let count = 0;
    for (let d = 0; d < this.devices; d++) if (this.receipts[msgId * this.devices + d]) count++;
    return count;
  }

  sortedLatenciesUs() {
    return this.latenciesUs.subarray(0, this.latencyCount).sort();
  }
}

/** The q-quantile (0 < q <= 1) of an ascending array, nearest rank; null when empty. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const CDF_QUANTILES = [
  ...Array.from({ length: 99 }, (_, i) => (i + 1) / 100),
  0.995, 0.999, 0.9995, 0.9999, 1,
];

/** Latency percentiles in ms, and the CDF as [ms, fraction] points (dense in the tail) for the figure. */
export function latencySummary(sortedUs) {
  const ms = (us) => (us == null ? null : Math.round(us) / 1000);
  const at = (q) => ms(quantile(sortedUs, q));
  let sum = 0;
  for (const us of sortedUs) sum += us;
  return {
    count: sortedUs.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    p999: at(0.999),
    max: at(1),
    mean: sortedUs.length ? ms(sum / sortedUs.length) : null,
    cdf: sortedUs.length ? CDF_QUANTILES.map((q) => [at(q), q]) : [],
  };
}
