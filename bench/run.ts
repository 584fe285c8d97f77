/**
 * `npm run bench`: the detector against local stand-ins of every Azure service it uses, on generated tenants of
 * 10k, 100k, 1M and 3M AzureActivity rows in the 2-hour window; results printed and written to
 * docs/performance.md.
 *
 * Per size: a cold run (empty Table Storage), the floor (downloading and JSON-decoding the same Log Analytics
 * answers, nothing else), and a warm run (baselines of the tenant's history already stored, next day's window).
 * At 1M rows, also queue mode (UC_SHARDING=queue) with 1, 2 and 4 shard worker processes. Then the replay size
 * (bench/replay.ts): the production CLI replaying a 266,000-row JSON Lines export of 3 days, against reading and
 * JSON-parsing the same file.
 *
 * Each step runs in a fresh process (bench/measure.ts) so its CPU time and peak RSS are its own; the services
 * run in another (bench/services.ts). Options: --sizes 10000,100000 (subset), --no-shards, --no-write (do not
 * touch docs/performance.md), --profile (CPU profiles of the timer runs into .data/bench/profiles), --replay-rows N
 * (rows of the replay export; 0: no replay).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadIpSample } from './ips.js';
import type { StepInput } from './measure.js';
import { REPLAY_ROWS, replayExport, runReplayCli } from './replay.js';
import {
  type BenchResult,
  type Counters,
  type FloorOut,
  renderMarkdown,
  renderText,
  type ReplayFloorOut,
  type ReplayResult,
  type SeedOut,
  type ShardResult,
  type SizeResult,
  type TimerOut,
} from './report.js';
import type { ServicesInfo } from './services.js';
import { HOUR_MS, WINDOW_MS } from './tenant.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dist = path.join(root, 'dist', 'bench');
const DAY = 24 * HOUR_MS;
/** Monday 2 November 2026, 08:00 UTC: the cold run's window; the warm run reads the same hours a day later. */
const WINDOW_START = Date.UTC(2026, 10, 2, 8);
const MAX_ROWS = 400_000;
const MAX_BYTES = 24 * 1024 * 1024;
const SHARDS = 4;
const HEAP_LIMIT_MB = 384;

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const flag = (name: string): boolean => args.includes(name);
const SIZES = (option('--sizes') ?? '10000,100000,1000000,3000000').split(',').map(Number);
const say = (line: string) => process.stderr.write(`${line}\n`);

/** --replay-rows N: a whole number of rows, at least as many as the export has days; 0 skips the replay. */
function replayRowsOption(value: string | undefined): number {
  if (value === undefined) return REPLAY_ROWS;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || (n > 0 && n < 3))
    throw new Error(
      `--replay-rows ${JSON.stringify(value)}: expected 0 (no replay) or a whole number of rows ≥ 3`,
    );
  return n;
}

interface Services {
  proc: ChildProcess;
  port: number;
}

async function startServices(): Promise<Services> {
  const proc = spawn(process.execPath, [path.join(dist, 'services.js'), root], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /\{"control":(\d+)\}/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`services exited with ${code}`)));
  });
  return { proc, port };
}

async function ctl<T>(s: Services, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${s.port}${route}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const json = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(`services ${route}: ${json.error ?? res.status}`);
  return json;
}

/** Runs one measured step in a fresh process; its result is the last line of its stdout. */
function step<T>(
  input: StepInput,
  profileName?: string,
  onReady?: () => void,
  heapMb = option('--heap') === undefined ? undefined : Number(option('--heap')),
): Promise<T> {
  const nodeArgs: string[] = flag('--live-heap') ? ['--expose-gc'] : [];
  // The V8 old-space limit of the measured process (as languageWorkers__node__arguments would set it).
  if (heapMb !== undefined) nodeArgs.push(`--max-old-space-size=${heapMb}`);
  if (profileName !== undefined) {
    const dir = path.join(root, '.data', 'bench', 'profiles');
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${profileName}.cpuprofile`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(dist, 'measure.js')], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (onReady && out.includes('READY\n')) {
        onReady();
        onReady = undefined;
      }
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`${input.step} failed (exit ${code}):\n${err.slice(-4000)}`));
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${input.step}: no result:\n${out.slice(-2000)}\n${err.slice(-2000)}`));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadBefore: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

