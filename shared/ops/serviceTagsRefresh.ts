/**
 * Keeps the Azure Service Tags document in Blob Storage current (UC_SERVICE_TAGS_BLOB): reads it from Azure
 * Resource Manager with the function's identity,
 * `GET {UC_ARM_ENDPOINT}/subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/serviceTags?api-version=2025-05-01`
 * (following nextLink), checks it is a service tags document with regional prefixes, and only then replaces the
 * blob. The detector picks the new blob up by its ETag (shared/geo/azureRangesProvider.ts).
 *
 * A failure – no rights (403: the identity needs Microsoft.Network/locations/serviceTags/read on the
 * subscription), an ARM error, a malformed answer – returns 'failed' with a reason and leaves the blob as it was.
 */
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createPipelineFromOptions,
  createPipelineRequest,
  type Pipeline,
} from '@azure/core-rest-pipeline';
import type { TokenCredential } from '@azure/identity';
import type { BlobServiceClient } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import { AzureRanges, readServiceTagsDocument, type ServiceTagsDocument } from '../geo/azureRanges.js';
import { describeStorageError, parseBlobLocation } from '../geo/provider.js';
import type { LogFn } from '../run/log.js';

export const SERVICE_TAGS_API_VERSION = '2025-05-01';

/** The custom role infra/ assigns (infra/modules/serviceTagsReader.bicep), named in the 403 advice. */
export const SERVICE_TAGS_ROLE_NAME = 'unusual-city Service Tags Reader';

export interface ServiceTagsRefreshOptions {
  settings: Settings;
  /** The Blob service of UC_SERVICE_TAGS_BLOB (managed identity in Azure). */
  blobService: BlobServiceClient;
  /** The function's identity: a token for `{UC_ARM_ENDPOINT}/.default`. */
  credential: TokenCredential;
  log: LogFn;
  /** Extra trust for ARM (tests: the local fake's self-signed certificate). */
  tlsCa?: string;
}

export interface ServiceTagsRefreshResult {
  status: 'updated' | 'unchanged' | 'failed';
  reason?: string;
  changeNumber?: string;
  regions?: number;
  blocks?: number;
}

/** A failure whose message is the whole reason (no stack, no request details). */
class RefreshFailure extends Error {}

const MAX_PAGES = 20;

/** Reads, checks and stores the Service Tags. Never throws: failures come back as status 'failed'. */
export async function refreshServiceTags(opts: ServiceTagsRefreshOptions): Promise<ServiceTagsRefreshResult> {
  const s = opts.settings;
  try {
    if (s.UC_SERVICE_TAGS_SUBSCRIPTION_ID === '')
      throw new RefreshFailure(
        'UC_SERVICE_TAGS_SUBSCRIPTION_ID is empty: no subscription to read them through',
      );
    if (s.UC_ARM_ENDPOINT === '')
      throw new RefreshFailure('UC_ARM_ENDPOINT is empty: set it to https://management.azure.com');
    const { doc, raw } = await fetchServiceTags(opts);
    const ranges = AzureRanges.fromDocument(doc);
    const summary = { changeNumber: doc.changeNumber, regions: ranges.regions.size, blocks: ranges.size };
    const stored = await storeServiceTags(opts, doc.changeNumber, raw);
    return stored ? { status: 'updated', ...summary } : { status: 'unchanged', ...summary };
  } catch (error) {
    const reason = error instanceof RefreshFailure ? error.message : `unexpected: ${String(error)}`;
    return { status: 'failed', reason };
  }
}

function armPipeline(opts: ServiceTagsRefreshOptions, endpoint: string): Pipeline {
  const pipeline = createPipelineFromOptions({
    ...(opts.tlsCa !== undefined ? { tlsOptions: { ca: opts.tlsCa } } : {}),
    retryOptions: { maxRetries: 3 },
  });
  pipeline.addPolicy(
    bearerTokenAuthenticationPolicy({ credential: opts.credential, scopes: `${endpoint}/.default` }),
  );
  return pipeline;
}

