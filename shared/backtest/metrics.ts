import { isIP } from 'node:net';

import type { Alert, RareFinding } from '../alerts/alert.js';
import type { Settings } from '../config/settings.js';
import { evaluateAlerts, type Labels } from '../demo/evaluate.js';
import { parseEgressRanges } from '../geo/egress.js';
import type { DecidedAlert, ThresholdDecision } from './decide.js';
import { allowRulesFor, PROPOSED_FOR, type ProposedRule } from './narrowest.js';
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

/** What every candidate of one pair needs. */
interface PairContext {
  threshold: number;
  pair: readonly DecidedAlert[];
  /** The pair's alerts to silence: with labels the false ones, else all. */
  noisy: readonly DecidedAlert[];
  /** The pair's findings at or above the threshold. */
  atT: readonly RareFinding[];
  /** The pair's highest score at any threshold. */
  maxAll: number;
  /** Every finding at or above the threshold from the pair's city. */
  cityFindings: readonly RareFinding[];
  decision: ThresholdDecision;
  attackIdsByAlert: ReadonlyMap<string, string[]>;
  detectedAtThreshold: readonly string[];
  ctx: MetricsContext;
  /** The pair's place as people name it. */
  place: string;
}

const costNote = (ids: readonly string[]) =>
  ids.length > 0 ? ` Loses labelled attack(s) ${ids.join(', ')}.` : '';

/** Labelled attacks detected at the threshold all of whose alerts the change would silence. */
function lostBy(p: PairContext, silenced: (a: DecidedAlert) => boolean): string[] {
  const counts = new Map<string, { silenced: number; all: number }>();
  for (const a of p.decision.alerts) {
    for (const id of p.attackIdsByAlert.get(a.alert.AlertId) ?? []) {
      const c = counts.get(id) ?? { silenced: 0, all: 0 };
      c.all += 1;
      if (silenced(a)) c.silenced += 1;
      counts.set(id, c);
    }
  }
  return [...counts].filter(([, c]) => c.silenced === c.all).map(([id]) => id);
}

/** What the whole tenant gets with a change: alerts, and with labels the attacks still detected. */
function effectOf(p: PairContext, d: ThresholdDecision, label: string) {
  const e = evaluate(
    d.alerts.map((a) => a.alert),
    p.ctx,
  );
  const still = new Set(e?.attacks.filter((a) => a.detected).map((a) => a.attack.id) ?? []);
  const lost = e !== undefined ? p.detectedAtThreshold.filter((id) => !still.has(id)) : [];
  const at: NonNullable<Silence['at']> = {
    alerts: d.alerts.length,
    alertsPerDay: d.alerts.length / p.ctx.period.days,
  };
  if (e !== undefined) {
    at.detected = e.detected;
    at.attacks = e.attacks.length;
  }
  const text =
    `${label}: ${d.alerts.length} alert(s) in all (${at.alertsPerDay.toFixed(2)}/day)` +
    (e !== undefined ? `, ${e.detected}/${e.attacks.length} attacks detected.` : '.');
  return { at, lost, text };
}

/** Score caps that already apply to the pair: its egress range, or every caller's familiar city. */
function capCandidates(p: PairContext): { egress?: Candidate; familiar?: Candidate } {
  const s = p.ctx.settings;
  const cap = below(p.threshold);
  if (cap === undefined) return {};
  const out: { egress?: Candidate; familiar?: Candidate } = {};
  if (p.pair[0]!.top.observation.city.egress !== undefined) {
    const lost = lostBy(p, (a) => a.top.observation.city.egress !== undefined);
    out.egress = {
      lost: lost.length,
      silence: {
        setting: 'UC_EGRESS_SCORE_CAP',
        value: String(cap),
        assignment: `UC_EGRESS_SCORE_CAP=${cap}`,
        why: `${p.place} is a listed egress range: its scores are capped at UC_EGRESS_SCORE_CAP (now ${s.UC_EGRESS_SCORE_CAP}); a cap below the threshold never alerts (every egress range).${costNote(lost)}`,
      },
    };
  }
  if (p.atT.length > 0 && p.atT.every((f) => f.rarity.familiarToCaller)) {
    const lost = lostBy(p, (a) => a.top.rarity.familiarToCaller);
    out.familiar = {
      lost: lost.length,
      silence: {
        setting: 'UC_FAMILIAR_SCORE_CAP',
        value: String(cap),
        assignment: `UC_FAMILIAR_SCORE_CAP=${cap}`,
        why: `every alerting caller has worked from ${p.place} on ${s.UC_ESTABLISH_DAYS}+ days: familiar cities are capped at UC_FAMILIAR_SCORE_CAP (now ${s.UC_FAMILIAR_SCORE_CAP}); below the threshold they never alert (for every caller).${costNote(lost)}`,
      },
    };
  }
  return out;
}

