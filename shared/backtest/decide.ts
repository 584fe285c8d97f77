import { type Alert, type AlertDefaults, alertIdFor, type RareFinding } from '../alerts/alert.js';
import { decideAlerts, type EpisodePolicy, type LedgerEntry, ledgerKey } from '../alerts/episodes.js';
import type { Verdict } from '../pipeline/verdicts.js';
import { DAY_MS } from '../scoring/model.js';
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
  /** Analysts' verdicts (`--verdicts FILE`), applied as the timer applies them: see VerdictRules. */
  verdicts?: { list: readonly Verdict[]; allowDays: number },
): ThresholdDecision {
  const ledger = new Map<string, LedgerEntry>();
  const rules = verdicts ? new VerdictRules(verdicts.list, verdicts.allowDays) : undefined;
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
    rules?.due(tickMs, ledger);
    if (suppress !== undefined || rules !== undefined) {
      const n = fs.length;
      fs = fs.filter((f) => suppress?.(f) === undefined && !rules?.allows(f));
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
      rules?.raised(alert.AlertId, top);
    }
  }
  return out;
}

/**
 * Verdicts in the backtest's in-memory decision, due at their ClosedTime: a benign one allows the alert's (caller,
 * city) until UC_VERDICT_ALLOW_DAYS later, a TruePositive marks the episode confirmed in the ledger (later hours
 * alert again). Scores are recorded once, so a confirmed quarantine's effect on later scores is not simulated.
 */
class VerdictRules {
  private readonly pending: Verdict[];
  private readonly byAlert = new Map<string, { caller: string; cityKey: string }>();
  private readonly allowedUntil = new Map<string, number>();

  constructor(
    verdicts: readonly Verdict[],
    private readonly allowDays: number,
  ) {
    this.pending = [...verdicts].sort((a, b) => a.closedTimeMs - b.closedTimeMs);
  }

  raised(alertId: string, top: RareFinding): void {
    this.byAlert.set(alertId, { caller: top.activity.caller, cityKey: top.observation.city.key });
  }

  due(tickMs: number, ledger: Map<string, LedgerEntry>): void {
    while (this.pending.length > 0 && this.pending[0]!.closedTimeMs <= tickMs) {
      const v = this.pending.shift()!;
      const a = this.byAlert.get(v.alertId);
      if (a === undefined || v.classification === 'Undetermined') continue;
      const key = ledgerKey(a.caller, a.cityKey);
      const entry = ledger.get(key);
      if (v.classification === 'TruePositive') {
        if (entry) ledger.set(key, { ...entry, confirmedAlertId: v.alertId });
        continue;
      }
      const until = this.allowDays > 0 ? v.closedTimeMs + this.allowDays * DAY_MS : Number.MAX_SAFE_INTEGER;
      this.allowedUntil.set(`${a.caller.toLowerCase()} ${a.cityKey}`, until);
      if (entry?.confirmedAlertId !== undefined) {
        const { confirmedAlertId: _gone, ...rest } = entry;
        ledger.set(key, rest);
      }
    }
  }

  allows(f: RareFinding): boolean {
    const until = this.allowedUntil.get(`${f.activity.caller.toLowerCase()} ${f.observation.city.key}`);
    return until !== undefined && f.observation.hourMs < until;
  }
}
