import { request } from 'node:https';

import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { loadSettings, type Settings } from '../../shared/config/settings.js';
import { refreshGeoIpDatabase, type RefreshOptions, type RefreshResult } from '../../shared/geo/maxmind.js';
import { GeoDatabaseProvider, type LogFn } from '../../shared/geo/provider.js';
import { RunBudget } from '../../shared/runtime/budget.js';
import { ASN_BUILD_EPOCH, asnDatabase, ispDatabase } from '../support/asnFixture.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import {
  CITY_BUILD_EPOCH,
  cityDatabase,
  type FakeMaxMind,
  type FakeMode,
  sha256Hex,
  startFakeMaxMind,
  withBuildEpoch,
} from '../support/fakeMaxMind.js';
import { writeMmdb } from '../support/mmdbWriter.js';

const CONTAINER = 'geoip';
const NAME = 'GeoLite2-City.mmdb';
const WEEK = 7 * 86_400;

/** Built once per file: building and gzipping an archive of a 60 MB database is the slow part. */
let newerDb: { mmdb: Buffer; epochSeconds: number } | undefined;
const newer = () =>
  (newerDb ??= {
    mmdb: withBuildEpoch(cityDatabase(), CITY_BUILD_EPOCH + WEEK),
    epochSeconds: CITY_BUILD_EPOCH + WEEK,
  });

/** A fetch over node:https trusting the test CA; `before` runs before each request is sent. */
function httpsFetch(ca: string, before?: (url: URL) => Promise<void>): typeof fetch {
  const shim = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    await before?.(url);
    return new Promise<Response>((resolve, reject) => {
      const req = request(
        url,
        { method: init?.method ?? 'GET', headers: init?.headers as Record<string, string>, ca },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
            }
            resolve(
              new Response(new Uint8Array(Buffer.concat(chunks)), { status: res.statusCode ?? 0, headers }),
            );
          });
        },
      );
      init?.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.on('error', reject);
      req.end();
    });
  };
  return shim;
}

