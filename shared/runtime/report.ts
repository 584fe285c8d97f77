import type { Alert } from '../alerts/alert.js';
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
