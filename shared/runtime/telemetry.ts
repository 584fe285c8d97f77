import type { Alert } from '../alerts/alert.js';
import { createCredential } from './clients.js';
import { scrubError, scrubText } from './scrub.js';

/** The counts and durations of one timer invocation (possibly several ticks when catching up). */
export interface RunReport {
  invocationId: string;
  scheduledMs: number;
  isPastDue: boolean;
  ticks: number[];
  /** Ticks not processed because the run stopped early (incomplete data, budget); the next run redoes them. */
  ticksLeft: number;
  stoppedBecause?: string;
  rowsFetched: number;
  queries: number;
  groups: number;
  events: number;
  internalEvents: number;
  noCityEvents: number;
  notFoundEvents: number;
  observations: number;
  alerts: number;
  suppressedByCooldown: number;
  suppressedByCap: number;
  delivered: number;
  deliveryFailed: number;
  pendingOutbox: number;
  geoIpSource: string;
  geoIpBuildDate: string;
  geoIpAgeDays: number;
  durationsMs: { geo: number; query: number; detect: number; deliver: number; total: number };
  /** Alerts raised by this run (identities only leave the process when the setting allows it). */
  raised: Alert[];
  /** empty: first run with nothing learned (see bootstrap); bootstrapping: a bootstrap runs, detection waits. */
  baseline?: 'ready' | 'empty' | 'bootstrapping';
  /** Rare findings an allowlist kept from alerting. */
  allowlisted?: number;
  /** Rows the store refused (size, content), skipped so that detection went on (shared/pipeline/isolate.ts). */
  rowsRejected?: number;
  /** Hours the oldest pending alert has waited in the outbox (0: none); over 24 is a warning. */
  oldestPendingHours?: number;
  /** Queue mode: the shard this report is of (`index/count`); absent for a timer run. */
  shard?: string;
}

/** The subset of applicationinsights' TelemetryClient we use (so tests can observe it). */
export interface TelemetryClientLike {
  trackEvent(t: {
    name: string;
    properties?: Record<string, unknown>;
    measurements?: Record<string, number>;
  }): void;
  trackMetric(t: { name: string; value: number; properties?: Record<string, unknown> }): void;
  trackException(t: { exception: Error; properties?: Record<string, unknown> }): void;
  flush(): Promise<void> | void;
}

export interface Telemetry {
  run(report: RunReport): void;
  exception(error: Error, context: Record<string, string>): void;
  flush(): Promise<void>;
}

export const noTelemetry: Telemetry = {
  run: () => undefined,
  exception: () => undefined,
  flush: () => Promise.resolve(),
};

/**
 * Per run: one custom event `UnusualCityRun` with counts, stage durations and GeoIP age, the same numbers as
 * metrics, and one `UnusualCityAlert` event per alert. Caller identities and IPs are sent only when
 * UC_TELEMETRY_INCLUDE_IDENTITIES=true: by default telemetry carries no personal data.
 */
export function makeTelemetry(client: TelemetryClientLike, includeIdentities: boolean): Telemetry {
  return {
    run(r) {
      const measurements: Record<string, number> = {
        ticks: r.ticks.length,
        ticksLeft: r.ticksLeft,
        rowsFetched: r.rowsFetched,
        queries: r.queries,
        events: r.events,
        internalEvents: r.internalEvents,
        noCityEvents: r.noCityEvents,
        notFoundEvents: r.notFoundEvents,
        observations: r.observations,
        alerts: r.alerts,
        suppressedByCooldown: r.suppressedByCooldown,
        suppressedByCap: r.suppressedByCap,
        delivered: r.delivered,
        deliveryFailed: r.deliveryFailed,
        pendingOutbox: r.pendingOutbox,
        allowlisted: r.allowlisted ?? 0,
        rowsRejected: r.rowsRejected ?? 0,
        oldestPendingHours: r.oldestPendingHours ?? 0,
        geoIpAgeDays: r.geoIpAgeDays,
        geoMs: r.durationsMs.geo,
        queryMs: r.durationsMs.query,
        detectMs: r.durationsMs.detect,
        deliverMs: r.durationsMs.deliver,
        totalMs: r.durationsMs.total,
      };
      client.trackEvent({
        name: 'UnusualCityRun',
        properties: {
          invocationId: r.invocationId,
          scheduled: new Date(r.scheduledMs).toISOString(),
          isPastDue: r.isPastDue,
          firstTick: r.ticks.length > 0 ? new Date(r.ticks[0]!).toISOString() : '',
          lastTick: r.ticks.length > 0 ? new Date(r.ticks[r.ticks.length - 1]!).toISOString() : '',
          stoppedBecause: r.stoppedBecause ?? '',
          geoIpBuildDate: r.geoIpBuildDate,
          geoIpSource: r.geoIpSource,
          baseline: r.baseline ?? 'ready',
          shard: r.shard ?? '',
        },
        measurements,
      });
      for (const [name, value] of Object.entries(measurements))
        client.trackMetric({ name: `UnusualCity.${name}`, value });
      for (const a of r.raised) {
        const properties: Record<string, unknown> = {
          alertId: a.AlertId,
          operation: a.Operation,
          country: a.SrcGeoCountry,
          callerType: a.CallerType,
          anomalyScore: a.AnomalyScore,
        };
        if (includeIdentities) {
          properties.caller = a.Caller;
          properties.ip = a.SrcIpAddr;
          properties.city = a.SrcGeoCity;
        }
        client.trackEvent({ name: 'UnusualCityAlert', properties });
      }
    },
    exception(error, context) {
      // Never the error as thrown: its message may quote callers, IPs or keys (shared/runtime/scrub.ts).
      const properties: Record<string, string> = {};
      for (const [k, v] of Object.entries(context)) properties[k] = scrubText(v, includeIdentities);
      client.trackException({ exception: scrubError(error, includeIdentities), properties });
    },
    async flush() {
      await client.flush();
    },
  };
}

/** Telemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is set, silence otherwise. */
export async function telemetryFromEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  includeIdentities: boolean,
): Promise<Telemetry> {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING;
  if (connectionString === undefined || connectionString.trim() === '') return noTelemetry;
  // Loaded lazily: the SDK pulls in OpenTelemetry, which the CLI never needs.
  const { TelemetryClient } = await import('applicationinsights');
  const client = new TelemetryClient(connectionString);
  // With local authentication disabled on Application Insights (as infra/ deploys it), telemetry must carry an
  // Entra token from the app's managed identity, or the service drops it.
  if (/Authorization=AAD/i.test(env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '')) {
    client.config.aadTokenCredential = createCredential(env);
  }
  return makeTelemetry(client, includeIdentities);
}
