import { type Alert, type AlertDefaults, alertIdFor, type RareFinding } from '../alerts/alert.js';
import { decideAlerts, type EpisodePolicy, type LedgerEntry, ledgerKey } from '../alerts/episodes.js';
import type { RecordedTick } from './record.js';

/** An alert of the backtest with the finding that leads it (its operation, city and caller). */
export interface DecidedAlert {
  alert: Alert;
  top: RareFinding;
  tickMs: number;
}

export interface ThresholdDecision {
  threshold: number;
  /** Findings at or above the threshold that an allowlist kept from the decision. */
  allowlisted: number;
  /** Distinct alerts (by AlertId, first raise kept: what a sink holds), in the order they were raised. */
  alerts: DecidedAlert[];
  suppressedByCooldown: number;
  suppressedByCap: number;
}

const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Why a finding must not alert (an allowlist, as `Pipeline.suppress`), or undefined. */
export type Suppress = (finding: RareFinding) => string | undefined;

/**
 * Re-runs the production alert decision (`decideAlerts`) at `threshold` over recorded findings, run by run in
 * order, with the alert ledger and the daily counts kept in memory exactly as a replay keeps them in its
 * store, and allowlists (`suppress`) applied as the pipeline applies them. Scores and baselines depend on
 * neither the threshold nor allowlists, so this gives the alerts a replay with UC_ALERT_THRESHOLD=threshold
 * (and the same allowlists) would give, as long as `threshold` is not below the recording's floor.
 */
export function decideAt(
  ticks: readonly RecordedTick[],
  threshold: number,
  policy: EpisodePolicy,
  defaults: AlertDefaults,
  suppress?: Suppress,
): ThresholdDecision {
  const ledger = new Map<string, LedgerEntry>();
  const perDay = new Map<string, Set<string>>();
  const seen = new Set<string>();
  const out: ThresholdDecision = {
    threshold,
    allowlisted: 0,
    alerts: [],
    suppressedByCooldown: 0,
    suppressedByCap: 0,
  };
  for (const { tickMs, findings } of ticks) {
    let fs = findings.filter((f) => f.rarity.score >= threshold);
    if (suppress !== undefined) {
      const n = fs.length;
      fs = fs.filter((f) => suppress(f) === undefined);
      out.allowlisted += n - fs.length;
    }
    if (fs.length === 0) continue;
    const d = decideAlerts(fs, ledger, perDay, tickMs, policy, defaults);
    out.suppressedByCooldown += d.suppressedByCooldown;
    out.suppressedByCap += d.suppressedByCap;
    for (const l of d.ledger) ledger.set(ledgerKey(l.caller, l.cityKey), l);
    if (d.alerts.length === 0) continue;
    const day = dayOf(tickMs);
    const today = perDay.get(day) ?? new Set<string>();
    perDay.set(day, today);
    // The finding each alert is named after (its id is derived from caller, city, hour and operation).
    const byId = new Map<string, RareFinding>();
    for (const f of fs) {
      const id = alertIdFor(
        f.activity.caller,
        f.observation.city.key,
        f.observation.hourMs,
        f.observation.operationKey,
      );
      if (!byId.has(id)) byId.set(id, f);
    }
    for (const alert of d.alerts) {
      today.add(alert.AlertId);
      if (seen.has(alert.AlertId)) continue;
      seen.add(alert.AlertId);
      const top = byId.get(alert.AlertId);
      if (top === undefined) throw new Error(`backtest: no finding for alert ${alert.AlertId}`);
      out.alerts.push({ alert, top, tickMs });
    }
  }
  return out;
}
