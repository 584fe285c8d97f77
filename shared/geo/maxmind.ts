/**
 * Keeps the GeoIP databases in Blob Storage current – the City edition (UC_GEOIP_EDITION → UC_GEOIP_BLOB) and
 * the network edition (UC_ASN_EDITION → UC_ASN_BLOB), each the same way: downloads MaxMind's latest release,
 * checks it thoroughly, and replaces the blob only with a database known to work. The detector picks the new
 * blob up by its ETag (see provider.ts).
 *
 * Nothing here ever leaves the blob worse than it was: any failure – credentials rejected, rate limit,
 * checksum mismatch, corrupt or unexpected archive, wrong kind of database, spent budget, a concurrent
 * refresh – returns status 'failed' with a reason, and the blob is only written by one conditional request
 * at the very end. The account id and licence key never appear in a log line, error or reason.
 */
import { createHash } from 'node:crypto';
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

import type { BlobServiceClient, BlockBlobClient, ContainerClient } from '@azure/storage-blob';

import type { Settings } from '../config/settings.js';
import type { RunBudget } from '../run/budget.js';
import type { LogFn } from '../run/log.js';
import { openNetworkLocatorFromBuffer } from './asnDatabase.js';
import { openGeolocatorFromBuffer } from './geolocator.js';
import { readMmdbMetadata } from './mmdb-metadata.js';
import { describeStorageError, parseBlobLocation, storageStatus } from './provider.js';
import { extractFile, gunzip, TarError } from './tar.js';

export interface RefreshOptions {
  settings: Settings;
  /** The Blob service of UC_GEOIP_BLOB, built by the caller (managed identity in Azure). */
  blobService: BlobServiceClient;
  log: LogFn;
  budget: RunBudget;
  /**
   * Download with this fetch (redirects handled here, `redirect: 'manual'`). Default: node:https, which
   * takes {@link tls}.
   */
  fetchImpl?: typeof fetch;
  /** Extra trust for the node:https download (tests: the local fake's self-signed certificate). */
  tls?: { ca?: string | Buffer | (string | Buffer)[] };
  clock?: () => number;
  /** Bounds on what is accepted from the network (defaults: {@link GEOIP_LIMITS}). */
  limits?: { maxArchiveBytes?: number; maxDatabaseBytes?: number };
  /** Which database: the City edition (default) or the network (ASN / ISP) edition. */
  edition?: EditionKind;
}

export type EditionKind = 'city' | 'asn';

export interface RefreshResult {
  status: 'updated' | 'unchanged' | 'failed';
  /** Why it failed, or why nothing changed. Never contains credentials. */
  reason?: string;
  /** Build date of the database now in the blob (updated / unchanged, when known). */
  buildDate?: Date;
  /** SHA-256 (hex) of the .mmdb now in the blob (updated / unchanged, when known). */
  sha256?: string;
}

/**
 * An address any City edition places in a country and any ASN / ISP edition in an autonomous system (Google's
 * public resolver, AS15169); a database that cannot answer it is not worth deploying.
 */
const PROBE_IP = '8.8.8.8';
const MAX_REDIRECTS = 3;
const MAX_CHECKSUM_BYTES = 4096;
/**
 * What a real City edition weighs, with room to grow: GeoLite2-City is a ~35 MB .tar.gz holding a ~60 MB .mmdb,
 * GeoIP2-City somewhat more. Anything far beyond is not MaxMind's, and must not take the worker's memory.
 */
export const GEOIP_LIMITS = {
  /** The downloaded .tar.gz. */
  maxArchiveBytes: 128 * 1024 * 1024,
  /** The tar once gunzipped (the .mmdb and a few small files). */
  maxDatabaseBytes: 256 * 1024 * 1024,
} as const;
const DEFAULT_MAX_ARCHIVE_BYTES = GEOIP_LIMITS.maxArchiveBytes;
const DEFAULT_MAX_DATABASE_BYTES = GEOIP_LIMITS.maxDatabaseBytes;

/** A failure with a reason fit to log (the caller still redacts it, as defence in depth). */
class RefreshFailure extends Error {
  override name = 'RefreshFailure';
}

