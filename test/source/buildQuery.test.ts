import type { LogsErrorInfo, LogsTable } from '@azure/monitor-query-logs';
import { describe, expect, it } from 'vitest';

import type { EventGroup } from '../../shared/pipeline/types.js';
import {
  buildQuery,
  isLimitError,
  loadActivityQuery,
  mergeGroups,
  RESULT_COLUMNS,
  rowsToGroups,
  splitPoint,
} from '../../shared/source/logAnalytics.js';

const T = 'AzureActivity | take 0';
const START = Date.UTC(2026, 10, 30, 12);
const END = Date.UTC(2026, 10, 30, 13);
const HOUR = 3_600_000;

describe('buildQuery', () => {
  it('prepends a let header of literals to the template', () => {
    expect(buildQuery(T, { startMs: START, endMs: END, categories: ['Administrative', 'Security'] })).toBe(
      [
        'let windowStart = datetime(2026-11-30T12:00:00.000Z);',
        'let windowEnd = datetime(2026-11-30T13:00:00.000Z);',
        'let filterCategories = true;',
        'let categories = dynamic(["Administrative","Security"]);',
        'let filterStatuses = false;',
        'let statuses = dynamic([]);',
        'let maxRows = 400000;',
        'let maxBytes = 25165824;',
        'let slotSize = 60m;',
        'let shardCount = 1;',
        'let shardIndex = 0;',
        'let resume = false;',
        'let resumeSlot = datetime(2026-11-30T12:00:00.000Z);',
        'let resumeKey = 0;',
        T,
      ].join('\n'),
    );
  });

  it("prints a shard's share and a cursor from validated integers only", () => {
    const q = buildQuery(T, {
      startMs: START,
      endMs: END,
      shard: { index: 3, count: 4 },
      resume: { slotMs: START + 15 * 60_000, key: 2 ** 50 - 1 },
    });
    expect(q).toContain('let shardCount = 4;\nlet shardIndex = 3;\nlet resume = true;');
    expect(q).toContain(
      'let resumeSlot = datetime(2026-11-30T12:15:00.000Z);\nlet resumeKey = 1125899906842623;',
    );
    const bad: Parameters<typeof buildQuery>[1][] = [
      { startMs: START, endMs: END, shard: { index: 4, count: 4 } },
      { startMs: START, endMs: END, shard: { index: -1, count: 4 } },
      { startMs: START, endMs: END, shard: { index: 0, count: 0 } },
      { startMs: START, endMs: END, shard: { index: 0.5, count: 2 } },
      { startMs: START, endMs: END, resume: { slotMs: START, key: 2 ** 50 } },
      { startMs: START, endMs: END, resume: { slotMs: START, key: -1 } },
      { startMs: START, endMs: END, resume: { slotMs: NaN, key: 0 } },
      { startMs: START, endMs: END, resume: { slotMs: START, key: '1;drop' as unknown as number } },
    ];
    for (const p of bad) expect(() => buildQuery(T, p), JSON.stringify(p)).toThrow(RangeError);
  });

  it('expands statuses to both vocabularies of ActivityStatusValue', () => {
    const q = buildQuery(T, { startMs: START, endMs: END, statuses: ['Succeeded', 'failed'] });
    expect(q).toContain('let filterStatuses = true;');
    expect(q).toContain('let statuses = dynamic(["Succeeded","Success","failed","Failure","Fail"]);');
    expect(buildQuery(T, { startMs: START, endMs: END, statuses: ['Start'] })).toContain(
      'dynamic(["Start","Started"])',
    );
  });

  it('keeps milliseconds and the limits it is given', () => {
    const q = buildQuery(T, { startMs: START + 1, endMs: END + 999, maxRows: 7, maxBytes: 1000 });
    expect(q).toContain('datetime(2026-11-30T12:00:00.001Z)');
    expect(q).toContain('datetime(2026-11-30T13:00:00.999Z)');
    expect(q).toContain('let maxRows = 7;');
    expect(q).toContain('let maxBytes = 1000;');
    expect(buildQuery(T, { startMs: START, endMs: END, slotMinutes: 15 })).toContain('let slotSize = 15m;');
    for (const bad of [0, 7, 45, 120, 1.5, Number.NaN])
      expect(() => buildQuery(T, { startMs: START, endMs: END, slotMinutes: bad })).toThrow(/slotMinutes/);
  });

  it.each([
    'x"]);AzureActivity|take 1//',
    'Administrative"',
    "Admin'istrative",
    'Admin\nistrative',
    'Administrative ',
    'Sécurité',
    '',
    'a'.repeat(65),
  ])('rejects the category or status %j', (bad) => {
    expect(() => buildQuery(T, { startMs: START, endMs: END, categories: [bad] })).toThrow(/rejected/);
    expect(() => buildQuery(T, { startMs: START, endMs: END, statuses: [bad] })).toThrow(/rejected/);
  });

  it('rejects non-strings smuggled in as names', () => {
    const bad = [{ toString: () => 'Administrative' }] as unknown as string[];
    expect(() => buildQuery(T, { startMs: START, endMs: END, categories: bad })).toThrow(/rejected/);
  });

  it.each([
    [NaN, END],
    [START, Infinity],
    [START + 0.5, END],
    [-1, END],
    [START, Date.UTC(10000, 0, 1)],
    [END, START],
    [START, START],
  ])('rejects the window %s to %s', (startMs, endMs) => {
    expect(() => buildQuery(T, { startMs, endMs })).toThrow(RangeError);
  });

  it.each([0, 500_000, 1.5, NaN])('rejects maxRows %s (the service truncates at 500,000)', (maxRows) => {
    expect(() => buildQuery(T, { startMs: START, endMs: END, maxRows })).toThrow(RangeError);
  });

  it('the real template goes in verbatim after the header', async () => {
    const template = await loadActivityQuery();
    const q = buildQuery(template, { startMs: START, endMs: END });
    expect(q.endsWith(template)).toBe(true);
    expect(q.split('\n').filter((l) => l.startsWith('let '))).toHaveLength(14);
    expect(template).not.toMatch(/^let /m);
  });
});