async function measureSize(s: Services, info: ServicesInfo, rows: number): Promise<SizeResult> {
  const coldTick = WINDOW_START + WINDOW_MS;
  const warmTick = coldTick + DAY;
  await ctl(s, 'POST', '/dataset', { rows, windowStartMs: WINDOW_START });
  const prepared = await ctl<{ groups: number; bytes: number; ms: number }>(s, 'POST', '/prepare', {
    startMs: coldTick - WINDOW_MS,
    endMs: coldTick,
    maxRows: MAX_ROWS,
    maxBytes: MAX_BYTES,
  });
  await ctl(s, 'POST', '/prepare', {
    startMs: warmTick - WINDOW_MS,
    endMs: warmTick,
    maxRows: MAX_ROWS,
    maxBytes: MAX_BYTES,
  });
  say(`  ${rows} rows: ${prepared.groups} groups, generated and aggregated in ${Math.round(prepared.ms)} ms`);
  const base = { info, root };

  const run = async (label: string, prefix: string, tickMs: number, heapMb?: number) => {
    await ctl(s, 'POST', '/reset');
    const r = await step<TimerOut>(
      { ...base, step: 'timer', prefix, tickMs },
      flag('--profile') ? `${prefix}` : undefined,
      undefined,
      heapMb,
    );
    const counters = await ctl<Counters>(s, 'GET', '/counters');
    say(
      `  ${label}: ${(r.usage.wallMs / 1000).toFixed(2)} s wall, ${((r.usage.cpuUserMs + r.usage.cpuSystemMs) / 1000).toFixed(2)} s CPU, ` +
        `${Math.round(r.usage.peakRssMb)} MB peak, ${counters.tables.total} table requests, ${r.report.alerts} alerts`,
    );
    if (flag('--verbose')) for (const l of r.logs) say(`    ${l}`);
    return { ...r, counters };
  };

  const prefix = `b${rows}`;
  const cold = await run('cold', `${prefix}c`, coldTick);
  const floor = await step<FloorOut>({
    ...base,
    step: 'floor',
    prefix,
    tickMs: coldTick,
    requests: cold.counters.la.requests,
  });
  say(
    `  floor: ${(floor.usage.wallMs / 1000).toFixed(2)} s wall, ${((floor.usage.cpuUserMs + floor.usage.cpuSystemMs) / 1000).toFixed(2)} s CPU ` +
      `for ${floor.requests} request(s), ${(floor.bytes / 1e6).toFixed(1)} MB`,
  );
  await ctl(s, 'POST', '/drop-tables', { prefix: `${prefix}c` });
  const seed = await step<SeedOut>({
    ...base,
    step: 'seed',
    prefix: `${prefix}w`,
    tickMs: warmTick,
    windowStartMs: warmTick - WINDOW_MS,
    checkpointMs: warmTick - 15 * 60_000,
  });
  say(
    `  warm baselines written in ${(seed.usage.wallMs / 1000).toFixed(1)} s (${seed.result.pairs} pairs, ${seed.result.callers} callers)`,
  );
  const warm = await run('warm', `${prefix}w`, warmTick);
  await ctl(s, 'POST', '/drop-tables', { prefix: `${prefix}w` });
  // At 1M rows, the same two runs again with V8's heap limited to HEAP_LIMIT_MB: how much of the peak RSS is
  // garbage V8 has not collected yet (it collects lazily when the machine has memory to spare).
  let limited: SizeResult['limited'];
  if (rows === 1_000_000 && !flag('--no-heap-limit')) {
    const c = await run(`cold, heap ${HEAP_LIMIT_MB} MB`, `${prefix}hc`, coldTick, HEAP_LIMIT_MB);
    await ctl(s, 'POST', '/drop-tables', { prefix: `${prefix}hc` });
    await step<SeedOut>({
      ...base,
      step: 'seed',
      prefix: `${prefix}hw`,
      tickMs: warmTick,
      windowStartMs: warmTick - WINDOW_MS,
      checkpointMs: warmTick - 15 * 60_000,
    });
    const w = await run(`warm, heap ${HEAP_LIMIT_MB} MB`, `${prefix}hw`, warmTick, HEAP_LIMIT_MB);
    await ctl(s, 'POST', '/drop-tables', { prefix: `${prefix}hw` });
    limited = { heapMb: HEAP_LIMIT_MB, cold: c, warm: w };
  }
  return {
    rows,
    groups: prepared.groups,
    responseBytes: prepared.bytes,
    generateMs: prepared.ms,
    cold,
    warm,
    floor,
    seed,
    ...(limited ? { limited } : {}),
  };
}