/** Current state of the blob, read before anything else so the final write can be conditional on it. */
interface BlobState {
  etag?: string;
  containerMissing: boolean;
  sha256?: string;
  archiveSha256?: string;
  buildEpoch?: number;
  edition?: string;
}

/** What differs between the two editions: where they come from, where they go, how a database is probed. */
interface Edition {
  /** `GeoIP` or `ASN`, starting log lines. */
  label: string;
  edition: string;
  editionSetting: 'UC_GEOIP_EDITION' | 'UC_ASN_EDITION';
  blob: string;
  blobSetting: 'UC_GEOIP_BLOB' | 'UC_ASN_BLOB';
  /** Throws (any error) when the database does not answer the probe as this edition must. */
  probe(mmdb: Buffer, file: string): void;
}

/** The settings of one edition. */
export function editionSettings(s: Settings, kind: EditionKind): { edition: string; blob: string } {
  return kind === 'city'
    ? { edition: s.UC_GEOIP_EDITION, blob: s.UC_GEOIP_BLOB }
    : { edition: s.UC_ASN_EDITION, blob: s.UC_ASN_BLOB };
}

function editionOf(s: Settings, kind: EditionKind): Edition {
  const { edition, blob } = editionSettings(s, kind);
  if (kind === 'city') {
    return {
      label: 'GeoIP',
      edition,
      editionSetting: 'UC_GEOIP_EDITION',
      blob,
      blobSetting: 'UC_GEOIP_BLOB',
      probe: probeCity,
    };
  }
  return {
    label: 'ASN',
    edition,
    editionSetting: 'UC_ASN_EDITION',
    blob,
    blobSetting: 'UC_ASN_BLOB',
    probe: probeAsn,
  };
}

/**
 * Downloads `{UC_MAXMIND_DOWNLOAD_URL}/{edition}/download?suffix=tar.gz` (and its .sha256) with the MaxMind
 * account id and licence key, verifies and validates the database, and writes it to the edition's blob
 * (UC_GEOIP_BLOB for the City edition UC_GEOIP_EDITION, UC_ASN_BLOB for the network edition UC_ASN_EDITION)
 * with metadata sha256 / archivesha256 / buildepoch / edition – unless the blob already holds it.
 * Never throws for a refresh problem: returns status 'failed' and a reason (not logged here; progress is
 * logged through `log`).
 */
export async function refreshGeoIpDatabase(opts: RefreshOptions): Promise<RefreshResult> {
  const s = opts.settings;
  const accountId = s.UC_MAXMIND_ACCOUNT_ID;
  const licenceKey = s.UC_MAXMIND_LICENSE_KEY;
  const basic = Buffer.from(`${accountId}:${licenceKey}`).toString('base64');
  const redact = redactor([licenceKey, accountId, basic]);
  const log: LogFn = (level, message) => opts.log(level, redact(message));
  try {
    const result = await refresh(opts, log, `Basic ${basic}`);
    return result.reason === undefined ? result : { ...result, reason: redact(result.reason) };
  } catch (error) {
    const reason = redact(
      error instanceof RefreshFailure || error instanceof TarError
        ? error.message
        : `unexpected error: ${error instanceof Error ? error.message : String(error)}`,
    );
    // Not logged here: the caller reports the result (the Function logs it as an error and fails the run).
    return { status: 'failed', reason };
  }
}

/** A download from MaxMind: GET with credentials on their origin, at most `maxBytes`. */
type Download = (url: string, what: string, maxBytes: number) => Promise<Buffer>;

/** The edition to refresh and the clients of its blob. */
interface RefreshTarget {
  target: Edition;
  container: ContainerClient;
  blob: BlockBlobClient;
  containerName: string;
  /** `container/blob`, as log lines and reasons name it. */
  blobName: string;
}

