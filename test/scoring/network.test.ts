/**
 * The network beside the city: a city new to the caller through a network (autonomous system) they already use
 * is capped below the alert threshold and says so; through a network they never used it is more surprising and
 * says so; each clause is true of the history the score was computed from.
 */
import { describe, expect, it } from 'vitest';

import type { City, Network } from '../../shared/geo/types.js';
import { type CallerCity, networkKey } from '../../shared/scoring/model.js';
import type { RarityScore } from '../../shared/scoring/score.js';
import { scoreObservation } from '../../shared/scoring/score.js';
import { callerContext, countCallerHour } from '../../shared/scoring/update.js';
import { CITIES, contosoHistory, type History, hour } from '../support/model.js';

const VIRGIN: Network = { asn: 5089, org: 'Virgin Media Limited' };
const M247: Network = { asn: 9009, org: 'M247 Europe SRL' };
const BOUYGUES: Network = { asn: 5410, org: 'Bouygues Telecom SA' };
const PARIS: City = { ...CITIES.berlin, key: 'g:2988507', geonameId: 2988507, name: 'Paris', country: 'FR' };

/** admin1's networks: home broadband every working day, the VPN every other day of the first `2 × vpnDays` (weekends off). */
function withNetworks(h: History, vpnDays: number): void {
  let cities = h.callers.get('admin1@contoso.com')!;
  for (let d = 0; d < 60; d++) {
    if (d % 7 >= 5) continue;
    cities = countCallerHour(cities, networkKey(VIRGIN.asn), hour(d, 10)).cities;
    if (d < vpnDays * 2 && d % 2 === 0)
      cities = countCallerHour(cities, networkKey(M247.asn), hour(d, 14)).cities;
  }
  h.callers.set('admin1@contoso.com', cities);
}

function score(h: History, city: City, networks: Network[]): RarityScore {
  const at = hour(61, 11);
  const ctx = callerContext(
    'admin1@contoso.com',
    h.callers.get('admin1@contoso.com')!,
    city.key,
    at,
    networks,
    h.params.networkKnownDays,
  );
  return scoreObservation(h.op('listkeys/action'), h.tenant, city, at, h.params, ctx);
}

describe('networks in scoring', () => {
  it("a new city through the caller's own VPN provider is capped below the threshold, and the clause says why", () => {
    const h = contosoHistory();
    withNetworks(h, 5);
    const cityOnly = score(h, PARIS, []);
    expect(cityOnly.score).toBeGreaterThanOrEqual(50);
    const r = score(h, PARIS, [M247]);
    expect(r.throughKnownNetwork).toBe(true);
    expect(r.networkCapped).toBe(true);
    expect(r.score).toBe(h.params.knownNetworkScoreCap);
    expect(r.callerBoost).toBe(1);
    expect(r.sentence).toContain(
      'the caller never worked from this city before, but came through AS9009 (M247 Europe SRL), a network they used on 4 day(s): score capped at 45',
    );
  });

  it('a new city through a network the caller never used is more surprising, and the clause says so', () => {
    const h = contosoHistory();
    withNetworks(h, 5);
    const cityOnly = score(h, PARIS, []);
    const r = score(h, PARIS, [BOUYGUES]);
    expect(r.network).toMatchObject({ isNew: true, known: false, days: 0 });
    expect(r.networkFactor).toBe(0.5);
    expect(r.probability).toBeCloseTo(cityOnly.probability * 0.5, 12);
    expect(r.sentence).toContain(
      'through AS5410 (Bouygues Telecom SA), a network the caller never used: probability ÷2',
    );
  });

  it('a network used on fewer than UC_NETWORK_KNOWN_DAYS days is neither known nor new: no clause, no effect', () => {
    const h = contosoHistory();
    withNetworks(h, 1);
    const cityOnly = score(h, PARIS, []);
    const r = score(h, PARIS, [M247]);
    expect(r.network).toMatchObject({ known: false, isNew: false, days: 1 });
    expect(r.score).toBe(cityOnly.score);
    expect(r.sentence).not.toContain('M247');
  });

  it("an attacker's network is not the victim's: one known network among the activity's is not enough", () => {
    const h = contosoHistory();
    withNetworks(h, 5);
    const r = score(h, PARIS, [M247, BOUYGUES]);
    expect(r.throughKnownNetwork).toBe(false);
    expect(r.score).toBeGreaterThanOrEqual(50);
  });
});

describe("the caller's countries (for city+network allow rules)", () => {
  it('are the countries of cities familiar to the caller, outside quarantine, and only when asked for', () => {
    const at = hour(40, 11);
    let cities: ReadonlyMap<string, CallerCity> = new Map();
    const day = (d: number, h = 9) => hour(d, h);
    for (let d = 0; d < 3; d++) cities = countCallerHour(cities, 'g:london', day(d)).cities;
    cities = countCallerHour(cities, 'g:lagos', day(5)).cities; // one day: not familiar
    for (let d = 6; d < 9; d++) cities = countCallerHour(cities, 'g:delhi', day(d), at + 3_600_000).cities;
    cities = countCallerHour(cities, networkKey(45609), day(1)).cities;
    const countryOf = (key: string) => ({ 'g:london': 'GB', 'g:lagos': 'NG', 'g:delhi': 'IN' })[key];
    const ctx = callerContext('ann@contoso.com', cities, 'g:paris', at, [], 2, { days: 2, countryOf });
    expect(ctx.countries).toEqual(['GB']); // Delhi is in quarantine until after the hour, Lagos seen one day
    const later = callerContext('ann@contoso.com', cities, 'g:paris', at + 7_200_000, [], 2, {
      days: 2,
      countryOf,
    });
    expect(later.countries).toEqual(['GB', 'IN']);
    expect(callerContext('ann@contoso.com', cities, 'g:paris', at).countries).toBeUndefined();
    const r = scoreObservation(
      contosoHistory().op('listkeys/action'),
      contosoHistory().tenant,
      PARIS,
      at,
      contosoHistory().params,
      ctx,
    );
    expect(r.callerCountries).toEqual(['GB']);
  });
});
