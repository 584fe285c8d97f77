/**
 * The benchmark's replay size: an AzureActivity JSON Lines export of the bench tenant (bench/tenant.ts), the
 * format `unusual-city replay` reads, and the production CLI replaying it in its own process.
 *
 * The export holds `days` daily 2-hour windows of the tenant (rows / days rows each, the same draws as the timer
 * sizes, the attacks included), sorted by time within each window as a `| sort by TimeGenerated asc` export is,
 * written by the production writer (shared/activity/formats.ts writeJsonLines: every column of the table,
 * TimeGenerated as ISO text). It is cached in .data/bench/ under a name holding every parameter of the
 * generator, so a change of rows, days, start or generator writes a new file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { writeJsonLines } from '../shared/activity/formats.js';
import type { ActivityEvent, CallerType } from '../shared/activity/types.js';
import type { IpSample } from './ips.js';
import { BenchWindow, buildPopulation, DAY_MS } from './tenant.js';

/** Bump when the rows written for the same parameters change (tenant, writer or ordering). */
export const REPLAY_GENERATOR = 1;
export const REPLAY_DAYS = 3;
/** The offline replay: 266,000 rows over 3 days. */
export const REPLAY_ROWS = 266_000;

export interface ReplayExport {
  file: string;
  rows: number;
  days: number;
  bytes: number;
  /** Time spent writing it now; 0 when the cached file was used. */
  writeMs: number;
}

/** The cache file's name: every parameter of the generator is in it. */
export function replayFileName(
  rows: number,
  days: number,
  windowStartMs: number,
  ipSample: IpSample,
): string {
  const start = new Date(windowStartMs).toISOString().slice(0, 13).replace(/[-:]/g, '');
  return `replay-g${REPLAY_GENERATOR}-ips${ipSample.version}-${ipSample.databaseBytes}-${rows}rows-${days}d-${start}.jsonl`;
}

/** The export's events: `days` windows of `rows / days` rows (the remainder in the first), each sorted by time. */
export function* replayEvents(
  sample: IpSample,
  rows: number,
  days: number,
  windowStartMs: number,
): Generator<ActivityEvent> {
  const pop = buildPopulation(sample);
  const kinds = new Map<string, CallerType>(pop.callers.map((c) => [c.caller, c.kind]));
  for (let day = 0; day < days; day++) {
    const perWindow = Math.floor(rows / days) + (day === 0 ? rows % days : 0);
    const w = new BenchWindow(pop, perWindow, windowStartMs);
    const base = windowStartMs + day * DAY_MS;
    const times = new Float64Array(perWindow);
    for (let i = 0; i < perWindow; i++) times[i] = w.draw(i, base).t;
    const order = Uint32Array.from({ length: perWindow }, (_, i) => i).sort(
      (a, b) => times[a]! - times[b]! || a - b,
    );
    for (const i of order) yield toEvent(w.row(i, base), kinds, day, i);
  }
}

function toEvent(
  r: Record<string, unknown>,
  kinds: Map<string, CallerType>,
  day: number,
  i: number,
): ActivityEvent {
  const text = (k: string): string => r[k] as string;
  return {
    timeMs: r.TimeGenerated as number,
    operation: text('OperationNameValue'),
    operationKey: text('OperationNameValue').toLowerCase(),
    caller: text('Caller'),
    callerType: kinds.get(text('Caller')) ?? 'unknown',
    callerIp: text('CallerIpAddress'),
    category: text('CategoryValue'),
    status: text('ActivityStatusValue'),
    correlationId: text('CorrelationId'),
    eventDataId: `bench-${day}-${i}`,
    subscriptionId: text('SubscriptionId'),
    resourceGroup: text('ResourceGroup'),
    resourceId: text('_ResourceId'),
  };
}

/** The cached export, written (to a temporary name, then renamed) when missing. */
export async function replayExport(
  cacheDir: string,
  sample: IpSample,
  rows: number,
  windowStartMs: number,
  days = REPLAY_DAYS,
): Promise<ReplayExport> {
  const file = path.join(cacheDir, replayFileName(rows, days, windowStartMs, sample));
  let writeMs = 0;
  if (!existsSync(file)) {
    mkdirSync(cacheDir, { recursive: true });
    const t0 = performance.now();
    const partial = `${file}.${process.pid}.partial`;
    const written = await writeJsonLines(replayEvents(sample, rows, days, windowStartMs), partial);
    if (written !== rows) throw new Error(`replay export: ${written} rows written, ${rows} expected`);
    renameSync(partial, file);
    writeMs = performance.now() - t0;
  }
  return { file, rows, days, bytes: statSync(file).size, writeMs };
}

/** What the replayed CLI process reports about itself (bench/usageHook.ts) and in its summary. */
export interface ReplayRunOut {
  usage: { wallMs: number; cpuUserMs: number; cpuSystemMs: number; peakRssMb: number };
  exitCode: number;
  /** From the CLI's summary: records read, reading and detecting time, runs and observations. */
  records: number;
  readMs: number;
  detectMs: number;
  runs: number;
  observations: number;
  /** Lines of the alerts file. */
  alerts: number;
}

/**
 * `node dist/shared/cli/main.js replay <file> --out <tmp> --quiet` in a fresh process, as a user runs it, with
 * bench/usageHook.js preloaded: at exit it writes the process's own wall time (from process start), CPU time and
 * peak RSS. The bench's UC_* settings are not passed on: the replay runs with the defaults.
 */
export async function runReplayCli(root: string, file: string): Promise<ReplayRunOut> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uc-bench-replay-'));
  try {
    const usageFile = path.join(dir, 'usage.json');
    const out = path.join(dir, 'alerts.jsonl');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UC_')));
    const hook = pathToFileURL(path.join(root, 'dist', 'bench', 'usageHook.js')).href;
    const cli = path.join(root, 'dist', 'shared', 'cli', 'main.js');
    const child = spawn(process.execPath, ['--import', hook, cli, 'replay', file, '--out', out, '--quiet'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...env, BENCH_USAGE_FILE: usageFile },
    });
    const { code, stderr } = await exited(child);
    if (code !== 0) throw new Error(`replay exited with ${code}:\n${stderr.slice(-4000)}`);
    const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as ReplayRunOut['usage'];
    return { usage, exitCode: code, alerts: countLines(out), ...parseSummary(stderr) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function exited(child: ChildProcess): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

function countLines(file: string): number {
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '').length;
}

/** The numbers of the CLI's summary (shared/cli/main.ts formatSummary) the bench reports. */
export function parseSummary(
  stderr: string,
): Pick<ReplayRunOut, 'records' | 'readMs' | 'detectMs' | 'runs' | 'observations'> {
  const num = (re: RegExp): number => {
    const m = re.exec(stderr);
    if (!m) throw new Error(`replay summary without ${re.source}:\n${stderr.slice(-2000)}`);
    return Number(m[1]!.replace(/,/g, ''));
  };
  return {
    records: num(/records read:\s+([\d,]+)/),
    runs: num(/runs simulated:\s+([\d,]+)/),
    observations: num(/observations scored:\s+([\d,]+)/),
    readMs: 1000 * num(/\(read ([\d.]+) s,/),
    detectMs: 1000 * num(/detect ([\d.]+) s\)/),
  };
}
