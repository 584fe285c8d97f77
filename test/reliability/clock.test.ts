/**
 * Clock edge cases, with the real timer handler over the labelled window: a past-due invocation after a six-hour
 * outage, invocations out of order and repeated, a time zone with a daylight-saving change inside the window
 * (everything is UTC: nothing may change), events that reach Log Analytics late but within the lookback (still
 * detected, the same alerts), and events later than the lookback — the known limitation: no run ever reads
 * them, by design of the window.
 */
import { describe, expect, it } from 'vitest';

import type { AzureActivityRow } from '../support/fakeLogAnalytics.js';
import { compareOutcomes, HOUR, type InvocationLog, MIN, seeded } from '../support/faults.js';
import { useWorld } from '../support/reliabilityWorld.js';

const world = useWorld();

async function compareWithClean(prefix: string) {
  const reference = await world.reference();
  const outcome = await world.outcome(prefix);
  return { reference, outcome, ...compareOutcomes(reference, outcome) };
}

async function expectSameAsClean(prefix: string, what: string) {
  const c = await compareWithClean(prefix);
  expect(c.missing, `${what}: alerts lost`).toEqual([]);
  expect(c.extra, `${what}: extra alerts`).toEqual([]);
  expect(c.stateDiffs, `${what}: state`).toEqual([]);
  expect(c.outcome.pending).toBe(0);
  expect(c.outcome.duplicates).toBe(0);
  return c;
}

const slots = () => world.data.slots;

