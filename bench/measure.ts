/**
 * One measured step of the benchmark, in a fresh process (so peak RSS and CPU time are the step's own). The
 * step and its parameters come as JSON on stdin; the result is the last line of stdout, as JSON.
 *
 * - timer: one production timer run (shared/runtime/detector.ts runScheduled with the clients of
 *   shared/runtime/azure.ts) against the services of bench/services.ts, for the tick given;
 * - floor: the same Log Analytics requests the timer run made, downloaded and JSON-decoded, nothing else;
 * - seed: warm baselines (bench/seed.ts);
 * - worker: a shard worker (queue mode): runs processShard for messages of the shard queue until the tick is done;
 * - replay-floor: the replay's floor: reads a JSON Lines file (fs stream, split into lines) and JSON.parses every
 *   line, nothing else (the replay itself is the production CLI in its own process: bench/replay.ts).
 */
import { createReadStream } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';

import { QueueClient, StorageSharedKeyCredential } from '@azure/storage-queue';

import { makeShardHandler } from '../functions/processShard.js';
import type { BaselineStore } from '../shared/baseline/store.js';
import { TableStorageStore } from '../shared/baseline/tableStorage.js';
import { loadSettings, type Settings } from '../shared/config/settings.js';
import { embeddedDatabasePath, openGeolocator } from '../shared/geo/geolocator.js';
import type { GeoStats } from '../shared/geo/types.js';
import { shardsPartition } from '../shared/pipeline/runState.js';
import { createAzureDeps } from '../shared/runtime/azure.js';
import { runScheduled } from '../shared/runtime/detector.js';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../test/support/azurite.js';
import { runQueueWorker } from '../test/support/azuriteQueue.js';
import { FAKE_DCR_ID } from '../test/support/fakeIngestion.js';
import { loadIpSample } from './ips.js';
import { seedWarmBaselines } from './seed.js';
import type { ServicesInfo } from './services.js';
import { buildPopulation } from './tenant.js';

export const WORKSPACE = '7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

export interface StepInput {
  step: 'timer' | 'floor' | 'seed' | 'worker' | 'replay-floor';
  info: ServicesInfo;
  root: string;
  prefix: string;
  tickMs: number;
  settings?: Record<string, string>;
  /** floor: the requests to replay. */
  requests?: { query: string; timespan: string }[];
  /** seed: callers to seed (all when absent) and the checkpoint to leave. */
  callers?: string[];
  checkpointMs?: number;
  windowStartMs?: number;
  /** replay-floor: the JSON Lines file to read. */
  file?: string;
}

export interface Usage {
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  /** Peak resident set of the process, MB (process.resourceUsage().maxRSS). */
  peakRssMb: number;
}

export interface StoreCalls {
  readPartition: number;
  readRows: number;
  updatePartition: number;
  updateRows: number;
  /** Entity-group transactions the store sent, and the actions in them (client side). */
  transactions: number;
  actions: number;
}

export function detectorEnv(input: StepInput): Record<string, string> {
  const i = input.info;
  return {
    IDENTITY_ENDPOINT: i.identityEndpoint,
    IDENTITY_HEADER: i.identityHeader,
    UC_WORKSPACE_ID: WORKSPACE,
    UC_LOGS_ENDPOINT: i.logsEndpoint,
    UC_STORAGE_CONNECTION_STRING:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
      `TableEndpoint=${i.tableEndpoint};QueueEndpoint=${i.queueEndpoint}`,
    UC_INGESTION_ENDPOINT: i.ingestionEndpoint,
    UC_DCR_IMMUTABLE_ID: FAKE_DCR_ID,
    UC_TABLE_PREFIX: input.prefix,
    UC_RUN_BUDGET: '9m',
    ...input.settings,
  };
}

/** A child step's environment: the detector's settings, the local managed identity, a log to report. */
function startStep(input: StepInput): { env: Record<string, string>; settings: Settings; logs: string[] } {
  const env = detectorEnv(input);
  // The credential chain reads the managed-identity endpoint from the process environment.
  Object.assign(process.env, {
    IDENTITY_ENDPOINT: env.IDENTITY_ENDPOINT,
    IDENTITY_HEADER: env.IDENTITY_HEADER,
  });
  return { env, settings: loadSettings(env), logs: [] };
}

function usageSince(t0: number, cpu0: NodeJS.CpuUsage): Usage {
  const cpu = process.cpuUsage(cpu0);
  return {
    wallMs: performance.now() - t0,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  };
}

