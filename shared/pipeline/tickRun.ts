/**
 * What a detection run is made of: the pipeline it runs on, the numbers it reports and, between its stages
 * (shared/pipeline/tick.ts), the baselines as read and as counted so far and what scoring found.
 */
import type { AlertDefaults, RareFinding } from '../alerts/alert.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore, Entity } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { City, Geolocator, NetworkLocator } from '../geo/types.js';
import type { LogFn } from '../run/log.js';
import type { OperationBaseline, ScoringParams, TenantBaseline } from '../scoring/model.js';
import type { CallerHourUpdate, HourUpdate } from '../scoring/update.js';
import type { Arrival } from './arrivals.js';
import type { CallerHistories } from './callers.js';
import type { RejectHandler } from './isolate.js';
import type { Quarantine } from './quarantine.js';
import { sameEntity } from './state.js';

/** Everything a detection run needs; built once per process and reused across runs. */
export interface Pipeline {
  store: BaselineStore;
  geo: Geolocator;
  /** The network (ASN) of each caller IP; absent: networks unknown, the model uses cities only. */
  networks?: NetworkLocator;
  settings: Settings;
  sink: AlertSink;
  defaults: AlertDefaults;
  log?: LogFn;
  /**
   * Allowlists (settings and the allow table): returns why a rare finding must not alert, or undefined.
   * Suppressed findings are still counted in baselines like any other observation; they only never alert.
   */
  suppress?: (finding: RareFinding) => string | undefined;
  /**
   * Observer (backtests): the rare findings of run `tickMs` — at or above UC_ALERT_THRESHOLD, before allowlists
   * (`suppress`) and the alert decision — called once per run that has observations. Must not keep or modify the
   * array (allowlists filter it in place afterwards); the findings themselves are not modified. Absent: no effect.
   */
  onFindings?: (tickMs: number, findings: readonly RareFinding[]) => void;
}

export interface TickStats {
  tickMs: number;
  windowStartMs: number;
  groups: number;
  events: number;
  internalEvents: number;
  noCityEvents: number;
  notFoundEvents: number;
  invalidIpEvents: number;
  observations: number;
  scored: number;
  alreadyCounted: number;
  rareFindings: number;
  /** Rare findings an allowlist kept from alerting. */
  allowlisted: number;
  alerts: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  operationsWritten: number;
  /** Rows the store refused (size, content): logged and skipped, the run went on (shared/pipeline/isolate.ts). */
  rowsRejected: number;
  /** Findings an infrastructure move explained (shared/pipeline/arrivals.ts): counted, not alerted. */
  absorbedByMove: number;
  /** Move and wave alerts raised (besides `alerts`). */
  eventAlerts: number;
}

/** One run between its stages: the baselines as read and as counted so far, and what scoring found. */
export interface TickRun {
  p: Pipeline;
  s: Settings;
  params: ScoringParams;
  tickMs: number;
  stats: TickStats;
  /** Bootstrap from history: counted, never alerted on. */
  countOnly: boolean;
  /** How a row the store refuses is logged and counted (shared/pipeline/isolate.ts). */
  rejected: RejectHandler;
  /** The tenant's cities: as stored, then with every hour this run counted. */
  tenant: TenantBaseline;
  /** Each operation's cities: as stored, then with every hour this run counted. */
  ops: Map<string, OperationBaseline>;
  /** Display name of each operation of the window. */
  display: Map<string, string>;
  /** The callers' cities (`histories.cities`, counted as the hours pass) and their old per-caller rows. */
  histories: CallerHistories;
  quarantine: Quarantine;
  /** Quarantines started or extended by this hour's scores, applied before the hour is counted. */
  quarantineNow: Map<string, number>;
  /** Per-caller findings at or above UC_ALERT_THRESHOLD. */
  findings: RareFinding[];
  /** Activities from a city new to their caller, with networks: moves and waves (shared/pipeline/arrivals.ts). */
  arrivals: Arrival[];
  /** Hours to write: per operation, for the tenant, per caller. */
  updates: Map<string, HourUpdate[]>;
  tenantUpdates: { city: City; hourMs: number; quarantined: boolean }[];
  callerUpdates: Map<string, CallerHourUpdate[]>;
}

/**
 * Runs `fn` over items, at most `limit` at a time. When one fails, the others still finish before the error is
 * thrown: a run that fails leaves no write in flight behind it.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return out;
}

/** Rows that differ between the stored partition and the new state. */
export function changedRows(
  current: ReadonlyMap<string, Entity>,
  next: Map<string, Entity>,
): Map<string, Entity | null> {
  const out = new Map<string, Entity | null>();
  for (const [k, e] of next) if (!sameEntity(current.get(k), e)) out.set(k, e);
  return out;
}