/** A shared egress point (many callers, few IPs) listed as an egress range. */
function sharedEgressCandidate(p: PairContext): Candidate | undefined {
  const s = p.ctx.settings;
  const callers = new Set(p.atT.map((f) => f.activity.caller).filter((c) => c !== ''));
  const ips = [...new Set(p.atT.flatMap((f) => f.activity.ips))].filter((ip) => isIP(ip) !== 0).sort();
  if (
    p.pair[0]!.top.observation.city.egress !== undefined ||
    callers.size < SHARED_EGRESS_CALLERS ||
    ips.length === 0 ||
    ips.length > SHARED_EGRESS_MAX_IPS ||
    s.UC_EGRESS_SCORE_CAP >= p.threshold
  )
    return undefined;
  const label = `Egress-${p.place}`.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 64);
  const entry = `${label}=${ips.map((ip) => `${ip}/${isIP(ip) === 6 ? 128 : 32}`).join(' ')}`;
  const value = s.UC_EGRESS_RANGES.trim() === '' ? entry : `${s.UC_EGRESS_RANGES.trim()};${entry}`;
  try {
    parseEgressRanges(value);
  } catch {
    return undefined;
  }
  const listed = new Set(ips);
  const lost = lostBy(p, (a) => a.alert.SrcIpAddrs.every((ip) => listed.has(ip)));
  return {
    lost: lost.length,
    silence: {
      setting: 'UC_EGRESS_RANGES',
      value,
      assignment: `UC_EGRESS_RANGES=${value}`,
      why: `${callers.size} callers from ${ips.length} IP(s) in ${p.place}: a shared egress point (VPN, proxy, CI). Listed, it is keyed as ${label} and capped at UC_EGRESS_SCORE_CAP=${s.UC_EGRESS_SCORE_CAP}, below the threshold. Widen the /32s to the real range.${costNote(lost)}`,
    },
  };
}

/** The smallest threshold above the pair's highest score. */
function thresholdCandidate(p: PairContext): Candidate | undefined {
  if (p.maxAll >= 100) return undefined;
  const v = round1(p.maxAll + 0.1);
  const { at, lost, text } = effectOf(p, p.ctx.decide(v), `At ${v}`);
  return {
    lost: lost.length,
    silence: {
      setting: 'UC_ALERT_THRESHOLD',
      value: String(v),
      assignment: `UC_ALERT_THRESHOLD=${v}`,
      why: `its highest score is ${p.maxAll}: the smallest threshold above it silences it (and every weaker alert of any pair). ${text}${costNote(lost)}`,
      at,
    },
  };
}

/** The whole city allowed (UC_ALLOW_CITIES): only proposed when many callers of many operations alert from it. */
function cityCandidate(p: PairContext): Candidate | undefined {
  const city = p.pair[0]!.top.observation.city;
  if (city.geonameId === undefined || city.egress !== undefined) return undefined;
  const id = String(city.geonameId);
  const current = p.ctx.settings.UC_ALLOW_CITIES;
  const value = current.includes(id) ? current.join(',') : [...current, id].join(',');
  const { at, lost, text } = effectOf(
    p,
    p.ctx.decideAllowing(p.threshold, (f) => f.observation.city.key === city.key),
    'Allowed',
  );
  return {
    lost: lost.length,
    silence: {
      setting: 'UC_ALLOW_CITIES',
      value,
      assignment: `UC_ALLOW_CITIES=${value}`,
      why: `${new Set(p.cityFindings.map((f) => f.activity.caller)).size} callers of ${new Set(p.cityFindings.map((f) => f.observation.operationKey)).size} operations alert from ${p.place}: allow the whole city (geoname ${id}; or \`baseline allow city ${id} --for ${PROPOSED_FOR}\`), no alert from it for any operation or caller; baselines still learn it. ${text}${costNote(lost)}`,
      at,
    },
  };
}

