#!/usr/bin/env node
// Put-if-absent load against an etcd cluster, the counterpart of `replicator-bench
// --workload=put`: --concurrency calls in flight, each a put of a fresh key as
// Txn(create_revision(key) == 0 -> put), for --duration after an untimed --warmup; then it
// counts the run's keys on the cluster (a check: every put answered `succeeded` is stored).
// Prints a summary and writes --json in the shape bench/run-matrix reads.
//
//   node bench/etcd/put-if-absent.js --endpoints=http://127.0.0.1:2379,... \
//     --concurrency=64 --duration=10 --warmup=1 --key-size=16 --value-size=100 \
//     --pids=PID,PID,PID --json=out.json
//
// --pids: the etcd members' process ids; their user+system CPU seconds over the timed phase
// (from /proc/PID/stat) are reported as nodes_cpu_s. Every phase is bounded: the whole run
// by --hard-timeout seconds, after which it exits 1.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { Etcd3 } = require('etcd3');

function parseArgs(argv) {
  const args = {
    endpoints: '',
    concurrency: 64,
    duration: 10,
    warmup: 1,
    'key-size': 16,
    'value-size': 100,
    pids: '',
    json: '',
    'histogram-out': '',
    'hard-timeout': 120,
    'clk-tck': 100,
  };
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/.exec(a);
    if (!m || !(m[1] in args)) usage(`unknown argument ${a}`);
    args[m[1]] = typeof args[m[1]] === 'number' ? Number(m[2]) : m[2];
  }
  if (!args.endpoints) usage('--endpoints=http://HOST:PORT,... is required');
  for (const k of ['concurrency', 'duration', 'hard-timeout', 'clk-tck']) {
    if (!(args[k] > 0)) usage(`--${k} must be a positive number`);
  }
  if (!(args.warmup >= 0)) usage('--warmup must not be negative');
  if (!(args['key-size'] >= 16 && args['key-size'] <= 1024)) {
    usage('--key-size must be within [16, 1024]');
  }
  if (!(args['value-size'] >= 0 && args['value-size'] <= 1 << 20)) {
    usage('--value-size must be within [0, 1048576]');
  }
  if (args['hard-timeout'] <= args.duration + args.warmup) {
    usage('--hard-timeout must exceed --duration plus --warmup');
  }
  return args;
}

function usage(message) {
  process.stderr.write(`put-if-absent: ${message}\n`);
  process.exit(1);
}

// User+system CPU seconds of every pid together; null if one cannot be read.
function cpuSeconds(pids, clkTck) {
  let ticks = 0;
  for (const pid of pids) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch (e) {
      return null;
    }
    // Fields after "(comm)": state is field 3, utime 14 and stime 15 (man 5 proc).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(rest[11]) + Number(rest[12]);
  }
  return ticks / clkTck;
}

// Sorted latencies (ns) as replicator-bench --histogram-out writes them: its log-linear
// buckets (128 per power of two), lower_ms,upper_ms,count,cumulative_fraction per non-empty one.
function histogramCsv(sorted) {
  const kSub = 128;
  const bucketOf = (ns) => {  // [lower, width] of BigInt ns, as Numbers
    const v = Number(ns);
    if (v < kSub) return [v, 1];
    const shift = ns.toString(2).length - 1 - 7;
    const width = 2 ** shift;
    return [Math.floor(v / width) * width, width];
  };
  let csv = 'lower_ms,upper_ms,count,cumulative_fraction\n';
  let i = 0;
  while (i < sorted.length) {
    const [lower, width] = bucketOf(sorted[i]);
    let j = i;
    while (j < sorted.length && Number(sorted[j]) < lower + width) ++j;
    csv += `${(lower / 1e6).toFixed(6)},${((lower + width) / 1e6).toFixed(6)},${j - i},` +
      `${(j / sorted.length).toFixed(6)}\n`;
    i = j;
  }
  return csv;
}

// Busy CPU seconds of the whole machine so far (user nice system irq softirq steal of
// /proc/stat's first line, as replicator-bench counts them); null if unreadable.
function machineCpuSeconds(clkTck) {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    return (f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) / clkTck;
  } catch (e) {
    return null;
  }
}

