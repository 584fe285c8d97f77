import { describe, expect, it } from 'vitest';

import {
  downloadHistory,
  historyPeriod,
  historySlotMs,
  memoryWarning,
} from '../../shared/backtest/history.js';
import { loadSettings } from '../../shared/config/settings.js';
import type { EventGroup } from '../../shared/pipeline/types.js';
import { AggregatedEvents } from '../../shared/pipeline/window.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 2);

const group = (over: Partial<EventGroup>): EventGroup => ({
  operation: 'Microsoft.KeyVault/vaults/write',
  operationKey: 'microsoft.keyvault/vaults/write',
  caller: 'alice@contoso.com',
  callerType: 'user',
  callerIp: '203.0.113.9',
  hourMs: T0,
  count: 1,
  firstMs: T0,
  lastMs: T0,
  resourceIds: [],
  correlationIds: [],
  subscriptionId: '',
  resourceGroup: '',
  ...over,
});

describe('backtest history', () => {
  it('downloads in the slot every variant can replay from', () => {
    const s = (set: Record<string, string>) => loadSettings({}, set);
    expect(historySlotMs([s({})])).toBe(15 * MIN);
    expect(historySlotMs([s({}), s({ UC_TICK_INTERVAL: '30m', UC_LOOKBACK: '2h' })])).toBe(15 * MIN);
    expect(historySlotMs([s({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' })])).toBe(HOUR);
    expect(
      historySlotMs([s({ UC_TICK_INTERVAL: '1h', UC_LOOKBACK: '2h' }), s({ UC_TICK_INTERVAL: '20m' })]),
    ).toBe(20 * MIN);
  });

  it('the period ends on the last whole run before now', () => {
    expect(historyPeriod(3, T0 + 10 * DAY + 14 * MIN, 15 * MIN)).toEqual({
      startMs: T0 + 7 * DAY,
      endMs: T0 + 10 * DAY,
    });
    expect(historyPeriod(1, T0 + 10 * DAY + 16 * MIN, 15 * MIN).endMs).toBe(T0 + 10 * DAY + 15 * MIN);
  });

  it('keeps each slot in its place: a run reads exactly the slots of its window', async () => {
    const reads: [number, number][] = [];
    const source = {
      read: (s: number, e: number) => {
        reads.push([s, e]);
        return Promise.resolve(
          s === T0
            ? [
                group({ slotMs: T0, count: 2 }),
                group({ slotMs: T0 + 45 * MIN, count: 3, firstMs: T0 + 50 * MIN, lastMs: T0 + 55 * MIN }),
              ]
            : [],
        );
      },
    };
    const d = await downloadHistory(source, { startMs: T0, endMs: T0 + 2 * DAY, slotMs: 15 * MIN });
    expect(reads).toEqual([
      [T0, T0 + DAY],
      [T0 + DAY, T0 + 2 * DAY],
    ]);
    expect([d.events.events, d.events.groups]).toEqual([5, 2]);
    // A run at T0+30m (window T0-90m .. T0+30m) sees the first slot only; one at T0+1h sees both, merged.
    expect((await d.events.read(T0 - 90 * MIN, T0 + 30 * MIN)).map((g) => g.count)).toEqual([2]);
    const both = await d.events.read(T0 - HOUR, T0 + HOUR);
    expect(both.map((g) => [g.count, g.firstMs, g.lastMs, g.slotMs])).toEqual([
      [5, T0, T0 + 55 * MIN, undefined],
    ]);
  });

  it('refuses groups that do not fit its slots, and periods off the slot grid', async () => {
    const agg = AggregatedEvents.ofSlot(15 * MIN);
    expect(() => agg.addGroup(group({}))).toThrow(/does not fit slots of 15 minutes/);
    expect(() => agg.addGroup(group({ slotMs: T0 + 5 * MIN }))).toThrow(/does not fit/);
    agg.addGroup(group({ slotMs: T0 }));
    expect(() => agg.addGroup(group({ slotMs: T0 }))).toThrow(/twice/);
    expect(() => AggregatedEvents.ofSlot(7 * MIN)).toThrow(/divide an hour/);
    await expect(
      downloadHistory(
        { read: () => Promise.resolve([]) },
        { startMs: T0 + MIN, endMs: T0 + DAY, slotMs: 15 * MIN },
      ),
    ).rejects.toThrow(/slot boundaries/);
  });

  it('warns early when the period will not fit in the heap', () => {
    const MB = 1_048_576;
    const at = (windowsDone: number, heapNow: number) =>
      memoryWarning({ windowsDone, windowsTotal: 30, heapAtStart: 100 * MB, heapNow, heapLimit: 4096 * MB });
    // 100 MB a day for 30 days: 3.1 GB of 4 GB — fine; 130 MB a day: 4 GB — warn, with the numbers.
    expect(at(1, 200 * MB)).toBeUndefined();
    expect(at(1, 230 * MB)).toBe(
      '30 day(s) at this rate need about 4,000 MB of heap, and this process may use 4,096 MB: backtest fewer ' +
        'days, or give Node more (NODE_OPTIONS=--max-old-space-size=<MB>)',
    );
    expect(at(30, 99_999 * MB)).toBeUndefined(); // done: nothing left to warn about
    expect(at(2, 90 * MB)).toBeUndefined(); // the heap shrank (a collection)
  });
});
