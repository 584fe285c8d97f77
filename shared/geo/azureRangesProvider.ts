/**
 * Where the detector's Azure ranges come from, kept across the runs of one Functions process, and how they join
 * the GeoIP database:
 *
 *  UC_SERVICE_TAGS_BLOB (container/blob in UC_BLOB_ENDPOINT) – the document refreshServiceTags writes weekly
 *     (or the published ServiceTags_Public JSON an operator uploads). Every run asks for the blob's properties
 *     (one HEAD) and downloads again only when the ETag changed; a new version that is not a service tags
 *     document is reported and the previous good one stays in use.
 *
 * Missing or unreadable ranges never stop detection: the runs go on with cities only, and say so.
 */
import type { BlobClient, BlobServiceClient } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import type { LogFn } from '../run/log.js';
import { AzureRanges, readServiceTagsDocument, withAzureRanges } from './azureRanges.js';
import { describeStorageError, type GeoDatabase, parseBlobLocation, storageStatus } from './provider.js';
import type { Geolocator } from './types.js';

/** What a run asks for its GeoIP database: the {@link GeoDatabaseProvider} or one wrapped here. */
export interface GeoDatabaseSource {
  current(log?: LogFn): Promise<GeoDatabase>;
}

export interface LoadedAzureRanges {
  ranges: AzureRanges;
  /** `blob geoip/ServiceTags.json (etag "0x…")` or the file path. */
  source: string;
}

/** The Service Tags document is a few MB; refuse anything absurd. */
const MAX_BYTES = 64 * 1024 * 1024;

const HOW_TO =
  'Run the refreshServiceTags function (its identity needs Microsoft.Network/locations/serviceTags/read on ' +
  'UC_SERVICE_TAGS_SUBSCRIPTION_ID) or upload the published ServiceTags_Public_<date>.json ' +
  '(https://www.microsoft.com/download/details.aspx?id=56519) to that blob';

const describe = (ranges: AzureRanges): string =>
  `change number ${ranges.changeNumber || '?'}, ${ranges.regions.size} regions, ${ranges.size} blocks`;

function parseDocument(text: string, where: string): AzureRanges {
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new Error(`${where} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  return AzureRanges.fromDocument(readServiceTagsDocument(doc, where));
}

/** The Azure ranges of the runs, from the blob (ETag reload). */
export class AzureRangesProvider {
  private constructor(private readonly load: (log: LogFn) => Promise<LoadedAzureRanges | undefined>) {}

  /** Undefined when UC_AZURE_RANGES=off or no source is set. Throws when the blob is set without a Blob service. */
  static fromSettings(settings: Settings, blobService?: BlobServiceClient): AzureRangesProvider | undefined {
    if (settings.UC_AZURE_RANGES === 'off') return undefined;
    if (settings.UC_SERVICE_TAGS_BLOB !== '') {
      if (blobService === undefined) {
        throw new Error(
          `UC_SERVICE_TAGS_BLOB=${settings.UC_SERVICE_TAGS_BLOB} is set but no Blob service is configured: set ` +
            'UC_BLOB_ENDPOINT (or UC_STORAGE_CONNECTION_STRING for local development).',
        );
      }
      const blob = new BlobRanges(blobService, settings.UC_SERVICE_TAGS_BLOB);
      return new AzureRangesProvider((log) => blob.load(log));
    }
    // UC_SERVICE_TAGS_FILE stays the allowlist's alone: reading it here would re-key existing places unasked.
    return undefined;
  }

  /** The ranges for this run, or undefined (none loadable yet: the run locates by city only). */
  current(log: LogFn): Promise<LoadedAzureRanges | undefined> {
    return this.load(log);
  }
}

class BlobRanges {
  private readonly client: BlobClient;
  private readonly name: string;
  private loaded: (LoadedAzureRanges & { etag: string }) | undefined;
  private rejected: { etag: string; reason: string } | undefined;
  /** The last problem reported, so an unchanged one is not logged on every run. */
  private reported = '';

  constructor(service: BlobServiceClient, location: string) {
    const { container, blob } = parseBlobLocation(location);
    this.client = service.getContainerClient(container).getBlobClient(blob);
    this.name = `${container}/${blob}`;
  }

  async load(log: LogFn): Promise<LoadedAzureRanges | undefined> {
    let etag: string;
    let bytes: number;
    try {
      const properties = await this.client.getProperties();
      etag = properties.etag ?? '';
      bytes = properties.contentLength ?? 0;
    } catch (error) {
      const missing = storageStatus(error) === 404;
      return this.keep(
        log,
        missing ? 'does not exist yet' : `cannot be read: ${describeStorageError(error)}`,
      );
    }
    if (this.loaded?.etag === etag) return this.loaded;
    if (this.rejected?.etag === etag) return this.keep(log, `version ${etag}: ${this.rejected.reason}`);
    let text: string;
    try {
      if (bytes > MAX_BYTES)
        throw new Error(`the blob is ${bytes} bytes, more than the ${MAX_BYTES} accepted`);
      const buffer = await this.client.downloadToBuffer(0, undefined, { maxRetryRequestsPerBlock: 3 });
      text = buffer.toString('utf8');
    } catch (error) {
      return this.keep(log, `download failed: ${describeStorageError(error)}`);
    }
    const source = `blob ${this.name} (etag ${etag})`;
    try {
      const ranges = parseDocument(text, `blob ${this.name}`);
      const previous = this.loaded;
      this.loaded = { ranges, source, etag };
      this.rejected = undefined;
      this.reported = '';
      const replaces = previous === undefined ? '' : ` (replaces etag ${previous.etag})`;
      log('info', `Azure ranges loaded from ${source}: ${describe(ranges)}${replaces}`);
      return this.loaded;
    } catch (error) {
      this.rejected = { etag, reason: (error as Error).message };
      return this.keep(log, `version ${etag}: ${this.rejected.reason}`);
    }
  }

  private keep(log: LogFn, problem: string): LoadedAzureRanges | undefined {
    const message =
      this.loaded !== undefined
        ? `Azure ranges blob ${this.name} (UC_SERVICE_TAGS_BLOB) ${problem}. Still using etag ${this.loaded.etag}.`
        : `Azure ranges blob ${this.name} (UC_SERVICE_TAGS_BLOB) ${problem}: Azure addresses are located by ` +
          `city until it loads. ${HOW_TO}.`;
    if (message !== this.reported) log('warn', message);
    this.reported = message;
    return this.loaded;
  }
}

/**
 * The GeoIP database of each run with the Azure ranges applied ({@link withAzureRanges}). The combined
 * geolocator is rebuilt only when either side changed, so its per-address caches survive between runs.
 */
export function withAzureRangesProvider(
  geo: GeoDatabaseSource,
  azure: AzureRangesProvider | undefined,
  defaultLog: LogFn = () => undefined,
): GeoDatabaseSource {
  if (azure === undefined) return geo;
  let last: { inner: Geolocator; ranges: AzureRanges | undefined; combined: Geolocator } | undefined;
  return {
    async current(log?: LogFn): Promise<GeoDatabase> {
      const db = await geo.current(log);
      const loaded = await azure.current(log ?? defaultLog);
      if (last?.inner !== db.geo || last.ranges !== loaded?.ranges) {
        const combined = loaded === undefined ? db.geo : withAzureRanges(db.geo, loaded.ranges);
        last = { inner: db.geo, ranges: loaded?.ranges, combined };
      }
      return { ...db, geo: last.combined };
    },
  };
}
