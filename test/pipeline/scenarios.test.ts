import { describe, expect, it } from 'vitest';

import type { ActivityEvent } from '../../shared/activity/types.js';
import { TENANT_PARTITION } from '../../shared/pipeline/state.js';
import { ev, IP, replayEvents } from '../support/events.js';

const T0 = Date.UTC(2026, 0, 5); // a Monday
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DEPLOY = 'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE';
const SITES = 'MICROSOFT.WEB/SITES/WRITE';
const LISTKEYS = 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION';
const RESTART = 'MICROSOFT.WEB/SITES/RESTART/ACTION';
const TAGS = 'MICROSOFT.RESOURCES/TAGS/WRITE';
const LONDON = 'g:2643743';
const LAGOS = 'g:2332459';

/** Three weeks of a London team: deployments and site updates in office hours, an admin listing keys. */
function background(days = 21): { events: ActivityEvent[]; deployHours: number } {
  const events: ActivityEvent[] = [];
  let deployHours = 0;
  for (let d = 0; d < days; d++) {
    if (d % 7 >= 5) continue;
    for (let hr = 9; hr < 18; hr++) {
      const t = T0 + d * DAY + hr * HOUR;
      deployHours += 1;
      for (let u = 0; u < 3; u++) {
        events.push(ev(t + u * 7 * 60_000, DEPLOY, `dev${u}@contoso.com`, u === 0 ? IP.london : IP.london2));
        events.push(ev(t + u * 9 * 60_000, SITES, `dev${u}@contoso.com`, IP.london));
        events.push(ev(t + u * 11 * 60_000, RESTART, `dev${u}@contoso.com`, IP.london2));
        events.push(ev(t + u * 13 * 60_000, TAGS, `dev${u}@contoso.com`, IP.london));
      }
      if (hr === 10 || hr === 14) events.push(ev(t + 5 * 60_000, LISTKEYS, 'admin@contoso.com', IP.london));
    }
  }
  return { events, deployHours };
}