async function refresh(opts: RefreshOptions, log: LogFn, authorization: string): Promise<RefreshResult> {
  const { budget } = opts;
  const clock = opts.clock ?? Date.now;
  const t = refreshTarget(opts);
  const { edition, label } = t.target;

  checkBudget(budget, 'reading the current blob');
  const before = await readBlobState(t.container, t.blob, budget);
  log(
    'info',
    before.etag === undefined
      ? `${label} refresh: blob ${t.blobName} does not exist yet; downloading ${edition}.`
      : `${label} refresh: blob ${t.blobName} holds ${before.edition ?? 'an unknown edition'} built ` +
          `${before.buildEpoch === undefined ? '(unknown)' : isoDate(before.buildEpoch)}; checking MaxMind for ${edition}.`,
  );

  const download = downloader(opts, authorization, t.target.editionSetting);
  const base = `${opts.settings.UC_MAXMIND_DOWNLOAD_URL}/${encodeURIComponent(edition)}/download`;
  const expected = await expectedArchiveSha256(download, base);

  // The cheap answer for the usual run: MaxMind still serves the archive this blob was made from.
  if (before.archiveSha256 === expected && before.edition === edition) {
    log('info', `${label} refresh: ${edition} unchanged (archive SHA-256 ${expected}); nothing to do.`);
    return unchanged('MaxMind still serves the archive the blob was made from', before);
  }

  const mmdb = await downloadDatabase(opts, download, base, expected, edition);
  const built = validateDatabase(mmdb, t.target, clock());
  const digest = sha256(mmdb);
  const buildEpoch = Math.round(built.getTime() / 1000);
  log(
    'info',
    `${label} refresh: downloaded ${edition} built ${isoDate(buildEpoch)} (${mmdb.length} bytes, SHA-256 ${digest}); ` +
      'checksum verified, database opens and answers lookups.',
  );

  const current = alreadyCurrent(before, digest, edition, buildEpoch);
  if (current !== undefined) return current;

  const metadata = { sha256: digest, archivesha256: expected, buildepoch: String(buildEpoch), edition };
  await uploadDatabase(t, before, mmdb, metadata, budget);
  log('info', `${label} refresh: blob ${t.blobName} now holds ${edition} built ${isoDate(buildEpoch)}.`);
  return { status: 'updated', buildDate: built, sha256: digest };
}

/** Checks that every setting the refresh needs is set, and opens the edition's container and blob. */
function refreshTarget(opts: RefreshOptions): RefreshTarget {
  const s = opts.settings;
  const target = editionOf(s, opts.edition ?? 'city');
  const missing = [
    target.edition === '' ? target.editionSetting : '',
    target.blob === '' ? target.blobSetting : '',
    s.UC_MAXMIND_ACCOUNT_ID === '' ? 'UC_MAXMIND_ACCOUNT_ID' : '',
    s.UC_MAXMIND_LICENSE_KEY === '' ? 'UC_MAXMIND_LICENSE_KEY' : '',
    s.UC_MAXMIND_DOWNLOAD_URL === '' ? 'UC_MAXMIND_DOWNLOAD_URL' : '',
  ].filter((n) => n !== '');
  if (missing.length > 0) throw new RefreshFailure(`not configured: set ${missing.join(', ')}`);
  const location = parseBlobLocation(target.blob, target.blobSetting);
  const container = opts.blobService.getContainerClient(location.container);
  const blob = container.getBlockBlobClient(location.blob);
  const blobName = `${location.container}/${location.blob}`;
  return { target, container, blob, containerName: location.container, blobName };
}

/** MaxMind's SHA-256 of the current archive, read from its checksum file. */
async function expectedArchiveSha256(download: Download, base: string): Promise<string> {
  const checksumText = (await download(`${base}?suffix=tar.gz.sha256`, 'checksum file', MAX_CHECKSUM_BYTES))
    .toString('utf8')
    .trim();
  const checksum = /^([0-9a-fA-F]{64})(?:[ \t]+\*?(\S+))?$/.exec(checksumText);
  if (checksum === null) throw new RefreshFailure('the checksum file is not "<sha256>  <file name>"');
  return (checksum[1] ?? '').toLowerCase();
}

