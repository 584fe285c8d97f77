import { LogsIngestionClient } from '@azure/monitor-ingestion';
import type { BlobServiceClient } from '@azure/storage-blob';

import { ALERT_STREAM } from '../alerts/alert.js';
import type { Settings } from '../config/settings.js';
import { AlertUploader, deliverPending } from '../delivery/ingestion.js';
import { AlertOutbox } from '../delivery/outbox.js';
import { AllowlistProvider } from '../ops/allowlist.js';
import type { LogFn } from '../pipeline/tick.js';
import { createCredential, openTableStore, requireRuntimeSettings } from './clients.js';
import type { DetectorDeps } from './detector.js';
import { shardQueueFromSettings } from './shards.js';
import { openActivitySources, sdkClientOptions } from './sources.js';
import { telemetryFromEnvironment } from './telemetry.js';

/** Options for tests: trust a local CA for the https fakes, inject a Blob client. Never set in production. */
export interface AzureDepsOptions {
  tlsCa?: string;
  blobService?: BlobServiceClient;
}

/**
 * Builds every client the detector needs, once per process (the Functions host reuses the process across
 * invocations, and with it the token cache, connections and the GeoIP database in memory). `log` is a
 * forwarder so each invocation can route logs to its own InvocationContext.
 */
export async function createAzureDeps(
  settings: Settings,
  env: Readonly<Record<string, string | undefined>>,
  log: LogFn,
  options: AzureDepsOptions = {},
): Promise<Omit<DetectorDeps, 'log'>> {
  requireRuntimeSettings(settings);
  const credential = createCredential(env);
  const store = await openTableStore(settings, credential);
  const { source, geo, verdicts } = openActivitySources(settings, env, credential, log, options);
  const outbox = new AlertOutbox(store);
  const ingestion = new LogsIngestionClient(
    settings.UC_INGESTION_ENDPOINT,
    credential,
    sdkClientOptions(options),
  );
  const stream =
    settings.UC_ALERTS_TABLE === 'UnusualCityAlerts_CL' ? ALERT_STREAM : `Custom-${settings.UC_ALERTS_TABLE}`;
  const uploader = new AlertUploader(ingestion, settings.UC_DCR_IMMUTABLE_ID, stream);
  const telemetry = await telemetryFromEnvironment(env, settings.UC_TELEMETRY_INCLUDE_IDENTITIES);
  // Settings and service tags are read once per process; the allow table once per run.
  const allowlists = await AllowlistProvider.fromSettings(settings);
  return {
    settings,
    store,
    source,
    geo,
    outbox,
    deliver: (budget) => deliverPending(outbox, uploader, { budget, log }),
    dailyMaintenance: async () => {
      const r = await outbox.purge();
      return `purged ${r.markers} delivered-alert marker(s) and ${r.orphanedPayloadRows} orphaned payload row(s) older than 30 days`;
    },
    telemetry,
    allowlist: () => allowlists.forRun(store),
    ...(verdicts ? { verdicts } : {}),
    // Queue mode (UC_SHARDING=queue): the timer enqueues shards for processShard.
    ...(settings.UC_SHARDING === 'queue' ? { shardQueue: shardQueueFromSettings(settings, credential) } : {}),
  };
}
