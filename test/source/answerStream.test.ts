import { type LogsQueryClient, type LogsQueryResult, LogsQueryResultStatus } from '@azure/monitor-query-logs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { DEMO_START } from '../../shared/demo/tenant.js';
import { AnswerParser } from '../../shared/source/answerStream.js';
import {
  IncompleteWindowError,
  LogAnalyticsSource,
  type LogAnalyticsSourceOptions,
} from '../../shared/source/logAnalytics.js';
import {
  evaluateActivityQuery,
  type FakeLogAnalytics,
  OUTPUT_COLUMNS,
  startFakeLogAnalytics,
} from '../support/fakeLogAnalytics.js';
import { startFakeIdentity } from '../support/identity.js';
import { logsQueryClient } from '../support/logsQueryClient.js';
import { DAY, HOUR, tenantRows } from './reference.js';

const WS = '0b9f3c2e-1d4a-4c6b-9e8f-7a6b5c4d3e2f';
const D11 = DEMO_START + 11 * DAY;

/** Text that breaks a parser that splits on quotes, brackets, commas or bytes instead of JSON tokens. */
const HOSTILE = [
  'he said "hi", then ] and } and [ and {',
  'back\\slash\\"quote\\\\',
  'line\nbreak\ttab\u2028sep\u0000nul',
  'ünïcödé – 東京 – 😀 (split across chunks)',
  '',
  ' , ',
];

/** An answer of the service's shape with hostile cells, two tables, and the error member before or after. */
function hostileAnswer(errorFirst: boolean): unknown {
  const rows = HOSTILE.map((s, i) => [
    s,
    i,
    -1.5e-3 * i,
    null,
    true,
    { nested: [s, { deeper: [1, [2, [3]]] }] },
    [s, s.length],
    JSON.stringify([s, '/subscriptions/x']),
  ]);
  const columns = ['S', 'N', 'F', 'Z', 'B', 'O', 'A', 'D'].map((name) => ({ name, type: 'dynamic' }));
  const error = { code: 'PartialError', message: 'some ] " } error', details: [{ code: 'EngineError' }] };
  const tables = [
    { name: 'PrimaryResult', columns, rows },
    { name: 'Second', rows: rows.slice(0, 2), columns: columns.slice(0, 3) },
  ];
  return errorFirst ? { error, tables, statistics: { x: [1] } } : { tables, error, render: null };
}

/** Feeds `text` to a parser in chunks of the given sizes (cycled); returns the rows seen and the parser. */
function parseInChunks(text: string, sizes: readonly number[]) {
  const rows: { table: number; row: unknown }[] = [];
  const parser = new AnswerParser({ row: (table, row) => rows.push({ table, row }) });
  const bytes = Buffer.from(text, 'utf8');
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const n = sizes[k % sizes.length]!;
    parser.write(bytes.subarray(at, at + n));
    at += n;
  }
  parser.end();
  return { rows, parser };
}

function expected(answer: unknown) {
  const a = answer as { tables: { rows: unknown[][] }[] };
  const rows = a.tables.flatMap((t, table) => t.rows.map((row) => ({ table, row })));
  const skeleton = { ...a, tables: a.tables.map((t) => ({ ...t, rows: [] })) };
  return { rows, skeleton };
}