/** The replay size: the export (cached), its read floor and the CLI's replay, each in a fresh process. */
async function measureReplay(info: ServicesInfo, rows: number): Promise<ReplayResult> {
  const cacheDir = path.join(root, '.data', 'bench');
  const x = await replayExport(cacheDir, loadIpSample(cacheDir, say), rows, WINDOW_START);
  say(
    `  export: ${(x.bytes / 1e6).toFixed(1)} MB, ${x.writeMs > 0 ? `written in ${(x.writeMs / 1000).toFixed(1)} s` : 'cached'} (${path.relative(root, x.file)})`,
  );
  // Read once unmeasured, so the floor and the replay both find the file in the page cache.
  for await (const chunk of createReadStream(x.file, { highWaterMark: 1 << 20 })) void chunk;
  const floor = await step<ReplayFloorOut>({
    info,
    root,
    prefix: 'replay',
    tickMs: 0,
    step: 'replay-floor',
    file: x.file,
  });
  say(
    `  floor: ${(floor.usage.wallMs / 1000).toFixed(2)} s wall, ${((floor.usage.cpuUserMs + floor.usage.cpuSystemMs) / 1000).toFixed(2)} s CPU, ` +
      `${Math.round(floor.usage.peakRssMb)} MB peak, ${floor.rows} lines`,
  );
  const replay = await runReplayCli(root, x.file);
  say(
    `  replay: ${(replay.usage.wallMs / 1000).toFixed(2)} s wall, ${((replay.usage.cpuUserMs + replay.usage.cpuSystemMs) / 1000).toFixed(2)} s CPU, ` +
      `${Math.round(replay.usage.peakRssMb)} MB peak, ${replay.records} records, ${replay.alerts} alerts`,
  );
  if (floor.rows !== rows || replay.records !== rows)
    throw new Error(
      `replay export of ${rows} rows: the floor read ${floor.rows} lines, the CLI ${replay.records} records`,
    );
  return { rows, days: x.days, fileBytes: x.bytes, writeMs: x.writeMs, floor, replay };
}

interface WorkerOut {
  usage: TimerOut['usage'];
  doneAtMs: number;
  result: { processed: number; failed: number; poisoned: number };
  conflicts: number;
}

/** Queue mode on the warm 1M window: UC_SHARD_COUNT shards, 1, 2 and 4 worker processes. */
async function measureShards(s: Services, info: ServicesInfo, rows: number, baselineWallMs: number) {
  const warmTick = WINDOW_START + WINDOW_MS + DAY;
  await ctl(s, 'POST', '/dataset', { rows, windowStartMs: WINDOW_START });
  await ctl(s, 'POST', '/prepare', {
    startMs: warmTick - WINDOW_MS,
    endMs: warmTick,
    maxRows: MAX_ROWS,
    maxBytes: MAX_BYTES,
  });
  const runs: ShardResult[] = [];
  for (const workers of [1, 2, 4]) {
    const prefix = `q${workers}x${rows}`;
    const settings = {
      UC_SHARDING: 'queue',
      UC_SHARD_COUNT: String(SHARDS),
      UC_SHARD_QUEUE: `shards-${workers}`,
    };
    const base = { info, root, prefix, tickMs: warmTick, settings };
    await step<SeedOut>({
      ...base,
      step: 'seed',
      windowStartMs: warmTick - WINDOW_MS,
      checkpointMs: warmTick - 15 * 60_000,
    });
    await ctl(s, 'POST', '/reset');
    let ready = 0;
    let allReady: () => void = () => undefined;
    const readyPromise = new Promise<void>((resolve) => (allReady = resolve));
    const pending = Array.from({ length: workers }, () =>
      step<WorkerOut>({ ...base, step: 'worker' }, undefined, () => {
        ready += 1;
        if (ready === workers) allReady();
      }),
    );
    await readyPromise;
    const t0 = Date.now();
    const timer = await step<TimerOut>({ ...base, step: 'timer' });
    const done = await Promise.all(pending);
    const counters = await ctl<Counters>(s, 'GET', '/counters');
    const r: ShardResult = {
      workers,
      shards: SHARDS,
      wallMs: Math.max(...done.map((d) => d.doneAtMs)) - t0,
      enqueueMs: timer.usage.wallMs,
      cpuMs:
        timer.usage.cpuUserMs +
        timer.usage.cpuSystemMs +
        done.reduce((n, d) => n + d.usage.cpuUserMs + d.usage.cpuSystemMs, 0),
      peakRssMb: Math.max(...done.map((d) => d.usage.peakRssMb)),
      tableRequests: counters.tables.total,
      laQueries: counters.la.queries,
      alerts: counters.ingestion.received,
      observations: 0,
      conflicts: done.reduce((n, d) => n + d.conflicts, 0),
    };
    say(
      `  ${workers} worker(s): ${(r.wallMs / 1000).toFixed(2)} s wall (one process: ${(baselineWallMs / 1000).toFixed(2)} s), ` +
        `${(r.cpuMs / 1000).toFixed(2)} s CPU, ${r.tableRequests} table requests, ${r.conflicts} ETag retries, ${r.alerts} alerts delivered`,
    );
    runs.push(r);
    await ctl(s, 'POST', '/drop-tables', { prefix });
  }
  return { rows, baselineWallMs, runs };
}

