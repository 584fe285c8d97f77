import type { TokenCredential } from '@azure/identity';
import { LogsQueryClient } from '@azure/monitor-query-logs';
import type { BlobServiceClient } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import {
  AzureRangesProvider,
  type GeoDatabaseSource,
  withAzureRangesProvider,
} from '../geo/azureRangesProvider.js';
import { GeoDatabaseProvider } from '../geo/provider.js';
import type { LogFn } from '../pipeline/tick.js';
import { LogAnalyticsSource } from '../source/logAnalytics.js';
import { VerdictSource } from '../source/verdicts.js';
import { RunBudget } from './budget.js';
import { blobServiceFromSettings } from './clients.js';

/** Options for tests: trust a local CA for the https fakes, inject a Blob client. Never set in production. */
export interface SourceOptions {
  tlsCa?: string;
  blobService?: BlobServiceClient;
  /** Sub-hour slots for the query (the backtest's download); default: whole hours, as the detector reads. */
  slotMs?: number;
}

/** The https options of the Azure SDK clients: a local CA in tests only. */
export const sdkClientOptions = (o: { tlsCa?: string }): { tlsOptions?: { ca: string } } =>
  o.tlsCa !== undefined ? { tlsOptions: { ca: o.tlsCa } } : {};

/**
 * Where the detector reads from, built one way for the timer, the bootstrap and the backtest: the Log Analytics
 * source (workspace, categories, statuses, a UC_RUN_BUDGET per read) and the GeoIP database (UC_GEOIP_BLOB,
 * else UC_GEOIP_DB_PATH), with the process's credential. The analysts' verdicts are read through the same client
 * when UC_VERDICTS is on and UC_VERDICT_RULE_ID is set.
 */
export function openActivitySources(
  settings: Settings,
  env: Readonly<Record<string, string | undefined>>,
  credential: TokenCredential,
  log: LogFn,
  options: SourceOptions = {},
): { source: LogAnalyticsSource; geo: GeoDatabaseSource; verdicts?: VerdictSource } {
  const logs = new LogsQueryClient(credential, {
    endpoint: settings.UC_LOGS_ENDPOINT,
    ...sdkClientOptions(options),
  });
  const source = new LogAnalyticsSource({
    client: logs,
    workspaceId: settings.UC_WORKSPACE_ID,
    additionalWorkspaces: settings.UC_ADDITIONAL_WORKSPACE_IDS,
    categories: settings.UC_CATEGORIES,
    statuses: settings.UC_STATUSES,
    budget: () => new RunBudget(settings.UC_RUN_BUDGET),
    log,
    ...(options.slotMs !== undefined ? { slotMs: options.slotMs } : {}),
  });
  const blobService =
    options.blobService ??
    (settings.UC_GEOIP_BLOB !== '' || settings.UC_SERVICE_TAGS_BLOB !== ''
      ? blobServiceFromSettings(settings, env, credential)
      : undefined);
  const city = GeoDatabaseProvider.fromSettings(settings, { ...(blobService ? { blobService } : {}), log });
  // Microsoft's datacentre ranges (UC_SERVICE_TAGS_BLOB, kept current by refreshServiceTags) key as Azure <region>.
  const geo = withAzureRangesProvider(city, AzureRangesProvider.fromSettings(settings, blobService), log);
  const verdicts =
    settings.UC_VERDICTS === 'on' && settings.UC_VERDICT_RULE_ID !== ''
      ? new VerdictSource({
          client: logs,
          workspaceId: settings.UC_WORKSPACE_ID,
          additionalWorkspaces: settings.UC_ADDITIONAL_WORKSPACE_IDS,
          ruleId: settings.UC_VERDICT_RULE_ID,
          lookbackMs: settings.UC_VERDICT_LOOKBACK,
          log,
        })
      : undefined;
  return { source, geo, ...(verdicts ? { verdicts } : {}) };
}
