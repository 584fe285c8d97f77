import { type Alert, type AlertDefaults, buildAlert, type RareFinding } from './alert.js';

/** What the alert ledger remembers of the last alert for one (caller, city). */
export interface LedgerEntry {
  caller: string;
  cityKey: string;
  alertId: string;
  /** Event hour of the operation that raised the alert: the cooldown runs from here. */
  alertedAtMs: number;
  score: number;
  /** Last rare activity joined to the episode (silently, within the cooldown). */
  lastActivityMs: number;
  /** Rare operations of the episode so far (bounded). */
  operations: string[];
  /** Operations already reported in an alert of the episode (the first or an update); absent in old rows. */
  reported?: string[];
  /** The episode's latest update alert: its id, event hour and operations (for idempotent re-runs). */
  update?: { alertId: string; atMs: number; operations: string[] };
  /**
   * An analyst classified one of the episode's alerts as a TruePositive (shared/pipeline/verdicts.ts): later
   * activity from this (caller, city) alerts again, one alert per new hour, linked to it by ParentAlertId.
   */
  confirmedAlertId?: string;
}

export interface EpisodePolicy {
  cooldownMs: number;
  rescoreMargin: number;
  dailyCap: number;
}

export interface EpisodeDecision {
  alerts: Alert[];
  /** Ledger rows to write (new episodes and silently joined findings). */
  ledger: LedgerEntry[];
  suppressedByCooldown: number;
  suppressedByCap: number;
}

/** Bound of the operation lists the ledger keeps per episode. */
const LEDGER_OPERATIONS = 50;

export const ledgerKey = (caller: string, cityKey: string): string => `${caller}\u0000${cityKey}`;

/**
 * Turns the rare findings of one run into alerts: one per (caller, city) episode within the cooldown, a new
 * one only when a later operation scores markedly higher, and never more than the daily cap.
 * Pure: the same findings, ledger and counts always give the same decision.
 */
export function decideAlerts(
  findings: readonly RareFinding[],
  ledger: ReadonlyMap<string, LedgerEntry>,
  /** Alerts already raised per UTC day (yyyy-mm-dd), excluding this run's. */
  alertsPerDay: ReadonlyMap<string, ReadonlySet<string>>,
  tickMs: number,
  policy: EpisodePolicy,
  defaults: AlertDefaults,
): EpisodeDecision {
  const day = new Date(tickMs).toISOString().slice(0, 10);
  const out: EpisodeDecision = { alerts: [], ledger: [], suppressedByCooldown: 0, suppressedByCap: 0 };
  const run: EpisodeRun = { today: new Set(alertsPerDay.get(day) ?? []), tickMs, policy, defaults, out };
  for (const { key, fs } of episodesByScore(findings)) decideEpisode(fs, ledger.get(key), run);
  return out;
}

/** One run's decision in the making: the alerts of today so far, the settings and what was decided. */
interface EpisodeRun {
  /** Alert ids of the tick's UTC day, this run's included as they are raised. */
  today: Set<string>;
  tickMs: number;
  policy: EpisodePolicy;
  defaults: AlertDefaults;
  out: EpisodeDecision;
}

/** The findings grouped by (caller, city), highest-scoring episodes first so the daily cap keeps the most important. */
function episodesByScore(findings: readonly RareFinding[]): { key: string; fs: RareFinding[] }[] {
  const groups = new Map<string, RareFinding[]>();
  for (const f of findings) {
    const key = ledgerKey(f.activity.caller, f.observation.city.key);
    const list = groups.get(key);
    if (list) list.push(f);
    else groups.set(key, [f]);
  }
  return [...groups.entries()]
    .map(([key, fs]) => ({ key, fs, best: Math.max(...fs.map((f) => f.rarity.score)) }))
    .sort((a, b) => b.best - a.best || a.key.localeCompare(b.key));
}

/** True when the day's alerts are at the cap and this alert is not one of them already. */
const overCap = (run: EpisodeRun, alertId: string): boolean =>
  run.today.size >= run.policy.dailyCap && !run.today.has(alertId);

