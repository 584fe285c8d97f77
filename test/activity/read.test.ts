import { readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { writeDiagnosticRecords } from '../../shared/activity/formats.js';
import { newReadStats, readActivityFile, readActivityFiles } from '../../shared/activity/read.js';
import type { SkippedRecord } from '../../shared/activity/types.js';
import { fixture, makeEvents, readAll, totalSkipped, useTempDir } from './helpers.js';

const SUB = '1b2c3d4e-0000-4000-8000-00000000abcd';
const at = (s: string): number => Date.parse(s);
const positions = (samples: SkippedRecord[]): Array<[string, string, string | undefined]> =>
  samples.map((s) => [s.position, s.reason, s.id]);

const inTempDir = useTempDir();

async function writeTemp(name: string, content: string | Buffer): Promise<string> {
  const p = inTempDir(name);
  await writeFile(p, content);
  return p;
}

describe('portal CSV export', () => {
  it('reads multi-line quoted JSON, US-style UTC times and the zone-suffixed headers', async () => {
    const { events, stats } = await readAll(fixture('portal-export.csv'));
    expect(stats).toMatchObject({ records: 4, events: 4, skipped: {}, formats: { 'portal-csv': 4 } });
    expect(events[0]).toEqual({
      timeMs: at('2021-04-28T14:32:14.029Z'),
      operation: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
      operationKey: 'microsoft.storage/storageaccounts/listkeys/action',
      caller: 'alice@contoso.com',
      callerType: 'user',
      callerIp: '203.0.113.10',
      category: 'Administrative',
      status: 'Succeeded',
      correlationId: '5c0a9d0e-2f4c-4a1b-9a53-0f6f2e6c1d11',
      eventDataId: '0f2a9b8c-1d2e-4f3a-9b8c-7d6e5f4a3b21',
      subscriptionId: SUB,
      resourceGroup: 'RG-PROD',
      resourceId: `/subscriptions/${SUB}/resourcegroups/rg-prod/providers/microsoft.storage/storageaccounts/stprod01`,
    });
    // Rows are in ingestion order; 12 AM is midnight and 12 PM is noon.
    expect(events.map((e) => new Date(e.timeMs).toISOString())).toEqual([
      '2021-04-28T14:32:14.029Z',
      '2021-04-28T00:05:01.500Z',
      '2021-04-28T12:59:59.999Z',
      '2021-04-27T23:59:00.000Z',
    ]);
    expect(events.map((e) => [e.caller, e.callerType, e.callerIp, e.status])).toEqual([
      ['alice@contoso.com', 'user', '203.0.113.10', 'Succeeded'],
      ['4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d', 'servicePrincipal', '198.51.100.7', 'Started'],
      ['5d6e7f80-91a2-4b3c-8d4e-5f6071829304', 'managedIdentity', '', 'Succeeded'],
      ['Microsoft.PolicyInsights', 'unknown', '', 'Succeeded'],
    ]);
    expect(events[3]!.category).toBe('Policy');
  });

  it('reads the same events from a gzip copy with a misleading name', async () => {
    const plain = await readAll(fixture('portal-export.csv'));
    const gz = await writeTemp('export.csv', gzipSync(await readFile(fixture('portal-export.csv'))));
    const { events, stats } = await readAll(gz);
    expect(events).toEqual(plain.events);
    expect(stats.formats).toEqual({ 'portal-csv': 4 });
  });

  it('reports malformed records by their start line and keeps reading', async () => {
    const { events, stats } = await readAll(fixture('malformed.csv'));
    expect(events.map((e) => e.eventDataId)).toEqual([
      'f0000000-0000-4000-8000-000000000001',
      'f0000000-0000-4000-8000-000000000002',
      'f0000000-0000-4000-8000-000000000007',
    ]);
    expect(events[1]).toMatchObject({
      timeMs: at('2024-03-05T13:01:00.250Z'),
      callerType: 'servicePrincipal',
      status: 'Failed',
    });
    // "not json {" in Claims_d is tolerated: the caller still classifies from its UPN shape.
    expect(events[2]!.callerType).toBe('user');
    expect(positions(stats.skippedSamples)).toEqual([
      ['8', 'invalid-csv', 'f0000000-0000-4000-8000-000000000003'],
      ['9', 'invalid-time', 'f0000000-0000-4000-8000-000000000004'],
      ['10', 'missing-operation', 'f0000000-0000-4000-8000-000000000005'],
      ['11', 'missing-time', 'f0000000-0000-4000-8000-000000000006'],
      ['13', 'invalid-csv', undefined],
    ]);
    expect(stats.skipped).toEqual({
      'invalid-csv': 2,
      'invalid-time': 1,
      'missing-operation': 1,
      'missing-time': 1,
    });
    expect(stats.records).toBe(stats.events + totalSkipped(stats));
    expect(stats.skippedSamples[0]!.source).toBe(fixture('malformed.csv'));
  });

  it('converts times from a header with an explicit UTC offset', async () => {
    const p = await writeTemp(
      'offset.csv',
      'TimeGenerated [UTC+02:00],OperationNameValue\n"4/28/2021, 4:32:14.029 PM",Microsoft.Web/sites/write\n',
    );
    const { events } = await readAll(p);
    expect(events.map((e) => e.timeMs)).toEqual([at('2021-04-28T14:32:14.029Z')]);
  });

  it('warns about an unknown time zone label and reads the times as UTC', async () => {
    const p = await writeTemp(
      'local.csv',
      'TimeGenerated [Local Time],OperationNameValue\n"4/28/2021, 2:32:14.029 PM",Microsoft.Web/sites/write\n',
    );
    const { events, warnings } = await readAll(p);
    expect(events.map((e) => e.timeMs)).toEqual([at('2021-04-28T14:32:14.029Z')]);
    expect(warnings).toEqual([expect.stringContaining('unknown time zone')]);
  });
});

describe('Log Analytics query response', () => {
  it('streams rows of every table by column index, despite an error member', async () => {
    const { events, stats, warnings } = await readAll(fixture('la-response.json'));
    expect(events.map((e) => e.eventDataId)).toEqual([
      'aaaaaaaa-0000-4000-8000-000000000001',
      'aaaaaaaa-0000-4000-8000-000000000002',
      'aaaaaaaa-0000-4000-8000-000000000004',
    ]);
    expect(events[0]).toMatchObject({
      timeMs: at('2024-03-05T09:15:42.123Z'),
      operationKey: 'microsoft.storage/storageaccounts/listaccountsas/action',
      caller: 'bob@contoso.com',
      callerType: 'user',
      callerIp: '2001:db8:85a3::8a2e:370:7334',
      resourceGroup: 'RG-DATA',
    });
    // Dynamic columns given as objects rather than JSON text.
    expect(events[1]).toMatchObject({ callerType: 'servicePrincipal', status: 'Accepted', callerIp: '' });
    expect(events[2]).toMatchObject({ caller: 'dave@contoso.com', callerType: 'user', subscriptionId: '' });
    expect(positions(stats.skippedSamples)).toEqual([
      ['tables[0].rows[2]', 'invalid-time', 'aaaaaaaa-0000-4000-8000-000000000003'],
    ]);
    expect(stats.formats).toEqual({ 'log-analytics-response': 4 });
    expect(warnings).toEqual([expect.stringContaining('PartialError')]);
  });

  it('yields the rows before the cut of a truncated response and counts one invalid-json', async () => {
    const text = await readFile(fixture('la-response.json'), 'utf8');
    const cut = text.indexOf('"not a time"');
    const p = await writeTemp('la-truncated.json', text.slice(0, cut + 4));
    const { events, stats } = await readAll(p);
    expect(events.map((e) => e.eventDataId)).toEqual([
      'aaaaaaaa-0000-4000-8000-000000000001',
      'aaaaaaaa-0000-4000-8000-000000000002',
    ]);
    expect(stats.skipped).toEqual({ 'invalid-json': 1 });
    expect(stats.skippedSamples[0]!.position).toBe('tables[0].rows[2]');
    expect(stats.records).toBe(stats.events + totalSkipped(stats));
  });

  it('reports rows that precede their columns instead of guessing', async () => {
    const p = await writeTemp(
      'la-rows-first.json',
      '{\n"tables":[{"name":"T","rows":[["2024-01-01T00:00:00Z","op"]],"columns":[{"name":"TimeGenerated"},{"name":"OperationNameValue"}]}]}\n',
    );
    const { events, stats } = await readAll(p);
    expect(events).toEqual([]);
    expect(positions(stats.skippedSamples)).toEqual([['tables[0].rows[0]', 'unknown-format', undefined]]);
  });
});

describe('diagnostic records', () => {
  it('streams a pretty-printed {"records":[…]} document', async () => {
    const { events, stats } = await readAll(fixture('diagnostic-records.json'));
    expect(events).toHaveLength(2);
    expect(events[0]).toEqual({
      timeMs: at('2024-03-05T11:00:00.500Z'),
      operation: 'MICROSOFT.KEYVAULT/VAULTS/WRITE',
      operationKey: 'microsoft.keyvault/vaults/write',
      caller: 'alice@contoso.com',
      callerType: 'user',
      callerIp: '203.0.113.99',
      category: 'Administrative',
      status: 'Started',
      correlationId: '44444444-2222-4333-8444-555555555555',
      eventDataId: 'bbbbbbbb-0000-4000-8000-000000000001',
      subscriptionId: SUB,
      resourceGroup: 'RG-APP',
      resourceId:
        '/SUBSCRIPTIONS/1B2C3D4E-0000-4000-8000-00000000ABCD/RESOURCEGROUPS/RG-APP/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-APP',
    });
    expect(events[1]).toMatchObject({
      caller: '5d6e7f80-91a2-4b3c-8d4e-5f6071829304', // the object id, as the AzureActivity Caller column shows it
      callerType: 'managedIdentity',
      callerIp: '2001:db8::5',
      resourceGroup: '',
      subscriptionId: SUB,
    });
    expect(positions(stats.skippedSamples)).toEqual([
      ['records[1]', 'missing-operation', 'bbbbbbbb-0000-4000-8000-000000000002'],
      ['records[3]', 'not-an-object', undefined],
    ]);
    expect(stats.formats).toEqual({ 'diagnostic-records': 4 });
  });

  it('reads several wrapper documents in one file and tells them apart in positions', async () => {
    const text = await readFile(fixture('diagnostic-records.json'), 'utf8');
    const p = await writeTemp('two-docs.json', text + text);
    const { events, stats } = await readAll(p);
    expect(events).toHaveLength(4);
    expect(stats.skippedSamples.map((s) => s.position)).toEqual([
      'records[1]',
      'records[3]',
      'doc2:records[1]',
      'doc2:records[3]',
    ]);
  });

  it('yields the records before the cut of a large truncated document', async () => {
    const p = inTempDir('big-wrapped.json');
    await writeDiagnosticRecords(makeEvents(2000), p, { wrapped: true, pretty: true });
    const text = await readFile(p, 'utf8');
    // Cut inside the 1235th record.
    let cut = 0;
    for (let i = 0; i < 1235; i++) cut = text.indexOf('"time"', cut + 1);
    const truncated = await writeTemp('big-truncated.json', text.slice(0, cut + 3));
    const { events, stats } = await readAll(truncated);
    expect(events).toEqual(makeEvents(1234));
    expect(stats.skipped).toEqual({ 'invalid-json': 1 });
    expect(stats.skippedSamples[0]!.position).toBe('records[1234]');
  });
});

describe('single-line documents longer than the sniff window', () => {
  it('streams them, and salvages the records before a cut', async () => {
    const events = makeEvents(5000);
    const p = inTempDir('one-line.json');
    await writeDiagnosticRecords(events, p, { wrapped: true, recordsPerWrapper: 1_000_000 });
    const text = await readFile(p, 'utf8');
    expect(text.indexOf('\n')).toBe(text.length - 1);
    expect(text.length).toBeGreaterThan(5 * 1024 * 1024);

    const whole = await readAll(p);
    expect(whole.events).toEqual(events);

    let cut = 0;
    for (let i = 0; i < 4001; i++) cut = text.indexOf('{"time"', cut + 1);
    const { events: partial, stats } = await readAll(
      await writeTemp('one-line-cut-big.json', text.slice(0, cut + 20)),
    );
    expect(partial).toEqual(events.slice(0, 4000));
    expect(positions(stats.skippedSamples)).toEqual([['records[4000]', 'invalid-json', undefined]]);
  });
});

describe('JSON Lines', () => {
  it('reads concatenated gzip members (appended archives)', async () => {
    const text = await readFile(fixture('mixed.jsonl'));
    const p = await writeTemp('members.gz', Buffer.concat([gzipSync(text), gzipSync(text)]));
    const { events } = await readAll(p);
    expect(events).toHaveLength(16);
  });

  it('classifies every line on its own and reports bad lines by line number', async () => {
    const { events, stats } = await readAll(fixture('mixed.jsonl'));
    expect(events.map((e) => [e.eventDataId, e.callerType])).toEqual([
      ['e0000000-0000-4000-8000-000000000001', 'user'],
      ['e0000000-0000-4000-8000-000000000002', 'servicePrincipal'],
      ['e0000000-0000-4000-8000-000000000003', 'user'],
      ['e0000000-0000-4000-8000-000000000004', 'user'],
      ['e0000000-0000-4000-8000-000000000005', 'user'],
      ['e0000000-0000-4000-8000-000000000010', 'user'],
      ['e0000000-0000-4000-8000-000000000012', 'user'],
      ['e0000000-0000-4000-8000-000000000004', 'user'],
    ]);
    expect(events[0]).toMatchObject({ callerIp: '203.0.113.50', timeMs: at('2024-03-05T12:00:00.123Z') });
    expect(events[1]).toMatchObject({
      caller: 'e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b',
      callerIp: '198.51.100.20',
      subscriptionId: SUB,
      resourceGroup: 'RG-OPS',
      status: 'Succeeded',
    });
    expect(events[5]!.operation).toBe('Microsoft.Web/sites/config/list/action');
    expect(events[6]!.timeMs).toBe(1709640600000);
    expect(positions(stats.skippedSamples)).toEqual([
      ['5:tables[0].rows[1]', 'missing-operation', 'e0000000-0000-4000-8000-000000000006'],
      ['6', 'invalid-json', 'e0000000-0000-4000-8000-000000000099'],
      ['7', 'not-an-object', undefined],
      ['8', 'not-an-object', undefined],
      ['9', 'unknown-format', undefined],
      ['10', 'invalid-time', 'e0000000-0000-4000-8000-000000000007'],
      ['11', 'missing-time', 'e0000000-0000-4000-8000-000000000008'],
      ['12', 'missing-operation', 'e0000000-0000-4000-8000-000000000009'],
      ['14', 'invalid-time', 'e0000000-0000-4000-8000-000000000011'],
      ['16:records[1]', 'invalid-json', undefined],
    ]);
    expect(stats.formats).toEqual({
      'azure-activity-jsonl': 10,
      'diagnostic-records': 5,
      'log-analytics-response': 2,
    });
    expect(stats.records).toBe(18);
    expect(stats.records).toBe(stats.events + totalSkipped(stats));
  });

  it('reads gzip JSON Lines detected by magic bytes, and CRLF line ends', async () => {
    const plain = await readAll(fixture('mixed.jsonl'));
    const crlf = (await readFile(fixture('mixed.jsonl'), 'utf8')).replace(/\n/g, '\r\n');
    const p = await writeTemp('mixed.log', gzipSync(crlf));
    const { events, stats } = await readAll(p);
    expect(events).toEqual(plain.events);
    expect(positions(stats.skippedSamples)).toEqual(positions(plain.stats.skippedSamples));
  });

  it('keeps reading when the first line is torn', async () => {
    const text = await readFile(fixture('mixed.jsonl'), 'utf8');
    const p = await writeTemp('torn-first.jsonl', `{"TimeGenerated":"2024-03-05T1\n${text}`);
    const { events, stats } = await readAll(p);
    expect(events).toHaveLength(8);
    expect(stats.skippedSamples[0]).toMatchObject({ position: '1', reason: 'invalid-json' });
  });

  it('salvages a one-line document cut mid-way (no trailing newline)', async () => {
    const line = JSON.stringify({
      records: [
        { time: '2024-01-01T00:00:00Z', operationName: 'a', correlationId: 'c1' },
        { time: '2024-01-01T00:00:01Z', operationName: 'b', correlationId: 'c2' },
      ],
    });
    const p = await writeTemp('one-line-cut.json', line.slice(0, line.indexOf('c2')));
    const { events, stats } = await readAll(p);
    expect(events.map((e) => e.operation)).toEqual(['a']);
    expect(positions(stats.skippedSamples)).toEqual([['1:records[1]', 'invalid-json', undefined]]);
  });

  it('reads a torn gzip archive up to the cut', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify({
        TimeGenerated: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString(),
        OperationNameValue: `op${i}`,
      }),
    ).join('\n');
    const gz = gzipSync(lines);
    const p = await writeTemp('torn.gz', gz.subarray(0, Math.floor(gz.length * 0.6)));
    const { events, stats } = await readAll(p);
    expect(events.length).toBeGreaterThan(100);
    expect(events.map((e) => e.operation)).toEqual(events.map((_, i) => `op${i}`));
    expect(totalSkipped(stats)).toBeLessThanOrEqual(1);
  });
});

