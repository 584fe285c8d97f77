/**
 * refreshServiceTags: a timer (UC_SERVICE_TAGS_REFRESH_SCHEDULE, default Mondays 04:30 UTC) that reads the Azure
 * Service Tags from ARM with the function's identity and stores them in UC_SERVICE_TAGS_BLOB, where the detector
 * picks them up by their ETag (Azure addresses keyed as `Azure <region>`). The work is shared/ops/serviceTagsRefresh.ts.
 * Without UC_SERVICE_TAGS_SUBSCRIPTION_ID it does nothing: operators may upload the published JSON themselves.
 * A failure is logged as an error and fails the invocation; the blob is left as it was.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import type { TokenCredential } from '@azure/identity';
import type { BlobServiceClient } from '@azure/storage-blob';

import { loadSettings, type Settings } from '../shared/config/settings.js';
import { refreshServiceTags } from '../shared/ops/serviceTagsRefresh.js';
import { blobServiceFromSettings, createCredential } from '../shared/runtime/clients.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface ServiceTagsRefreshDeps {
  /** Default: process.env. */
  env?: Env;
  /** Trust for a local fake ARM (tests only). */
  tlsCa?: string;
}

interface Ready {
  settings: Settings;
  credential: TokenCredential;
  blobService: BlobServiceClient | undefined;
}

/** The handler; settings and clients are built on first use (a bad setting fails the run, and is retried). */
export function makeServiceTagsRefreshHandler(deps: ServiceTagsRefreshDeps = {}) {
  const env = deps.env ?? process.env;
  let ready: Ready | undefined;
  return async (_timer: Timer, context: InvocationContext): Promise<void> => {
    if (ready === undefined) {
      const settings = loadSettings(env);
      const credential = createCredential(env);
      ready = { settings, credential, blobService: blobServiceFromSettings(settings, env, credential) };
    }
    const { settings, credential, blobService } = ready;
    if (settings.UC_SERVICE_TAGS_BLOB === '' || settings.UC_SERVICE_TAGS_SUBSCRIPTION_ID === '') {
      context.log(
        'refreshServiceTags: UC_SERVICE_TAGS_BLOB or UC_SERVICE_TAGS_SUBSCRIPTION_ID is empty, nothing to refresh.',
      );
      return;
    }
    if (blobService === undefined) throw fail(context, 'UC_SERVICE_TAGS_BLOB needs UC_BLOB_ENDPOINT.');
    const log = (level: 'info' | 'warn' | 'error', message: string) =>
      level === 'info'
        ? context.log(message)
        : level === 'warn'
          ? context.warn(message)
          : context.error(message);
    const result = await refreshServiceTags({
      settings,
      blobService,
      credential,
      log,
      ...(deps.tlsCa !== undefined ? { tlsCa: deps.tlsCa } : {}),
    });
    const what = `change number ${result.changeNumber}, ${result.regions} regions, ${result.blocks} blocks`;
    if (result.status === 'failed') throw fail(context, `failed, blob left as it was: ${result.reason}`);
    context.log(`refreshServiceTags: ${result.status} ${settings.UC_SERVICE_TAGS_BLOB} (${what}).`);
  };
}

function fail(context: InvocationContext, message: string): Error {
  context.error(`refreshServiceTags ${message}`);
  return new Error(`refreshServiceTags ${message}`);
}

const handler = makeServiceTagsRefreshHandler();

app.timer('refreshServiceTags', {
  schedule: '%UC_SERVICE_TAGS_REFRESH_SCHEDULE%',
  runOnStartup: false,
  handler: (timer, context) => handler(timer, context),
});