const USAGE = `Usage: npm run bench -- [options]   (or node dist/bench/run.js [options])
Measures the timer's run against local Azurite and Log Analytics servers (see docs/performance.md).
  --sizes N,N,…       rows in the window per size (default 10000,100000,1000000,3000000)
  --no-shards         skip queue mode (UC_SHARDING=queue, ${SHARDS} shards)
  --replay-rows N     rows of the offline replay size (default ${REPLAY_ROWS}; 0 skips it)
  --no-write          print only; do not rewrite the generated section of docs/performance.md
  --no-heap-limit     skip the 1M runs with the V8 heap limited to ${HEAP_LIMIT_MB} MB
  --heap MB           limit the V8 heap of every measured run
  --live-heap         also sample the live heap (runs get --expose-gc)
  --profile           write CPU profiles to .data/bench/profiles
  --verbose           print each run's log lines
  --help              this text
`;

async function main(): Promise<void> {
  if (flag('--help') || flag('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const started = Date.now();
  const replayRows = replayRowsOption(option('--replay-rows'));
  const m = machine();
  say(`unusual-city benchmark on ${m.cpu}, ${m.memoryGb} GB, Node ${m.node} (load ${m.loadBefore})`);
  const s = await startServices();
  try {
    const info = await ctl<ServicesInfo>(s, 'GET', '/info');
    const sizes: SizeResult[] = [];
    for (const rows of SIZES) {
      say(`size ${rows.toLocaleString('en-US')} rows`);
      sizes.push(await measureSize(s, info, rows));
    }
    const shardRows = SIZES.includes(1_000_000) ? 1_000_000 : SIZES.at(-1)!;
    const shards = flag('--no-shards')
      ? undefined
      : (say(`queue mode, ${shardRows.toLocaleString('en-US')} rows`),
        await measureShards(s, info, shardRows, sizes.find((z) => z.rows === shardRows)!.warm.usage.wallMs));
    let replay: ReplayResult | undefined;
    if (replayRows > 0) {
      say(`replay, ${replayRows.toLocaleString('en-US')} rows`);
      replay = await measureReplay(info, replayRows);
    }
    const result: BenchResult = {
      date: new Date().toISOString(),
      machine: {
        ...m,
        loadAfter: os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' '),
      },
      population: info.population,
      sizes,
      ...(shards ? { shards } : {}),
      ...(replay ? { replay } : {}),
      totalSeconds: (Date.now() - started) / 1000,
    };
    process.stdout.write(renderText(result));
    if (!flag('--no-write')) {
      const file = path.join(root, 'docs', 'performance.md');
      const current = readFileSync(file, 'utf8');
      // Formatted as `npm run lint` expects (prettier aligns the tables).
      const prettier = await import('prettier');
      const options = (await prettier.resolveConfig(file)) ?? {};
      writeFileSync(
        file,
        await prettier.format(renderMarkdown(result, current), { ...options, filepath: file }),
      );
      say(`results written to ${path.relative(root, file)}`);
    }
  } finally {
    await ctl(s, 'POST', '/stop').catch(() => undefined);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