/** Decides one (caller, city) episode: after a verdict, a re-run, a joined finding or a new episode. */
function decideEpisode(fs: RareFinding[], prev: LedgerEntry | undefined, run: EpisodeRun): void {
  const { tickMs, defaults, out } = run;
  const alert = buildAlert(fs, tickMs, defaults);
  // After a TruePositive verdict, activity of hours after the episode's last alert alerts again.
  const confirmed = prev?.confirmedAlertId;
  const later = prev && confirmed ? confirmedAlert(fs, prev, confirmed, tickMs, defaults) : undefined;
  if (prev && later) return alertAfterVerdict(fs, prev, later, run);
  if (prev !== undefined && prev.alertId === alert.AlertId) {
    // The same alert again (a re-run after a crash): the sink dedupes by AlertId; keep it idempotent.
    out.alerts.push(alert);
    return;
  }
  const again = prev?.update ? sameUpdate(fs, prev, tickMs, defaults) : undefined;
  if (again !== undefined) {
    out.alerts.push(again);
    return;
  }
  if (
    prev !== undefined &&
    inCooldown(fs, prev, run.policy) &&
    alert.AnomalyScore < prev.score + run.policy.rescoreMargin
  )
    return joinEpisode(fs, prev, alert, run);
  openEpisode(fs, alert, confirmed, run);
}

/** Raises the alert of activity after a TruePositive verdict (within the cap) and records it as the episode's update. */
function alertAfterVerdict(
  fs: readonly RareFinding[],
  prev: LedgerEntry,
  later: { alert: Alert; atMs: number },
  run: EpisodeRun,
): void {
  const { out } = run;
  if (overCap(run, later.alert.AlertId)) {
    out.suppressedByCap += 1;
    return;
  }
  run.today.add(later.alert.AlertId);
  out.alerts.push(later.alert);
  out.ledger.push({
    ...prev,
    lastActivityMs: Math.max(prev.lastActivityMs, lastHourOf(fs)),
    update: { alertId: later.alert.AlertId, atMs: later.atMs, operations: later.alert.Operations },
  });
}

/**
 * The episode lasts while rare activity keeps coming from this caller and city: it ends only after a cooldown
 * without any. A traveller gets one alert for the trip, not one per day or per operation.
 */
function inCooldown(fs: readonly RareFinding[], prev: LedgerEntry, policy: EpisodePolicy): boolean {
  const firstHour = Math.min(...fs.map((f) => f.observation.hourMs));
  // While the (caller, city) is in quarantine (its alert not confirmed as benign), the episode stays open: the
  // SOC has it already; only escalation (update alerts) and markedly higher scores raise alerts again.
  const inQuarantine = fs.some((f) => f.rarity.quarantinedForCaller);
  return (
    firstHour >= prev.alertedAtMs && (firstHour - prev.lastActivityMs < policy.cooldownMs || inQuarantine)
  );
}

/** Joins the findings to the open episode silently, unless new operations raise an update alert (within the cap). */
function joinEpisode(fs: readonly RareFinding[], prev: LedgerEntry, alert: Alert, run: EpisodeRun): void {
  const { out } = run;
  const joined: LedgerEntry = {
    ...prev,
    lastActivityMs: Math.max(prev.lastActivityMs, lastHourOf(fs)),
    operations: [...new Set([...prev.operations, ...alert.Operations])].slice(0, LEDGER_OPERATIONS),
  };
  const update = updateAlert(fs, prev, run.tickMs, run.policy, run.defaults);
  if (update === undefined || overCap(run, update.AlertId)) {
    if (update !== undefined) out.suppressedByCap += 1;
    out.suppressedByCooldown += 1;
    out.ledger.push(joined);
    return;
  }
  run.today.add(update.AlertId);
  out.alerts.push(update);
  out.ledger.push({
    ...joined,
    reported: [...new Set([...reportedOf(prev), ...update.Operations])].slice(0, LEDGER_OPERATIONS),
    update: { alertId: update.AlertId, atMs: updateHour(fs, update), operations: update.Operations },
  });
}