describe('splitPoint', () => {
  it('splits windows of 2 hours or more on an hour boundary inside them', () => {
    expect(splitPoint(START, START + 24 * HOUR)).toBe(START + 12 * HOUR);
    expect(splitPoint(START, START + 3 * HOUR)).toBe(START + HOUR);
    expect(splitPoint(START + 1_000, START + 2 * HOUR + 1_000)).toBe(START + HOUR);
    expect(splitPoint(START + 59 * 60_000, START + 2 * HOUR + 59 * 60_000)).toBe(START + HOUR);
    expect(splitPoint(START + 59 * 60_000, START + 3 * HOUR + 60_000)).toBe(START + 2 * HOUR);
    for (let s = START; s < START + HOUR; s += 7 * 60_000) {
      const m = splitPoint(s, s + 2 * HOUR);
      expect(m % HOUR).toBe(0);
      expect(m > s && m < s + 2 * HOUR).toBe(true);
    }
  });

  it('splits shorter windows in the middle', () => {
    expect(splitPoint(START, START + HOUR)).toBe(START + HOUR / 2);
    expect(splitPoint(START, START + 3)).toBe(START + 1);
  });
});

describe('isLimitError', () => {
  const partial = (details: LogsErrorInfo['details'], innererror?: LogsErrorInfo): LogsErrorInfo => ({
    code: 'PartialError',
    message: 'There were some errors when processing your query.',
    details,
    innererror,
  });

  it('recognises the result limits however much of the error the client kept', () => {
    // As this client library hands it over: the detail's innererror is gone.
    expect(
      isLimitError(
        partial([
          { code: 'EngineError', message: 'Something went wrong processing your query on the server.' },
        ]),
      ),
    ).toBe(true);
    expect(
      isLimitError(
        partial(undefined, {
          code: '-2133196797',
          message:
            'Query result set has exceeded the internal record count limit 500000 (E_QUERY_RESULT_SET_TOO_LARGE).',
        }),
      ),
    ).toBe(true);
    expect(
      isLimitError(partial([{ code: 'LimitsExceeded', message: 'exceeded the set limit of 64 MB' }])),
    ).toBe(true);
  });

  it('does not take other partial failures for limits', () => {
    expect(
      isLimitError(partial([{ code: 'InsufficientAccessError', message: 'no access to workspace x' }])),
    ).toBe(false);
    expect(isLimitError(partial(undefined))).toBe(false);
    expect(
      isLimitError(
        partial([
          { code: 'EngineError', message: 'Something went wrong processing your query on the server.' },
          { code: 'WorkspaceNotFoundError', message: 'workspace y not found' },
        ]),
      ),
    ).toBe(false);
  });
});

