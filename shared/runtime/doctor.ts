/**
 * `unusual-city doctor`: checks a live deployment with the clients the detector uses (same settings, same
 * credential chain: the operator's `az login`/`azd auth`, or the app's managed identity) and says, for each
 * check, what it found and — when it failed — what to do. Nothing is written anywhere.
 */
import type { TokenCredential } from '@azure/identity';
import { LogsQueryClient, LogsQueryResultStatus } from '@azure/monitor-query-logs';

import type { BaselineStore } from '../baseline/store.js';
import { loadSettings, type Settings, SettingsError } from '../config/settings.js';
import { AlertOutbox } from '../delivery/outbox.js';
import { GeoDatabaseProvider } from '../geo/provider.js';
import { runStateOf } from '../pipeline/runState.js';
import { CHECKPOINT_PARTITION, CHECKPOINT_ROW } from '../pipeline/state.js';
import { ArmReader, armScope } from './arm.js';
import { type Check, why } from './check.js';
import {
  blobServiceFromSettings,
  createCredential,
  openTableStore,
  requireRuntimeSettings,
} from './clients.js';
import { armChecks, telemetryWorkspaceId } from './doctorArm.js';
import { sdkClientOptions } from './sources.js';

export type { Check } from './check.js';

export interface DoctorOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** --set NAME=VALUE overrides. */
  sets?: Record<string, string>;
  clock?: () => number;
  /** Trust this CA for the local https fakes (tests only). */
  tlsCa?: string;
}

/** Newest AzureActivity row per subscription over the last day. */
export const ACTIVITY_HEALTH_QUERY =
  'AzureActivity | where TimeGenerated > ago(1d) | summarize Rows = count(), Newest = max(TimeGenerated) by SubscriptionId | order by Newest desc';
/** The detector's last run event (Application Insights `UnusualCityRun`, workspace-based: AppEvents). */
export const LAST_RUN_QUERY =
  'AppEvents | where TimeGenerated > ago(1d) and Name == "UnusualCityRun" | summarize Runs = count(), Last = max(TimeGenerated)';

const TOKEN_SCOPES: Record<string, string> = {
  'Log Analytics': 'https://api.loganalytics.io/.default',
  'Table Storage': 'https://storage.azure.com/.default',
  'Logs Ingestion': 'https://monitor.azure.com/.default',
};
const SIGN_IN_FIX =
  'sign in as an identity of the deployment (az login, or azd auth login), or on Azure check the managed identity (AZURE_CLIENT_ID)';

export const minutes = (ms: number): string =>
  ms < 120_000
    ? `${Math.round(ms / 1000)} s`
    : ms < 7_200_000
      ? `${Math.round(ms / 60_000)} min`
      : `${(ms / 3_600_000).toFixed(1)} h`;

/** Every check, in order; a failed settings check stops there (nothing else can be reached without them). */
export async function runDoctor(o: DoctorOptions): Promise<Check[]> {
  let settings: Settings;
  try {
    settings = loadSettings(o.env, o.sets ?? {});
    requireRuntimeSettings(settings);
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    const fix =
      'set them as app settings (azd env get-values prints the deployment outputs) or with --set NAME=VALUE';
    return [{ name: 'settings', ok: false, detail: e.message.replace(/\n+/g, '; '), fix }];
  }
  const now = o.clock ?? Date.now;
  const credential = createCredential(o.env);
  const checks: Check[] = [{ name: 'settings', ok: true, detail: 'all valid, the required ones set' }];
  checks.push(...(await tokenChecks(settings, credential)));
  const logs = new LogsQueryClient(credential, {
    endpoint: settings.UC_LOGS_ENDPOINT,
    ...sdkClientOptions(o),
  });
  checks.push(await activityCheck(settings, logs, now()));
  checks.push(...(await stateChecks(settings, credential, now())));
  checks.push(await geoCheck(settings, o));
  const arm =
    settings.UC_ARM_ENDPOINT !== '' ? new ArmReader(settings.UC_ARM_ENDPOINT, credential, o) : undefined;
  checks.push(...(await resourceManagerChecks(settings, arm)));
  checks.push(await lastRunCheck(settings, logs, now(), arm));
  return checks;
}

async function tokenChecks(s: Settings, credential: TokenCredential): Promise<Check[]> {
  const scopes: Record<string, string> = {
    ...TOKEN_SCOPES,
    ...(s.UC_ARM_ENDPOINT !== '' ? { 'Azure Resource Manager': armScope(s.UC_ARM_ENDPOINT) } : {}),
  };
  const services = Object.keys(scopes).filter((k) => k !== 'Table Storage' || s.UC_TABLE_ENDPOINT !== '');
  return Promise.all(
    services.map(async (service): Promise<Check> => {
      const name = `token for ${service}`;
      try {
        const token = await credential.getToken(scopes[service]!);
        if (token === null) throw new Error('no token');
        return { name, ok: true, detail: `expires ${new Date(token.expiresOnTimestamp).toISOString()}` };
      } catch (e) {
        return { name, ok: false, detail: why(e), fix: SIGN_IN_FIX };
      }
    }),
  );
}

