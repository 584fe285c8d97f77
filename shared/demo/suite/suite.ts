import type { ActivityEvent } from '../../activity/types.js';
import type { Labels } from '../evaluate.js';
import { mulberry32 } from '../random.js';
import { ActivityLog, DAY } from './activity.js';
import { emitAttacks } from './attacks.js';
import { benignLabels } from './benign.js';
import type { Place } from './places.js';
import { emitRoutine } from './routine.js';
import { buildWorld, Dice } from './world.js';

/** The suite's tenants start on a Monday in autumn (no daylight-saving change inside 28 days). */
export const SUITE_START = Date.UTC(2026, 9, 5);
export const SUITE_MIN_DAYS = 12;

export interface SuiteTenant {
  seed: number;
  days: number;
  events: ActivityEvent[];
  /** Claims `ipaddr` by EventDataId where it differs from the caller IP (replayed session tokens). */
  tokenIps: ReadonlyMap<string, string>;
  labels: Labels;
  /** Where each label's addresses are meant to be: its IPs geolocate to this city (tests check). */
  places: ReadonlyMap<string, Place>;
  people: number;
  automation: number;
}

/**
 * One labelled tenant of the scenario suite: ~36 people in four offices, eight automation identities, a
 * first-party platform identity, the benign novelties and one attack of each class, all chosen from the seed.
 */
export function generateSuiteTenant(seed: number, days = 28): SuiteTenant {
  if (!Number.isInteger(days) || days < SUITE_MIN_DAYS)
    throw new RangeError(`a suite tenant needs at least ${SUITE_MIN_DAYS} whole days, got ${days}`);
  const dice = new Dice(mulberry32(Math.imul(seed, 0x9e3779b1) ^ 0x5eed));
  const world = buildWorld(dice, days);
  const log = new ActivityLog(dice.rand);
  emitRoutine(world, log, dice, SUITE_START);
  const attacker = emitAttacks(world, log, dice, SUITE_START);
  const places = new Map(attacker.places);
  const benign = benignLabels(world, SUITE_START, places);
  return {
    seed,
    days,
    events: log.sorted(),
    tokenIps: log.tokenIps,
    labels: {
      startMs: SUITE_START,
      endMs: SUITE_START + days * DAY,
      attacks: attacker.labels,
      benign,
    },
    places,
    people: world.people.length,
    automation: world.automation.length + 1,
  };
}