describe('timer invocations', () => {
  it('a past-due invocation after a six-hour outage runs every missed tick, in order', async () => {
    world.beginScenario();
    await world.seed('ucpastdue');
    const d = world.detector('ucpastdue');
    const runs: InvocationLog[] = [];
    for (const [i, slot] of slots().entries()) {
      if (i >= 8 && i < 32) continue; // the host was down: no invocation for six hours
      runs.push(await d.invoke(slot + 20_000, i === 32));
    }
    await world.drain('ucpastdue', (at) => d.invoke(at));
    const late = runs.find((r) => r.report?.isPastDue === true)?.report;
    expect(late?.ticks).toEqual(slots().slice(8, 33));
    expect(d.logs.some((l) => l.includes('Catching up 25 tick(s)'))).toBe(true);
    await expectSameAsClean('ucpastdue', 'past due');
  }, 120_000);

  it('invocations out of order and repeated change nothing', async () => {
    world.beginScenario();
    await world.seed('ucorder');
    const d = world.detector('ucorder');
    const s = slots();
    const lateRuns: InvocationLog[] = [];
    for (let i = 0; i < s.length; i++) {
      if (i === 15) {
        // Slot 16 fires before slot 15 (a host restart replays schedules out of order) …
        await d.invoke(s[16]! + 20_000);
        lateRuns.push(await d.invoke(s[15]! + 20_000)); // … and 15 arrives late: nothing left to do.
        continue;
      }
      await d.invoke(s[i]! + 20_000);
      if (i === 10 || i === 27) lateRuns.push(await d.invoke(s[i]! + 40_000)); // the same slot twice
    }
    await world.drain('ucorder', (at) => d.invoke(at));
    for (const r of lateRuns) expect(r.report?.ticks).toEqual([]);
    expect(d.logs.filter((l) => l.includes('is already done (checkpoint)')).length).toBeGreaterThanOrEqual(3);
    await expectSameAsClean('ucorder', 'out of order');
  }, 120_000);

  it('a daylight-saving change inside the window (TZ=Europe/London): UTC throughout, nothing changes', async () => {
    const saved = process.env.TZ;
    process.env.TZ = 'Europe/London';
    try {
      const dst = world.data.dstEndMs;
      // The change is real in this process: local 01:30 happens twice, an hour apart.
      expect(new Date(dst - 30 * MIN).getHours()).toBe(1);
      expect(new Date(dst + 30 * MIN).getHours()).toBe(1);
      expect(new Date(dst - 30 * MIN).getTimezoneOffset()).toBe(-60);
      expect(new Date(dst + 30 * MIN).getTimezoneOffset()).toBe(0);
      world.beginScenario();
      await world.seed('ucdst');
      await world.runWindow('ucdst');
      // Every run read the 2-hour window ending at its slot, 15 minutes after the previous one, across the change.
      const windows = world.logs.requests
        .filter((r) => r.status === 200)
        .map((r) => (r.timespan ?? '').split('/').map((t) => Date.parse(t)) as [number, number]);
      expect(windows.map(([, end]) => end)).toEqual(slots());
      for (const [start, end] of windows) expect(end - start).toBe(2 * HOUR);
      await expectSameAsClean('ucdst', 'Europe/London');
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  }, 120_000);
});

describe('late events', () => {
  /** Before each run, Log Analytics holds only the rows that have arrived by then. */
  function arrivals(lateness: (row: AzureActivityRow, timeMs: number) => number) {
    const all = [...world.logs.rows];
    const arrive = all.map(
      (r) => Date.parse(String(r.TimeGenerated)) + lateness(r, Date.parse(String(r.TimeGenerated))),
    );
    return (atMs: number) => {
      world.logs.rows = all.filter((_, i) => arrive[i]! <= atMs);
    };
  }

  it('events up to 100 minutes late (lookback 2 h, a run every 15 min) are still read: the same incidents alerted', async () => {
    world.beginScenario();
    await world.seed('uclate');
    const rand = seeded(90);
    const { windowStartMs: start, windowEndMs: end, attacks } = world.data;
    // Each attack arrives late as a whole (100 minutes, less near the end of the window so that a run still
    // follows); a quarter of the window's other events up to 100 minutes late.
    const attackOf = (row: AzureActivityRow, t: number) =>
      attacks.find((a) => a.caller === String(row.Caller) && t >= a.startMs && t < a.endMs);
    const visible = arrivals((row, t) => {
      if (t < start) return 0;
      const attack = attackOf(row, t);
      const room = end - 15 * MIN - t;
      if (attack !== undefined) return Math.min(100 * MIN, end - 15 * MIN - attack.endMs);
      return rand() < 0.25 ? Math.min(room, Math.floor(rand() * 100) * MIN) : 0;
    });
    const runs = await world.runWindow('uclate', { before: (slot) => visible(slot + 20_000) });
    expect(runs.filter((r) => r.error !== undefined)).toEqual([]);
    const c = await compareWithClean('uclate');
    expect(c.outcome.episodes, 'incidents alerted').toEqual(c.reference.episodes);
    expect(c.outcome.pending).toBe(0);
    expect(c.outcome.duplicates).toBe(0);
    // One alert per incident, as in the clean run. Its AlertId names the operation that led the episode when it
    // was raised: when lateness splits what the first run sees (R1's list-keys arrives a run before its role
    // assignment), another operation leads and the id differs (docs/reliability.md).
    expect(c.outcome.alertIds).toHaveLength(c.outcome.episodes.length);
    expect(c.missing.length).toBe(c.extra.length);
    expect(c.missing.length).toBeLessThanOrEqual(2);
  }, 120_000);

  it('known limitation: an event later than the lookback is never read, so its alert is never raised', async () => {
    world.beginScenario();
    await world.seed('uctoolate');
    const r1 = world.data.attacks.find((a) => a.id === 'R1')!;
    // R1 (Lagos, 18:20-18:41) reaches the workspace 2.5 hours late: every run whose window covers it has passed.
    const visible = arrivals((row, t) =>
      String(row.Caller) === r1.caller && t >= r1.startMs && t < r1.endMs ? 150 * MIN : 0,
    );
    await world.runWindow('uctoolate', { before: (slot) => visible(slot + 20_000) });
    const c = await compareWithClean('uctoolate');
    const lagos = c.reference.episodes.filter((e) => e.startsWith(`${r1.caller} @ Lagos`));
    expect(lagos).toHaveLength(1);
    expect(c.outcome.episodes).toEqual(c.reference.episodes.filter((e) => !lagos.includes(e)));
    // Nothing of R1 reached the baselines either: no run ever read it.
    expect(JSON.stringify(c.outcome.state)).not.toContain('Lagos');
  }, 120_000);
});