async function activityCheck(s: Settings, logs: LogsQueryClient, nowMs: number): Promise<Check> {
  const name = 'AzureActivity in the workspace';
  try {
    const r = await logs.queryWorkspace(s.UC_WORKSPACE_ID, ACTIVITY_HEALTH_QUERY, { duration: 'P1D' });
    if (r.status !== LogsQueryResultStatus.Success) throw new Error(r.partialError.message);
    const rows = r.tables[0]?.rows ?? [];
    if (rows.length === 0)
      return {
        name,
        ok: false,
        detail: `workspace ${s.UC_WORKSPACE_ID} answers, but no AzureActivity rows in the last day`,
        fix: "send each subscription's Activity Log to this workspace (infra/activity-log/main.bicep, once per subscription)",
      };
    const newest = Math.max(...rows.map((row) => new Date(row[2] as string | Date).getTime()));
    const ageMs = nowMs - newest;
    const subs = rows.map((row) => `${row[0] as string} (${row[1] as number} rows)`).join(', ');
    const detail = `newest row ${minutes(ageMs)} old; subscriptions sending: ${subs}`;
    const stale = ageMs > s.UC_LOOKBACK;
    return stale
      ? {
          name,
          ok: false,
          detail,
          fix: "the Activity Log stopped arriving: check the subscriptions' diagnostic settings (infra/activity-log)",
        }
      : { name, ok: true, detail };
  } catch (e) {
    return {
      name,
      ok: false,
      detail: why(e),
      fix: `check UC_WORKSPACE_ID / UC_LOGS_ENDPOINT and that this identity holds Log Analytics Reader on the workspace`,
    };
  }
}

async function stateChecks(s: Settings, credential: TokenCredential, nowMs: number): Promise<Check[]> {
  let store: BaselineStore;
  try {
    store = await openTableStore(s, credential);
    await store.readRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW]);
  } catch (e) {
    const fix =
      'check UC_TABLE_ENDPOINT and that this identity holds Storage Table Data Contributor on the account';
    return [{ name: 'Table Storage', ok: false, detail: why(e), fix }];
  }
  try {
    return [
      {
        name: 'Table Storage',
        ok: true,
        detail: `reachable (${s.UC_TABLE_ENDPOINT || 'local connection string'})`,
      },
      await checkpointCheck(s, store, nowMs),
      await bootstrapCheck(store),
      await outboxCheck(store, nowMs),
    ];
  } finally {
    await store.close();
  }
}

async function checkpointCheck(s: Settings, store: BaselineStore, nowMs: number): Promise<Check> {
  const name = 'checkpoint';
  const row = (await store.readRows('state', CHECKPOINT_PARTITION, [CHECKPOINT_ROW])).get(CHECKPOINT_ROW);
  const last = typeof row?.lastTickMs === 'number' ? row.lastTickMs : undefined;
  if (last === undefined)
    return {
      name,
      ok: false,
      detail: 'no detection run has finished yet',
      fix: 'check that the Function App runs (its log stream, or Application Insights); the timer runs every UC_TICK_INTERVAL',
    };
  const lag = nowMs - last;
  const detail = `last run's tick ${new Date(last).toISOString()}, ${minutes(lag)} behind now`;
  return lag <= 3 * s.UC_TICK_INTERVAL
    ? { name, ok: true, detail }
    : {
        name,
        ok: false,
        detail,
        fix: "runs are failing or not scheduled: see the Function App's failures in Application Insights (UnusualCityRun events, exceptions)",
      };
}

async function bootstrapCheck(store: BaselineStore): Promise<Check> {
  const name = 'bootstrap';
  const b = await runStateOf(store).bootstrap();
  const fix =
    'run unusual-city bootstrap --days 30 (or POST /api/bootstrapBaselines): without it the first days are damped';
  if (b === undefined) return { name, ok: false, detail: 'never run', fix };
  const detail = `${b.state}, ${b.days} day(s) of history, ${b.windowsDone}/${b.windowsTotal} window(s)${b.lastError ? `; last error: ${b.lastError}` : ''}`;
  if (b.state === 'done') return { name, ok: true, detail };
  if (b.state === 'running')
    return {
      name,
      ok: false,
      detail,
      fix: 'wait for it (unusual-city bootstrap --status), or run it again to resume',
    };
  return { name, ok: false, detail, fix };
}