/**
 * An allow-table rule, when it does silence the pair's noisy callers there (decided again with it, matched by the
 * allow table's code).
 */
function ruleCandidate(p: PairContext, r: ProposedRule): Candidate | undefined {
  const d = p.ctx.decideAllowing(p.threshold, r.allows);
  const key = pairKey(p.pair[0]!.top);
  const callers = new Set(p.noisy.map((a) => a.alert.Caller));
  if (d.alerts.some((a) => pairKey(a.top) === key && callers.has(a.alert.Caller))) return undefined;
  const { at, lost, text } = effectOf(p, d, 'Allowed');
  return {
    lost: lost.length,
    silence: {
      setting: `baseline allow ${r.kind}`,
      value: r.value,
      assignment: r.command,
      why: `${r.scope} ${text}${costNote(lost)}`,
      at,
      rule: { kind: r.kind, value: r.value },
    },
  };
}

/**
 * The narrowest change that silences a noisy (operation, city) at `threshold`. By the shape of its alerts: one
 * caller → an allow rule for that caller in that city (or on their one network, when their alerts span cities
 * through it); several callers of the operation → a shared egress range when they come from a few IPs, else the
 * operation in that city; then score caps that already apply (egress range, familiar city) and a higher threshold;
 * the whole city only when many callers of many operations alert from it (then first, after a shared egress
 * range). With labels, a change that would lose a detected attack is only proposed when nothing else silences
 * the pair, and `why` says what it costs.
 */
