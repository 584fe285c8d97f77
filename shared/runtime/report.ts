import type { Alert } from '../alerts/alert.js';
import { alertDefaults } from '../alerts/defaults.js';
import type { AlertSink } from '../alerts/sinks.js';
import type { BaselineStore } from '../baseline/store.js';
import type { Settings } from '../config/settings.js';
import type { Geolocator, NetworkLocator } from '../geo/types.js';
import type { Allowlist } from '../ops/allowlist.js';
import type { BootstrapDeps } from '../ops/bootstrap.js';
import type { LogFn, Pipeline } from '../pipeline/tick.js';
import type { EventSource } from '../pipeline/types.js';
import type { RunBudget } from './budget.js';
import type { DetectorDeps } from './deps.js';
import type { RunReport } from './telemetry.js';

/**
 * The report of one timer run before anything ran: every count and duration at zero, no GeoIP database yet.
 * `raised` is the array the run's alert sink appends to (the report keeps the same array).
 */
export function newRunReport(
  invocation: { invocationId: string; isPastDue: boolean },
  scheduledMs: number,
  raised: Alert[] = [],
): RunReport {
  return {
    invocationId: invocation.invocationId,
    scheduledMs,
    isPastDue: invocation.isPastDue,
    ticks: [],
    ticksLeft: 0,
    rowsFetched: 0,
    queries: 0,
    groups: 0,
    events: 0,
    internalEvents: 0,
    noCityEvents: 0,
    notFoundEvents: 0,
    observations: 0,
    alerts: 0,
    suppressedByCooldown: 0,
    suppressedByCap: 0,
    delivered: 0,
    deliveryFailed: 0,
    pendingOutbox: 0,
    geoIpSource: '',
    geoIpBuildDate: '',
    geoIpAgeDays: 0,
    durationsMs: { geo: 0, query: 0, detect: 0, deliver: 0, total: 0 },
    raised,
  };
}

const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * The end of every timer run, in either mode: deliver the outbox (a failure leaves the alerts pending for the
 * next run, logged and sent to telemetry) and, on the run that covers midnight UTC, the daily maintenance.
 */
export async function deliverAndMaintain(
  deps: Pick<DetectorDeps, 'deliver' | 'log' | 'telemetry' | 'dailyMaintenance'> & {
    outbox: Pick<DetectorDeps['outbox'], 'countPending' | 'oldestPendingAgeMs'>;
  },
  report: RunReport,
  budget: RunBudget,
  clock: () => number,
): Promise<void> {
  const t = clock();
  try {
    const d = await deps.deliver(budget);
    report.delivered = d.delivered;
    report.deliveryFailed = d.failed;
    report.pendingOutbox = d.pending;
  } catch (error) {
    // Undelivered alerts stay in the outbox; the next run retries them.
    deps.log('error', `Alert delivery failed, alerts stay pending: ${text(error)}`);
    report.pendingOutbox = await deps.outbox.countPending();
    deps.telemetry.exception(error instanceof Error ? error : new Error(String(error)), { stage: 'deliver' });
  }
  await surfaceOldPending(deps, report);
  report.durationsMs.deliver = clock() - t;
  if (deps.dailyMaintenance && report.ticks.some((tick) => tick % 86_400_000 === 0)) {
    try {
      deps.log('info', `Daily maintenance: ${await deps.dailyMaintenance()}`);
    } catch (error) {
      deps.log('warn', `Daily maintenance failed (retried tomorrow): ${text(error)}`);
    }
  }
}

/** Alerts pending longer than this are a warning (and the workbook's health section shows them). */
export const PENDING_WARN_MS = 86_400_000;

/** Reports how long the oldest pending alert has waited, and warns when it is more than a day. */
async function surfaceOldPending(
  deps: Pick<DetectorDeps, 'log'> & { outbox: Pick<DetectorDeps['outbox'], 'oldestPendingAgeMs'> },
  report: RunReport,
): Promise<void> {
  if (deps.outbox.oldestPendingAgeMs === undefined) return;
  try {
    const ageMs = await deps.outbox.oldestPendingAgeMs();
    report.oldestPendingHours = Math.round((ageMs / 3_600_000) * 10) / 10;
    if (ageMs > PENDING_WARN_MS) {
      deps.log(
        'warn',
        `An alert has been pending delivery for ${report.oldestPendingHours} hours (more than a day): ` +
          "check the Logs Ingestion endpoint, the DCR and the identity's role",
      );
    }
  } catch (error) {
    deps.log('warn', `Cannot read the outbox's oldest pending alert: ${text(error)}`);
  }
}

/**
 * The pipeline of one run in Azure, in either mode: the detector's store and settings, this run's GeoIP
 * database, sink and allowlists (read once per run), the alert columns of the settings.
 */
/** What a bootstrap continued by a run needs: the run's own store, source, databases and log. */
export function bootstrapDeps(
  deps: { store: BaselineStore; settings: Settings; log: LogFn; source: EventSource },
  data: { geo: Geolocator; networks?: NetworkLocator },
  clock: () => number,
): BootstrapDeps {
  const networks = deps.settings.UC_NETWORKS === 'on' ? data.networks : undefined;
  return {
    settings: deps.settings,
    store: deps.store,
    source: deps.source,
    geo: data.geo,
    ...(networks ? { networks } : {}),
    log: deps.log,
    clock,
  };
}

export function runPipeline(
  deps: { store: BaselineStore; settings: Settings; log: LogFn },
  data: { geo: Geolocator; networks?: NetworkLocator },
  sink: AlertSink,
  allow: Allowlist | undefined,
): Pipeline {
  const networks = deps.settings.UC_NETWORKS === 'on' ? data.networks : undefined;
  return {
    store: deps.store,
    geo: data.geo,
    ...(networks ? { networks } : {}),
    settings: deps.settings,
    sink,
    defaults: alertDefaults(deps.settings),
    log: deps.log,
    ...(allow ? { suppress: allow.suppress } : {}),
  };
}
