import { isIP } from 'node:net';

import type { Alert, RareFinding } from '../alerts/alert.js';
import type { Settings } from '../config/settings.js';
import { evaluateAlerts, type Labels } from '../demo/evaluate.js';
import { parseEgressRanges } from '../geo/egress.js';
import type { DecidedAlert, ThresholdDecision } from './decide.js';
import type { RecordedTick } from './record.js';
import type {
  AlertCity,
  DayCount,
  NoisyPair,
  Silence,
  ThresholdEvaluation,
  ThresholdResult,
} from './types.js';

export const DAY_MS = 86_400_000;

export interface Period {
  startMs: number;
  endMs: number;
  days: number;
}

/** What computing one threshold's results needs besides its decision. */
export interface MetricsContext {
  labels?: Labels;
  period: Period;
  /** The variant's settings (current values of the settings a suggestion changes). */
  settings: Settings;
  ticks: readonly RecordedTick[];
  /** The decision at any threshold (memoised by the caller): what a suggested threshold would give. */
  decide: (threshold: number) => ThresholdDecision;
  /** The decision at a threshold with one more allowlist rule: what allowing a place would give. */
  decideAllowing: (threshold: number, allowed: (f: RareFinding) => boolean) => ThresholdDecision;
  /** How many noisy pairs to list. */
  top: number;
}

/** Distinct callers sharing a few IPs for one (operation, city): a shared egress point, not travel. */
const SHARED_EGRESS_CALLERS = 3;
const SHARED_EGRESS_MAX_IPS = 8;

const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const round1 = (x: number): number => Math.round(x * 10) / 10;
const pairKey = (f: RareFinding): string => `${f.observation.operationKey}\u0000${f.observation.city.key}`;
const placeOf = (f: RareFinding): string => f.observation.city.egress ?? f.observation.city.name;

function evaluate(alerts: readonly Alert[], ctx: MetricsContext) {
  if (ctx.labels === undefined) return undefined;
  return evaluateAlerts(alerts, ctx.labels, ctx.period.startMs, ctx.period.endMs);
}

function summarise(e: ReturnType<typeof evaluateAlerts>): ThresholdEvaluation {
  const out: ThresholdEvaluation = {
    attacks: e.attacks.length,
    detected: e.detected,
    detectedIds: e.attacks.filter((a) => a.detected).map((a) => a.attack.id),
    missedIds: e.attacks.filter((a) => !a.detected).map((a) => a.attack.id),
    falseAlerts: e.falseAlerts.length,
    falseAlertsPerDay: e.falseAlertsPerDay,
  };
  if (e.medianTimeToDetectMs !== undefined)
    out.medianTimeToDetectMin = Math.round(e.medianTimeToDetectMs / 60_000);
  if (e.maxTimeToDetectMs !== undefined) out.maxTimeToDetectMin = Math.round(e.maxTimeToDetectMs / 60_000);
  return out;
}

/** Every UTC day of the period, and any day outside it that has an alert (a run just after the last event). */
function days(period: Period, alerts: readonly DecidedAlert[]): string[] {
  const set = new Set<string>();
  const first = Math.floor(period.startMs / DAY_MS) * DAY_MS;
  for (let d = first; d < Math.max(period.endMs, first + 1); d += DAY_MS) set.add(dayOf(d));
  for (const a of alerts) set.add(dayOf(a.tickMs));
  return [...set].sort();
}

/** The largest round value below `threshold` (for score caps that must keep a score under it). */
function below(threshold: number): number | undefined {
  const v = Math.ceil(threshold) - 1;
  return v >= 0 ? v : undefined;
}

interface Candidate {
  silence: Silence;
  /** Labelled attacks detected at the threshold that this change would lose (0 when unknown or none). */
  lost: number;
}

/**
 * The one setting change that silences a noisy (operation, city) at `threshold`, from the most specific to the
 * broadest: a score cap that already applies to it (egress range, familiar city), a shared egress point (many
 * callers, few IPs) as an egress range, a higher threshold (only if it loses no detected attack), an allowed
 * city. With labels, a change that would lose a detected attack is only proposed when nothing else silences
 * the pair, and `why` says what it costs.
 */
