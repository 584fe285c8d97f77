/**
 * Hostile and malformed input records, property-based: garbage lines, non-objects, missing and null fields, wrong
 * types in dynamic columns, timestamps in the far future and past, operation names and callers with control
 * characters, lone surrogates, Table Storage's forbidden characters, CSV-injection prefixes and megabyte strings,
 * duplicated EventDataIds. Nothing throws; every rejected record is counted under its reason; every good record
 * is still read, in order; memory stays bounded.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  FIELD_LIMITS,
  MAX_CONTEXT_LENGTH,
  normaliseActivityRow,
  normaliseDiagnosticRecord,
} from '../../shared/activity/normalise.js';
import { newReadStats, readActivityFile } from '../../shared/activity/read.js';
import type { ActivityEvent, SkipReason } from '../../shared/activity/types.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';
import {
  hasLoneSurrogate,
  HOSTILE_STRINGS,
  hostileRow,
  hostileString,
  hostileValue,
  isDisplaySafe,
} from './hostile.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uc-fuzz-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const REASONS = new Set<SkipReason>([
  'invalid-json',
  'invalid-csv',
  'not-an-object',
  'missing-time',
  'invalid-time',
  'missing-operation',
  'oversized-field',
  'unknown-format',
]);
const DIAGNOSTIC_KEYS = [
  'time',
  'operationName',
  'caller',
  'callerIpAddress',
  'identity',
  'properties',
  'category',
  'resultType',
  'resourceId',
  'correlationId',
];

/** The invariants of an accepted event. */
function expectUsable(ev: ActivityEvent): void {
  expect(Number.isFinite(ev.timeMs)).toBe(true);
  expect(ev.timeMs).toBeGreaterThanOrEqual(Date.UTC(2000, 0, 1));
  expect(ev.timeMs).toBeLessThan(Date.UTC(2100, 0, 1));
  expect(ev.operation).not.toBe('');
  expect(ev.operation.length).toBeLessThanOrEqual(FIELD_LIMITS.operation);
  expect(ev.caller.length).toBeLessThanOrEqual(FIELD_LIMITS.caller);
  expect(ev.callerIp.length).toBeLessThanOrEqual(FIELD_LIMITS.callerIp);
  for (const [k, v] of Object.entries(ev)) {
    if (typeof v !== 'string') continue;
    expect(hasLoneSurrogate(v), `${k} is well-formed`).toBe(false);
    expect(v.length, k).toBeLessThanOrEqual(MAX_CONTEXT_LENGTH);
  }
}

