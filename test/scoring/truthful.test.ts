import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { haversineKm } from '../../shared/geo/distance.js';
import type { City } from '../../shared/geo/types.js';
import { DAY_MS, HOUR_MS } from '../../shared/scoring/model.js';
import { CITIES, defaultParams, History, T0 } from '../support/model.js';

/**
 * Explanations are claims: every clause an alert states must be true of the history the score was computed
 * from. Random histories are built through the production update functions; each clause of the explanation of a
 * scored observation is checked against a plain record of that history, computed here independently.
 */

const PLACES: City[] = Object.values(CITIES);
const OPS = ['op/a', 'op/b', 'op/c'];
const CALLERS = ['u1', 'u2', 'u3', 'u4'];

interface Seen {
  op: string;
  city: City;
  hourMs: number;
  caller: string;
}

const event = fc.record({
  op: fc.constantFrom(...OPS),
  city: fc.constantFrom(...PLACES),
  day: fc.integer({ min: 0, max: 20 }),
  h: fc.integer({ min: 0, max: 23 }),
  caller: fc.constantFrom(...CALLERS),
});

const params = defaultParams({
  UC_ESTABLISH_HOURS: '3',
  UC_ESTABLISH_DAYS: '2',
  UC_CALLER_LEARNING_HOURS: '2',
});

/** The plain record: distinct hours and days per key. */
function hoursOf(
  seen: readonly Seen[],
  pick: (s: Seen) => boolean,
): { hours: Set<number>; days: Set<number> } {
  const hours = new Set<number>();
  for (const s of seen) if (pick(s)) hours.add(s.hourMs);
  return { hours, days: new Set([...hours].map((h) => Math.floor(h / DAY_MS))) };
}

const established = (seen: readonly Seen[], pick: (s: Seen) => boolean): boolean => {
  const { hours, days } = hoursOf(seen, pick);
  return hours.size >= params.establishHours && days.size >= params.establishDays;
};

/** Builds the history in time order, one hour at a time, as the pipeline counts it. */
function build(events: readonly Seen[]): History {
  const h = new History(params);
  const ordered = [...events].sort((a, b) => a.hourMs - b.hourMs);
  for (const e of ordered) h.observe(e.op, e.city, e.hourMs, [e.caller]);
  return h;
}