function silenceFor(p: PairContext): Silence | undefined {
  const { rules, cityWide } = allowRulesFor(p.noisy, p.decision, p.cityFindings);
  const ruled = (kinds: readonly string[]) =>
    rules.filter((r) => kinds.includes(r.kind)).map((r) => ruleCandidate(p, r));
  const byCaller = ruled(['caller+network', 'caller+city']);
  const byOperation = ruled(['operation+city']);
  const caps = capCandidates(p);
  const shared = sharedEgressCandidate(p);
  const rest = [caps.egress, caps.familiar, thresholdCandidate(p)];
  const ordered = cityWide
    ? [shared, cityCandidate(p), ...byCaller, ...byOperation, ...rest]
    : [...byCaller, shared, ...byOperation, ...rest];
  const candidates = ordered.filter((c): c is Candidate => c !== undefined);
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
  const attackIdsByAlert = attackIdsByAlertOf(ev);
  const isFalse = (a: Alert) => ctx.labels !== undefined && !attackIdsByAlert.has(a.AlertId);
  const perDay = alertsPerDay(decision.alerts, ctx, isFalse);
  const pairs = alertsByPair(decision.alerts);
  const found = findingsNear(pairs, decision, ctx);
  const topPairs = noisyPairs(pairs, { decision, ctx, ev, attackIdsByAlert, isFalse, ...found });
  const cities = alertCities(decision.alerts, ctx, isFalse);
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

/** The findings the noisy pairs are judged by: those of each alerted pair, and those at or above the threshold per alerted city. */
interface PairFindings {
  findingsByPair: Map<string, RareFinding[]>;
  findingsByCity: Map<string, RareFinding[]>;
}

/** What each noisy pair's row is computed from besides its alerts. */
interface PairSources extends PairFindings {
  decision: ThresholdDecision;
  ctx: MetricsContext;
  ev: ReturnType<typeof evaluate>;
  attackIdsByAlert: Map<string, string[]>;
  isFalse: (a: Alert) => boolean;
}

/** The labelled attacks each alert detected, by alert id. */
function attackIdsByAlertOf(ev: ReturnType<typeof evaluate>): Map<string, string[]> {
  const attackIdsByAlert = new Map<string, string[]>();
  for (const r of ev?.attacks ?? []) {
    for (const id of r.alertIds) attackIdsByAlert.set(id, [...(attackIdsByAlert.get(id) ?? []), r.attack.id]);
  }
  return attackIdsByAlert;
}

/** Alerts (and, with labels, false alerts) on every day of the period. */
function alertsPerDay(
  alerts: readonly DecidedAlert[],
  ctx: MetricsContext,
  isFalse: (a: Alert) => boolean,
): DayCount[] {
  const perDay: DayCount[] = days(ctx.period, alerts).map((day) => ({
    day,
    alerts: 0,
    ...(ctx.labels !== undefined ? { falseAlerts: 0 } : {}),
  }));
  const index = new Map(perDay.map((d, i) => [d.day, i]));
  for (const a of alerts) {
    const d = perDay[index.get(dayOf(a.tickMs))!]!;
    d.alerts += 1;
    if (isFalse(a.alert)) d.falseAlerts = (d.falseAlerts ?? 0) + 1;
  }
  return perDay;
}

/** Noisy pairs: the alerts of each (leading operation, place). */
function alertsByPair(alerts: readonly DecidedAlert[]): Map<string, DecidedAlert[]> {
  const pairs = new Map<string, DecidedAlert[]>();
  for (const a of alerts) {
    const k = pairKey(a.top);
    pairs.set(k, [...(pairs.get(k) ?? []), a]);
  }
  return pairs;
}

/** Every recorded finding of an alerted pair, and those at or above the threshold in an alerted city. */
function findingsNear(
  pairs: ReadonlyMap<string, DecidedAlert[]>,
  decision: ThresholdDecision,
  ctx: MetricsContext,
): PairFindings {
  const findingsByPair = new Map<string, RareFinding[]>();
  const findingsByCity = new Map<string, RareFinding[]>(
    decision.alerts.map((a) => [a.top.observation.city.key, []]),
  );
  for (const t of ctx.ticks) {
    for (const f of t.findings) {
      const byCity = findingsByCity.get(f.observation.city.key);
      if (byCity !== undefined && f.rarity.score >= decision.threshold) byCity.push(f);
      const k = pairKey(f);
      if (!pairs.has(k)) continue;
      const list = findingsByPair.get(k);
      if (list) list.push(f);
      else findingsByPair.set(k, [f]);
    }
  }
  return { findingsByPair, findingsByCity };
}

/** The noisiest pairs (most false alerts, or alerts without labels), up to `ctx.top`, each with its silence. */
function noisyPairs(pairs: ReadonlyMap<string, DecidedAlert[]>, s: PairSources): NoisyPair[] {
  const { ctx, isFalse } = s;
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
  return ranked.map(({ key, list, max }) => noisyPair(key, list, max, s));
}

/** One noisy pair's row: where, who, how many alerts, and the narrowest way to silence it. */
function noisyPair(key: string, list: readonly DecidedAlert[], max: number, s: PairSources): NoisyPair {
  const { decision, ctx, ev, isFalse } = s;
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
  const findings = s.findingsByPair.get(key) ?? [];
  const silence = silenceFor({
    threshold: decision.threshold,
    pair: list,
    noisy: list.filter((a) => ctx.labels === undefined || isFalse(a.alert)),
    atT: findings.filter((x) => x.rarity.score >= decision.threshold),
    maxAll: Math.max(...findings.map((x) => x.rarity.score)),
    cityFindings: s.findingsByCity.get(f.observation.city.key) ?? [],
    decision,
    attackIdsByAlert: s.attackIdsByAlert,
    detectedAtThreshold: ev?.attacks.filter((a) => a.detected).map((a) => a.attack.id) ?? [],
    ctx,
    place: placeOf(f),
  });
  if (silence !== undefined) p.silence = silence;
  return p;
}

/** The alerted cities with their alerts (and, with labels, how many were attacks), in first-alert order. */
function alertCities(
  alerts: readonly DecidedAlert[],
  ctx: MetricsContext,
  isFalse: (a: Alert) => boolean,
): Map<string, AlertCity> {
  const cities = new Map<string, AlertCity>();
  for (const a of alerts) {
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
  return cities;
}
