/**
 * Arrivals: callers turning up in a city new to them, remembered per city for a few hours, so that several of
 * them together are read as one event instead of N:
 *
 * - an **infrastructure move** — UC_MOVE_CALLERS callers or more arrive within UC_MOVE_HOURS through one network
 *   (autonomous system) each of them already used (a VPN provider moved its gateway): at most one alert (severity
 *   Informational, none with UC_MOVE_ALERT=off) names the move and the callers, and for UC_MOVE_DAYS their
 *   findings in that city through that network are absorbed (still counted in the baselines, never alerted);
 * - a **wave** — UC_WAVE_CALLERS callers or more arrive within UC_WAVE_HOURS through one network none of them
 *   ever used (one actor with many stolen credentials): one loud alert (UC_WAVE_SEVERITY) naming every caller,
 *   besides each caller's own alert. A wave is never absorbed as a move.
 *
 * State: table `state`, partition `arrivals`, one row per city key (bounded; see MAX_*). Alert ids are derived
 * from the city, the network and the first arrival's hour, so a re-run (overlap, crash) recomputes the same id
 * and the outbox delivers it once.
 */
import { type Alert, type AlertDefaults, alertIdFor, buildAlert, type RareFinding } from '../alerts/alert.js';
import { fitAlert } from '../alerts/fit.js';
import type { BaselineStore, Entity } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import { displaySafe } from '../display.js';
import { DAY_MS, HOUR_MS } from '../scoring/model.js';

export const ARRIVALS_PARTITION = 'arrivals';
const MAX_ARRIVALS = 64;
const MAX_EVENTS = 8;
/** Characters of one row's JSON (Table Storage keeps 32K UTF-16 characters per string property). */
const MAX_ROW_CHARS = 30_000;

/** One caller's scored activity from a city new to them, in this run. */
export interface Arrival {
  finding: RareFinding;
  /** Networks of the activity; with `known` = every one used by the caller before, `isNew` = none. */
  asns: number[];
  known: boolean;
  isNew: boolean;
}

/** A stored arrival: caller, hour, networks, and how the caller knew them (1 known, 2 new, 0 neither). */
interface Stored {
  c: string;
  h: number;
  a: number[];
  k: 0 | 1 | 2;
}

/** A move or a wave recorded for a city: the network, when it was recognised, its alert and callers. */
interface CityEvent {
  /** The move's network (0 for a wave: its callers' networks are in `asns`). */
  asn: number;
  asns?: number[];
  atMs: number;
  alertId: string;
  callers: string[];
}

interface CityArrivals {
  arrivals: Stored[];
  moves: CityEvent[];
  waves: CityEvent[];
}

export interface ArrivalPolicy {
  moveCallers: number;
  moveHours: number;
  moveDays: number;
  moveAlert: boolean;
  waveCallers: number;
  waveHours: number;
  waveSeverity: string;
}

export function arrivalPolicy(s: Settings): ArrivalPolicy {
  return {
    moveCallers: s.UC_MOVE_CALLERS,
    moveHours: s.UC_MOVE_HOURS,
    moveDays: s.UC_MOVE_DAYS,
    moveAlert: s.UC_MOVE_ALERT === 'on',
    waveCallers: s.UC_WAVE_CALLERS,
    waveHours: s.UC_WAVE_HOURS,
    waveSeverity: s.UC_WAVE_SEVERITY,
  };
}

export interface ArrivalOutcome {
  /** Findings kept (those absorbed by a move are gone). */
  findings: RareFinding[];
  absorbed: number;
  /** Move and wave alerts of this run. */
  alerts: Alert[];
}

const parse = (e: Entity | undefined): CityArrivals => {
  try {
    const v = typeof e?.json === 'string' ? (JSON.parse(e.json) as Partial<CityArrivals>) : {};
    return {
      arrivals: Array.isArray(v.arrivals) ? v.arrivals : [],
      moves: Array.isArray(v.moves) ? v.moves : [],
      waves: Array.isArray(v.waves) ? v.waves : [],
    };
  } catch {
    return { arrivals: [], moves: [], waves: [] };
  }
};

/** The row as stored: newest arrivals and events kept, within the row's character budget. */
function serialise(st: CityArrivals): Entity {
  const keep = { ...st, moves: st.moves.slice(-MAX_EVENTS), waves: st.waves.slice(-MAX_EVENTS) };
  keep.arrivals = st.arrivals.slice(-MAX_ARRIVALS);
  let json = JSON.stringify(keep);
  while (json.length > MAX_ROW_CHARS && keep.arrivals.length > 0) {
    keep.arrivals = keep.arrivals.slice(Math.ceil(keep.arrivals.length / 4));
    json = JSON.stringify(keep);
  }
  return { json };
}