function checkClauses(seen: readonly Seen[], h: History, target: Seen): void {
  const { op, city, caller } = target;
  const r = h.score(op, city, target.hourMs, caller);
  const text = r.sentence;
  const cc = city.country;
  const tenantCities = new Set(seen.map((s) => s.city.key));
  const estTenant = PLACES.filter(
    (p) => tenantCities.has(p.key) && established(seen, (s) => s.city.key === p.key),
  );

  if (text.includes('a country never seen in the tenant')) {
    expect(seen.some((s) => s.city.country === cc)).toBe(false);
  }
  if (text.includes(`the tenant has no established city in ${cc}`)) {
    expect(estTenant.some((p) => p.country === cc)).toBe(false);
    expect(seen.some((s) => s.city.country === cc)).toBe(true);
  }
  // The ÷ boost behind the clause is applied exactly when the clause is stated.
  expect(r.newCountryForTenant).toBe(estTenant.length > 0 && !estTenant.some((p) => p.country === cc));

  const opSeen = seen.filter((s) => s.op === op);
  const estOp = PLACES.filter((p) => established(opSeen, (s) => s.city.key === p.key));
  if (text.includes(`no established city of this operation is in ${cc}`)) {
    expect(estOp.length).toBeGreaterThan(0);
    expect(estOp.some((p) => p.country === cc)).toBe(false);
  }
  if (text.includes(`this operation was never seen from ${cc}`)) {
    expect(opSeen.some((s) => s.city.country === cc)).toBe(false);
  }
  if (text.includes('a city never seen for this operation')) {
    expect(opSeen.some((s) => s.city.key === city.key)).toBe(false);
  }
  const seenIn = /seen in (\d+) hour\(s\) before/.exec(text);
  if (seenIn && !r.mergedInto) {
    expect(Number(seenIn[1])).toBe(hoursOf(opSeen, (s) => s.city.key === city.key).hours.size);
  }
  const lastOn = /last on (\d{4}-\d{2}-\d{2})/.exec(text);
  if (lastOn && !r.mergedInto) {
    const last = Math.max(...opSeen.filter((s) => s.city.key === city.key).map((s) => s.hourMs));
    expect(lastOn[1]).toBe(new Date(last).toISOString().slice(0, 10));
  }
  if (text.includes('the city was never seen in the tenant')) expect(tenantCities.has(city.key)).toBe(false);
  if (text.includes("of the tenant's hours")) expect(tenantCities.has(city.key)).toBe(true);

  const mine = seen.filter((s) => s.caller === caller);
  if (text.includes('the caller never worked from this city before')) {
    expect(mine.some((s) => s.city.key === city.key)).toBe(false);
    expect(hoursOf(mine, () => true).hours.size).toBeGreaterThanOrEqual(params.callerLearningHours);
  }
  if (text.includes('the caller has worked from this city on several days')) {
    expect(hoursOf(mine, (s) => s.city.key === city.key).days.size).toBeGreaterThanOrEqual(
      params.establishDays,
    );
  }
  const nearest = /nearest (established )?city of the operation (.+?) is ([\d,]+) km away/.exec(text);
  if (nearest) {
    const pool = nearest[1] ? estOp : PLACES.filter((p) => opSeen.some((s) => s.city.key === p.key));
    const others = pool.filter((p) => p.key !== city.key);
    const best = Math.min(
      ...others.map((p) => haversineKm(city.latitude, city.longitude, p.latitude, p.longitude)),
    );
    expect(Number(nearest[3]!.replace(/,/g, ''))).toBe(Math.round(best));
  }
  const absent = /never performed from this city in its ([\d.]+) hours although the city has/.exec(text);
  if (absent) {
    expect(opSeen.some((s) => s.city.key === city.key)).toBe(false);
    expect(tenantCities.has(city.key)).toBe(true);
    expect(mine.some((s) => s.city.key === city.key)).toBe(false);
  }
  const learning = /tenant observed on (\d+) day\(s\)/.exec(text);
  if (learning) expect(Number(learning[1])).toBe(hoursOf(seen, () => true).days.size);
}

describe('explanations never lie (property: every clause true of the history scored against)', () => {
  it('holds for random histories and observations', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 120 }), event, (raw, next) => {
        const seen: Seen[] = raw.map((e) => ({
          op: e.op,
          city: e.city,
          hourMs: T0 + e.day * DAY_MS + e.h * HOUR_MS,
          caller: e.caller,
        }));
        const h = build(seen);
        // Scored after the history, as the pipeline scores an hour against the state before it.
        const target: Seen = {
          op: next.op,
          city: next.city,
          hourMs: T0 + 21 * DAY_MS + next.h * HOUR_MS,
          caller: next.caller,
        };
        checkClauses(seen, h, target);
      }),
      { numRuns: 400, seed: 20261207 },
    );
  });

  it('a country whose only tenant city is the observed one is not "never seen in the tenant"', () => {
    // The case the old check got wrong: it left the city itself out, so every single-office country was "new".
    const seen: Seen[] = [];
    for (let d = 0; d < 5; d++) {
      for (let k = 0; k < 4; k++) {
        seen.push({
          op: 'op/a',
          city: CITIES.london,
          hourMs: T0 + d * DAY_MS + (9 + k) * HOUR_MS,
          caller: 'u1',
        });
        seen.push({
          op: 'op/b',
          city: CITIES.mumbai,
          hourMs: T0 + d * DAY_MS + (5 + k) * HOUR_MS,
          caller: 'u2',
        });
      }
    }
    const h = build(seen);
    const r = h.score('op/a', CITIES.mumbai, T0 + 6 * DAY_MS + 10 * HOUR_MS, 'u1');
    expect(r.newCountryForTenant).toBe(false);
    expect(r.sentence).not.toContain('never seen in the tenant');
    checkClauses(seen, h, {
      op: 'op/a',
      city: CITIES.mumbai,
      hourMs: T0 + 6 * DAY_MS + 10 * HOUR_MS,
      caller: 'u1',
    });
  });
});
