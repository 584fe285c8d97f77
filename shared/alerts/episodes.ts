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
  const groups = new Map<string, RareFinding[]>();
  for (const f of findings) {
    const key = ledgerKey(f.activity.caller, f.observation.city.key);
    const list = groups.get(key);
    if (list) list.push(f);
    else groups.set(key, [f]);
  }
  const day = new Date(tickMs).toISOString().slice(0, 10);
  const today = new Set(alertsPerDay.get(day) ?? []);
  const out: EpisodeDecision = { alerts: [], ledger: [], suppressedByCooldown: 0, suppressedByCap: 0 };

  // Highest-scoring episodes first, so the daily cap keeps the most important ones.
  const ordered = [...groups.entries()]
    .map(([key, fs]) => ({ key, fs, best: Math.max(...fs.map((f) => f.rarity.score)) }))
    .sort((a, b) => b.best - a.best || a.key.localeCompare(b.key));

  for (const { key, fs } of ordered) {
    const alert = buildAlert(fs, tickMs, defaults);
    const triggerHour = Math.min(
      ...fs.filter((f) => f.rarity.score === alert.AnomalyScore).map((f) => f.observation.hourMs),
    );
    const lastHour = Math.max(...fs.map((f) => f.observation.hourMs));
    const prev = ledger.get(key);
    if (prev !== undefined && prev.alertId === alert.AlertId) {
      // The same alert again (a re-run after a crash): the sink dedupes by AlertId; keep it idempotent.
      out.alerts.push(alert);
      continue;
    }
    // The episode lasts while rare activity keeps coming from this caller and city: it ends only after a
    // cooldown without any. A traveller gets one alert for the trip, not one per day or per operation.
    const firstHour = Math.min(...fs.map((f) => f.observation.hourMs));
    const inCooldown =
      prev !== undefined &&
      firstHour >= prev.alertedAtMs &&
      firstHour - prev.lastActivityMs < policy.cooldownMs;
    if (inCooldown && alert.AnomalyScore < prev.score + policy.rescoreMargin) {
      out.suppressedByCooldown += 1;
      out.ledger.push({
        ...prev,
        lastActivityMs: Math.max(prev.lastActivityMs, lastHour),
        operations: [...new Set([...prev.operations, ...alert.Operations])].slice(0, 50),
      });
      continue;
    }
    if (today.size >= policy.dailyCap && !today.has(alert.AlertId)) {
      out.suppressedByCap += 1;
      continue;
    }
    today.add(alert.AlertId);
    out.alerts.push(alert);
    out.ledger.push({
      caller: alert.Caller,
      cityKey: fs[0]!.observation.city.key,
      alertId: alert.AlertId,
      alertedAtMs: triggerHour,
      score: alert.AnomalyScore,
      lastActivityMs: lastHour,
      operations: alert.Operations,
    });
  }
  return out;
}
