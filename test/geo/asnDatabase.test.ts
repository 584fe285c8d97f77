import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Reader } from '@maxmind/geoip2-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadSettings, SettingsError } from '../../shared/config/settings.js';
import { openNetworkLocator, openNetworkLocatorFromBuffer } from '../../shared/geo/asnDatabase.js';
import { openNetworks } from '../../shared/geo/localDatabase.js';
import { readMmdbMetadata } from '../../shared/geo/mmdb-metadata.js';
import { ASN_BUILD_EPOCH, asnDatabase, ispDatabase } from '../support/asnFixture.js';
import { cityDatabase, withBuildEpoch } from '../support/fakeMaxMind.js';

describe('the MaxMind ASN / ISP network locator', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uc-asn-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the test writer makes a database MaxMind's own reader answers (as documented for its test data)", () => {
    const reader = Reader.openBuffer(asnDatabase());
    expect(reader.asn('1.128.0.0')).toMatchObject({
      autonomousSystemNumber: 1221,
      autonomousSystemOrganization: 'Telstra Pty Ltd',
      network: '1.128.0.0/11',
    });
    expect(readMmdbMetadata(asnDatabase())).toMatchObject({
      databaseType: 'GeoLite2-ASN',
      buildDate: new Date(ASN_BUILD_EPOCH * 1000),
      ipVersion: 6,
    });
    // The fixture's build epoch can be rewritten like a real database's (a "newer release").
    expect(readMmdbMetadata(withBuildEpoch(asnDatabase(), ASN_BUILD_EPOCH + 60)).buildDate).toEqual(
      new Date((ASN_BUILD_EPOCH + 60) * 1000),
    );
  });

  it('GeoLite2-ASN: asn() per address; not found, internal and invalid are undefined', () => {
    const asn = openNetworkLocatorFromBuffer(asnDatabase(), 'test');
    expect(asn.databaseType).toBe('GeoLite2-ASN');
    expect(asn.databaseBuildDate).toEqual(new Date(ASN_BUILD_EPOCH * 1000));
    expect(asn.network('1.159.255.255')).toEqual({ asn: 1221, org: 'Telstra Pty Ltd' });
    expect(asn.network('8.8.8.8:443')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(asn.network('20.190.130.1')).toEqual({ asn: 8075, org: 'Microsoft Corporation' });
    expect(asn.network('81.2.69.142')).toEqual({ asn: 20712, org: '' });
    expect(asn.network('2001:4860:4860::8888')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(asn.network('::ffff:8.8.8.4')).toEqual({ asn: 15169, org: 'Google LLC' });
    expect(asn.network('8.8.9.1')).toBeUndefined(); // not in the database
    expect(asn.network('2001:4861::1')).toBeUndefined();
    for (const ip of ['10.0.0.1', '127.0.0.1', '::1', '', 'nonsense'])
      expect(asn.network(ip), ip).toBeUndefined();
  });

  it('GeoIP2-ISP: isp() (asn() would throw on it), the AS organisation first', () => {
    const isp = openNetworkLocatorFromBuffer(ispDatabase(), 'test');
    expect(isp.databaseType).toBe('GeoIP2-ISP');
    expect(() => Reader.openBuffer(ispDatabase()).asn('8.8.8.8')).toThrow();
    expect(isp.network('1.128.0.1')).toEqual({ asn: 1221, org: 'Telstra Pty Ltd' });
    expect(isp.network('81.2.69.1')).toEqual({ asn: 20712, org: 'Unknown ISP' });
  });

  it('refuses a City database and bytes that are not a MaxMind DB, naming the source and the fix', () => {
    expect(() => openNetworkLocatorFromBuffer(cityDatabase(), 'blob geoip/x.mmdb')).toThrow(
      /^ASN database blob geoip\/x\.mmdb is a GeoLite2-City database, but an ASN or ISP database is needed\. .*UC_ASN_EDITION/,
    );
    expect(() => openNetworkLocatorFromBuffer(Buffer.from('not a database'), 'blob geoip/x.mmdb')).toThrow(
      /^ASN database blob geoip\/x\.mmdb is not a valid MaxMind DB file: no MaxMind DB metadata marker/,
    );
  });

  it('opens a file, or says the file is missing and which setting named it', async () => {
    const path = join(dir, 'GeoLite2-ASN.mmdb');
    await writeFile(path, asnDatabase());
    expect((await openNetworkLocator(path)).network('8.8.8.8')?.asn).toBe(15169);
    await expect(openNetworkLocator(join(dir, 'missing.mmdb'))).rejects.toThrow(
      /^ASN database ".*missing\.mmdb" \(UC_ASN_DB_PATH\) not found\./,
    );
  });

  it('openNetworks (the CLI): UC_ASN_DB_PATH, else the embedded tables', async () => {
    const path = join(dir, 'GeoIP2-ISP.mmdb');
    await writeFile(path, ispDatabase());
    const file = await openNetworks(loadSettings({ UC_ASN_DB_PATH: path }));
    expect(file?.source).toBe(path);
    expect(file?.networks.databaseType).toBe('GeoIP2-ISP');
    expect(file?.networks.network('1.128.0.1')?.asn).toBe(1221);
    const embedded = await openNetworks(loadSettings({}));
    expect(embedded?.source).toMatch(/^embedded ip-location-db asn 2\.3\.2026061719/);
    expect(embedded?.networks.network('8.8.8.8')?.asn).toBe(15169);
  });

  it('the settings: UC_ASN_EDITION is GeoLite2-ASN (default), GeoIP2-ISP or off; anything else stops start-up', () => {
    expect(loadSettings({}).UC_ASN_EDITION).toBe('GeoLite2-ASN');
    expect(loadSettings({ UC_ASN_EDITION: 'geoip2-isp' }).UC_ASN_EDITION).toBe('GeoIP2-ISP');
    expect(loadSettings({ UC_ASN_EDITION: 'off' }).UC_ASN_EDITION).toBe('');
    expect(loadSettings({}).UC_ASN_BLOB).toBe('geoip/GeoLite2-ASN.mmdb');
    expect(() => loadSettings({ UC_ASN_EDITION: 'GeoLite2-City' })).toThrow(SettingsError);
    expect(() => loadSettings({ UC_ASN_EDITION: 'GeoLite2-City' })).toThrow(
      /UC_ASN_EDITION="GeoLite2-City".*one of GeoLite2-ASN, GeoIP2-ISP, off/,
    );
    expect(() => loadSettings({ UC_ASN_BLOB: 'no-slash' })).toThrow(
      /UC_ASN_BLOB="no-slash".*container\/blob/,
    );
  });
});