describe('normalising one record', () => {
  it('any AzureActivity-shaped object: an event with usable fields, or a known reason; never a throw', () => {
    fc.assert(
      fc.property(hostileRow(), (r) => {
        const result = normaliseActivityRow(r);
        if (result.ok) expectUsable(result.event);
        else expect(REASONS.has(result.reason)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('any raw diagnostic record likewise', () => {
    const rec = fc.dictionary(fc.constantFrom(...DIAGNOSTIC_KEYS), hostileValue(), {
      maxKeys: DIAGNOSTIC_KEYS.length,
    });
    fc.assert(
      fc.property(rec, (r) => {
        const result = normaliseDiagnosticRecord(r);
        if (result.ok) expectUsable(result.event);
        else expect(REASONS.has(result.reason)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('boundaries: far-future and far-past times, oversized identity fields, lone surrogates', () => {
    const ok = { OperationNameValue: 'OP/A', Caller: 'u@x.com', CallerIpAddress: '1.2.3.4' };
    const reason = (r: Record<string, unknown>) => {
      const n = normaliseActivityRow(r);
      return n.ok ? 'ok' : n.reason;
    };
    for (const t of [
      '9999-12-31T00:00:00Z',
      '2100-01-01T00:00:00Z',
      '1999-12-31T23:59:59Z',
      '0001-01-01',
      '1970-01-01T00:00:00Z',
      1e20,
      -1e15,
      '100000000000000000000',
    ])
      expect(reason({ ...ok, TimeGenerated: t }), String(t)).toBe('invalid-time');
    for (const t of [
      '2000-01-01T00:00:00Z',
      '2099-12-31T23:59:59Z',
      1_790_000_000,
      '4/28/2021, 2:32:14.029 PM',
    ])
      expect(reason({ ...ok, TimeGenerated: t }), String(t)).toBe('ok');
    const T = '2026-10-01T00:00:00Z';
    expect(reason({ ...ok, TimeGenerated: T, OperationNameValue: 'x'.repeat(FIELD_LIMITS.operation) })).toBe(
      'ok',
    );
    expect(
      reason({ ...ok, TimeGenerated: T, OperationNameValue: 'x'.repeat(FIELD_LIMITS.operation + 1) }),
    ).toBe('oversized-field');
    expect(reason({ ...ok, TimeGenerated: T, Caller: 'x'.repeat(FIELD_LIMITS.caller + 1) })).toBe(
      'oversized-field',
    );
    expect(reason({ ...ok, TimeGenerated: T, CallerIpAddress: '1'.repeat(1 << 20) })).toBe('oversized-field');
    const surrogate = normaliseActivityRow({
      ...ok,
      TimeGenerated: T,
      OperationNameValue: 'OP/\ud800',
      Caller: 'a\udfffb',
    });
    expect(surrogate.ok && [surrogate.event.operation, surrogate.event.caller]).toEqual([
      'OP/\ufffd',
      'a\ufffdb',
    ]);
    const long = normaliseActivityRow({
      ...ok,
      TimeGenerated: T,
      _ResourceId: 'r'.repeat(1 << 20),
      EventDataId: 'e'.repeat(1 << 20),
    });
    expect(long.ok && [long.event.resourceId.length, long.event.eventDataId.length]).toEqual([
      MAX_CONTEXT_LENGTH,
      MAX_CONTEXT_LENGTH,
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Files: good records among bad ones, with the reason each bad one must be counted under.

type Line =
  | { good: true; text: string; id: string; op: string; caller: string }
  | { good: false; text: string; reason: SkipReason };

const oneLine = (s: string) => s.replace(/[\r\n]/g, ' ');
const expected = (s: string) => s.trim().replace(/\p{Cs}/gu, '\ufffd');
const shortHostile = fc.constantFrom(...HOSTILE_STRINGS);

const goodLine: fc.Arbitrary<Line> = fc
  .record({
    op: shortHostile,
    caller: shortHostile,
    ip: fc.constantFrom(
      '41.58.99.10',
      '010.1.1.1',
      'fe80::1%eth0',
      '[::ffff:5.10.99.10]:443',
      'not an ip',
      '=cmd|x',
      '',
    ),
    time: fc.oneof(
      fc
        .integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 11, 31) })
        .map((ms) => new Date(ms).toISOString()),
      fc.integer({ min: 1_767_225_600, max: 1_798_761_599 }), // epoch seconds in 2026
    ),
    id: fc.oneof(fc.uuid(), fc.constantFrom('dup-1', 'dup-2')), // duplicated EventDataIds are kept, each one
    claims: hostileValue(),
    authorization: hostileValue(),
    properties: hostileValue(),
    category: hostileValue(),
  })
  .map(({ op, caller, ip, time, id, claims, authorization, properties, category }) => ({
    good: true as const,
    id,
    op: expected(`OP/${op}`),
    caller: expected(`u-${caller}`),
    text: JSON.stringify({
      TimeGenerated: time,
      OperationNameValue: `OP/${op}`,
      Caller: `u-${caller}`,
      CallerIpAddress: ip,
      EventDataId: id,
      Claims_d: claims,
      Authorization_d: authorization,
      Properties_d: properties,
      CategoryValue: category,
    }),
  }));

const T = '2026-06-01T12:00:00Z';
const badLine: fc.Arbitrary<Line> = fc.oneof(
  hostileString().map((s) => ({
    good: false as const,
    reason: 'invalid-json' as const,
    text: oneLine(`{${JSON.stringify(s)}`),
  })),
  fc
    .oneof(fc.array(fc.integer(), { maxLength: 3 }), fc.integer(), fc.constant(null), hostileString())
    .map((v) => ({
      good: false as const,
      reason: 'not-an-object' as const,
      text: JSON.stringify(v),
    })),
  hostileValue().map((v) => ({
    good: false as const,
    reason: 'unknown-format' as const,
    text: JSON.stringify({ foo: v ?? 1 }),
  })),
  fc.constantFrom(null, '', '   ').map((t) => ({
    good: false as const,
    reason: 'missing-time' as const,
    text: JSON.stringify({ TimeGenerated: t, OperationNameValue: 'OP/A', Caller: 'u' }),
  })),
  fc
    .constantFrom(
      'yesterday',
      '2026-13-01T00:00:00Z',
      '2026-02-30',
      '9999-12-31T00:00:00Z',
      '0001-01-01',
      1e20,
      -1e15,
      '=NOW()',
    )
    .map((t) => ({
      good: false as const,
      reason: 'invalid-time' as const,
      text: JSON.stringify({ TimeGenerated: t, OperationNameValue: 'OP/A', Caller: 'u' }),
    })),
  fc.constantFrom(null, '', '  ', { value: '' }, [], { localizedValue: '  ' }).map((op) => ({
    good: false as const,
    reason: 'missing-operation' as const,
    text: JSON.stringify({ TimeGenerated: T, OperationNameValue: op, Caller: 'u' }),
  })),
  fc
    .constantFrom<[string, number]>(
      ['OperationNameValue', 513],
      ['Caller', 257],
      ['CallerIpAddress', 300],
      // Escaped (6 bytes a character), these stay within a record's budget (INPUT_BUDGETS.recordBytes).
      ['OperationNameValue', 1 << 19],
      ['Caller', 1 << 19],
    )
    .map(([k, n]) => ({
      good: false as const,
      reason: 'oversized-field' as const,
      text: JSON.stringify({
        TimeGenerated: T,
        OperationNameValue: 'OP/A',
        Caller: 'u',
        [k]: `${k === 'CallerIpAddress' ? '1' : 'x'}${'\u001b'.repeat(n - 1)}`,
      }),
    })),
);

describe('reading files of good and bad records', () => {
  it('JSON Lines: every good record read in order, every bad one counted under its reason', async () => {
    let file = 0;
    await fc.assert(
      fc.asyncProperty(
        goodLine,
        fc.array(fc.oneof(goodLine, badLine), { maxLength: 60 }),
        async (first, rest) => {
          // The first line decides the format (JSON Lines), as for any export.
          const lines = [first, ...rest];
          const path = join(dir, `f${file++}.jsonl`);
          await writeFile(path, lines.map((l) => l.text).join('\n') + '\n');
          const stats = newReadStats();
          const events: ActivityEvent[] = [];
          for await (const ev of readActivityFile(path, stats)) events.push(ev);
          const goods = lines.filter((l) => l.good);
          expect(events.map((e) => [e.eventDataId, e.operation, e.caller])).toEqual(
            goods.map((g) => [g.id, g.op, g.caller]),
          );
          for (const ev of events) expectUsable(ev);
          const want: Partial<Record<SkipReason, number>> = {};
          for (const l of lines) if (!l.good) want[l.reason] = (want[l.reason] ?? 0) + 1;
          expect(stats.skipped).toEqual(want);
          expect(stats.records).toBe(lines.length);
          expect(stats.events).toBe(goods.length);
          for (const s of stats.skippedSamples) {
            expect(isDisplaySafe(`${s.id ?? ''}${s.detail ?? ''}`), 'samples are safe to print').toBe(true);
            expect((s.detail ?? '').length).toBeLessThanOrEqual(300);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('megabyte rows: rejected or cut, the good records around them read, memory bounded', async () => {
    const path = join(dir, 'huge.jsonl');
    const MB = 1 << 20;
    const lines: string[] = [];
    // A megabyte of JSON text either way (an escaped ESC takes six characters).
    const huge = (c: string) => c.repeat(c === 'x' ? MB : MB / 6);
    for (let i = 0; i < 120; i++) {
      const t = new Date(Date.UTC(2026, 5, 1) + i * 60_000).toISOString();
      lines.push(
        JSON.stringify({
          TimeGenerated: t,
          OperationNameValue: 'OP/A',
          Caller: `good-${i}`,
          CallerIpAddress: '41.58.99.10',
          EventDataId: `g${i}`,
        }),
      );
      const field = [
        'OperationNameValue',
        'Caller',
        'CallerIpAddress',
        '_ResourceId',
        'Claims_d',
        'CorrelationId',
      ][i % 6]!;
      lines.push(
        JSON.stringify({
          TimeGenerated: t,
          OperationNameValue: 'OP/B',
          Caller: `big-${i}`,
          CallerIpAddress: '41.58.99.10',
          [field]: huge(i % 2 === 0 ? 'x' : '\u001b'),
        }),
      );
    }
    lines.push(`{"TimeGenerated":"${huge('9')}`); // a megabyte line cut short
    await writeFile(path, lines.join('\n'));
    const stats = newReadStats();
    const agg = new AggregatedEvents(15 * 60_000, 2 * 3_600_000);
    const before = process.memoryUsage().rss;
    let peak = before;
    let n = 0;
    for await (const ev of readActivityFile(path, stats)) {
      agg.add(ev);
      if (++n % 10 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    // 120 good, 60 with a megabyte context field (cut), 60 with a megabyte identity field (rejected), 1 torn.
    expect(stats.events).toBe(180);
    expect(stats.skipped).toEqual({ 'oversized-field': 60, 'invalid-json': 1 });
    // What the aggregate keeps is bounded by the field limits, not by the input.
    let kept = 0;
    for (const g of agg.allGroups()) {
      kept += g.operation.length + g.caller.length + g.callerIp.length;
      kept += [...g.resourceIds, ...g.correlationIds, g.subscriptionId, g.resourceGroup].reduce(
        (a, s) => a + s.length,
        0,
      );
    }
    expect(kept).toBeLessThan(180 * 4 * MAX_CONTEXT_LENGTH);
    expect((peak - before) / MB, 'memory growth (MB) reading 120 MB of rows').toBeLessThan(100);
  }, 60_000);
});