describe('AnswerParser: the answer parsed as it arrives', () => {
  for (const errorFirst of [false, true]) {
    for (const indent of [undefined, 2]) {
      it(`rows and the rest equal JSON.parse of the whole, in any chunking (error ${errorFirst ? 'first' : 'last'}, indent ${indent ?? 0})`, () => {
        const answer = hostileAnswer(errorFirst);
        const text = JSON.stringify(answer, null, indent);
        const want = expected(JSON.parse(text));
        for (const sizes of [[1], [2], [3], [7], [64], [5, 1, 13, 2], [1_000_000]]) {
          const { rows, parser } = parseInChunks(text, sizes);
          expect(rows).toEqual(want.rows);
          expect(JSON.parse(parser.skeleton())).toEqual(want.skeleton);
          expect(parser.bytes).toBe(Buffer.byteLength(text));
        }
      });
    }
  }

  it('an answer cut anywhere, or with anything after it, is a SyntaxError, as for JSON.parse', () => {
    const text = JSON.stringify(hostileAnswer(false));
    for (let n = 0; n < text.length; n += 7) {
      expect(() => parseInChunks(text.slice(0, n), [5]), `cut at ${n}`).toThrow(SyntaxError);
    }
    expect(() => parseInChunks(`${text} x`, [3])).toThrow(SyntaxError);
    expect(() => parseInChunks(text.replace('"tables":[{', '"tables":[{]'), [3])).toThrow(SyntaxError);
    expect(() => parseInChunks('[1,2]', [1])).toThrow(SyntaxError);
  });

  it('members that are not the expected containers are kept as sent', () => {
    const { rows, parser } = parseInChunks('{"tables":null,"x":[1]}', [2]);
    expect(rows).toEqual([]);
    expect(JSON.parse(parser.skeleton())).toEqual({ tables: null, x: [1] });
    const other = parseInChunks('{"tables":[{"name":"T","rows":7}]}', [4]);
    expect(JSON.parse(other.parser.skeleton())).toEqual({ tables: [{ name: 'T', rows: 7 }] });
  });
});