const kindOf = (a: Arrival): Stored['k'] => (a.known ? 1 : a.isNew ? 2 : 0);

/** Adds this run's arrivals (once per caller and hour) and forgets those older than any window can use. */
function merge(st: CityArrivals, mine: readonly Arrival[], tickMs: number, policy: ArrivalPolicy): void {
  for (const a of mine) {
    const c = a.finding.activity.caller;
    const h = a.finding.observation.hourMs;
    if (st.arrivals.some((x) => x.c === c && x.h === h)) continue;
    st.arrivals.push({ c, h, a: a.asns.slice(0, 8), k: kindOf(a) });
  }
  const horizon = tickMs - Math.max(policy.moveHours, policy.waveHours) * HOUR_MS - DAY_MS;
  st.arrivals = st.arrivals.filter((x) => x.h >= horizon).sort((x, y) => x.h - y.h || (x.c < y.c ? -1 : 1));
  st.moves = st.moves.filter((m) => m.atMs >= tickMs - policy.moveDays * DAY_MS);
}

/**
 * Callers who arrived through `asn` (any network when undefined) with kind `k` since `sinceMs`, first arrival
 * first; and that first hour.
 */
function through(
  st: CityArrivals,
  asn: number | undefined,
  k: Stored['k'],
  sinceMs: number,
): { callers: string[]; firstMs: number } {
  const callers: string[] = [];
  let firstMs = Infinity;
  for (const x of st.arrivals) {
    if (x.k !== k || x.h < sinceMs || (asn !== undefined && !x.a.includes(asn))) continue;
    if (!callers.includes(x.c)) callers.push(x.c);
    firstMs = Math.min(firstMs, x.h);
  }
  return { callers, firstMs };
}

/**
 * Records this run's arrivals, recognises moves and waves, absorbs the findings a move explains and builds the
 * move and wave alerts. `arrivals`: every activity this run scored from a city new to its caller (not only
 * findings); `findings`: this run's rare findings.
 */
export async function settleArrivals(
  store: BaselineStore,
  tickMs: number,
  arrivals: readonly Arrival[],
  findings: readonly RareFinding[],
  policy: ArrivalPolicy,
  defaults: AlertDefaults,
): Promise<ArrivalOutcome> {
  const byCity = new Map<string, Arrival[]>();
  for (const a of arrivals) {
    const key = a.finding.observation.city.key;
    (byCity.get(key) ?? byCity.set(key, []).get(key)!).push(a);
  }
  if (byCity.size === 0) return { findings: [...findings], absorbed: 0, alerts: [] };
  const states = new Map<string, CityArrivals>();
  await store.updateRows('state', ARRIVALS_PARTITION, [...byCity.keys()], (cur) => {
    const out = new Map<string, Entity | null>();
    for (const [cityKey, mine] of byCity) {
      const st = parse(cur.get(cityKey));
      merge(st, mine, tickMs, policy);
      recognise(st, mine, tickMs, policy, cityKey);
      states.set(cityKey, st);
      out.set(cityKey, serialise(st));
    }
    return out;
  });
  return outcome(states, byCity, findings, tickMs, policy, defaults);
}

/** Records the moves and waves this run's arrivals complete (each network once per window). */
function recognise(
  st: CityArrivals,
  mine: readonly Arrival[],
  tickMs: number,
  policy: ArrivalPolicy,
  cityKey: string,
): void {
  const asns = new Set(mine.flatMap((a) => a.asns));
  for (const asn of asns) {
    const move = through(st, asn, 1, tickMs - policy.moveHours * HOUR_MS);
    if (move.callers.length >= policy.moveCallers && !st.moves.some((m) => m.asn === asn)) {
      st.moves.push(event('move', asn, cityKey, move, tickMs));
    }
  }
  // A wave: callers new to the city through networks new to each of them, whichever (an actor's addresses vary).
  const since = tickMs - policy.waveHours * HOUR_MS;
  const wave = through(st, undefined, 2, since);
  const open = st.waves.some((w) => w.atMs >= since);
  if (wave.callers.length >= policy.waveCallers && !open && mine.some((a) => a.isNew)) {
    const networks = new Set(st.arrivals.filter((x) => x.k === 2 && x.h >= since).flatMap((x) => x.a));
    st.waves.push({ ...event('wave', 0, cityKey, wave, tickMs), asns: [...networks].slice(0, 8) });
  }
}

