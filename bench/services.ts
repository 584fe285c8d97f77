/**
 * The benchmark's local Azure: one child process holding every service the detector talks to, so that the
 * measured process's CPU and memory are the detector's own.
 *
 * - a managed-identity endpoint (test/support/identity.ts): the production credential chain gets its tokens here;
 * - the Log Analytics query API over https (test/support/fakeLogAnalytics.ts), answering activity.kql for the
 *   generated tenant (bench/tenant.ts) by aggregating its rows directly; answers are computed once per window
 *   and limits and kept, so measured runs do not wait for the generator;
 * - Azurite's Table service, counting requests (bench/azurite.ts), and its Queue service (shard mode);
 * - the Logs Ingestion API over https (test/support/fakeIngestion.ts).
 *
 * Controlled over a loopback HTTP port printed on stdout as `{"control":port}`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { TableServiceClient } from '@azure/data-tables';

import { startAzuriteQueue } from '../test/support/azuriteQueue.js';
import { startFakeIngestion } from '../test/support/fakeIngestion.js';
import { type QueryHeader, startFakeLogAnalytics } from '../test/support/fakeLogAnalytics.js';
import { startFakeIdentity } from '../test/support/identity.js';
import { startCountingAzurite } from './azurite.js';
import { loadIpSample } from './ips.js';
import { BenchWindow, buildPopulation } from './tenant.js';

export interface ServicesInfo {
  identityEndpoint: string;
  identityHeader: string;
  logsEndpoint: string;
  ca: string;
  tableEndpoint: string;
  queueEndpoint: string;
  ingestionEndpoint: string;
  population: { callers: number; ips: number; cities: number; operations: number; attacks: number };
}

export interface Answer {
  rows: unknown[][];
  /** Size of the answer's JSON body. */
  bytes: number;
  ms: number;
}

export interface LaCounters {
  queries: number;
  rows: number;
  bytes: number;
  /** The 200 answers' requests, to replay for the floor. */
  requests: { query: string; timespan: string }[];
}

async function main(): Promise<void> {
  const root = process.argv[2] ?? process.cwd();
  const sample = loadIpSample(path.join(root, '.data', 'bench'));
  const pop = buildPopulation(sample);
  const state: {
    window?: BenchWindow;
    memo: Map<string, Answer>;
    ordered: Map<string, unknown[][]>;
    la: LaCounters;
    delivered: number;
  } = {
    memo: new Map(),
    ordered: new Map(),
    delivered: 0,
    la: { queries: 0, rows: 0, bytes: 0, requests: [] },
  };
  type Ask = Pick<QueryHeader, 'windowStartMs' | 'windowEndMs' | 'maxRows' | 'maxBytes'> &
    Partial<Pick<QueryHeader, 'shardCount' | 'shardIndex' | 'resume'>>;
  const answerFor = (h: Ask): Answer => {
    const w = state.window;
    if (!w) throw new Error('no dataset');
    const shard = { count: h.shardCount ?? 1, index: h.shardIndex ?? 0 };
    const range = `${h.windowStartMs}/${h.windowEndMs}/${shard.count}/${shard.index}`;
    const key = `${range}/${h.maxRows}/${h.maxBytes}/${h.resume?.slotMs}/${h.resume?.key}`;
    let a = state.memo.get(key);
    if (!a) {
      const t0 = performance.now();
      let ordered = state.ordered.get(range);
      if (!ordered) {
        ordered = w.ordered(h.windowStartMs, h.windowEndMs, shard);
        state.ordered.set(range, ordered);
      }
      const rows = w.answer(ordered, h.maxRows, h.maxBytes, h.resume);
      const bytes = rows.reduce<number>((n, r) => n + Number(r[r.length - 2]) + 1, 200);
      a = { rows, bytes, ms: performance.now() - t0 };
      state.memo.set(key, a);
    }
    return a;
  };

  const identity = await startFakeIdentity();
  const logs = await startFakeLogAnalytics({
    rows: [],
    answer: (h: QueryHeader) => {
      const a = answerFor(h);
      state.la.queries += 1;
      state.la.rows += a.rows.length;
      state.la.bytes += a.bytes;
      return a.rows;
    },
  });
  const tables = await startCountingAzurite();
  const queues = await startAzuriteQueue();
  const ingestion = await startFakeIngestion();

  const info: ServicesInfo = {
    identityEndpoint: identity.endpoint,
    identityHeader: identity.header,
    logsEndpoint: logs.endpoint,
    ca: logs.ca,
    tableEndpoint: tables.endpoint,
    queueEndpoint: queues.endpoint,
    ingestionEndpoint: ingestion.endpoint,
    population: {
      callers: pop.callers.length,
      ips: pop.ips,
      cities: pop.cities,
      operations: pop.operations.length,
      attacks: pop.attacks.length,
    },
  };

  const routes: Record<string, (body: Record<string, unknown>) => unknown> = {
    'GET /info': () => info,
    'POST /dataset': (b) => {
      state.window = new BenchWindow(pop, Number(b.rows), Number(b.windowStartMs));
      state.memo.clear();
      state.ordered.clear();
      return { ok: true };
    },
    'POST /prepare': (b) => {
      const a = answerFor({
        windowStartMs: Number(b.startMs),
        windowEndMs: Number(b.endMs),
        maxRows: Number(b.maxRows),
        maxBytes: Number(b.maxBytes),
      });
      return { groups: a.rows.length, bytes: a.bytes, ms: a.ms };
    },
    'POST /reset': () => {
      tables.reset();
      logs.reset();
      state.delivered = ingestion.received.length;
      state.la = { queries: 0, rows: 0, bytes: 0, requests: [] };
      return { ok: true };
    },
    'GET /counters': () => ({
      tables: tables.counts,
      la: {
        ...state.la,
        requests: logs.requests
          .filter((r) => r.status === 200)
          .map((r) => ({ query: r.query, timespan: r.timespan ?? '' })),
      },
      // Alerts delivered since the last reset.
      ingestion: {
        received: ingestion.received.length - state.delivered,
        requests: ingestion.requests.length,
      },
    }),
    'POST /drop-tables': async (b) => {
      const service = new TableServiceClient(tables.endpoint, tables.credential, {
        allowInsecureConnection: true,
      });
      let dropped = 0;
      for await (const t of service.listTables()) {
        if (t.name?.startsWith(String(b.prefix))) {
          await service.deleteTable(t.name);
          dropped += 1;
        }
      }
      return { dropped };
    },
    'POST /stop': () => {
      setImmediate(() => {
        void Promise.allSettled([
          identity.close(),
          logs.close(),
          tables.stop(),
          queues.stop(),
          ingestion.close(),
        ]).then(() => process.exit(0));
      });
      return { ok: true };
    },
  };

  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const route = routes[`${req.method} ${req.url}`];
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (!route) return reply(404, { error: 'no such route' });
      let body: Record<string, unknown> = {};
      try {
        if (chunks.length > 0)
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        return reply(400, { error: 'bad json' });
      }
      Promise.resolve()
        .then(() => route(body))
        .then(
          (out) => reply(200, out),
          (e: unknown) => reply(500, { error: e instanceof Error ? e.stack : String(e) }),
        );
    });
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ control: (control.address() as AddressInfo).port })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
