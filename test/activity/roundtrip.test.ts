import { readFile } from 'node:fs/promises';

import { describe, expect, it } from 'vitest';

import {
  formatPortalTime,
  toActivityRow,
  toDiagnosticRecord,
  writeDiagnosticRecords,
  writeJsonLines,
  writeLogAnalyticsResponse,
  writePortalCsv,
} from '../../shared/activity/formats.js';
import { normaliseActivityRow, normaliseDiagnosticRecord } from '../../shared/activity/normalise.js';
import type { ActivityEvent, InputFormat } from '../../shared/activity/types.js';
import { makeEvents, readAll, useTempDir } from './helpers.js';

const inTempDir = useTempDir();

/** Generated events plus edge cases: a resource id that cannot carry the subscription. */
function sample(): ActivityEvent[] {
  const events = makeEvents(400);
  events.push({
    ...events[0]!,
    resourceId: '',
    subscriptionId: '9a8b7c6d-1111-4222-8333-444455556666',
    resourceGroup: '',
    callerType: 'servicePrincipal',
    caller: '',
  });
  return events;
}

type Writer = (events: ActivityEvent[], path: string) => Promise<number>;
const writers: Array<[string, Writer, InputFormat, string]> = [
  ['JSON Lines', (e, p) => writeJsonLines(e, p), 'azure-activity-jsonl', '{"TenantId"'],
  ['JSON Lines, gzip', (e, p) => writeJsonLines(e, p, { gzip: true }), 'azure-activity-jsonl', '\x1f\x8b'],
  ['query response', (e, p) => writeLogAnalyticsResponse(e, p), 'log-analytics-response', '{"tables":[{'],
  [
    'query response, gzip',
    (e, p) => writeLogAnalyticsResponse(e, p, { gzip: true }),
    'log-analytics-response',
    '\x1f\x8b',
  ],
  ['portal CSV', (e, p) => writePortalCsv(e, p), 'portal-csv', '$table,TenantId'],
  ['portal CSV, gzip', (e, p) => writePortalCsv(e, p, { gzip: true }), 'portal-csv', '\x1f\x8b'],
  [
    'bare diagnostic records',
    (e, p) => writeDiagnosticRecords(e, p, { wrapped: false }),
    'diagnostic-records',
    '{"time"',
  ],
  [
    'wrapped diagnostic records',
    (e, p) => writeDiagnosticRecords(e, p, { wrapped: true, recordsPerWrapper: 37 }),
    'diagnostic-records',
    '{"records":[{',
  ],
  [
    'one pretty diagnostic document, gzip',
    (e, p) => writeDiagnosticRecords(e, p, { wrapped: true, pretty: true, gzip: true }),
    'diagnostic-records',
    '\x1f\x8b',
  ],
  [
    'one single-line diagnostic document',
    (e, p) => writeDiagnosticRecords(e, p, { wrapped: true, recordsPerWrapper: 1_000_000 }),
    'diagnostic-records',
    '{"records":[{',
  ],
];

describe('writers round-trip through the reader', () => {
  it.each(writers)('%s', async (name, write, format, prefix) => {
    const events = sample();
    const path = inTempDir(name.replace(/\W+/g, '-'));
    expect(await write(events, path)).toBe(events.length);
    expect((await readFile(path, 'latin1')).startsWith(prefix)).toBe(true);

    const { events: back, stats } = await readAll(path);
    expect(stats.skipped).toEqual({});
    expect(stats.formats).toEqual({ [format]: events.length });
    if (format === 'portal-csv') {
      // The portal upper-cases operation names; the comparison key is unaffected.
      expect(back.map((e) => e.operation)).toEqual(events.map((e) => e.operation.toUpperCase()));
      expect(back.map((e) => ({ ...e, operation: '' }))).toEqual(
        events.map((e) => ({ ...e, operation: '' })),
      );
    } else {
      expect(back).toEqual(events);
    }
  });

  it('writes a portal CSV that looks like the real export', async () => {
    const ev = makeEvents(1)[0]!;
    const path = inTempDir('look.csv');
    await writePortalCsv([{ ...ev, timeMs: Date.parse('2021-04-28T14:32:14.029Z') }], path);
    const text = await readFile(path, 'utf8');
    const [header] = text.split('\r\n');
    expect(header!.split(',').slice(0, 3)).toEqual(['$table', 'TenantId', 'SourceSystem']);
    expect(header).toContain(',TimeGenerated [UTC],');
    expect(header).toContain(',EventSubmissionTimestamp [UTC],');
    expect(text).toContain('"4/28/2021, 2:32:14.029 PM"');
    expect(text).toContain(`,${ev.operation.toUpperCase()},`);
    // Dynamic columns: pretty-printed JSON spanning lines, quotes doubled.
    expect(text).toMatch(/"\{\n {2}""action"": ""/);
  });

  it('formats portal times with 12 AM / 12 PM', () => {
    expect(formatPortalTime(Date.parse('2021-04-28T00:05:01.5Z'))).toBe('4/28/2021, 12:05:01.500 AM');
    expect(formatPortalTime(Date.parse('2021-04-28T12:00:00Z'))).toBe('4/28/2021, 12:00:00.000 PM');
    expect(formatPortalTime(Date.parse('2021-12-31T23:59:59.999Z'))).toBe('12/31/2021, 11:59:59.999 PM');
  });

  it('row and record builders recover every caller type directly', () => {
    for (const ev of sample()) {
      expect(normaliseActivityRow(toActivityRow(ev))).toEqual({ ok: true, event: ev });
      expect(normaliseDiagnosticRecord(toDiagnosticRecord(ev))).toEqual({ ok: true, event: ev });
    }
  });

  it('accepts async iterables and writes nothing but the envelope for no events', async () => {
    async function* none(): AsyncGenerator<ActivityEvent> {}
    const p = inTempDir('none.json');
    expect(await writeLogAnalyticsResponse(none(), p)).toBe(0);
    const { events, stats } = await readAll(p);
    expect(events).toEqual([]);
    expect(stats.records).toBe(0);
  });
});