describe('pipeline scenarios (real GeoLite2 lookups, production replay)', () => {
  it('a city used daily, including a burst of 10,000 events in one hour → no alert, counted as one hour', async () => {
    const { events, deployHours } = background();
    const burstAt = T0 + 21 * DAY + 10 * HOUR;
    for (let k = 0; k < 10_000; k++)
      events.push(ev(burstAt + k * 300, DEPLOY, 'pipeline-sp', IP.london, 'servicePrincipal'));
    const { sink, store, summary } = await replayEvents(events);
    expect(sink.alerts).toEqual([]);
    const rows = await store.readPartition('baselines', DEPLOY.toLowerCase());
    // Every event was seen by up to 8 overlapping runs; each (operation, city, hour) counted exactly once.
    expect(rows.get(LONDON)?.rawHours).toBe(deployHours + 1);
    expect(summary.events).toBe(events.length);
    await store.close();
  });

  it('overlapping windows count each hour once, whatever the tick and lookback', async () => {
    const { events, deployHours } = background(14);
    for (const [tick, lookback] of [
      ['15m', '2h'],
      ['1h', '1h'],
      ['5m', '3h'],
    ] as const) {
      const { store } = await replayEvents(events, { UC_TICK_INTERVAL: tick, UC_LOOKBACK: lookback });
      const rows = await store.readPartition('baselines', DEPLOY.toLowerCase());
      expect(rows.get(LONDON)?.rawHours, `${tick}/${lookback}`).toBe(deployHours);
      const tenant = await store.readPartition('tenant', TENANT_PARTITION);
      expect(tenant.get(LONDON)?.rawHours, `${tick}/${lookback}`).toBe(deployHours);
      await store.close();
    }
  });

  it('first-seen city, never seen in the tenant → one explained alert, detected by the next run', async () => {
    const { events } = background();
    const at = T0 + 22 * DAY + 3 * HOUR + 10 * 60_000;
    events.push(
      ev(at, LISTKEYS, 'admin@contoso.com', IP.lagos),
      ev(at + 4 * 60_000, LISTKEYS, 'admin@contoso.com', IP.lagos),
    );
    const { sink, store } = await replayEvents(events);
    expect(sink.alerts).toHaveLength(1);
    const a = sink.alerts[0]!;
    expect(a.Caller).toBe('admin@contoso.com');
    expect(a.SrcGeoCity).toBe('Lagos');
    expect(a.SrcGeoCountry).toBe('NG');
    expect(a.Operation).toBe(LISTKEYS);
    expect(a.EventCount).toBe(2);
    expect(a.AnomalyScore).toBeGreaterThanOrEqual(50);
    expect(Date.parse(a.TimeGenerated) - at).toBeLessThanOrEqual(15 * 60_000);
    expect(a.Explanation.summary).toContain('never seen in the tenant');
    expect(a.BaselineCities[0]?.city).toContain('London');
    await store.close();
  });

  it('a legitimate traveller → one alert per (caller, city) episode, however many operations', async () => {
    const { events } = background();
    for (let d = 21; d < 24; d++) {
      for (const [hr, min, op] of [
        [14, 1, DEPLOY],
        [14, 5, SITES],
        [14, 9, RESTART],
        [18, 0, TAGS],
        [20, 0, LISTKEYS],
      ] as const) {
        events.push(ev(T0 + d * DAY + hr * HOUR + min * 60_000, op, 'dev1@contoso.com', IP.newYork));
      }
    }
    const { sink, store } = await replayEvents(events);
    const trips = sink.alerts.filter((a) => a.Caller === 'dev1@contoso.com' && a.SrcGeoCity === 'New York');
    expect(trips).toHaveLength(1);
    // The first run that saw the trip grouped its rare operations into the one alert...
    expect(trips[0]!.Operations.length).toBeGreaterThan(1);
    expect(trips[0]!.Operations[0]).toBe(trips[0]!.Operation);
    // ...and the ledger kept joining the later ones to the episode instead of raising new alerts.
    const ledger = await store.readRows('alerts', 'dev1@contoso.com', ['g:5128581']);
    const joined = JSON.parse(String(ledger.get('g:5128581')?.operations)) as string[];
    expect(joined).toEqual(expect.arrayContaining([DEPLOY, SITES, RESTART]));
    expect(joined.length).toBeGreaterThan(trips[0]!.Operations.length);
    await store.close();
  });

  it('an attacker repeating from one foreign city every few hours keeps scoring ≥ 50 for the first days', async () => {
    const { events } = background();
    for (let k = 0; k < 12; k++)
      events.push(ev(T0 + 22 * DAY + k * 4 * HOUR + 60_000, LISTKEYS, 'admin@contoso.com', IP.lagos));
    // With a short cooldown (and no quarantine, which keeps an alerted episode open) every repetition is its own
    // episode: each one must still alert.
    const { sink, store } = await replayEvents(events, { UC_ALERT_COOLDOWN: '1h', UC_QUARANTINE_DAYS: '0' });
    const lagos = sink.alerts.filter((a) => a.SrcGeoCity === 'Lagos');
    expect(lagos).toHaveLength(12);
    expect(lagos.every((a) => a.AnomalyScore >= 50)).toBe(true);
    await store.close();
    // With the default cooldown it is one episode: one alert.
    const again = await replayEvents(events);
    expect(again.sink.alerts.filter((a) => a.SrcGeoCity === 'Lagos')).toHaveLength(1);
    await again.store.close();
  });

  it('known egress / cloud ranges → keyed as their provider and capped below the threshold', async () => {
    const { events } = background();
    const at = T0 + 22 * DAY + 3 * HOUR;
    events.push(ev(at, LISTKEYS, 'admin@contoso.com', IP.lagos));
    const { sink, store } = await replayEvents(events, { UC_EGRESS_RANGES: 'PartnerProxy=41.58.99.0/24' });
    expect(sink.alerts).toEqual([]);
    const rows = await store.readPartition('baselines', LISTKEYS.toLowerCase());
    expect(rows.has('e:PartnerProxy')).toBe(true);
    expect(rows.has(LAGOS)).toBe(false);
    const recent = JSON.parse(String(rows.get('e:PartnerProxy')?.recent)) as [number, number][];
    expect(recent[0]?.[1]).toBeLessThanOrEqual(40);
    await store.close();
  });

  it('IPv6 and IPv4-mapped IPv6 callers → the same city as their IPv4 form', async () => {
    const { events } = background();
    const at = T0 + 22 * DAY + 3 * HOUR;
    events.push(
      ev(at, LISTKEYS, 'admin@contoso.com', '::ffff:41.58.99.10'),
      ev(at + 60_000, LISTKEYS, 'admin@contoso.com', IP.lagos),
      ev(at + 120_000, LISTKEYS, 'admin@contoso.com', '::ffff:293a:630a'),
    );
    const { sink, store } = await replayEvents(events);
    expect(sink.alerts).toHaveLength(1);
    expect(sink.alerts[0]!.SrcGeoCity).toBe('Lagos');
    expect(sink.alerts[0]!.EventCount).toBe(3);
    const rows = await store.readPartition('baselines', LISTKEYS.toLowerCase());
    expect(rows.get(LAGOS)?.rawHours).toBe(1);
    await store.close();
  });

  it('internal and empty caller IPs are counted and never alerted on', async () => {
    const { events } = background();
    const at = T0 + 22 * DAY + 3 * HOUR;
    events.push(
      ev(at, LISTKEYS, 'admin@contoso.com', '10.1.2.3'),
      ev(at, LISTKEYS, 'admin@contoso.com', '100.64.0.1'),
      ev(at, 'MICROSOFT.AUTHORIZATION/POLICIES/AUDIT/ACTION', '', ''),
      ev(at, LISTKEYS, 'admin@contoso.com', 'not-an-ip'),
    );
    const { sink, summary, store } = await replayEvents(events);
    expect(sink.alerts).toEqual([]);
    expect(summary.internalEvents).toBe(3);
    expect(summary.invalidIpEvents).toBe(1);
    await store.close();
  });

  it('is deterministic: the same events give the same alerts, ids included', async () => {
    const { events } = background();
    events.push(ev(T0 + 22 * DAY + 3 * HOUR, LISTKEYS, 'admin@contoso.com', IP.lagos));
    const a = await replayEvents(events);
    const b = await replayEvents([...events].reverse());
    expect(b.sink.alerts).toEqual(a.sink.alerts);
    await a.store.close();
    await b.store.close();
  });
});