describe('rowsToGroups and mergeGroups', () => {
  const names = Object.keys(RESULT_COLUMNS);
  const table = (rows: unknown[][], drop?: string): LogsTable => ({
    name: 'PrimaryResult',
    columnDescriptors: names.filter((n) => n !== drop).map((name) => ({ name, type: 'string' as const })),
    rows: rows as LogsTable['rows'],
  });
  const row = (over: Partial<Record<keyof typeof RESULT_COLUMNS, unknown>>): unknown[] => {
    const base: Record<string, unknown> = {
      Hour: new Date(START),
      OperationKey: 'microsoft.web/sites/write',
      Operation: 'Microsoft.Web/sites/write',
      CallerIpAddress: '5.10.99.10',
      Caller: 'ann@contoso.com',
      FirstTime: new Date(START + 60_000),
      LastTime: new Date(START + 120_000),
      EventCount: 3,
      ResourceIds: ['/subscriptions/AB/resourcegroups/rg-1/providers/x/y/z'],
      CorrelationIds: ['c1', 'c2', 'c1', ''],
      SubscriptionId: '',
      ResourceGroup: '',
      IdType: '',
      Upn: '',
      AppId: '',
      ManagedIdentityEvents: 0,
      PrincipalType: '',
      RowBytes: 10,
      RunningBytes: 10,
      ...over,
    };
    return names.map((n) => base[n]);
  };

  it('reads columns by name, not position', () => {
    const t = table([row({})]);
    t.columnDescriptors.reverse();
    t.rows = t.rows.map((r) => [...r].reverse());
    const [g] = rowsToGroups(t);
    expect(g).toMatchObject({ caller: 'ann@contoso.com', callerType: 'user', count: 3, hourMs: START });
  });

  it('falls back to the resource id for subscription and resource group, and de-duplicates lists', () => {
    const [g] = rowsToGroups(table([row({})]));
    expect(g).toMatchObject({ subscriptionId: 'ab', resourceGroup: 'rg-1', correlationIds: ['c1', 'c2'] });
  });

  it('refuses a result without a column it needs', () => {
    expect(() => rowsToGroups(table([row({})], 'EventCount'))).toThrow(/EventCount/);
  });

  it('merges halves of one group: counts add, earliest spelling wins, lists stay bounded', () => {
    const [a] = rowsToGroups(table([row({ CorrelationIds: Array.from({ length: 15 }, (_, i) => `a${i}`) })]));
    const [b] = rowsToGroups(
      table([
        row({
          Operation: 'MICROSOFT.WEB/SITES/WRITE',
          FirstTime: new Date(START),
          LastTime: new Date(START + 30 * 60_000),
          EventCount: 4,
          CorrelationIds: Array.from({ length: 15 }, (_, i) => `b${i}`),
        }),
      ]),
    );
    const into = new Map<string, EventGroup>();
    mergeGroups(into, [a!]);
    mergeGroups(into, [b!]);
    const [m] = [...into.values()];
    expect(into.size).toBe(1);
    expect(m).toMatchObject({
      count: 7,
      operation: 'MICROSOFT.WEB/SITES/WRITE',
      firstMs: START,
      lastMs: START + 30 * 60_000,
    });
    expect(m!.correlationIds).toHaveLength(20);
    expect(a!.correlationIds).toHaveLength(15);
  });
});