function silenceFor(
  threshold: number,
  pair: readonly DecidedAlert[],
  pairFindings: readonly RareFinding[],
  decision: ThresholdDecision,
  attackIdsByAlert: ReadonlyMap<string, string[]>,
  detectedAtThreshold: readonly string[],
  ctx: MetricsContext,
): Silence | undefined {
  const s = ctx.settings;
  /** Labelled attacks detected at the threshold all of whose alerts the change would silence. */
  const lostBy = (silenced: (a: DecidedAlert) => boolean): string[] => {
    const counts = new Map<string, { silenced: number; all: number }>();
    for (const a of decision.alerts) {
      for (const id of attackIdsByAlert.get(a.alert.AlertId) ?? []) {
        const c = counts.get(id) ?? { silenced: 0, all: 0 };
        c.all += 1;
        if (silenced(a)) c.silenced += 1;
        counts.set(id, c);
      }
    }
    return [...counts].filter(([, c]) => c.silenced === c.all).map(([id]) => id);
  };
  const costNote = (ids: readonly string[]) =>
    ids.length > 0 ? ` Loses labelled attack(s) ${ids.join(', ')}.` : '';
  const top = pair[0]!.top;
  const city = top.observation.city;
  const place = placeOf(top);
  const atT = pairFindings.filter((f) => f.rarity.score >= threshold);
  const candidates: Candidate[] = [];
  const cap = below(threshold);

  if (city.egress !== undefined && cap !== undefined) {
    const lost = lostBy((a) => a.top.observation.city.egress !== undefined);
    candidates.push({
      lost: lost.length,
      silence: {
        setting: 'UC_EGRESS_SCORE_CAP',
        value: String(cap),
        assignment: `UC_EGRESS_SCORE_CAP=${cap}`,
        why: `${place} is a listed egress range: its scores are capped at UC_EGRESS_SCORE_CAP (now ${s.UC_EGRESS_SCORE_CAP}); a cap below the threshold never alerts (every egress range).${costNote(lost)}`,
      },
    });
  }
  if (cap !== undefined && atT.length > 0 && atT.every((f) => f.rarity.familiarToCaller)) {
    const lost = lostBy((a) => a.top.rarity.familiarToCaller);
    candidates.push({
      lost: lost.length,
      silence: {
        setting: 'UC_FAMILIAR_SCORE_CAP',
        value: String(cap),
        assignment: `UC_FAMILIAR_SCORE_CAP=${cap}`,
        why: `every alerting caller has worked from ${place} on ${s.UC_ESTABLISH_DAYS}+ days: familiar cities are capped at UC_FAMILIAR_SCORE_CAP (now ${s.UC_FAMILIAR_SCORE_CAP}); below the threshold they never alert (for every caller).${costNote(lost)}`,
      },
    });
  }
  const callers = new Set(atT.map((f) => f.activity.caller).filter((c) => c !== ''));
  const ips = [...new Set(atT.flatMap((f) => f.activity.ips))].filter((ip) => isIP(ip) !== 0).sort();
  if (
    city.egress === undefined &&
    callers.size >= SHARED_EGRESS_CALLERS &&
    ips.length > 0 &&
    ips.length <= SHARED_EGRESS_MAX_IPS &&
    s.UC_EGRESS_SCORE_CAP < threshold
  ) {
    const label = `Egress-${place}`.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 64);
    const entry = `${label}=${ips.map((ip) => `${ip}/${isIP(ip) === 6 ? 128 : 32}`).join(' ')}`;
    const value = s.UC_EGRESS_RANGES.trim() === '' ? entry : `${s.UC_EGRESS_RANGES.trim()};${entry}`;
    let valid = true;
    try {
      parseEgressRanges(value);
    } catch {
      valid = false;
    }
    if (valid) {
      const listed = new Set(ips);
      const lost = lostBy((a) => a.alert.SrcIpAddrs.every((ip) => listed.has(ip)));
      candidates.push({
        lost: lost.length,
        silence: {
          setting: 'UC_EGRESS_RANGES',
          value,
          assignment: `UC_EGRESS_RANGES=${value}`,
          why: `${callers.size} callers from ${ips.length} IP(s) in ${place}: a shared egress point (VPN, proxy, CI). Listed, it is keyed as ${label} and capped at UC_EGRESS_SCORE_CAP=${s.UC_EGRESS_SCORE_CAP}, below the threshold. Widen the /32s to the real range.${costNote(lost)}`,
        },
      });
    }
  }
  /** What the whole tenant gets with a change: alerts, and with labels the attacks still detected. */
  const effectOf = (d: ThresholdDecision, label: string) => {
    const e = evaluate(
      d.alerts.map((a) => a.alert),
      ctx,
    );
    const still = new Set(e?.attacks.filter((a) => a.detected).map((a) => a.attack.id) ?? []);
    const lost = e !== undefined ? detectedAtThreshold.filter((id) => !still.has(id)) : [];
    const at: NonNullable<Silence['at']> = {
      alerts: d.alerts.length,
      alertsPerDay: d.alerts.length / ctx.period.days,
    };
    if (e !== undefined) {
      at.detected = e.detected;
      at.attacks = e.attacks.length;
    }
    const text =
      `${label}: ${d.alerts.length} alert(s) in all (${at.alertsPerDay.toFixed(2)}/day)` +
      (e !== undefined ? `, ${e.detected}/${e.attacks.length} attacks detected.` : '.');
    return { at, lost, text };
  };
  const maxAll = Math.max(...pairFindings.map((f) => f.rarity.score));
  if (maxAll < 100) {
    const v = round1(maxAll + 0.1);
    const { at, lost, text } = effectOf(ctx.decide(v), `At ${v}`);
    candidates.push({
      lost: lost.length,
      silence: {
        setting: 'UC_ALERT_THRESHOLD',
        value: String(v),
        assignment: `UC_ALERT_THRESHOLD=${v}`,
        why: `its highest score is ${maxAll}: the smallest threshold above it silences it (and every weaker alert of any pair). ${text}${costNote(lost)}`,
        at,
      },
    });
  }
  if (city.geonameId !== undefined && city.egress === undefined) {
    const id = String(city.geonameId);
    const current = s.UC_ALLOW_CITIES;
    const value = current.includes(id) ? current.join(',') : [...current, id].join(',');
    const { at, lost, text } = effectOf(
      ctx.decideAllowing(threshold, (f) => f.observation.city.key === city.key),
      'Allowed',
    );
    candidates.push({
      lost: lost.length,
      silence: {
        setting: 'UC_ALLOW_CITIES',
        value,
        assignment: `UC_ALLOW_CITIES=${value}`,
        why: `allow ${place} (geoname ${id}): no alert from it for any operation or caller; baselines still learn it. ${text}${costNote(lost)}`,
        at,
      },
    });
  }
  if (candidates.length === 0) return undefined;
  const best = Math.min(...candidates.map((c) => c.lost));
  return candidates.find((c) => c.lost === best)!.silence;
}

