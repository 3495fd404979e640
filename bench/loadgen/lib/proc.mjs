// CPU time and resident memory of processes, read from /proc (Linux).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

// Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses): [0] is field 3.
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const close = text.lastIndexOf(')');
  return { comm: text.slice(text.indexOf('(') + 1, close), f: text.slice(close + 2).split(' ') };
}

function pids() {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

/** Seconds of CPU (user + system) a process has used; 0 once it is gone. */
export function cpuSeconds(pid) {
  try {
    const { f } = statFields(pid);
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Resident set size in KiB (VmRSS), 0 once the process is gone. */
export function rssKiB(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** `roots` and every live descendant (a server that forks workers is measured whole). */
export function withDescendants(roots) {
  const children = new Map();
  for (const pid of pids()) {
    try {
      const parent = Number(statFields(pid).f[1]);
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {
      // gone meanwhile
    }
  }
  const all = new Set(roots);
  const pending = [...roots];
  while (pending.length) {
    for (const child of children.get(pending.pop()) ?? []) {
      if (all.has(child)) continue;
      all.add(child);
      pending.push(child);
    }
  }
  return [...all];
}

/**
 * CPU seconds used by every process on the machine, grouped by role: `server`, `loadgen` (this process), `bench` (the
 * runner that started it), `postgres`, `redis`, `kernel` (kernel threads: loopback network work lands there too) and
 * `other`, whatever else ran (a test suite or a build beside the bench: the run is then disturbed).
 */
export class MachineCpu {
  constructor(serverPids) {
    this.serverPids = new Set(serverPids);
    this.start = this.#snapshot();
    this.startedAt = process.hrtime.bigint();
  }

  #group(pid, comm, parent) {
    if (this.serverPids.has(pid)) return 'server';
    if (pid === process.pid) return 'loadgen';
    if (pid === process.ppid) return 'bench';
    if (comm.startsWith('postgres')) return 'postgres';
    if (comm.startsWith('redis')) return 'redis';
    if (parent === 2 || pid === 2) return 'kernel';
    return 'other';
  }

  #snapshot() {
    const seen = new Map();
    for (const pid of pids()) {
      try {
        const { comm, f } = statFields(pid);
        const s = (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
        seen.set(pid, { comm, group: this.#group(pid, comm, Number(f[1])), s });
      } catch {
        // gone meanwhile
      }
    }
    return seen;
  }

  /** Cores used per group since construction, and the busiest `other` commands. */
  cores() {
    const wallS = Number(process.hrtime.bigint() - this.startedAt) / 1e9;
    const groups = { server: 0, loadgen: 0, bench: 0, postgres: 0, redis: 0, kernel: 0, other: 0 };
    const others = new Map();
    for (const [pid, now] of this.#snapshot()) {
      const before = this.start.get(pid);
      const used = now.s - (before && before.comm === now.comm ? before.s : 0);
      if (used <= 0) continue;
      groups[now.group] += used / wallS;
      if (now.group === 'other') others.set(now.comm, (others.get(now.comm) ?? 0) + used / wallS);
    }
    const busiest = [...others].sort((a, b) => b[1] - a[1]).slice(0, 3);
    return { ...groups, other_busiest: busiest.map(([comm, cores]) => ({ comm, cores })) };
  }
}