describe('other layouts and edge cases', () => {
  it('reads a top-level JSON array mixing AzureActivity rows and diagnostic records', async () => {
    const p = await writeTemp(
      'array.json',
      JSON.stringify(
        [
          { TimeGenerated: '2024-01-01T00:00:00Z', OperationNameValue: 'row-op', Caller: 'a@b.c' },
          { time: '2024-01-01T00:00:01Z', operationName: 'diag-op', identity: { claims: { appid: 'x' } } },
          'nope',
          { TimeGenerated: '2024-01-01T00:00:02Z' },
        ],
        null,
        2,
      ),
    );
    const { events, stats } = await readAll(p);
    expect(events.map((e) => [e.operation, e.callerType])).toEqual([
      ['row-op', 'user'],
      ['diag-op', 'servicePrincipal'],
    ]);
    expect(positions(stats.skippedSamples)).toEqual([
      ['[2]', 'not-an-object', undefined],
      ['[3]', 'missing-operation', undefined],
    ]);
    expect(stats.formats).toEqual({ 'azure-activity-jsonl': 3, 'diagnostic-records': 1 });
  });

  it('yields nothing for an empty or blank file', async () => {
    for (const content of ['', '\n\n  \n']) {
      const { events, stats } = await readAll(await writeTemp('empty.jsonl', content));
      expect(events).toEqual([]);
      expect(stats).toEqual(newReadStats());
    }
    const { events } = await readAll(await writeTemp('empty.gz', gzipSync('')));
    expect(events).toEqual([]);
  });

  it('counts an unrecognised file as one unknown-format record', async () => {
    const { events, stats } = await readAll(await writeTemp('notes.txt', 'hello world\nsecond line\n'));
    expect(events).toEqual([]);
    expect(stats.skipped).toEqual({ 'unknown-format': 1 });
    expect(stats.records).toBe(1);
  });

  it('throws a clear error for a missing file', async () => {
    const missing = inTempDir('does-not-exist.jsonl');
    await expect(readAll(missing)).rejects.toThrow(`Activity log file not found: ${missing}`);
    const stats = newReadStats();
    const gen = readActivityFiles([fixture('mixed.jsonl'), missing], stats);
    await expect(gen.next()).rejects.toThrow(missing);
    expect(stats.records).toBe(0);
  });

  it('reads several files into one stats object', async () => {
    const stats = newReadStats();
    let n = 0;
    for await (const _ of readActivityFiles([fixture('mixed.jsonl'), fixture('portal-export.csv')], stats))
      n++;
    expect(n).toBe(12);
    expect(stats.events).toBe(12);
    expect(stats.formats['portal-csv']).toBe(4);
  });

  it('bounds the samples but reports every skip to onSkip', async () => {
    const seen: SkippedRecord[] = [];
    const { stats } = await readAll(fixture('mixed.jsonl'), { maxSamples: 3, onSkip: (s) => seen.push(s) });
    expect(stats.skippedSamples).toHaveLength(3);
    expect(seen).toHaveLength(totalSkipped(stats));
    expect(seen.slice(0, 3)).toEqual(stats.skippedSamples);
  });

  it('can be abandoned early without leaking the file', async () => {
    const stats = newReadStats();
    for await (const ev of readActivityFile(fixture('mixed.jsonl'), stats)) {
      expect(ev.callerType).toBe('user');
      break;
    }
    expect(stats.events).toBe(1);
  });
});