/** The production store with counters: logical calls and (through its test hook) transactions and actions. */
export async function countingStore(
  settings: Settings,
  info: ServicesInfo,
): Promise<{ store: BaselineStore; calls: StoreCalls }> {
  const calls: StoreCalls = {
    readPartition: 0,
    readRows: 0,
    updatePartition: 0,
    updateRows: 0,
    transactions: 0,
    actions: 0,
  };
  const inner = await TableStorageStore.open({
    endpoint: info.tableEndpoint,
    credential: new (await import('@azure/data-tables')).AzureNamedKeyCredential(
      AZURITE_ACCOUNT,
      AZURITE_KEY,
    ),
    tablePrefix: settings.UC_TABLE_PREFIX,
    allowInsecureConnection: true,
    testHooks: {
      beforeTransaction: (c) => {
        calls.transactions += 1;
        calls.actions += c.actions;
      },
    },
  });
  const store: BaselineStore = {
    readPartition: (t, p) => (calls.readPartition++, inner.readPartition(t, p)),
    readRows: (t, p, k) => (calls.readRows++, inner.readRows(t, p, k)),
    updatePartition: (t, p, a) => (calls.updatePartition++, inner.updatePartition(t, p, a)),
    updateRows: (t, p, k, a) => (calls.updateRows++, inner.updateRows(t, p, k, a)),
    listPartitions: (t) => inner.listPartitions(t),
    close: () => inner.close(),
    ...(inner.batch ? { batch: <T>(fn: () => Promise<T>) => inner.batch(fn) } : {}),
  };
  return { store, calls };
}

async function timer(input: StepInput) {
  const { env, settings, logs } = startStep(input);
  const gc = (globalThis as { gc?: () => void }).gc;
  const mem = () => {
    // With --expose-gc (bench --live-heap): the heap still live at each log line, garbage collected first.
    gc?.();
    const m = process.memoryUsage();
    return `rss ${Math.round(m.rss / 1e6)} heap ${Math.round(m.heapUsed / 1e6)} ext ${Math.round(m.external / 1e6)} ab ${Math.round(m.arrayBuffers / 1e6)}`;
  };
  const log = (level: string, message: string) => logs.push(`${level}: ${message} [${mem()}]`);
  const tStart = performance.now();
  const deps = await createAzureDeps(settings, env, log, { tlsCa: input.info.ca });
  const { store, calls } = await countingStore(settings, input.info);
  // Process start-up, once per instance, not per run: clients and the GeoIP database in memory.
  const geo = await deps.geo.current();
  const startupMs = performance.now() - tStart;
  const geo0: GeoStats = geo.geo.stats;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const report = await runScheduled(
    // The clock starts at the tick (plus a few seconds) and runs at real speed, so stage durations are real.
    { ...deps, store, log, clock: () => input.tickMs + 5_000 + Math.floor(performance.now() - t0) },
    { invocationId: `bench-${input.prefix}`, isPastDue: false },
  );
  const usage = usageSince(t0, cpu0);
  const geo1 = geo.geo.stats;
  return {
    usage,
    startupMs,
    report: { ...report, raised: report.raised.length },
    calls,
    geo: {
      lookups: geo1.lookups - geo0.lookups,
      cacheHits: geo1.cacheHits - geo0.cacheHits,
      internal: geo1.internal - geo0.internal,
    },
    logs: logs.slice(-20),
  };
}

