import { type CallerCity, DAY_MS } from '../scoring/model.js';
import type { RarityScore } from '../scoring/score.js';

/** What of a score decides a quarantine. */
export type QuarantineEvidence = Pick<RarityScore, 'score' | 'newCityForCaller' | 'quarantinedForCaller'>;

const key = (caller: string, cityKey: string): string => `${caller}\u0000${cityKey}`;

/**
 * Alert-aware learning. A caller's activity from a city new to them (they have history elsewhere: see
 * RarityScore.newCityForCaller) that scores at least UC_QUARANTINE_SCORE puts the
 * (caller, city) in quarantine for UC_QUARANTINE_DAYS after that hour: while it lasts, the caller's hours there
 * do not establish the city for any operation and do not make the city familiar to the caller — an attacker who
 * stays does not become normal within days. `baseline allow` lifts it; otherwise it ages out.
 * One run's view: starts from the callers' stored rows, extended by the findings of the run, hour by hour.
 */
export class Quarantine {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly days: number,
    private readonly minScore: number,
    callerCities: ReadonlyMap<string, ReadonlyMap<string, CallerCity>>,
  ) {
    for (const [caller, cities] of callerCities) {
      for (const c of cities.values()) {
        if (c.quarantinedUntilMs > 0) this.until.set(key(caller, c.cityKey), c.quarantinedUntilMs);
      }
    }
  }

  /** The (caller, city) is in quarantine at `hourMs`. A missing caller ('') never is. */
  isOn(caller: string, cityKey: string, hourMs: number): boolean {
    return caller !== '' && (this.until.get(key(caller, cityKey)) ?? 0) > hourMs;
  }

  /** Every caller of the activity is in quarantine (and there is at least one). */
  allOn(callers: readonly string[], cityKey: string, hourMs: number): boolean {
    return callers.length > 0 && callers.every((c) => this.isOn(c, cityKey, hourMs));
  }

  /**
   * Records a score of the caller's activity from the city in `hourMs`. Returns the end of the quarantine when
   * this score starts one, else undefined. A quarantine is not extended by the activity inside it: it ages out
   * UC_QUARANTINE_DAYS after it started, and then the hours inside it count (a new hire becomes normal).
   */
  record(caller: string, cityKey: string, hourMs: number, rarity: QuarantineEvidence): number | undefined {
    if (caller === '' || this.days <= 0 || rarity.score < this.minScore) return undefined;
    // Only a place the caller's own history says they never work from: a new hire's first city is their home.
    if (!rarity.newCityForCaller && !rarity.quarantinedForCaller) return undefined;
    if (this.isOn(caller, cityKey, hourMs)) return undefined;
    const end = hourMs + this.days * DAY_MS;
    this.until.set(key(caller, cityKey), end);
    return end;
  }
}
