/**
 * refreshGeoIpDatabase: a timer (UC_GEOIP_REFRESH_SCHEDULE, default Mondays 04:00 UTC) that downloads the
 * current MaxMind City database into UC_GEOIP_BLOB and the current network database (UC_ASN_EDITION, unless
 * off) into UC_ASN_BLOB, where the detector picks them up by their ETags.
 *
 * Thin on purpose: settings and the Blob client are built once per process, the work is
 * shared/geo/maxmind.ts. The editions are refreshed one after the other, each reported; one failing does not
 * stop the other. A failed refresh is logged as an error and fails the invocation (after both ran, so it shows
 * as failed in the portal and in alerting on function failures); a blob is never left worse than it was.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import type { BlobServiceClient } from '@azure/storage-blob';

import { loadSettings, type Settings } from '../shared/config/settings.js';
import {
  type EditionKind,
  editionSettings,
  refreshGeoIpDatabase,
  type RefreshOptions,
  type RefreshResult,
} from '../shared/geo/maxmind.js';
import type { LogFn } from '../shared/pipeline/tick.js';
import { RunBudget } from '../shared/runtime/budget.js';
import { blobServiceFromSettings } from '../shared/runtime/clients.js';

export interface RefreshDeps {
  /** Default: process.env (app settings, Key Vault references already resolved by the platform). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Default: {@link blobServiceFromSettings} (managed identity for UC_BLOB_ENDPOINT, Azurite locally). */
  blobService?: (
    settings: Settings,
    env: Readonly<Record<string, string | undefined>>,
  ) => BlobServiceClient | undefined;
  /** Default: {@link refreshGeoIpDatabase}. */
  refresh?: typeof refreshGeoIpDatabase;
  /** Passed to refresh: a fetch, or trust for node:https (tests). */
  download?: Pick<RefreshOptions, 'fetchImpl' | 'tls'>;
  clock?: () => number;
}

export type TimerHandler = (timer: Timer, context: InvocationContext) => Promise<void>;

/** The handler, with its dependencies injectable for tests. Settings and clients are built on first use. */
export function makeRefreshHandler(deps: RefreshDeps = {}): TimerHandler {
  const env = deps.env ?? process.env;
  const refresh = deps.refresh ?? refreshGeoIpDatabase;
  const clock = deps.clock ?? Date.now;
  let ready: { settings: Settings; blobService: BlobServiceClient | undefined } | undefined;

  return async (timer, context) => {
    // A bad setting throws here (secrets masked) and fails the run; it is not cached, so a fix takes effect.
    if (ready === undefined) {
      const settings = loadSettings(env);
      const blobService =
        settings.UC_GEOIP_BLOB === ''
          ? undefined
          : (deps.blobService ?? blobServiceFromSettings)(settings, env);
      ready = { settings, blobService };
    }
    const { settings, blobService } = ready;
    if (settings.UC_GEOIP_BLOB === '') {
      context.log(
        'refreshGeoIpDatabase: UC_GEOIP_BLOB is not set, so there is no GeoIP database blob to refresh.',
      );
      return;
    }
    if (blobService === undefined) {
      const message =
        `refreshGeoIpDatabase: UC_GEOIP_BLOB=${settings.UC_GEOIP_BLOB} needs a Blob service: set UC_BLOB_ENDPOINT ` +
        '(or UC_STORAGE_CONNECTION_STRING with a BlobEndpoint for local development).';
      context.error(message);
      throw new Error(message);
    }
    if (timer.isPastDue) context.log('refreshGeoIpDatabase: this run is late (past due).');
    const log: LogFn = (level, message) => {
      if (level === 'error') context.error(message);
      else if (level === 'warn') context.warn(message);
      else context.log(message);
    };
    const budget = new RunBudget(settings.UC_RUN_BUDGET, clock);
    const kinds: EditionKind[] =
      settings.UC_ASN_EDITION !== '' && settings.UC_ASN_BLOB !== '' ? ['city', 'asn'] : ['city'];
    const failures: string[] = [];
    for (const edition of kinds) {
      const result = await refresh({ settings, blobService, log, budget, edition, ...deps.download });
      const failure = report(context, editionSettings(settings, edition).blob, result);
      if (failure !== undefined) failures.push(failure);
    }
    if (failures.length > 0) throw new Error(failures.join('\n'));
  };
}

/** Logs one edition's result; returns the error message when it failed (already logged as an error). */
function report(context: InvocationContext, blob: string, result: RefreshResult): string | undefined {
  const built =
    result.buildDate === undefined ? '' : `, built ${result.buildDate.toISOString().slice(0, 10)}`;
  switch (result.status) {
    case 'updated':
      context.log(`refreshGeoIpDatabase: updated ${blob}${built}, SHA-256 ${result.sha256 ?? '?'}.`);
      return undefined;
    case 'unchanged':
      context.log(`refreshGeoIpDatabase: ${blob} unchanged${built} (${result.reason ?? 'same database'}).`);
      return undefined;
    case 'failed': {
      const message = `refreshGeoIpDatabase failed, ${blob} left as it was: ${result.reason ?? 'unknown reason'}`;
      context.error(message);
      return message;
    }
  }
}

const handler = makeRefreshHandler();

export async function refreshGeoIpDatabaseTimer(timer: Timer, context: InvocationContext): Promise<void> {
  await handler(timer, context);
}

app.timer('refreshGeoIpDatabase', {
  schedule: '%UC_GEOIP_REFRESH_SCHEDULE%',
  runOnStartup: false,
  handler: refreshGeoIpDatabaseTimer,
});