/** POSTs one query the way LogsQueryClient does and returns the body (bytes). */
function post(input: StepInput, body: string): Promise<Buffer> {
  const url = new URL(`${input.info.logsEndpoint}/workspaces/${WORKSPACE}/query`);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: input.info.ca,
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer test-token:https://api.loganalytics.io',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(Buffer.concat(chunks))
            : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function floor(input: StepInput) {
  const requests = input.requests ?? [];
  // One request to set up TLS outside the measurement, as the SDK's connection would already be.
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let bytes = 0;
  let rows = 0;
  for (const r of requests) {
    const body = await post(input, JSON.stringify({ query: r.query, timespan: r.timespan }));
    bytes += body.length;
    const parsed = JSON.parse(body.toString('utf8')) as { tables: { rows: unknown[] }[] };
    rows += parsed.tables[0]?.rows.length ?? 0;
  }
  return { usage: usageSince(t0, cpu0), bytes, rows, requests: requests.length };
}

/**
 * The least any reader of a JSON Lines export must spend: the file streamed in 1 MiB chunks, cut at newlines
 * (whole lines only, so no character is split), decoded, and every line JSON.parsed.
 */
async function replayFloor(input: StepInput) {
  if (input.file === undefined) throw new Error('replay-floor needs a file');
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let bytes = 0;
  let rows = 0;
  let rest: Buffer = Buffer.alloc(0);
  const parseLines = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (line.length === 0) continue;
      JSON.parse(line);
      rows += 1;
    }
  };
  for await (const chunk of createReadStream(input.file, { highWaterMark: 1 << 20 })) {
    const c = chunk as Buffer;
    bytes += c.length;
    const cut = c.lastIndexOf(10);
    if (cut < 0) {
      rest = Buffer.concat([rest, c]);
      continue;
    }
    parseLines(rest.length > 0 ? Buffer.concat([rest, c.subarray(0, cut)]) : c.subarray(0, cut));
    rest = Buffer.from(c.subarray(cut + 1));
  }
  parseLines(rest);
  return { usage: usageSince(t0, cpu0), bytes, rows };
}

async function seed(input: StepInput) {
  const env = detectorEnv(input);
  const settings = loadSettings(env);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const { store, calls } = await countingStore(settings, input.info);
  const pop = buildPopulation(loadIpSample(path.join(input.root, '.data', 'bench')));
  const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
  const result = await seedWarmBaselines({
    pop,
    geo,
    store,
    windowStartMs: input.windowStartMs ?? input.tickMs,
    ...(input.callers ? { callers: new Set(input.callers) } : {}),
    maxCallersPerCity: settings.UC_MAX_CALLERS_PER_CITY,
    checkpointMs: input.checkpointMs ?? 0,
  });
  return { usage: usageSince(t0, cpu0), result, calls };
}

/**
 * A shard worker, like one Functions instance running processShard: clients and the GeoIP database are loaded
 * first (an instance is warm), then `READY` is printed and the queue is polled until the tick is complete.
 * CPU is counted from the first message.
 */
async function worker(input: StepInput) {
  const { env, settings, logs } = startStep(input);
  const log = (level: string, message: string) => logs.push(`${level}: ${message}`);
  const deps = await createAzureDeps(settings, env, log, { tlsCa: input.info.ca });
  await deps.geo.current();
  const handler = makeShardHandler({ deps: () => Promise.resolve(deps) });
  const queue = new QueueClient(
    `${input.info.queueEndpoint}/${settings.UC_SHARD_QUEUE}`,
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  );
  await queue.createIfNotExists();
  process.stdout.write('READY\n');
  let t0 = 0;
  let cpu0: NodeJS.CpuUsage | undefined;
  const result = await runQueueWorker({
    queue,
    poison: new QueueClient(
      `${input.info.queueEndpoint}/${settings.UC_SHARD_QUEUE}-poison`,
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ),
    handler: (message, context) => {
      if (cpu0 === undefined) {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
      }
      return handler(message, context);
    },
    visibilityTimeoutSeconds: 600,
    until: async () => {
      const rows = await deps.store.readPartition('state', shardsPartition(input.tickMs));
      return [...Array(settings.UC_SHARD_COUNT).keys()].every((i) => rows.has(`s${i}`));
    },
    idleMs: 20,
    timeoutMs: 900_000,
    log: (l) => logs.push(l),
  });
  return {
    usage: cpu0 === undefined ? usageSince(performance.now(), process.cpuUsage()) : usageSince(t0, cpu0),
    doneAtMs: Date.now(),
    result,
    conflicts: deps.store instanceof TableStorageStore ? deps.store.conflictRetries : 0,
    logs: logs.slice(-10),
  };
}

async function main(): Promise<void> {
  // The input comes on stdin: a list of callers can exceed what one command-line argument may hold.
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as StepInput;
  let out: unknown;
  switch (input.step) {
    case 'timer':
      out = await timer(input);
      break;
    case 'floor':
      out = await floor(input);
      break;
    case 'seed':
      out = await seed(input);
      break;
    case 'worker':
      out = await worker(input);
      break;
    case 'replay-floor':
      out = await replayFloor(input);
      break;
    default:
      throw new Error(`unknown step ${String(input.step)}`);
  }
  process.stdout.write(`\n${JSON.stringify(out)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