/** Every page of the ARM answer, merged (`raw`, as ARM sent it, without nextLink) and checked (`doc`). */
async function fetchServiceTags(
  opts: ServiceTagsRefreshOptions,
): Promise<{ doc: ServiceTagsDocument; raw: Record<string, unknown> }> {
  const s = opts.settings;
  const endpoint = new URL(s.UC_ARM_ENDPOINT).origin;
  const pipeline = armPipeline(opts, endpoint);
  const client = createDefaultHttpClient();
  let url: string | undefined =
    `${endpoint}/subscriptions/${encodeURIComponent(s.UC_SERVICE_TAGS_SUBSCRIPTION_ID)}/providers/` +
    `Microsoft.Network/locations/${encodeURIComponent(s.UC_SERVICE_TAGS_LOCATION)}/serviceTags` +
    `?api-version=${SERVICE_TAGS_API_VERSION}`;
  let first: Record<string, unknown> | undefined;
  const values: unknown[] = [];
  let pages = 0;
  for (; url !== undefined; pages++) {
    if (pages >= MAX_PAGES) throw new RefreshFailure(`more than ${MAX_PAGES} pages of service tags`);
    if (new URL(url).origin !== endpoint)
      throw new RefreshFailure(`nextLink leaves ${endpoint} (${new URL(url).origin}): not followed`);
    const body = await getJson(pipeline, client, url, s);
    first ??= body;
    if (!Array.isArray(body.values)) throw new RefreshFailure(malformed('a page has no values list'));
    values.push(...(body.values as unknown[]));
    url = typeof body.nextLink === 'string' && body.nextLink !== '' ? body.nextLink : undefined;
  }
  opts.log(
    'info',
    `refreshServiceTags: ${values.length} service tags read in ${pages} page(s) from ${endpoint}`,
  );
  const { nextLink: _last, ...rest } = first ?? {};
  const raw = { ...rest, values };
  try {
    return { doc: readServiceTagsDocument(raw, 'the ARM serviceTags answer'), raw };
  } catch (error) {
    throw new RefreshFailure(malformed((error as Error).message));
  }
}

const malformed = (problem: string) =>
  `malformed service tags (${problem}); the blob keeps the previous document`;

/** One GET; a non-2xx answer becomes a RefreshFailure that says what to do. */
async function getJson(
  pipeline: Pipeline,
  client: ReturnType<typeof createDefaultHttpClient>,
  url: string,
  s: Settings,
): Promise<Record<string, unknown>> {
  let response;
  try {
    response = await pipeline.sendRequest(client, createPipelineRequest({ url, method: 'GET' }));
  } catch (error) {
    throw new RefreshFailure(`cannot reach ${new URL(url).origin}: ${(error as Error).message}`);
  }
  const text = response.bodyAsText ?? '';
  if (response.status === 403) throw new RefreshFailure(forbidden(s, armError(text)));
  if (response.status < 200 || response.status > 299)
    throw new RefreshFailure(`ARM answered HTTP ${response.status}${armError(text)}`);
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && !Array.isArray(body))
      return body as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new RefreshFailure(malformed('the answer is not a JSON object'));
}

function forbidden(s: Settings, detail: string): string {
  return (
    `ARM answered HTTP 403${detail}: the function's identity may not read the Service Tags of subscription ` +
    `${s.UC_SERVICE_TAGS_SUBSCRIPTION_ID}. Grant it the custom role "${SERVICE_TAGS_ROLE_NAME}" ` +
    '(only Microsoft.Network/locations/serviceTags/read; infra/ deploys it with grantServiceTagsRead=true) or ' +
    'Reader on that subscription; or upload the published ServiceTags_Public JSON to UC_SERVICE_TAGS_BLOB ' +
    'yourself and empty UC_SERVICE_TAGS_SUBSCRIPTION_ID'
  );
}

/** ` (Code: message)` from an ARM error body, bounded; '' when there is none. */
function armError(text: string): string {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e === undefined) return '';
    const code = typeof e.code === 'string' ? e.code : '?';
    const message = typeof e.message === 'string' ? e.message : '';
    return ` (${code}: ${message.slice(0, 300)})`;
  } catch {
    return '';
  }
}

/** Writes the document unless the blob already holds this change number. True when written. */
async function storeServiceTags(
  opts: ServiceTagsRefreshOptions,
  changeNumber: string,
  raw: unknown,
): Promise<boolean> {
  const { container, blob } = parseBlobLocation(opts.settings.UC_SERVICE_TAGS_BLOB);
  const containerClient = opts.blobService.getContainerClient(container);
  const client = containerClient.getBlockBlobClient(blob);
  try {
    const existing = await client.getProperties().catch((e: unknown) => {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    });
    if (changeNumber !== '' && existing?.metadata?.changenumber === changeNumber) return false;
    if (existing === undefined) await containerClient.createIfNotExists();
    await client.uploadData(Buffer.from(JSON.stringify(raw)), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
      metadata: { changenumber: changeNumber, source: 'arm' },
    });
    return true;
  } catch (error) {
    throw new RefreshFailure(
      `cannot write blob ${container}/${blob} (UC_SERVICE_TAGS_BLOB): ${describeStorageError(error)}`,
    );
  }
}