/** Downloads the archive, verifies it against MaxMind's checksum and unpacks the edition's .mmdb from it. */
async function downloadDatabase(
  opts: RefreshOptions,
  download: Download,
  base: string,
  expected: string,
  edition: string,
): Promise<Buffer> {
  const archive = await download(
    `${base}?suffix=tar.gz`,
    'archive',
    opts.limits?.maxArchiveBytes ?? DEFAULT_MAX_ARCHIVE_BYTES,
  );
  const actual = sha256(archive);
  if (actual !== expected) {
    throw new RefreshFailure(
      `checksum mismatch: the archive's SHA-256 is ${actual}, MaxMind's checksum file says ${expected}`,
    );
  }
  checkBudget(opts.budget, 'unpacking the archive');
  const tar = await gunzip(archive, opts.limits?.maxDatabaseBytes ?? DEFAULT_MAX_DATABASE_BYTES);
  const file = `${edition}.mmdb`;
  const mmdb = extractFile(tar, (name) => {
    const parts = name.split('/');
    return parts.at(-1) === file && parts.length <= 2;
  });
  if (mmdb === undefined) throw new RefreshFailure(`the archive holds no ${file}`);
  return mmdb;
}

/** 'unchanged' when the blob already holds this database or a build not older than it. */
function alreadyCurrent(
  before: BlobState,
  digest: string,
  edition: string,
  buildEpoch: number,
): RefreshResult | undefined {
  if (before.sha256 === digest) {
    return unchanged('the blob already holds this database', before);
  }
  if (before.edition === edition && before.buildEpoch !== undefined && before.buildEpoch >= buildEpoch) {
    return unchanged(
      `the blob holds a build of ${isoDate(before.buildEpoch)}, not older than MaxMind's ${isoDate(buildEpoch)}`,
      before,
    );
  }
  return undefined;
}

/** Writes the database and its metadata to the blob, only over the version read at the start. */
async function uploadDatabase(
  t: RefreshTarget,
  before: BlobState,
  mmdb: Buffer,
  metadata: Record<string, string>,
  budget: RunBudget,
): Promise<void> {
  checkBudget(budget, 'uploading the database');
  if (before.containerMissing) {
    try {
      await t.container.createIfNotExists({ abortSignal: AbortSignal.timeout(budget.remainingMs()) });
    } catch (error) {
      throw storageFailure(`creating container ${t.containerName}`, error);
    }
  }
  try {
    await t.blob.uploadData(mmdb, {
      // Only over the version read at the start (or only if there still is none): a concurrent refresh
      // cannot interleave, and the loser changes nothing.
      conditions: before.etag === undefined ? { ifNoneMatch: '*' } : { ifMatch: before.etag },
      metadata,
      blobHTTPHeaders: {
        blobContentType: 'application/octet-stream',
        blobContentMD5: createHash('md5').update(mmdb).digest(),
      },
      abortSignal: AbortSignal.timeout(Math.max(1, budget.remainingMs())),
    });
  } catch (error) {
    const status = storageStatus(error);
    if (status === 412 || status === 409) {
      throw new RefreshFailure(
        `blob ${t.blobName} changed while this refresh ran (another refresh?); left as the other writer made it`,
      );
    }
    throw storageFailure(`uploading to blob ${t.blobName}`, error);
  }
}

function unchanged(reason: string, before: BlobState): RefreshResult {
  const result: RefreshResult = { status: 'unchanged', reason };
  if (before.buildEpoch !== undefined) result.buildDate = new Date(before.buildEpoch * 1000);
  if (before.sha256 !== undefined) result.sha256 = before.sha256;
  return result;
}

async function readBlobState(
  container: ContainerClient,
  blob: BlockBlobClient,
  budget: RunBudget,
): Promise<BlobState> {
  try {
    const p = await blob.getProperties({
      abortSignal: AbortSignal.timeout(Math.max(1, budget.remainingMs())),
    });
    const m = p.metadata ?? {};
    const epoch = m.buildepoch !== undefined && /^\d+$/.test(m.buildepoch) ? Number(m.buildepoch) : undefined;
    const state: BlobState = { containerMissing: false };
    if (p.etag !== undefined) state.etag = p.etag;
    if (m.sha256 !== undefined) state.sha256 = m.sha256;
    if (m.archivesha256 !== undefined) state.archiveSha256 = m.archivesha256;
    if (epoch !== undefined) state.buildEpoch = epoch;
    if (m.edition !== undefined) state.edition = m.edition;
    return state;
  } catch (error) {
    if (storageStatus(error) !== 404) throw storageFailure('reading the current blob', error);
  }
  // No blob. (A HEAD's 404 does not say whether the container is missing too, so ask.)
  try {
    const exists = await container.exists({
      abortSignal: AbortSignal.timeout(Math.max(1, budget.remainingMs())),
    });
    return { containerMissing: !exists };
  } catch (error) {
    throw storageFailure('reading the current blob', error);
  }
}