const event = (
  kind: 'move' | 'wave',
  asn: number,
  cityKey: string,
  who: { callers: string[]; firstMs: number },
  tickMs: number,
): CityEvent => ({
  asn,
  atMs: tickMs,
  alertId: alertIdFor(`${kind}:AS${asn}`, cityKey, who.firstMs, kind),
  callers: who.callers,
});

function outcome(
  states: ReadonlyMap<string, CityArrivals>,
  byCity: ReadonlyMap<string, Arrival[]>,
  findings: readonly RareFinding[],
  tickMs: number,
  policy: ArrivalPolicy,
  defaults: AlertDefaults,
): ArrivalOutcome {
  const alerts: Alert[] = [];
  // A finding is absorbed when its caller arrived through a network they know and a move of that network holds.
  const absorbing = new Map<string, Set<number>>();
  for (const [cityKey, st] of states) absorbing.set(cityKey, new Set(st.moves.map((m) => m.asn)));
  const knownVia = new Map<string, Arrival>();
  for (const [cityKey, mine] of byCity)
    for (const a of mine) if (a.known) knownVia.set(`${a.finding.activity.caller}\u0000${cityKey}`, a);
  const kept = findings.filter((f) => {
    const key = f.observation.city.key;
    const a = knownVia.get(`${f.activity.caller}\u0000${key}`);
    const moves = absorbing.get(key);
    return !(a !== undefined && moves !== undefined && a.asns.some((asn) => moves.has(asn)));
  });
  for (const [cityKey, st] of states) {
    const mine = byCity.get(cityKey) ?? [];
    const due = [
      ...(policy.moveAlert ? st.moves.filter((m) => m.atMs === tickMs).map((m) => ['move', m] as const) : []),
      ...st.waves.filter((w) => w.atMs === tickMs).map((w) => ['wave', w] as const),
    ];
    for (const [kind, e] of due) {
      const alert = eventAlert(kind, e, mine, tickMs, policy, defaults);
      if (alert !== undefined) alerts.push(alert);
    }
  }
  return { findings: kept, absorbed: findings.length - kept.length, alerts };
}

/** The alert of a move or a wave, built from this run's arrivals through its network; it names every caller. */
function eventAlert(
  kind: 'move' | 'wave',
  e: CityEvent,
  mine: readonly Arrival[],
  tickMs: number,
  policy: ArrivalPolicy,
  defaults: AlertDefaults,
): Alert | undefined {
  const own = mine
    .filter((a) => (kind === 'move' ? a.known && a.asns.includes(e.asn) : a.isNew))
    .map((a) => a.finding);
  const f = own[0];
  if (f === undefined) return undefined;
  const base = buildAlert(own, tickMs, defaults);
  const city = f.observation.city;
  const place = [city.egress ?? city.name, city.countryName || city.country]
    .filter((p) => p !== '')
    .join(', ');
  const label = (asn: number): string => {
    const org = own.flatMap((x) => x.activity.networks ?? []).find((n) => n.asn === asn)?.org ?? '';
    return org !== '' ? `AS${asn} (${org})` : `AS${asn}`;
  };
  const network = label(e.asn);
  const networks = (e.asns ?? []).map(label).join(', ');
  const hours = kind === 'move' ? policy.moveHours : policy.waveHours;
  const names =
    e.callers.length <= 20
      ? e.callers.join(', ')
      : `${e.callers.slice(0, 19).join(', ')} …and ${e.callers.length - 19} more`;
  const summary =
    kind === 'move'
      ? `Infrastructure move: ${e.callers.length} callers (${names}) appeared in ${place}, a city new to each of them, within ${hours} hours through ${network}, a network each of them had already used. Read as one move of their egress, not ${e.callers.length} attacks; for ${policy.moveDays} days, activity there through ${network} by callers who already used it does not alert.`
      : `Credential wave: ${e.callers.length} callers (${names}) appeared in ${place}, a city new to each of them, within ${hours} hours through networks none of them had used before (${networks}): one actor with several credentials is likely. Each caller's activity is also scored on its own.`;
  return fitAlert({
    ...base,
    AlertId: e.alertId,
    AlertName: `${defaults.name}: ${kind === 'move' ? 'infrastructure move' : 'credential wave'}`,
    Severity: kind === 'move' ? 'Informational' : policy.waveSeverity,
    Description: displaySafe(summary),
    Explanation: {
      ...base.Explanation,
      summary: displaySafe(summary),
      callers: e.callers.map((c) => displaySafe(c)),
    },
  });
}
