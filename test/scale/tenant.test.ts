/**
 * The benchmark's generated tenant (bench/tenant.ts): deterministic, shaped as documented, and its direct
 * aggregation is exactly what the fake Log Analytics computes from activity.kql over the materialised rows — so
 * the benchmark's answers are the query's answers, at any size, without holding millions of rows.
 */
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { beforeAll, describe, expect, it } from 'vitest';

import { loadIpSample } from '../../bench/ips.js';
import {
  type BenchPopulation,
  BenchWindow,
  buildPopulation,
  HOUR_MS,
  WINDOW_MS,
} from '../../bench/tenant.js';
import { embeddedDatabasePath, openGeolocator } from '../../shared/geo/geolocator.js';
import { evaluateActivityQuery, OUTPUT_COLUMNS, type QueryHeader } from '../support/fakeLogAnalytics.js';

const START = Date.UTC(2026, 10, 2, 8);
const header = (
  startMs: number,
  endMs: number,
  maxRows = 10_000_000,
  maxBytes = 2_000_000_000,
): QueryHeader => ({
  windowStartMs: startMs,
  windowEndMs: endMs,
  filterCategories: false,
  categories: [],
  filterStatuses: false,
  statuses: [],
  maxRows,
  maxBytes,
  slotMs: 3_600_000,
  shardCount: 1,
  shardIndex: 0,
});

describe('bench tenant', () => {
  let pop: BenchPopulation;
  beforeAll(() => {
    pop = buildPopulation(loadIpSample(path.join(process.cwd(), '.data', 'bench')));
  }, 90_000);

  it('is the documented population: thousands of callers, tens of thousands of IPs, hundreds of cities', async () => {
    expect(pop.callers.length).toBe(11_000);
    expect(pop.ips).toBeGreaterThan(20_000);
    expect(pop.cities).toBeGreaterThan(300);
    expect(pop.operations).toHaveLength(600);
    // Every address is one the embedded GeoLite2-City places in the city it was sampled for.
    const geo = await openGeolocator({ databasePath: embeddedDatabasePath()!, noCityMode: 'skip' });
    for (const ip of pop.ipList.slice(0, 2000)) {
      const r = geo.locate(ip);
      expect(r.kind, ip).toBe('city');
      if (r.kind === 'city') expect(r.city.geonameId).toBe(pop.cityOfIp.get(ip)!.geonameId);
    }
    // Deterministic: the same population twice.
    const again = buildPopulation(loadIpSample(path.join(process.cwd(), '.data', 'bench')));
    expect(again.ipList).toEqual(pop.ipList);
    expect(again.callers.map((c) => c.caller)).toEqual(pop.callers.map((c) => c.caller));
  });

  it('aggregates exactly as activity.kql does over the rows (windows across days, cut by the limits)', () => {
    const w = new BenchWindow(pop, 20_000, START);
    const cases: [number, number, number?, number?][] = [
      [START, START + WINDOW_MS],
      [START + 17 * 60_000, START + WINDOW_MS + 24 * HOUR_MS + 5_000], // two days' windows, odd edges
      [START, START + WINDOW_MS, 500], // cut by rows
      [START, START + WINDOW_MS, 10_000_000, 300_000], // cut by bytes
    ];
    for (const [s, e, rows, bytes] of cases) {
      const h = header(s, e, rows, bytes);
      const fromRows = evaluateActivityQuery(w.rowsIn(s, e), h);
      const direct = w.aggregate(s, e, h.maxRows, h.maxBytes);
      expect(direct.length, `${s}-${e}`).toBe(fromRows.length);
      expect(isDeepStrictEqual(direct, fromRows), `${s}-${e}`).toBe(true);
    }
    // A queue-mode shard's share, read on from a cursor in the middle of the window.
    const all = w.aggregate(START, START + WINDOW_MS, 10_000_000, 2_000_000_000);
    const mid = all[Math.floor(all.length / 2)]!;
    const resume = { slotMs: Date.parse(mid[1] as string), key: mid[18] as number };
    const h = {
      ...header(START, START + WINDOW_MS, 10_000_000, 300_000),
      shardCount: 4,
      shardIndex: 2,
      resume,
    };
    const fromRows = evaluateActivityQuery(w.rowsIn(START, START + WINDOW_MS), h);
    const direct = w.answer(
      w.ordered(START, START + WINDOW_MS, { count: 4, index: 2 }),
      h.maxRows,
      h.maxBytes,
      resume,
    );
    expect(fromRows.length).toBeGreaterThan(100);
    expect(isDeepStrictEqual(direct, fromRows)).toBe(true);
  });

  it('is skewed: automation makes most events, the window pre-aggregates, the attacks are in it', () => {
    const w = new BenchWindow(pop, 100_000, START);
    const out = w.aggregate(START, START + WINDOW_MS, 10_000_000, 2_000_000_000);
    const at = (name: string) => OUTPUT_COLUMNS.findIndex(([c]) => c === name);
    const [count, caller, ip] = [at('EventCount'), at('Caller'), at('CallerIpAddress')];
    const events = out.reduce((n, r) => n + Number(r[count]), 0);
    expect(events).toBe(100_000);
    const users = out.filter((r) => String(r[caller]).endsWith('@contoso.com'));
    const userEvents = users.reduce((n, r) => n + Number(r[count]), 0);
    expect(userEvents / events).toBeLessThan(0.15);
    expect(out.length).toBeLessThan(100_000 / 4);
    const attackIps = new Set(pop.attacks.map((a) => a.ip));
    expect(out.filter((r) => attackIps.has(String(r[ip]))).length).toBeGreaterThan(0);
  });
});