/** A storage error as a failure; an abort means the budget ran out (every storage call is bounded by it). */
function storageFailure(what: string, error: unknown): RefreshFailure {
  if (error instanceof Error && error.name === 'AbortError') {
    return new RefreshFailure(`run budget (UC_RUN_BUDGET) spent while ${what}`);
  }
  return new RefreshFailure(`${what} failed: ${describeStorageError(error)}`);
}

/**
 * The database must be the configured edition, recent-looking, and answer a lookup: with a country (City), with
 * an autonomous system (ASN / ISP).
 */
function validateDatabase(mmdb: Buffer, target: Edition, now: number): Date {
  const { edition } = target;
  let databaseType: string;
  let buildDate: Date;
  try {
    ({ databaseType, buildDate } = readMmdbMetadata(mmdb));
  } catch (error) {
    throw new RefreshFailure(`${edition}.mmdb is not a MaxMind DB: ${(error as Error).message}`);
  }
  if (!databaseType.includes(edition)) {
    throw new RefreshFailure(`${edition}.mmdb is a ${databaseType} database, not ${edition}`);
  }
  if (buildDate.getTime() > now + 2 * 86_400_000) {
    throw new RefreshFailure(`${edition}.mmdb claims to be built in the future (${buildDate.toISOString()})`);
  }
  try {
    target.probe(mmdb, `${edition}.mmdb`);
  } catch (error) {
    if (error instanceof RefreshFailure) throw error;
    throw new RefreshFailure(`${edition}.mmdb does not open or answer lookups: ${(error as Error).message}`);
  }
  return buildDate;
}

function probeCity(mmdb: Buffer, file: string): void {
  const geo = openGeolocatorFromBuffer(mmdb, { noCityMode: 'country', cacheSize: 0, source: file });
  const probe = geo.locate(PROBE_IP);
  if (probe.kind !== 'city' || probe.city.country === '') {
    throw new RefreshFailure(`${file} places ${PROBE_IP} in no country (${probe.kind})`);
  }
}

function probeAsn(mmdb: Buffer, file: string): void {
  const network = openNetworkLocatorFromBuffer(mmdb, file).network(PROBE_IP);
  if (network === undefined || network.asn <= 0) {
    throw new RefreshFailure(`${file} places ${PROBE_IP} in no autonomous system`);
  }
}

function checkBudget(budget: RunBudget, what: string): void {
  if (budget.expired()) throw new RefreshFailure(`run budget (UC_RUN_BUDGET) spent before ${what}`);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function isoDate(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().slice(0, 10);
}

/** Replaces every occurrence of the secrets (too short ones could mangle ordinary numbers: skipped). */
function redactor(secrets: string[]): (text: string) => string {
  const hidden = [...new Set(secrets.filter((x) => x.length >= 4))].sort((a, b) => b.length - a.length);
  return (text) => hidden.reduce((t, secret) => t.split(secret).join('(redacted)'), text);
}

// ---------------------------------------------------------------------------------------------- download

interface RawResponse {
  status: number;
  location?: string;
  /** Read only for 200. */
  body?: Buffer;
}

type Get = (
  url: URL,
  headers: Record<string, string>,
  maxBytes: number,
  timeoutMs: number,
) => Promise<RawResponse>;

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

function allowed(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname));
}