describe('refreshGeoIpDatabase against a fake MaxMind and Azurite', () => {
  let azurite: AzuriteBlob;
  let fake: FakeMaxMind;
  let service: BlobServiceClient;
  let container: ContainerClient;
  let settings: Settings;
  /** Every line logged by every refresh in this file, and every reason returned. */
  const allText: string[] = [];

  const blob = () => container.getBlockBlobClient(NAME);
  /** ETag, metadata and the SHA-256 of the content: equal snapshots mean a byte-identical, untouched blob. */
  const snapshot = async () => {
    const properties = await blob().getProperties();
    const content = await blob().downloadToBuffer();
    return { etag: properties.etag, sha256: sha256Hex(content), metadata: properties.metadata };
  };

  async function run(
    overrides: Partial<RefreshOptions> = {},
  ): Promise<
    RefreshResult & { lines: { level: string; message: string }[]; requests: FakeMaxMind['requests'] }
  > {
    const lines: { level: string; message: string }[] = [];
    const log: LogFn = (level, message) => lines.push({ level, message });
    const from = fake.requests.length;
    const result = await refreshGeoIpDatabase({
      settings,
      blobService: service,
      log,
      budget: new RunBudget(60_000),
      tls: { ca: fake.ca },
      ...overrides,
    });
    allText.push(...lines.map((l) => l.message), result.reason ?? '');
    return { ...result, lines, requests: fake.requests.slice(from) };
  }

  beforeAll(async () => {
    [azurite, fake] = await Promise.all([startAzuriteBlob(), startFakeMaxMind()]);
    service = new BlobServiceClient(azurite.endpoint, azurite.credential);
    container = service.getContainerClient(CONTAINER);
    await container.create();
    settings = loadSettings({
      UC_GEOIP_BLOB: `${CONTAINER}/${NAME}`,
      UC_MAXMIND_ACCOUNT_ID: fake.accountId,
      UC_MAXMIND_LICENSE_KEY: fake.licenceKey,
      UC_MAXMIND_DOWNLOAD_URL: fake.baseUrl,
    });
  });
  afterAll(async () => {
    await Promise.all([azurite?.stop(), fake?.close()]);
  });
  beforeEach(() => {
    fake.mode = 'good';
    fake.database = { mmdb: cityDatabase(), epochSeconds: CITY_BUILD_EPOCH };
  });
  /** Tests that start from "no blob yet". */
  const noBlob = async () => {
    await blob().deleteIfExists();
  };

  it('downloads, verifies and uploads the database with metadata; the provider picks it up; a newer build replaces it', async () => {
    await noBlob();
    const provider = GeoDatabaseProvider.fromSettings(settings, {
      blobService: service,
      clock: () => (CITY_BUILD_EPOCH + 2 * WEEK) * 1000,
    });
    const first = await run();
    expect(first.status).toBe('updated');
    expect(first.reason).toBeUndefined();
    expect(first.buildDate).toEqual(new Date(CITY_BUILD_EPOCH * 1000));
    expect(first.sha256).toBe(sha256Hex(cityDatabase()));
    // Both files fetched from MaxMind with basic auth.
    expect(first.requests.map((r) => r.path)).toEqual([
      '/geoip/databases/GeoLite2-City/download?suffix=tar.gz.sha256',
      '/geoip/databases/GeoLite2-City/download?suffix=tar.gz',
    ]);
    expect(first.requests.every((r) => r.authorization?.startsWith('Basic ') === true)).toBe(true);

    const stored = await snapshot();
    expect(stored.sha256).toBe(sha256Hex(cityDatabase()));
    expect(stored.metadata).toEqual({
      sha256: sha256Hex(cityDatabase()),
      archivesha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      buildepoch: String(CITY_BUILD_EPOCH),
      edition: 'GeoLite2-City',
    });
    const db = await provider.current();
    expect(db.source).toContain(`blob geoip/GeoLite2-City.mmdb (etag ${stored.etag}`);
    expect(db.buildDate).toEqual(new Date(CITY_BUILD_EPOCH * 1000));

    // MaxMind publishes a new build: the blob is replaced (If-Match the old ETag) and the provider reloads.
    fake.database = newer();
    const second = await run();
    expect(second.status).toBe('updated');
    expect(second.buildDate).toEqual(new Date((CITY_BUILD_EPOCH + WEEK) * 1000));
    const replaced = await snapshot();
    expect(replaced.etag).not.toBe(stored.etag);
    expect(replaced.metadata?.buildepoch).toBe(String(CITY_BUILD_EPOCH + WEEK));
    expect((await provider.current()).buildDate).toEqual(new Date((CITY_BUILD_EPOCH + WEEK) * 1000));
  });

  it('a second run with the same MaxMind release is unchanged after fetching only the checksum', async () => {
    await noBlob();
    expect((await run()).status).toBe('updated');
    const before = await snapshot();
    const again = await run();
    expect(again.status).toBe('unchanged');
    expect(again.reason).toMatch(/still serves the archive the blob was made from/);
    expect(again.sha256).toBe(sha256Hex(cityDatabase()));
    expect(again.buildDate).toEqual(new Date(CITY_BUILD_EPOCH * 1000));
    expect(again.requests.map((r) => r.path)).toEqual([
      '/geoip/databases/GeoLite2-City/download?suffix=tar.gz.sha256',
    ]);
    expect(await snapshot()).toEqual(before);
  });

  it('does not replace a newer build in the blob with an older one from MaxMind', async () => {
    await noBlob();
    fake.database = newer();
    expect((await run()).status).toBe('updated');
    const before = await snapshot();
    fake.database = { mmdb: cityDatabase(), epochSeconds: CITY_BUILD_EPOCH };
    const older = await run();
    expect(older.status).toBe('unchanged');
    expect(older.reason).toMatch(/holds a build of 2019-12-31, not older than MaxMind's 2019-12-24/);
    expect(await snapshot()).toEqual(before);
  });

  it("follows MaxMind's redirect to a presigned URL without sending the credentials there", async () => {
    await noBlob();
    fake.mode = 'redirect';
    const result = await run();
    expect(result.status).toBe('updated');
    const storage = result.requests.filter((r) => r.server === 'storage');
    expect(storage.map((r) => r.path.split('?')[0])).toEqual([
      '/presigned/GeoLite2-City_20191224.tar.gz.sha256',
      '/presigned/GeoLite2-City_20191224.tar.gz',
    ]);
    expect(storage.every((r) => r.authorization === undefined)).toBe(true);
    expect(
      result.requests.filter((r) => r.server === 'maxmind').every((r) => r.authorization !== undefined),
    ).toBe(true);
    expect((await snapshot()).sha256).toBe(sha256Hex(cityDatabase()));
  });

  it('works with an injected fetch as well', async () => {
    await noBlob();
    const result = await run({ fetchImpl: httpsFetch(fake.ca), tls: undefined });
    expect(result.status).toBe('updated');
    expect((await snapshot()).sha256).toBe(sha256Hex(cityDatabase()));
    fake.mode = 'redirect';
    fake.database = newer();
    const redirected = await run({ fetchImpl: httpsFetch(fake.ca), tls: undefined });
    expect(redirected.status).toBe('updated');
    expect(
      redirected.requests.filter((r) => r.server === 'storage').every((r) => r.authorization === undefined),
    ).toBe(true);
  });

  it('creates the container when it does not exist', async () => {
    const other = loadSettings({
      UC_GEOIP_BLOB: 'fresh-container/GeoLite2-City.mmdb',
      UC_MAXMIND_ACCOUNT_ID: fake.accountId,
      UC_MAXMIND_LICENSE_KEY: fake.licenceKey,
      UC_MAXMIND_DOWNLOAD_URL: fake.baseUrl,
    });
    expect((await run({ settings: other })).status).toBe('updated');
    const properties = await service
      .getContainerClient('fresh-container')
      .getBlobClient(NAME)
      .getProperties();
    expect(properties.metadata?.sha256).toBe(sha256Hex(cityDatabase()));
  });

  describe('every failure leaves the existing blob byte-identical', () => {
    /** An older database, uploaded without metadata: any successful refresh would replace it. */
    const seed = withBuildEpoch(cityDatabase(), CITY_BUILD_EPOCH - WEEK);
    let seeded: Awaited<ReturnType<typeof snapshot>>;
    beforeAll(async () => {
      await blob().uploadData(seed);
      seeded = await snapshot();
      expect(seeded.sha256).toBe(sha256Hex(seed));
    });
    /** Cheaper than a full snapshot before each test: nothing may have changed since the seed. */
    const expectUntouched = async () => {
      expect(await snapshot()).toEqual(seeded);
    };

    const cases: [string, Partial<RefreshOptions> | FakeMode, RegExp][] = [
      [
        '401 (licence key revoked)',
        'unauthorized',
        /^MaxMind rejected the account id \/ licence key \(HTTP 401\)/,
      ],
      ['429', 'rate-limited', /rate-limited the download of the checksum file \(HTTP 429/],
      [
        'checksum mismatch',
        'wrong-checksum',
        /^checksum mismatch: the archive's SHA-256 is [0-9a-f]{64}, MaxMind's checksum file says/,
      ],
      ['corrupt archive', 'corrupt', /^corrupt gzip data/],
      ['archive without the mmdb', 'missing-mmdb', /^the archive holds no GeoLite2-City\.mmdb$/],
      [
        'a Country database',
        'country',
        /^GeoLite2-City\.mmdb is a GeoLite2-Country database, not GeoLite2-City$/,
      ],
      ['endless redirects', 'redirect-loop', /^more than 3 redirects for the checksum file$/],
      ['budget already spent', { budget: new RunBudget(0) }, /^run budget \(UC_RUN_BUDGET\) spent before /],
      // MaxMind stops sending mid-download: the budget's deadline ends the request.
      [
        'budget spent during a hung download',
        'stall',
        /^run budget \(UC_RUN_BUDGET\) spent while downloading/,
      ],
      // The clock stands still with 5 ms left: every request's own timeout has to stop it.
      [
        'budget spent during any request',
        { budget: new RunBudget(5, () => 1_000) },
        /^run budget \(UC_RUN_BUDGET\) spent while /,
      ],
      [
        'MaxMind unreachable',
        { settings: undefined },
        /^downloading the checksum file from https:\/\/127\.0\.0\.1:1\/geoip\/databases\/GeoLite2-City\/download failed: .*ECONNREFUSED/,
      ],
    ];

    it.each(cases)('%s', async (_name, setup, reason) => {
      let overrides: Partial<RefreshOptions> = {};
      if (setup === 'stall') {
        fake.mode = setup;
        overrides = { budget: new RunBudget(1_500) };
      } else if (typeof setup === 'string') fake.mode = setup;
      else if ('settings' in setup) {
        overrides = {
          settings: { ...settings, UC_MAXMIND_DOWNLOAD_URL: 'https://127.0.0.1:1/geoip/databases' },
        };
      } else overrides = setup;
      const result = await run(overrides);
      expect(result.status).toBe('failed');
      expect(result.reason).toMatch(reason);
      expect(result.buildDate).toBeUndefined();
      await expectUntouched();
    });

    it('wrong credentials in the settings', async () => {
      const result = await run({ settings: { ...settings, UC_MAXMIND_LICENSE_KEY: 'WrongKey_123456' } });
      expect(result).toMatchObject({
        status: 'failed',
        reason: expect.stringMatching(/MaxMind rejected the account id \/ licence key/),
      });
      expect(result.reason).toContain('UC_MAXMIND_LICENSE_KEY');
      await expectUntouched();
    });

    it('a redirect to plain http', async () => {
      const result = await run({
        fetchImpl: () =>
          Promise.resolve(
            new Response(null, {
              status: 302,
              headers: { location: 'http://downloads.example/x.tar.gz?sig=1' },
            }),
          ),
      });
      expect(result).toMatchObject({
        status: 'failed',
        reason: 'refusing to download the checksum file from http://downloads.example/x.tar.gz (not https)',
      });
      await expectUntouched();
    });

    it('missing MaxMind settings, without a request', async () => {
      const result = await run({
        settings: { ...settings, UC_MAXMIND_ACCOUNT_ID: '', UC_MAXMIND_LICENSE_KEY: '' },
      });
      expect(result).toEqual({
        status: 'failed',
        reason: 'not configured: set UC_MAXMIND_ACCOUNT_ID, UC_MAXMIND_LICENSE_KEY',
        lines: [],
        requests: [],
      });
      await expectUntouched();
    });

    // Last in this group: it is the one test here that changes the blob (the competitor's write).
    it('another writer changing the blob during the refresh (conditional write)', async () => {
      const competitor = withBuildEpoch(cityDatabase(), CITY_BUILD_EPOCH + 2 * WEEK);
      // The competing upload lands after the refresh read the blob's ETag, before it writes.
      const fetchImpl = httpsFetch(fake.ca, async (url) => {
        if (url.searchParams.get('suffix') === 'tar.gz') await blob().uploadData(competitor);
      });
      const result = await run({ fetchImpl, tls: undefined });
      expect(result.status).toBe('failed');
      expect(result.reason).toMatch(/changed while this refresh ran/);
      expect((await snapshot()).sha256).toBe(sha256Hex(competitor));
    });
  });

  it('two refreshes at once: exactly one writes', async () => {
    await noBlob();
    const [a, b] = await Promise.all([run(), run()]);
    const statuses = [a.status, b.status].sort();
    expect(statuses.filter((s) => s === 'updated')).toHaveLength(1);
    const other = a.status === 'updated' ? b : a;
    expect(['failed', 'unchanged']).toContain(other.status);
    if (other.status === 'failed') expect(other.reason).toMatch(/changed while this refresh ran/);
    expect((await snapshot()).sha256).toBe(sha256Hex(cityDatabase()));
  });

  it('redacts the credentials even from errors that carry them', async () => {
    const leaky: typeof fetch = (_url, init) => {
      const auth = (init?.headers as Record<string, string>).authorization ?? '';
      const decoded = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString();
      return Promise.reject(new Error(`socket hang up (${auth}; ${decoded})`));
    };
    const result = await run({ fetchImpl: leaky });
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(
      /failed: socket hang up \(Basic \(redacted\); \(redacted\):\(redacted\)\)$/,
    );
  });

  describe('the ASN edition (UC_ASN_EDITION → UC_ASN_BLOB), refreshed the same way', () => {
    const asnBlob = () => container.getBlockBlobClient('GeoLite2-ASN.mmdb');
    const asnSnapshot = async () => {
      const properties = await asnBlob().getProperties();
      const content = await asnBlob().downloadToBuffer();
      return { etag: properties.etag, sha256: sha256Hex(content), metadata: properties.metadata };
    };
    const runAsn = (overrides: Partial<RefreshOptions> = {}) => run({ edition: 'asn', ...overrides });
    const newerAsn = {
      mmdb: withBuildEpoch(asnDatabase(), ASN_BUILD_EPOCH + WEEK),
      epochSeconds: ASN_BUILD_EPOCH + WEEK,
    };
    beforeEach(async () => {
      fake.asn.mode = 'good';
      fake.asn.edition = 'GeoLite2-ASN';
      fake.asn.database = { mmdb: asnDatabase(), epochSeconds: ASN_BUILD_EPOCH };
      await asnBlob().deleteIfExists();
    });

    it('good: downloads, verifies and uploads it with metadata; the provider picks it up by ETag; a newer build replaces it', async () => {
      const provider = GeoDatabaseProvider.fromSettings(settings, {
        blobService: service,
        clock: () => (ASN_BUILD_EPOCH + 2 * WEEK) * 1000,
      });
      const first = await runAsn();
      expect(first).toMatchObject({
        status: 'updated',
        buildDate: new Date(ASN_BUILD_EPOCH * 1000),
        sha256: sha256Hex(asnDatabase()),
      });
      expect(first.requests.map((r) => r.path)).toEqual([
        '/geoip/databases/GeoLite2-ASN/download?suffix=tar.gz.sha256',
        '/geoip/databases/GeoLite2-ASN/download?suffix=tar.gz',
      ]);
      expect(first.lines.map((l) => l.message)).toContainEqual(
        expect.stringMatching(/^ASN refresh: downloaded GeoLite2-ASN built 2026-11-30 .*checksum verified/),
      );
      const stored = await asnSnapshot();
      expect(stored.metadata).toEqual({
        sha256: sha256Hex(asnDatabase()),
        archivesha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        buildepoch: String(ASN_BUILD_EPOCH),
        edition: 'GeoLite2-ASN',
      });
      const db = await provider.current();
      expect(db.networkData?.source).toContain(`blob geoip/GeoLite2-ASN.mmdb (etag ${stored.etag}`);
      expect(db.networks?.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });

      fake.asn.database = newerAsn;
      expect((await runAsn()).status).toBe('updated');
      const replaced = await asnSnapshot();
      expect(replaced.etag).not.toBe(stored.etag);
      expect(replaced.metadata?.buildepoch).toBe(String(ASN_BUILD_EPOCH + WEEK));
      expect((await provider.current()).networkData?.buildDate).toEqual(
        new Date((ASN_BUILD_EPOCH + WEEK) * 1000),
      );
    });

    it('unchanged: the same release again fetches only the checksum and leaves the blob (and its ETag) alone', async () => {
      expect((await runAsn()).status).toBe('updated');
      const before = await asnSnapshot();
      const again = await runAsn();
      expect(again).toMatchObject({
        status: 'unchanged',
        reason: expect.stringMatching(/still serves the archive the blob was made from/),
        sha256: sha256Hex(asnDatabase()),
      });
      expect(again.requests.map((r) => r.path)).toEqual([
        '/geoip/databases/GeoLite2-ASN/download?suffix=tar.gz.sha256',
      ]);
      expect(await asnSnapshot()).toEqual(before);
    });

    const failures: [string, FakeMode | (() => void), RegExp][] = [
      ['corrupt archive', 'corrupt', /^corrupt gzip data/],
      [
        'checksum mismatch',
        'wrong-checksum',
        /^checksum mismatch: the archive's SHA-256 is [0-9a-f]{64}, MaxMind's checksum file says/,
      ],
      [
        'a Country database',
        'country',
        /^GeoLite2-ASN\.mmdb is a GeoLite2-Country database, not GeoLite2-ASN$/,
      ],
      ['401', 'unauthorized', /^MaxMind rejected the account id \/ licence key \(HTTP 401\)/],
      [
        'an ASN database that cannot place the probe address',
        () => {
          fake.asn.database = {
            mmdb: writeMmdb({
              databaseType: 'GeoLite2-ASN',
              buildEpoch: ASN_BUILD_EPOCH + WEEK,
              networks: [['1.128.0.0/11', { autonomous_system_number: 1221 }]],
            }),
            epochSeconds: ASN_BUILD_EPOCH + WEEK,
          };
        },
        /^GeoLite2-ASN\.mmdb places 8\.8\.8\.8 in no autonomous system$/,
      ],
    ];
    it.each(failures)(
      '%s: fails with a reason and leaves the ASN blob byte-identical',
      async (_name, setup, reason) => {
        expect((await runAsn()).status).toBe('updated');
        const before = await asnSnapshot();
        fake.asn.database = newerAsn; // a newer release, so only the failure stops it replacing the blob
        if (typeof setup === 'string') fake.asn.mode = setup;
        else setup();
        const result = await runAsn();
        expect(result.status).toBe('failed');
        expect(result.reason).toMatch(reason);
        expect(await asnSnapshot()).toEqual(before);
        // The City edition is not touched by an ASN failure (and serves as before).
        expect(fake.mode).toBe('good');
      },
    );

    it('GeoIP2-ISP: the paid edition is downloaded under its own name and validated with isp()', async () => {
      fake.asn.edition = 'GeoIP2-ISP';
      fake.asn.database = { mmdb: ispDatabase(), epochSeconds: ASN_BUILD_EPOCH };
      const result = await runAsn({ settings: { ...settings, UC_ASN_EDITION: 'GeoIP2-ISP' } });
      expect(result.status).toBe('updated');
      expect(result.requests.map((r) => r.path)).toEqual([
        '/geoip/databases/GeoIP2-ISP/download?suffix=tar.gz.sha256',
        '/geoip/databases/GeoIP2-ISP/download?suffix=tar.gz',
      ]);
      expect((await asnSnapshot()).metadata?.edition).toBe('GeoIP2-ISP');
    });
  });

  it('never logs or returns the licence key, the account id or the basic-auth token (all runs of this file)', () => {
    // Runs last: every refresh above added its log lines and reason to allText.
    expect(allText.length).toBeGreaterThan(20);
    const basic = Buffer.from(`${fake.accountId}:${fake.licenceKey}`).toString('base64');
    for (const line of allText) {
      expect(line).not.toContain(fake.licenceKey);
      expect(line).not.toContain(fake.accountId);
      expect(line).not.toContain(basic);
    }
  });
});
