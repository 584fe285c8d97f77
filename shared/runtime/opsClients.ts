/**
 * Clients for the operator tools (bootstrap, baseline): the state store and, for the bootstrap, the Log Analytics
 * source and the GeoIP database — built from the same settings and with the same identity as the detector
 * (azure.ts beside this file), but without what only detection needs (ingestion, telemetry).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { BlobServiceClient } from '@azure/storage-blob';

import type { BaselineStore } from '../baseline/store.js';
import { type Settings, SettingsError } from '../config/settings.js';
import type { GeoDatabaseSource } from '../geo/azureRangesProvider.js';
import type { LogFn } from '../run/log.js';
import type { LogAnalyticsSource } from '../source/logAnalytics.js';
import { createCredential, openTableStore } from './clients.js';
import { openActivitySources } from './sources.js';

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
    // Loaded only for local state: the Function App (which imports this module) never loads the native
    // better-sqlite3 addon, built for whatever Node version packaged it.
    const { SqliteStore } = await import('../baseline/sqlite.js');
    return SqliteStore.openDirectory(resolve(stateDir));
  }
  requireStorage(settings);
  return openTableStore(settings, createCredential(env));
}

function requireWorkspace(s: Settings): void {
  if (s.UC_WORKSPACE_ID === '')
    throw new SettingsError([
      {
        name: 'UC_WORKSPACE_ID',
        value: '',
        allowed: 'the id (GUID) of the Log Analytics workspace holding AzureActivity (or exported files)',
      },
    ]);
}

export interface AzureOpsClients {
  store: BaselineStore;
  source: LogAnalyticsSource;
  geo: GeoDatabaseSource;
}

/** Table Storage, Log Analytics and the GeoIP database, as the timer builds them. */
export async function openAzureOps(
  settings: Settings,
  env: Env,
  log: LogFn,
  options: OpsClientOptions = {},
): Promise<AzureOpsClients> {
  requireWorkspace(settings);
  requireStorage(settings);
  const credential = createCredential(env);
  const store = await openTableStore(settings, credential);
  return { store, ...openActivitySources(settings, env, credential, log, options) };
}

/**
 * What `backtest --days` reads: the Log Analytics source (asked for `slotMs` slots) and the GeoIP database, as
 * the timer builds them — no state store (a backtest starts from empty baselines and writes nothing to Azure).
 */
export function openAzureHistory(
  settings: Settings,
  env: Env,
  log: LogFn,
  options: OpsClientOptions & { slotMs: number },
): { source: LogAnalyticsSource; geo: GeoDatabaseSource } {
  requireWorkspace(settings);
  return openActivitySources(settings, env, createCredential(env), log, options);
}