describe('LogAnalyticsSource: the streamed answer gives the groups the client-parsed answer gives', () => {
  const rows = tenantRows(14);
  let fake: FakeLogAnalytics;
  let streaming: LogsQueryClient;
  /** Another client of the same fake, given to the source without its pipeline: answers parsed by the client. */
  let plain: LogsQueryClient;
  let close: () => Promise<void>;
  /** Rewrites each answer row (OUTPUT_COLUMNS order) before it is sent; identity unless a test sets it. */
  let mutate: (row: unknown[], i: number) => unknown[] = (r) => r;
  let lastLogs: { streamed: string[]; parsed: string[] } = { streamed: [], parsed: [] };
  const col = (name: string): number => OUTPUT_COLUMNS.findIndex(([n]) => n === name);

  beforeAll(async () => {
    const identity = await startFakeIdentity();
    const restore = identity.install();
    fake = await startFakeLogAnalytics({ rows, answer: (h) => evaluateActivityQuery(rows, h).map(mutate) });
    streaming = logsQueryClient(fake);
    plain = logsQueryClient(fake);
    close = async () => {
      restore();
      await fake.close();
      await identity.close();
    };
  });
  afterAll(() => close());
  beforeEach(() => {
    fake.reset();
    mutate = (r) => r;
  });

  const sources = (o: Partial<LogAnalyticsSourceOptions> = {}) => {
    const logs: { streamed: string[]; parsed: string[] } = { streamed: [], parsed: [] };
    const unpiped = { queryWorkspace: plain.queryWorkspace.bind(plain) } as unknown as LogsQueryClient;
    const base = { workspaceId: WS, retryBaseMs: 5, ...o };
    return {
      logs,
      streamed: new LogAnalyticsSource({ ...base, client: streaming, log: (_, m) => logs.streamed.push(m) }),
      parsed: new LogAnalyticsSource({ ...base, client: unpiped, log: (_, m) => logs.parsed.push(m) }),
    };
  };

  /** Both readers over the same answers: the same groups, log lines and stats, or the same error. */
  async function same(o: Partial<LogAnalyticsSourceOptions>, start: number, end: number, fail?: () => void) {
    const { logs, streamed, parsed } = sources(o);
    lastLogs = logs;
    fail?.();
    const a = await streamed.read(start, end).catch((e: unknown) => e);
    fail?.();
    const b = await parsed.read(start, end).catch((e: unknown) => e);
    expect(a).toEqual(b);
    if (a instanceof Error) expect(a.message).toBe((b as Error).message);
    expect(logs.streamed.map((l) => l.replace(/\(\d+ queries/, ''))).toEqual(
      logs.parsed.map((l) => l.replace(/\(\d+ queries/, '')),
    );
    const { durationMs: _a, ...sa } = streamed.lastRead;
    const { durationMs: _b, ...sb } = parsed.lastRead;
    expect(sa).toEqual(sb);
    return a;
  }

  it('a day, whole and cut by the row and the byte limits', async () => {
    const whole = await same({}, D11, D11 + DAY);
    expect((whole as unknown[]).length).toBeGreaterThan(100);
    expect(await same({ maxRowsPerQuery: 37 }, D11, D11 + DAY)).toEqual(whole);
    expect(await same({ maxBytesPerQuery: 20_000 }, D11, D11 + DAY)).toEqual(whole);
    expect(await same({ slotMs: 15 * 60_000, maxRowsPerQuery: 50 }, D11, D11 + DAY)).not.toEqual([]);
  });

  it("partial answers: the service's truncation is split and read again, another partial error is incomplete", async () => {
    const whole = await same({}, D11, D11 + 6 * HOUR);
    expect(await same({}, D11, D11 + 6 * HOUR, () => fake.failNext('truncate'))).toEqual(whole);
    const error = await same({}, D11, D11 + 6 * HOUR, () => fake.failNext('partial'));
    expect(error).toBeInstanceOf(IncompleteWindowError);
  });

  it('the client is handed the answer without its rows when it is streamed', async () => {
    const seen: LogsQueryResult[] = [];
    const spy = Object.create(streaming) as LogsQueryClient;
    spy.queryWorkspace = async (...args) => {
      const r = await streaming.queryWorkspace(...args);
      seen.push(r);
      return r;
    };
    const groups = await new LogAnalyticsSource({ client: spy, workspaceId: WS }).read(D11, D11 + DAY);
    expect(groups.length).toBeGreaterThan(100);
    expect(seen).toHaveLength(1);
    const result = seen[0]!;
    expect(result.status).toBe(LogsQueryResultStatus.Success);
    if (result.status === LogsQueryResultStatus.Success) {
      expect(result.tables[0]!.columnDescriptors.map((c) => c.name)).toEqual(OUTPUT_COLUMNS.map(([n]) => n));
      expect(result.tables[0]!.rows).toEqual([]);
    }
  });

  it('hostile values in every text cell and in the lists come out the same', async () => {
    const texts = ['Operation', 'Caller', 'SubscriptionId', 'ResourceGroup', 'Upn', 'AppId', 'IdType'].map(
      col,
    );
    mutate = (r, i) => {
      const row = [...r];
      const s = HOSTILE[i % HOSTILE.length]!;
      for (const c of texts) if (typeof row[c] === 'string') row[c] = `${String(row[c])}${s}`;
      row[col('ResourceIds')] = i % 3 === 0 ? `not json ${s}` : JSON.stringify([s, `/subscriptions/${s}/x`]);
      row[col('CorrelationIds')] = i % 4 === 0 ? [s, 7, null] : JSON.stringify([s]);
      return row;
    };
    const groups = await same({ maxRowsPerQuery: 41 }, D11, D11 + DAY);
    expect((groups as { caller: string }[]).some((g) => g.caller.includes('東京'))).toBe(true);
  });

  it('a row with an invalid time fails both the same way; an oversized caller is skipped by both, with a warning', async () => {
    mutate = (r, i) => (i === 5 ? Object.assign([...r], { [col('FirstTime')]: 'not a time' }) : r);
    const error = await same({}, D11, D11 + DAY);
    expect((error as Error).message).toMatch(/invalid time or count/);
    mutate = (r, i) => (i === 3 ? Object.assign([...r], { [col('Caller')]: 'x'.repeat(5000) }) : r);
    const groups = await same({ maxRowsPerQuery: 10 }, D11, D11 + 3 * HOUR);
    expect(Array.isArray(groups)).toBe(true);
    expect(lastLogs.streamed.filter((l) => l.includes('a group was skipped')).length).toBeGreaterThan(0);
  });
});