// The ceil(q * n)-th smallest of sorted `xs` (nanoseconds), in ms.
function percentileMs(xs, q) {
  if (xs.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * xs.length));
  return Number(xs[Math.min(rank, xs.length) - 1]) / 1e6;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const pids = args.pids ? args.pids.split(',').map(Number) : [];
  const hard = setTimeout(() => {
    process.stderr.write(`put-if-absent: --hard-timeout ${args['hard-timeout']} s passed\n`);
    process.exit(1);
  }, args['hard-timeout'] * 1000);
  hard.unref();

  const client = new Etcd3({ hosts: args.endpoints.split(',') });
  // Keys are unique in this run and across runs: a random tag, then the call's number.
  const tag = crypto.randomBytes(4).toString('hex');
  const keySize = args['key-size'];
  const valueSize = args['value-size'];
  const keyOf = (n) => (tag + n.toString(16).padStart(8, '0')).padEnd(keySize, '.');
  const valueOf = (n) => `v${n}`.padEnd(valueSize, '.').slice(0, valueSize);

  let next = 0;
  let firstError = null;
  // One phase: `concurrency` workers, each keeping one call in flight until `until` (ns).
  async function phase(until, record) {
    async function worker() {
      while (process.hrtime.bigint() < until) {
        const n = next++;
        const key = keyOf(n);
        const start = process.hrtime.bigint();
        let outcome;
        try {
          const r = await client
            .if(key, 'Create', '==', 0)
            .then(client.put(key).value(valueOf(n)))
            .commit();
          outcome = r.succeeded ? 'ok' : 'key_exists';
        } catch (e) {
          outcome = 'error';
          if (!firstError) firstError = String(e && e.message ? e.message : e);
        }
        record(outcome, process.hrtime.bigint() - start);
      }
    }
    await Promise.all(Array.from({ length: args.concurrency }, worker));
  }

  const outcomes = { ok: 0, key_exists: 0, error: 0 };
  let warmupCalls = 0;
  if (args.warmup > 0) {
    await phase(process.hrtime.bigint() + BigInt(Math.round(args.warmup * 1e9)), (o) => {
      ++warmupCalls;
      if (o === 'ok') ++outcomes.ok;  // stored keys, for the count below
    });
  }
  const okBeforeTimed = outcomes.ok;
  outcomes.ok = 0;

  const latencies = [];
  let lastAnswer = 0n;
  const cpu0 = cpuSeconds(pids, args['clk-tck']);
  const machine0 = machineCpuSeconds(args['clk-tck']);
  const client0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  await phase(start + BigInt(Math.round(args.duration * 1e9)), (o, ns) => {
    ++outcomes[o];
    latencies.push(ns);
    lastAnswer = process.hrtime.bigint();
  });
  const cpu1 = cpuSeconds(pids, args['clk-tck']);
  const machine1 = machineCpuSeconds(args['clk-tck']);
  const clientCpu = process.cpuUsage(client0);
  const elapsed = Number(lastAnswer - start) / 1e9;

  // The check: the run's keys on the cluster are exactly those answered `succeeded`.
  const stored = await client.getAll().prefix(tag).count();
  const version = (await client.maintenance.status()).version;
  const expected = okBeforeTimed + outcomes.ok;
  client.close();

  latencies.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const calls = latencies.length;
  const result = {
    config: {
      system: 'etcd',
      etcd_version: version,
      workload: 'put-if-absent',
      endpoints: args.endpoints.split(','),
      concurrency: args.concurrency,
      duration_s: args.duration,
      warmup_s: args.warmup,
      key_size: keySize,
      value_size: valueSize,
    },
    calls,
    elapsed_s: elapsed,
    ops_per_sec: elapsed > 0 ? calls / elapsed : 0,
    errors: outcomes.error,
    latency_ms: {
      p50: percentileMs(latencies, 0.5),
      p90: percentileMs(latencies, 0.9),
      p99: percentileMs(latencies, 0.99),
      p999: percentileMs(latencies, 0.999),
      max: calls ? Number(latencies[calls - 1]) / 1e6 : 0,
    },
    outcomes,
    warmup_calls: warmupCalls,
    nodes_cpu_s: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
    client_cpu_s: (clientCpu.user + clientCpu.system) / 1e6,
    machine_cpu_s: machine0 === null || machine1 === null ? null : machine1 - machine0,
    stored_keys: stored,
    expected_keys: expected,
    violations: stored === expected ? 0 : 1,
    first_error: firstError,
  };
  const f = (x, d = 2) => x.toFixed(d);
  process.stdout.write(
    `put-if-absent on etcd (${result.config.endpoints.length} endpoints), concurrency ${args.concurrency}, ` +
      `key ${keySize} B, value ${valueSize} B\n` +
      `  calls ${calls}, elapsed s ${f(elapsed)}, puts/s ${f(result.ops_per_sec, 0)}\n` +
      `  latency ms p50 ${f(result.latency_ms.p50, 3)} p99 ${f(result.latency_ms.p99, 3)} ` +
      `max ${f(result.latency_ms.max, 3)}\n` +
      `  ok ${outcomes.ok}, key_exists ${outcomes.key_exists}, error ${outcomes.error}\n` +
      `  nodes CPU s ${result.nodes_cpu_s === null ? '-' : f(result.nodes_cpu_s, 3)}, ` +
      `client CPU s ${f(result.client_cpu_s, 3)}\n` +
      `  keys stored ${stored} of ${expected} answered succeeded` +
      (result.violations ? ' VIOLATION' : '') +
      '\n' +
      (firstError ? `  first error: ${firstError}\n` : ''),
  );
  if (args['histogram-out']) fs.writeFileSync(args['histogram-out'], histogramCsv(latencies));
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2) + '\n');
  process.exit(result.violations ? 2 : calls > 0 && outcomes.error < calls ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`put-if-absent: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
