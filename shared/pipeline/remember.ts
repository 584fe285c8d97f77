/**
 * The run's last stages (shared/pipeline/tick.ts, after the alerts reach the sink): the daily count and the alert
 * index, the quarantines started, then the operations' and the tenant's baselines.
 */
import { type Alert, alertIdFor, type RareFinding } from '../alerts/alert.js';
import type { Entity, PartitionUpdate } from '../baseline/store.js';
import { type CallerHourUpdate, countOperationHour, countTenantHour } from '../scoring/update.js';
import {
  bucketsOnly,
  CALLER_LAYOUT_BUCKETS,
  CALLER_LAYOUT_PROPERTY,
  updateCallerHistories,
} from './callers.js';
import { updateIsolated } from './isolate.js';
import {
  cityToEntity,
  dayPartition,
  OPERATION_SUMMARY_ROW,
  operationFromRows,
  operationSummaryEntity,
  TENANT_PARTITION,
  TENANT_SUMMARY_ROW,
  tenantCityToEntity,
  tenantFromRows,
  tenantSummaryEntity,
} from './state.js';
import { changedRows, mapLimit, type TickRun } from './tickRun.js';
import { ALERT_INDEX_PARTITION, alertIndexEntity } from './verdicts.js';

/**
 * 3. The daily count (idempotent: rows keyed by alert id), and 3a. the alert index (AlertId → caller, city,
 * network): how an analyst's verdict finds its (caller, city).
 */
export async function rememberAlerts(run: TickRun, alerts: readonly Alert[], day: string): Promise<void> {
  if (alerts.length === 0) return;
  const { p, tickMs } = run;
  const count = (cur: ReadonlyMap<string, Entity>) => {
    const out = new Map<string, Entity | null>();
    for (const a of alerts) if (!cur.has(a.AlertId)) out.set(a.AlertId, { tickMs, score: a.AnomalyScore });
    return out;
  };
  await updateIsolated(p.store, 'state', dayPartition(day), count, run.rejected);
  const index = indexAlerts(alerts, run.findings);
  const ids = [...new Set(alerts.map((a) => a.AlertId))];
  await updateIsolated(p.store, 'state', ALERT_INDEX_PARTITION, index, run.rejected, ids);
}

/**
 * 3b. Quarantines this run started, before any hour is counted: a crash after the baselines are written would
 * otherwise lose them (a re-run does not score hours already counted).
 */
export async function rememberQuarantines(run: TickRun): Promise<void> {
  const marks = new Map<string, CallerHourUpdate[]>();
  for (const [caller, list] of run.callerUpdates) {
    const mine = list.filter((u) => u.quarantineUntilMs > 0).map((u) => ({ ...u, markOnly: true }));
    if (mine.length > 0) marks.set(caller, mine);
  }
  if (marks.size > 0) await updateCallerHistories(run.p.store, marks, new Map(), run.rejected);
}

/** 4. Baselines: re-applies this run's hours to each operation as stored now (a concurrent writer may have moved it). */
export async function rememberOperations(run: TickRun): Promise<void> {
  const { p, params, display } = run;
  await mapLimit([...run.updates.entries()], 8, async ([opKey, hours]) => {
    await updateIsolated(
      p.store,
      'baselines',
      opKey,
      (cur) => {
        let op = operationFromRows(opKey, display.get(opKey) ?? opKey, cur);
        // Only the summary and the cities this run counted can change: build rows for those, not for every city
        // of the operation (a busy operation has hundreds).
        const touched = new Set<string>();
        for (const u of hours) {
          const r = countOperationHour(op, u, params);
          op = r.op;
          if (r.changedCity) touched.add(r.changedCity.cityKey);
        }
        const next = new Map<string, Entity>([[OPERATION_SUMMARY_ROW, operationSummaryEntity(op)]]);
        for (const key of touched) next.set(key, cityToEntity(op.cities.get(key)!));
        return changedRows(cur, next);
      },
      run.rejected,
    );
    run.stats.operationsWritten += 1;
  });
}

/** Re-applies this run's city-hours to the tenant's cities as stored now. */
export async function rememberTenant(run: TickRun): Promise<void> {
  if (run.tenantUpdates.length === 0) return;
  await updateIsolated(
    run.p.store,
    'tenant',
    TENANT_PARTITION,
    (cur) => {
      let t = tenantFromRows(cur);
      for (const u of run.tenantUpdates)
        t = countTenantHour(t, u.city, u.hourMs, run.params, u.quarantined).tenant;
      const next = new Map<string, Entity>();
      next.set(TENANT_SUMMARY_ROW, {
        ...tenantSummaryEntity(t),
        // A store whose callers all live in buckets says so (no old per-caller partitions to look in).
        ...(bucketsOnly(cur) ? { [CALLER_LAYOUT_PROPERTY]: CALLER_LAYOUT_BUCKETS } : {}),
      });
      for (const c of t.cities.values()) next.set(c.cityKey, tenantCityToEntity(c));
      return changedRows(cur, next);
    },
    run.rejected,
  );
}

/** The index rows of this run's alerts not indexed yet: each alert's id is that of one of its findings. */
function indexAlerts(alerts: readonly Alert[], findings: readonly RareFinding[]): PartitionUpdate {
  const wanted = new Set(alerts.map((a) => a.AlertId));
  const rows = new Map<string, Entity>();
  for (const f of findings) {
    const { caller } = f.activity;
    const o = f.observation;
    const id = alertIdFor(caller, o.city.key, o.hourMs, o.operationKey);
    if (!wanted.has(id) || rows.has(id)) continue;
    const net = f.activity.networks?.[0];
    rows.set(
      id,
      alertIndexEntity({
        caller,
        cityKey: o.city.key,
        network: net !== undefined ? `AS${net.asn}` : '',
        ...(net !== undefined && net.org.trim() !== '' ? { org: net.org.trim().slice(0, 128) } : {}),
        hourMs: o.hourMs,
        score: f.rarity.score,
      }),
    );
  }
  return (cur) => new Map([...rows].filter(([id]) => !cur.has(id)));
}
