/**
 * Moves and waves (shared/pipeline/arrivals.ts): several callers arriving in one city new to each of them are one
 * event. Through a network each already used: a move — one Informational alert, later findings absorbed. Through
 * a network none of them used: a wave — one loud alert naming every caller, nothing absorbed. Re-runs of the same
 * run recompute the same alert ids; a second run does not raise the event again.
 */
import { describe, expect, it } from 'vitest';

import type { RareFinding } from '../../shared/alerts/alert.js';
import { SqliteStore } from '../../shared/baseline/sqlite.js';
import type { City } from '../../shared/geo/types.js';
import { type Arrival, type ArrivalPolicy, settleArrivals } from '../../shared/pipeline/arrivals.js';
import type { RarityScore } from '../../shared/scoring/score.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 2, 8);
const PARIS: City = {
  key: 'g:2988507',
  geonameId: 2988507,
  name: 'Paris',
  region: 'Île-de-France',
  country: 'FR',
  countryName: 'France',
  latitude: 48.85,
  longitude: 2.35,
};
const M247 = { asn: 9009, org: 'M247 Europe SRL' };
const POLICY: ArrivalPolicy = {
  moveCallers: 3,
  moveHours: 6,
  moveDays: 14,
  moveAlert: true,
  waveCallers: 3,
  waveHours: 4,
  waveSeverity: 'High',
};
const DEFAULTS = { name: 'Unusual city', severity: 'Low', riskScore: 21, detectorVersion: 'test' };

function arrival(caller: string, hourMs: number, how: 'known' | 'new', score = 60): Arrival {
  const finding: RareFinding = {
    observation: {
      operationKey: 'microsoft.storage/storageaccounts/listkeys/action',
      operation: 'Microsoft.Storage/storageAccounts/listKeys/action',
      city: PARIS,
      hourMs,
      events: 1,
      callers: [],
    },
    activity: {
      caller,
      callerType: 'user',
      ips: ['45.33.152.10'],
      events: 1,
      firstMs: hourMs + 60_000,
      lastMs: hourMs + 120_000,
      resourceIds: [],
      correlationIds: [],
      subscriptionId: 's',
      resourceGroup: 'rg',
      networks: [M247],
    },
    rarity: { score, sentence: 'rare.', knownCities: [], newCityForCaller: true } as unknown as RarityScore,
  };
  return { finding, asns: [M247.asn], known: how === 'known', isNew: how === 'new' };
}

const run = (store: SqliteStore, tickMs: number, arrivals: Arrival[], policy = POLICY) =>
  settleArrivals(
    store,
    tickMs,
    arrivals,
    arrivals.filter((a) => a.finding.rarity.score >= 50).map((a) => a.finding),
    policy,
    DEFAULTS,
  );

describe('arrivals: moves and waves', () => {
  it('three callers through a network they all used: one move alert, then their findings are absorbed', async () => {
    const store = SqliteStore.open(':memory:');
    const first = await run(store, T0 + HOUR, [
      arrival('ann@c.com', T0, 'known'),
      arrival('bob@c.com', T0, 'known'),
    ]);
    expect(first.alerts).toEqual([]);
    expect(first.absorbed).toBe(0);

    const third = await run(store, T0 + 3 * HOUR, [arrival('cat@c.com', T0 + 2 * HOUR, 'known')]);
    expect(third.alerts).toHaveLength(1);
    const move = third.alerts[0]!;
    expect(move.Severity).toBe('Informational');
    expect(move.AlertName).toBe('Unusual city: infrastructure move');
    expect(move.Explanation.callers).toEqual(['ann@c.com', 'bob@c.com', 'cat@c.com']);
    expect(move.Description).toMatch(
      /3 callers \(ann@c\.com, bob@c\.com, cat@c\.com\) appeared in Paris, France/,
    );
    expect(move.Description).toMatch(
      /through AS9009 \(M247 Europe SRL\), a network each of them had already used/,
    );
    expect(third.absorbed).toBe(1); // cat's own finding: the move explains it

    // The same run again (overlap, crash): the same alert id; a later run: no second alert, findings absorbed.
    const again = await run(store, T0 + 3 * HOUR, [arrival('cat@c.com', T0 + 2 * HOUR, 'known')]);
    expect(again.alerts.map((a) => a.AlertId)).toEqual([move.AlertId]);
    const later = await run(store, T0 + 30 * HOUR, [arrival('dan@c.com', T0 + 29 * HOUR, 'known')]);
    expect(later.alerts).toEqual([]);
    expect(later.absorbed).toBe(1);
    // A caller for whom the network is new is not absorbed by the move.
    const stranger = await run(store, T0 + 31 * HOUR, [arrival('eve@c.com', T0 + 30 * HOUR, 'new')]);
    expect(stranger.absorbed).toBe(0);
    await store.close();
  });

  it('three callers through a network none of them used: one wave alert naming all, nothing absorbed', async () => {
    const store = SqliteStore.open(':memory:');
    await run(store, T0 + HOUR, [arrival('ann@c.com', T0, 'new')]);
    await run(store, T0 + 2 * HOUR, [arrival('bob@c.com', T0 + HOUR, 'new')]);
    const third = await run(store, T0 + 3 * HOUR, [arrival('cat@c.com', T0 + 2 * HOUR, 'new')]);
    expect(third.absorbed).toBe(0);
    expect(third.alerts).toHaveLength(1);
    const wave = third.alerts[0]!;
    expect(wave.Severity).toBe('High');
    expect(wave.AlertName).toBe('Unusual city: credential wave');
    expect(wave.Explanation.callers).toEqual(['ann@c.com', 'bob@c.com', 'cat@c.com']);
    expect(wave.Description).toMatch(
      /through networks none of them had used before \(AS9009 \(M247 Europe SRL\)\)/,
    );
    // Not a move, and no second wave alert for a fourth caller within the window.
    const fourth = await run(store, T0 + 4 * HOUR, [arrival('dan@c.com', T0 + 3 * HOUR, 'new')]);
    expect(fourth.alerts).toEqual([]);
    expect(fourth.absorbed).toBe(0);
    await store.close();
  });

  it('arrivals spread wider than the window, or too few callers, are no event; UC_MOVE_ALERT=off raises none', async () => {
    const store = SqliteStore.open(':memory:');
    await run(store, T0 + HOUR, [arrival('ann@c.com', T0, 'new')]);
    await run(store, T0 + 6 * HOUR, [arrival('bob@c.com', T0 + 5 * HOUR, 'new')]);
    const late = await run(store, T0 + 11 * HOUR, [arrival('cat@c.com', T0 + 10 * HOUR, 'new')]);
    expect(late.alerts).toEqual([]);

    const quiet = SqliteStore.open(':memory:');
    const off = { ...POLICY, moveAlert: false };
    await run(quiet, T0 + HOUR, [arrival('ann@c.com', T0, 'known'), arrival('bob@c.com', T0, 'known')], off);
    const moved = await run(quiet, T0 + 2 * HOUR, [arrival('cat@c.com', T0 + HOUR, 'known')], off);
    expect(moved.alerts).toEqual([]);
    expect(moved.absorbed).toBe(1);
    await Promise.all([store.close(), quiet.close()]);
  });
});