async function outboxCheck(store: BaselineStore, nowMs: number): Promise<Check> {
  const name = 'alert outbox';
  const outbox = new AlertOutbox(store, { now: () => nowMs });
  const pending = await outbox.countPending();
  if (pending === 0) return { name, ok: true, detail: 'no alert waiting for delivery' };
  const age = await outbox.oldestPendingAgeMs(nowMs);
  const detail = `${pending} alert(s) pending, the oldest for ${minutes(age)}`;
  return age <= 3_600_000
    ? { name, ok: true, detail }
    : {
        name,
        ok: false,
        detail,
        fix: 'delivery to Logs Ingestion fails: check UC_INGESTION_ENDPOINT, UC_DCR_IMMUTABLE_ID and that the identity holds Monitoring Metrics Publisher on the DCR',
      };
}

async function geoCheck(s: Settings, o: DoctorOptions): Promise<Check> {
  const name = 'GeoIP database';
  try {
    const provider = geoProvider(s, o); // as the timer opens it: UC_GEOIP_BLOB, else UC_GEOIP_DB_PATH
    const db = await provider.current(() => undefined);
    const detail = `${db.geo.databaseType} built ${db.buildDate.toISOString().slice(0, 10)} (${db.ageDays} days old), from ${db.source}`;
    return db.stale
      ? {
          name,
          ok: false,
          detail,
          fix: 'run refreshGeoIpDatabase (set the MaxMind account id and licence key secrets first)',
        }
      : { name, ok: true, detail };
  } catch (e) {
    return {
      name,
      ok: false,
      detail: why(e),
      fix: 'set the MaxMind secrets and run the first refreshGeoIpDatabase, or set UC_GEOIP_DB_PATH to a current .mmdb',
    };
  }
}

function geoProvider(s: Settings, o: DoctorOptions): GeoDatabaseProvider {
  if (s.UC_GEOIP_BLOB === '') return GeoDatabaseProvider.fromSettings(s, { log: () => undefined });
  const blobService = blobServiceFromSettings(s, o.env, createCredential(o.env));
  return GeoDatabaseProvider.fromSettings(s, { blobService, log: () => undefined });
}

/** The checks read through Azure Resource Manager (shared/runtime/doctorArm.ts). */
async function resourceManagerChecks(s: Settings, arm: ArmReader | undefined): Promise<Check[]> {
  if (arm === undefined)
    return [
      {
        name: 'Azure Resource Manager',
        ok: false,
        detail:
          'UC_ARM_ENDPOINT is empty: roles, the alerts table, the DCR and the analytics rule not checked',
        fix: 'set UC_ARM_ENDPOINT (https://management.azure.com in the public cloud)',
      },
    ];
  return armChecks(s, arm);
}

/**
 * The last UnusualCityRun, in the workspace Application Insights writes to (found through ARM from
 * UC_APPINSIGHTS_RESOURCE_ID); without that setting or ARM, in UC_WORKSPACE_ID.
 */
async function lastRunCheck(
  s: Settings,
  logs: LogsQueryClient,
  nowMs: number,
  arm: ArmReader | undefined,
): Promise<Check> {
  const name = 'last run in Application Insights';
  const fix =
    'check APPLICATIONINSIGHTS_CONNECTION_STRING on the Function App and that the timer runs (its log stream)';
  let workspace = s.UC_WORKSPACE_ID;
  if (arm !== undefined && s.UC_APPINSIGHTS_RESOURCE_ID !== '') {
    try {
      workspace = await telemetryWorkspaceId(s, arm);
    } catch (e) {
      const readFix =
        'check UC_APPINSIGHTS_RESOURCE_ID, and that your identity may read it and its workspace (Reader or Monitoring Reader)';
      return { name, ok: false, detail: `telemetry workspace not found: ${why(e)}`, fix: readFix };
    }
  }
  try {
    const r = await logs.queryWorkspace(workspace, LAST_RUN_QUERY, { duration: 'P1D' });
    if (r.status !== LogsQueryResultStatus.Success) throw new Error(r.partialError.message);
    const row = r.tables[0]?.rows[0];
    const runs = Number(row?.[0] ?? 0);
    if (row === undefined || runs === 0)
      return {
        name,
        ok: false,
        detail: `no UnusualCityRun event in the last day (workspace ${workspace})`,
        fix,
      };
    const ageMs = nowMs - new Date(row[1] as string | Date).getTime();
    const detail = `last UnusualCityRun ${minutes(ageMs)} ago (${runs} in the last day, workspace ${workspace})`;
    return ageMs <= 3 * s.UC_TICK_INTERVAL ? { name, ok: true, detail } : { name, ok: false, detail, fix };
  } catch (e) {
    return { name, ok: false, detail: why(e), fix };
  }
}
