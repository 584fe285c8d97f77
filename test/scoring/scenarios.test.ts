import { describe, expect, it } from 'vitest';

import { rarityFromProbability } from '../../shared/scoring/score.js';
import { CITIES, contosoHistory, defaultParams, History, hour } from '../support/model.js';

const THRESHOLD = 50;

// The scenarios of the detection model (../shared/docs/detection-model.md), one named test each. The pipeline
// level ones (egress ranges, IPv6, bursts, travellers' episodes) are in test/pipeline/scenarios.test.ts.
describe('detection model scenarios', () => {
  const base = contosoHistory(60);
  const now = hour(61, 11); // a Tuesday, office hours

  it('first-seen city for the operation, never seen in the tenant → alert', () => {
    const r = base.score('listkeys/action', CITIES.lagos, now, 'admin1@contoso.com');
    expect(r.score).toBeGreaterThanOrEqual(THRESHOLD);
    expect(r.seenForOperation).toBe(false);
    expect(r.seenInTenant).toBe(false);
    expect(r.newCountryForTenant).toBe(true);
    expect(r.sentence).toContain('never seen for this operation');
    expect(r.sentence).toContain('never seen in the tenant');
  });

  it('city common in the tenant but never for this sensitive operation, nor for the caller → alert, by evidence of absence', () => {
    const mumbai = base.score('listkeys/action', CITIES.mumbai, now, 'admin1@contoso.com');
    expect(mumbai.seenInTenant).toBe(true);
    expect(mumbai.tenantShare).toBeGreaterThan(0.1);
    expect(mumbai.score).toBeGreaterThanOrEqual(THRESHOLD);
    // A colleague's office city the operation was never performed from in all its hours: rarer, not more ordinary.
    expect(mumbai.absence).toBeLessThan(1);
    expect(mumbai.sentence).toContain('the operation was never performed from this city');
    // Without the evidence of absence the common city would be diluted by its tenant share.
    const without = contosoHistory(60, defaultParams({ UC_ABSENCE_WEIGHT: '0' }));
    const diluted = without.score('listkeys/action', CITIES.mumbai, now, 'admin1@contoso.com');
    expect(diluted.probability).toBeGreaterThan(mumbai.probability);
  });

  it("the tenant's headquarters city doing a new operation → no alert", () => {
    // An operation just past learning (30 hours, all from the Amsterdam automation), now done in London.
    const h = contosoHistory(60);
    for (let k = 0; k < 30; k++)
      h.observe('backup/write', CITIES.amsterdam, hour(59, 0) + k * 3_600_000, ['backup-mi']);
    const existing = h.score('backup/write', CITIES.london, now, 'dev1@contoso.com');
    expect(existing.seenInTenant).toBe(true);
    expect(existing.learningFactor).toBe(1);
    expect(existing.score).toBeLessThan(THRESHOLD);
    // And an operation never seen at all, from London.
    const brandNew = base.score('roleassignments/write', CITIES.london, now, 'dev1@contoso.com');
    expect(brandNew.score).toBeLessThan(THRESHOLD);
  });

  it('a city seen once, months ago → alert', () => {
    const h = new History();
    // Berlin once, then 120 days of London only.
    h.observe('listkeys/action', CITIES.berlin, hour(0, 10), ['admin1@contoso.com']);
    for (let d = 1; d <= 120; d++) {
      if (d % 7 >= 5) continue;
      for (const hr of [10, 14])
        h.observe('listkeys/action', CITIES.london, hour(d, hr), ['admin1@contoso.com']);
      for (let hr = 9; hr < 18; hr++)
        h.observe('deployments/write', CITIES.london, hour(d, hr), ['dev1@contoso.com']);
    }
    const r = h.score('listkeys/action', CITIES.berlin, hour(121, 11), 'admin1@contoso.com');
    expect(r.seenForOperation).toBe(true);
    expect(r.established).toBe(false);
    expect(r.rawHoursSeen).toBe(1);
    expect(r.score).toBeGreaterThanOrEqual(THRESHOLD);
    expect(r.sentence).toContain('seen in 1 hour(s) before');
    expect(r.sentence).toContain('still scored as a new city');
    expect(r.sentence).toContain('last on 2026-01-05');
  });

  it('a city used daily by this operation → no alert', () => {
    const r = base.score('deployments/write', CITIES.london, now, 'dev1@contoso.com');
    expect(r.seenForOperation).toBe(true);
    expect(r.score).toBe(0);
    const mumbai = base.score('deployments/write', CITIES.mumbai, now, 'mumbai1@contoso.com');
    expect(mumbai.score).toBeLessThan(THRESHOLD);
  });

  it('a brand-new operation → no alert while learning, explained as learning', () => {
    const r = base.score('costmanagement/exports/action', CITIES.lagos, now, 'cost-sp');
    expect(r.seenInTenant).toBe(false);
    expect(r.learningFactor).toBe(0); // the operation has no history to judge a city by
    expect(r.score).toBeLessThan(THRESHOLD);
    expect(r.sentence).toContain('still learning');
    // Once the operation has a day of history from Dublin-like automation, Lagos alerts.
    const h = contosoHistory(30);
    for (let hr = 0; hr < 30; hr++)
      h.observe('costmanagement/exports/action', CITIES.amsterdam, hour(30, 0) + hr * 3_600_000, ['cost-sp']);
    expect(
      h.score('costmanagement/exports/action', CITIES.lagos, hour(32, 12), 'cost-sp').score,
    ).toBeGreaterThanOrEqual(THRESHOLD);
  });

  it('an attacker repeating from one foreign city every few hours for days → still alerting for the first days', () => {
    const h = contosoHistory(60);
    const scores: { hoursIn: number; score: number }[] = [];
    for (let k = 0; k < 18; k++) {
      const t = hour(61, 1) + k * 4 * 3_600_000;
      scores.push({
        hoursIn: k * 4,
        score: h.step('listkeys/action', CITIES.lagos, t, 'admin1@contoso.com').score,
      });
    }
    const firstTwoDays = scores.filter((s) => s.hoursIn < 48);
    expect(firstTwoDays.length).toBe(12);
    expect(firstTwoDays.every((s) => s.score >= THRESHOLD)).toBe(true);
    // Each hour before establishment added one fraction per day at most: after two days, 0.4 of an hour.
    const h2 = contosoHistory(60);
    for (let k = 0; k < 12; k++)
      h2.step('listkeys/action', CITIES.lagos, hour(61, 1) + k * 4 * 3_600_000, 'admin1@contoso.com');
    const lagos = h2.op('listkeys/action').cities.get(CITIES.lagos.key)!;
    expect(lagos.established).toBe(false);
    expect(lagos.rawHours).toBe(12);
    expect(lagos.n).toBeCloseTo(2 * defaultParams().unestablishedWeight, 2);
  });

  it('a legitimate traveller: a new city for the caller and the operations, scored per operation (episode rules are in alerts tests)', () => {
    const ops = ['deployments/write', 'sites/write', 'listkeys/action'];
    const scores = ops.map((op) => base.score(op, CITIES.newYork, now, 'dev1@contoso.com').score);
    expect(scores.some((s) => s >= THRESHOLD)).toBe(true);
  });

  it('a city within UC_MERGE_KM of a known one is treated as that city (GeoIP metro noise)', () => {
    const r = base.score('listkeys/action', CITIES.croydon, now, 'admin1@contoso.com');
    expect(r.mergedInto?.cityKey).toBe(CITIES.london.key);
    expect(r.score).toBeLessThan(THRESHOLD);
  });

  it('a team working from a new office becomes normal within days, not hours', () => {
    const h = contosoHistory(30);
    const scores: number[] = [];
    for (let d = 31; d < 40; d++) {
      if (d % 7 >= 5) continue;
      for (let hr = 9; hr < 17; hr++) {
        const r = h.score('deployments/write', CITIES.manchester, hour(d, hr), 'newhire@contoso.com');
        scores.push(r.score);
        h.observe('deployments/write', CITIES.manchester, hour(d, hr), [
          'newhire@contoso.com',
          'newhire2@contoso.com',
          'newhire3@contoso.com',
        ]);
      }
    }
    expect(h.op('deployments/write').cities.get(CITIES.manchester.key)!.established).toBe(true);
    expect(scores.at(-1)).toBeLessThan(THRESHOLD);
  });

  it('score mapping: P ≥ 0.05 → 0, P ≤ 1e-4 → 100, monotone in between', () => {
    expect(rarityFromProbability(0.05)).toBe(0);
    expect(rarityFromProbability(1)).toBe(0);
    expect(rarityFromProbability(1e-4)).toBe(100);
    expect(rarityFromProbability(1e-9)).toBe(100);
    expect(rarityFromProbability(0.05 * Math.sqrt(1e-4 / 0.05))).toBeCloseTo(50, 6);
    expect(rarityFromProbability(1e-3)).toBeGreaterThan(rarityFromProbability(2e-3));
  });

  it('is deterministic: the same state and observation always give the same score and sentence', () => {
    const a = base.score('listkeys/action', CITIES.lagos, now, 'admin1@contoso.com');
    const b = contosoHistory(60).score('listkeys/action', CITIES.lagos, now, 'admin1@contoso.com');
    expect(b).toEqual(a);
  });
});