/** Raises the alert of a new episode (within the cap; linked to a confirmed alert) and opens its ledger row. */
function openEpisode(
  fs: readonly RareFinding[],
  alert: Alert,
  confirmed: string | undefined,
  run: EpisodeRun,
): void {
  const { out } = run;
  if (overCap(run, alert.AlertId)) {
    out.suppressedByCap += 1;
    return;
  }
  const triggerHour = Math.min(
    ...fs.filter((f) => f.rarity.score === alert.AnomalyScore).map((f) => f.observation.hourMs),
  );
  run.today.add(alert.AlertId);
  out.alerts.push(confirmed !== undefined ? { ...alert, ParentAlertId: confirmed } : alert);
  out.ledger.push({
    ...(confirmed !== undefined ? { confirmedAlertId: confirmed } : {}),
    caller: alert.Caller,
    cityKey: fs[0]!.observation.city.key,
    alertId: alert.AlertId,
    alertedAtMs: triggerHour,
    score: alert.AnomalyScore,
    lastActivityMs: lastHourOf(fs),
    operations: alert.Operations,
    reported: alert.Operations,
  });
}

/** Event hour of the episode's latest finding in this run. */
const lastHourOf = (fs: readonly RareFinding[]): number => Math.max(...fs.map((f) => f.observation.hourMs));

/** Operations already reported in the episode's alerts (old ledger rows: all its operations). */
const reportedOf = (l: LedgerEntry): string[] => l.reported ?? l.operations;

/** Event hour of the finding that leads an update alert. */
const updateHour = (fs: readonly RareFinding[], a: Alert): number =>
  Math.min(
    ...fs
      .filter((f) => f.observation.operation === a.Operation && f.rarity.score === a.AnomalyScore)
      .map((f) => f.observation.hourMs),
  );

/**
 * Escalation inside an open episode: rare operations new to the episode raise an update alert (linked to the
 * episode's first alert by ParentAlertId), at most one per UC_ALERT_COOLDOWN — so a campaign that stays in one
 * city still reaches the SOC when it turns to new, more dangerous operations.
 */
function updateAlert(
  fs: readonly RareFinding[],
  prev: LedgerEntry,
  tickMs: number,
  policy: EpisodePolicy,
  defaults: AlertDefaults,
): Alert | undefined {
  // New to the episode: neither reported nor joined silently so far (a traveller doing their usual work every
  // day is not escalating; an attacker turning from reading keys to role assignments is).
  const known = new Set([...reportedOf(prev), ...prev.operations]);
  const fresh = fs.filter((f) => !known.has(f.observation.operation));
  if (fresh.length === 0) return undefined;
  const lastAlertMs = Math.max(prev.alertedAtMs, prev.update?.atMs ?? 0);
  const first = Math.min(...fresh.map((f) => f.observation.hourMs));
  if (first - lastAlertMs < policy.cooldownMs) return undefined;
  return { ...buildAlert(fresh, tickMs, defaults), ParentAlertId: prev.alertId };
}

/**
 * Activity after a TruePositive verdict: the findings of hours after the episode's last alert raise a new alert
 * (ParentAlertId = the confirmed alert), whatever the cooldown — one per new hour, as each run sees new hours.
 */
function confirmedAlert(
  fs: readonly RareFinding[],
  prev: LedgerEntry,
  confirmed: string,
  tickMs: number,
  defaults: AlertDefaults,
): { alert: Alert; atMs: number } | undefined {
  const lastAlertMs = Math.max(prev.alertedAtMs, prev.update?.atMs ?? 0);
  const later = fs.filter((f) => f.observation.hourMs > lastAlertMs);
  if (later.length === 0) return undefined;
  const atMs = Math.max(...later.map((f) => f.observation.hourMs));
  return { alert: { ...buildAlert(later, tickMs, defaults), ParentAlertId: confirmed }, atMs };
}

/** The episode's latest update alert again (a re-run after a crash), when these findings rebuild it. */
function sameUpdate(
  fs: readonly RareFinding[],
  prev: LedgerEntry,
  tickMs: number,
  defaults: AlertDefaults,
): Alert | undefined {
  const ops = new Set(prev.update!.operations);
  const mine = fs.filter((f) => ops.has(f.observation.operation));
  if (mine.length === 0) return undefined;
  const a = { ...buildAlert(mine, tickMs, defaults), ParentAlertId: prev.confirmedAlertId ?? prev.alertId };
  return a.AlertId === prev.update!.alertId ? a : undefined;
}