/** A URL as logged: no query (presigned redirect targets carry signatures there), no user info. */
function shown(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * GETs with basic auth, following at most three redirects; credentials go only to the origin they were
 * configured for (MaxMind redirects to presigned storage URLs, which must not see them).
 */
function downloader(
  opts: RefreshOptions,
  authorization: string,
  editionSetting: string,
): (url: string, what: string, maxBytes: number) => Promise<Buffer> {
  const get: Get = opts.fetchImpl === undefined ? nodeGet(opts.tls) : fetchGet(opts.fetchImpl);
  return async (first, what, maxBytes) => {
    let url = new URL(first);
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      if (!allowed(url))
        throw new RefreshFailure(`refusing to download the ${what} from ${shown(url)} (not https)`);
      checkBudget(opts.budget, `downloading the ${what}`);
      const headers: Record<string, string> = { 'user-agent': 'unusual-city-geoip-refresh' };
      if (url.origin === origin) headers.authorization = authorization;
      let response: RawResponse;
      try {
        response = await get(url, headers, maxBytes, opts.budget.remainingMs());
      } catch (error) {
        if (error instanceof RefreshFailure) throw error;
        throw new RefreshFailure(
          `downloading the ${what} from ${shown(url)} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      const { status } = response;
      if ([301, 302, 303, 307, 308].includes(status)) {
        if (hop >= MAX_REDIRECTS)
          throw new RefreshFailure(`more than ${MAX_REDIRECTS} redirects for the ${what}`);
        if (response.location === undefined || response.location === '') {
          throw new RefreshFailure(`HTTP ${status} without a Location for the ${what}`);
        }
        let next: URL;
        try {
          next = new URL(response.location, url);
        } catch {
          throw new RefreshFailure(`HTTP ${status} with an invalid Location for the ${what}`);
        }
        url = next;
        continue;
      }
      if (status === 401 || status === 403) {
        throw new RefreshFailure(
          `MaxMind rejected the account id / licence key (HTTP ${status}): check UC_MAXMIND_ACCOUNT_ID and ` +
            'UC_MAXMIND_LICENSE_KEY (and that the licence key is active)',
        );
      }
      if (status === 429) {
        throw new RefreshFailure(
          `MaxMind rate-limited the download of the ${what} (HTTP 429, daily download limit?); the next scheduled run tries again`,
        );
      }
      if (status === 404) {
        throw new RefreshFailure(
          `MaxMind has no ${what} at ${shown(url)} (HTTP 404): check ${editionSetting}`,
        );
      }
      if (status !== 200 || response.body === undefined) {
        throw new RefreshFailure(`MaxMind answered HTTP ${status} for the ${what} (${shown(url)})`);
      }
      return response.body;
    }
  };
}

function nodeGet(tls: RefreshOptions['tls']): Get {
  return (url, headers, maxBytes, timeoutMs) =>
    new Promise<RawResponse>((resolve, reject) => {
      const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = request(url, { method: 'GET', headers, ...(tls?.ca === undefined ? {} : { ca: tls.ca }) });
      const timer = setTimeout(
        () => req.destroy(new RefreshFailure('run budget (UC_RUN_BUDGET) spent while downloading')),
        Math.max(1, timeoutMs),
      );
      const done =
        <T>(fn: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          fn(v);
        };
      const ok = done(resolve);
      const fail = done(reject);
      req.on('error', fail);
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          const location = res.headers.location;
          ok(location === undefined ? { status } : { status, location });
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          req.destroy();
          fail(new RefreshFailure(`the download is ${declared} bytes, more than the ${maxBytes} accepted`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy(new RefreshFailure(`the download exceeds the ${maxBytes} bytes accepted`));
            return;
          }
          chunks.push(chunk);
        });
        const incomplete = () => new RefreshFailure('the connection closed before the download completed');
        res.on('error', fail);
        res.on('end', () => {
          if (!res.complete) fail(incomplete());
          else ok({ status, body: Buffer.concat(chunks, size) });
        });
        // Settling twice is harmless: this only matters when neither 'end' nor 'error' came.
        res.on('close', () => {
          if (!res.complete) fail(incomplete());
        });
      });
      req.end();
    });
}

function fetchGet(fetchImpl: typeof fetch): Get {
  return async (url, headers, maxBytes, timeoutMs) => {
    const res = await fetchImpl(url, {
      method: 'GET',
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(Math.max(1, timeoutMs)),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      const location = res.headers.get('location');
      return location === null ? { status: res.status } : { status: res.status, location };
    }
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body?.cancel();
      throw new RefreshFailure(`the download is ${declared} bytes, more than the ${maxBytes} accepted`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > maxBytes) {
      throw new RefreshFailure(`the download exceeds the ${maxBytes} bytes accepted`);
    }
    return { status: 200, body };
  };
}
