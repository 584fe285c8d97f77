/**
 * Reading a window larger than the byte limit: the answer is ordered by hour and cut by size, so the reader keeps
 * its complete hours and reads on from the last hour, instead of discarding it and halving the window. Same
 * groups as one unlimited read; fewer rows cross the wire.
 */
import type { LogsQueryClient } from '@azure/monitor-query-logs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DEMO_START } from '../../shared/demo/tenant.js';
import { LogAnalyticsSource } from '../../shared/source/logAnalytics.js';
import { DAY, differences, HOUR, reference, tenantRows } from '../source/reference.js';
import type { FakeLogAnalytics } from '../support/fakeLogAnalytics.js';
import { startLogAnalyticsClient } from '../support/logsQueryClient.js';

const WS = '0b9f3c2e-1d4a-4c6b-9e8f-7a6b5c4d3e2f';
const D11 = DEMO_START + 11 * DAY;

describe('LogAnalyticsSource over the byte limit', () => {
  let fake: FakeLogAnalytics;
  let client: LogsQueryClient;
  let close: () => Promise<void>;
  const rows = tenantRows(14);

  beforeAll(async () => {
    ({ fake, client, close } = await startLogAnalyticsClient(rows));
  });
  afterAll(() => close());

  it("keeps every group of a cut answer but its last and reads on from that group's key", async () => {
    const start = D11 + 6 * HOUR;
    const end = D11 + 18 * HOUR;
    const logs: string[] = [];
    const src = new LogAnalyticsSource({
      client,
      workspaceId: WS,
      retryBaseMs: 5,
      maxBytesPerQuery: 40_000,
      log: (level, msg) => logs.push(`${level} ${msg}`),
    });
    fake.reset();
    const groups = await src.read(start, end);
    const ref = await reference(rows, start, end);
    expect(differences(groups, ref)).toEqual([]);
    const spans = fake.requests.map((r) => r.timespan!.split('/').map(Date.parse) as [number, number]);
    expect(spans.length).toBeGreaterThan(2);
    // Every request after the first starts on the hour of its cursor and ends at the window's end: read on,
    // never back over groups already kept.
    expect(spans[0]).toEqual([start, end]);
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i]![0] % HOUR).toBe(0);
      expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![0]);
      expect(spans[i]![1]).toBe(end);
    }
    expect(logs.some((l) => l.includes('reading on from slot'))).toBe(true);
    // What crossed the wire: each group once, but the last row of each cut answer (its key is where the next
    // answer starts). Before the cursor, each cut re-read the whole of its last hour.
    const once = new LogAnalyticsSource({ client, workspaceId: WS });
    await once.read(start, end);
    expect(src.lastRead.rows).toBe(once.lastRead.rows + spans.length - 1);
  });
});
