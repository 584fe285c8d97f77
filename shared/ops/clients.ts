/**
 * Clients for the operator tools (bootstrap, baseline): the state store and, for the bootstrap, the Log Analytics
 * source and the GeoIP database — built from the same settings and with the same identity as the detector
 * (shared/runtime/azure.ts), but without what only detection needs (ingestion, telemetry).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { LogsQueryClient } from '@azure/monitor-query-logs';
import type { BlobServiceClient } from '@azure/storage-blob';

import { SqliteStore } from '../baseline/sqlite.js';
import type { BaselineStore } from '../baseline/store.js';
import { type Settings, SettingsError } from '../config/settings.js';
import { blobServiceFromSettings, GeoDatabaseProvider } from '../geo/provider.js';
import type { LogFn } from '../pipeline/tick.js';
import { RunBudget } from '../runtime/budget.js';
import { createCredential, openTableStore } from '../runtime/clients.js';
import { LogAnalyticsSource } from '../source/logAnalytics.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Options for tests: trust a local CA for the https fakes. Never set in production. */
export interface OpsClientOptions {
  tlsCa?: string;
  blobService?: BlobServiceClient;
}

function requireStorage(s: Settings): void {
  if (s.UC_TABLE_ENDPOINT === '' && s.UC_STORAGE_CONNECTION_STRING === '') {
    throw new SettingsError([
      {
        name: 'UC_TABLE_ENDPOINT',
        value: '',
        allowed:
          'the Table service URL of the state storage account (or UC_STORAGE_CONNECTION_STRING for Azurite; or --state DIR for local state)',
      },
    ]);
  }
}

/**
 * The detector's state: `--state DIR` (SQLite, as `replay --state` writes it), else Table Storage from the
 * settings (managed identity / developer sign-in, or Azurite). `mustExist`: a DIR without state is an error
 * (reading tools must not create an empty state by a typo).
 */
export async function openStateStore(
  settings: Settings,
  env: Env,
  stateDir: string | undefined,
  mustExist: boolean,
): Promise<BaselineStore> {
  if (stateDir !== undefined) {
    const file = join(resolve(stateDir), 'state.sqlite');
    if (mustExist && !existsSync(file))
      throw new Error(`no detector state in ${stateDir} (${file} does not exist)`);
    return SqliteStore.openDirectory(resolve(stateDir));
  }
  requireStorage(settings);
  return openTableStore(settings, createCredential(env));
}

export interface AzureOpsClients {
  store: BaselineStore;
  source: LogAnalyticsSource;
  geo: GeoDatabaseProvider;
}

/** Table Storage, Log Analytics and the GeoIP database, as the timer builds them. */
export async function openAzureOps(
  settings: Settings,
  env: Env,
  log: LogFn,
  options: OpsClientOptions = {},
): Promise<AzureOpsClients> {
  const missing: { name: string; value: string; allowed: string }[] = [];
  if (settings.UC_WORKSPACE_ID === '')
    missing.push({
      name: 'UC_WORKSPACE_ID',
      value: '',
      allowed: 'the id (GUID) of the Log Analytics workspace holding AzureActivity (or --from-files)',
    });
  if (missing.length > 0) throw new SettingsError(missing);
  requireStorage(settings);
  const credential = createCredential(env);
  const clientOptions = options.tlsCa !== undefined ? { tlsOptions: { ca: options.tlsCa } } : {};
  const store = await openTableStore(settings, credential);
  const logs = new LogsQueryClient(credential, { endpoint: settings.UC_LOGS_ENDPOINT, ...clientOptions });
  const source = new LogAnalyticsSource({
    client: logs,
    workspaceId: settings.UC_WORKSPACE_ID,
    additionalWorkspaces: settings.UC_ADDITIONAL_WORKSPACE_IDS,
    categories: settings.UC_CATEGORIES,
    statuses: settings.UC_STATUSES,
    budget: () => new RunBudget(settings.UC_RUN_BUDGET),
    log,
  });
  const blobService =
    options.blobService ??
    (settings.UC_GEOIP_BLOB !== '' ? blobServiceFromSettings(settings, env, credential) : undefined);
  const geo = GeoDatabaseProvider.fromSettings(settings, { ...(blobService ? { blobService } : {}), log });
  return { store, source, geo };
}