/** The numbers of one threshold: alerts per day, who and what was alerted, noisy pairs, detection. */
export function thresholdResult(
  decision: ThresholdDecision,
  currentThreshold: number,
  ctx: MetricsContext,
): ThresholdResult {
  const alerts = decision.alerts.map((a) => a.alert);
  const ev = evaluate(alerts, ctx);
  const attackIdsByAlert = new Map<string, string[]>();
  for (const r of ev?.attacks ?? []) {
    for (const id of r.alertIds) attackIdsByAlert.set(id, [...(attackIdsByAlert.get(id) ?? []), r.attack.id]);
  }
  const isFalse = (a: Alert) => ctx.labels !== undefined && !attackIdsByAlert.has(a.AlertId);

  const perDay: DayCount[] = days(ctx.period, decision.alerts).map((day) => ({
    day,
    alerts: 0,
    ...(ctx.labels !== undefined ? { falseAlerts: 0 } : {}),
  }));
  const index = new Map(perDay.map((d, i) => [d.day, i]));
  for (const a of decision.alerts) {
    const d = perDay[index.get(dayOf(a.tickMs))!]!;
    d.alerts += 1;
    if (isFalse(a.alert)) d.falseAlerts = (d.falseAlerts ?? 0) + 1;
  }

  // Noisy pairs: (leading operation, place) of each alert.
  const pairs = new Map<string, DecidedAlert[]>();
  for (const a of decision.alerts) {
    const k = pairKey(a.top);
    pairs.set(k, [...(pairs.get(k) ?? []), a]);
  }
  const findingsByPair = new Map<string, RareFinding[]>();
  for (const t of ctx.ticks) {
    for (const f of t.findings) {
      const k = pairKey(f);
      if (!pairs.has(k)) continue;
      const list = findingsByPair.get(k);
      if (list) list.push(f);
      else findingsByPair.set(k, [f]);
    }
  }
  const ranked = [...pairs.entries()]
    .map(([key, list]) => ({
      key,
      list,
      noise: list.filter((a) => ctx.labels === undefined || isFalse(a.alert)).length,
      max: Math.max(...list.map((a) => a.alert.AnomalyScore)),
      op: list[0]!.top.observation.operation,
    }))
    .filter((p) => p.noise > 0)
    .sort(
      (a, b) => b.noise - a.noise || b.max - a.max || a.op.localeCompare(b.op) || a.key.localeCompare(b.key),
    )
    .slice(0, ctx.top);
  const topPairs: NoisyPair[] = ranked.map(({ key, list, max }) => {
    const f = list[0]!.top;
    const callers = [...new Set(list.map((a) => a.alert.Caller))].sort();
    const p: NoisyPair = {
      operation: f.observation.operation,
      cityKey: f.observation.city.key,
      city: placeOf(f),
      country: f.observation.city.country,
      alerts: list.length,
      callers: callers.slice(0, 5),
      callerCount: callers.length,
      maxScore: max,
    };
    if (ctx.labels !== undefined) p.falseAlerts = list.filter((a) => isFalse(a.alert)).length;
    const silence = silenceFor(
      decision.threshold,
      list,
      findingsByPair.get(key) ?? [],
      decision,
      attackIdsByAlert,
      ev?.attacks.filter((a) => a.detected).map((a) => a.attack.id) ?? [],
      ctx,
    );
    if (silence !== undefined) p.silence = silence;
    return p;
  });

  const cities = new Map<string, AlertCity>();
  for (const a of decision.alerts) {
    const c = a.top.observation.city;
    let e = cities.get(c.key);
    if (e === undefined) {
      e = {
        cityKey: c.key,
        city: placeOf(a.top),
        country: c.country,
        latitude: c.latitude,
        longitude: c.longitude,
        alerts: 0,
        ...(ctx.labels !== undefined ? { attackAlerts: 0 } : {}),
      };
      cities.set(c.key, e);
    }
    e.alerts += 1;
    if (ctx.labels !== undefined && !isFalse(a.alert)) e.attackAlerts = (e.attackAlerts ?? 0) + 1;
  }

  const out: ThresholdResult = {
    threshold: decision.threshold,
    current: decision.threshold === currentThreshold,
    alerts: alerts.length,
    alertsPerDay: alerts.length / ctx.period.days,
    perDay,
    callers: new Set(alerts.map((a) => a.Caller)).size,
    operations: new Set(alerts.flatMap((a) => a.Operations.map((o) => o.toLowerCase()))).size,
    cities: cities.size,
    suppressedByCooldown: decision.suppressedByCooldown,
    suppressedByCap: decision.suppressedByCap,
    allowlisted: decision.allowlisted,
    topPairs,
    alertCities: [...cities.values()].sort(
      (a, b) => b.alerts - a.alerts || a.cityKey.localeCompare(b.cityKey),
    ),
    alertIds: alerts.map((a) => a.AlertId),
  };
  if (ev !== undefined) out.evaluation = summarise(ev);
  return out;
}
