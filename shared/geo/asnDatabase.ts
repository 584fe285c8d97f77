/**
 * The production network (ASN) source: a MaxMind GeoLite2-ASN or GeoIP2-ISP .mmdb, read with
 * @maxmind/geoip2-node. The edition decides the method (geoip2-node gates them on metadata.databaseType: asn()
 * on an ISP database throws BadMethodCallError), so it is chosen once, when the database is opened.
 */
import { readFile } from 'node:fs/promises';

import { AddressNotFoundError, type Asn } from '@maxmind/geoip2-node';

import { isInternal, parseIp } from './ip.js';
import { openMmdb } from './mmdb-metadata.js';
import type { Network, NetworkLocator } from './types.js';

/** How to fix a missing or wrong ASN database; appended to every open error. */
export const HOW_TO_GET_AN_ASN_DATABASE =
  'Use a MaxMind GeoLite2-ASN (free account) or GeoIP2-ISP .mmdb: set UC_ASN_EDITION and let ' +
  'refreshGeoIpDatabase keep UC_ASN_BLOB current, or set UC_ASN_DB_PATH to the file ' +
  '(https://download.maxmind.com/geoip/databases/GeoLite2-ASN/download?suffix=tar.gz with the MaxMind ' +
  'account id and licence key as basic auth).';

/** Opens a GeoLite2-ASN / GeoIP2-ISP database from a file; throws naming the path and the fix. */
export async function openNetworkLocator(path: string, setting = 'UC_ASN_DB_PATH'): Promise<NetworkLocator> {
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? String(error)})`;
    throw new Error(`ASN database "${path}" (${setting}) ${problem}. ${HOW_TO_GET_AN_ASN_DATABASE}`, {
      cause: error,
    });
  }
  return openNetworkLocatorFromBuffer(buffer, `"${path}" (${setting})`);
}

/**
 * A {@link NetworkLocator} over a database already in memory (used as is, not copied). Throws naming `source`
 * when the bytes are not a MaxMind DB or not an ASN / ISP edition.
 */
export function openNetworkLocatorFromBuffer(buffer: Buffer, source = 'in memory'): NetworkLocator {
  const { databaseType, databaseBuildDate, reader } = openMmdb(
    buffer,
    'ASN database',
    source,
    HOW_TO_GET_AN_ASN_DATABASE,
  );
  // geoip2-node's own gates: isp() for a type containing "ISP", asn() for one containing "ASN".
  let lookup: (ip: string) => Asn & { organization?: string; isp?: string };
  if (databaseType.includes('ISP')) lookup = (ip) => reader.isp(ip);
  else if (databaseType.includes('ASN')) lookup = (ip) => reader.asn(ip);
  else {
    throw new Error(
      `ASN database ${source} is a ${databaseType} database, but an ASN or ISP database is needed. ` +
        HOW_TO_GET_AN_ASN_DATABASE,
    );
  }
  return {
    databaseType,
    databaseBuildDate,
    network(raw: string): Network | undefined {
      const ip = parseIp(raw);
      if (ip === undefined || isInternal(ip)) return undefined;
      let record: ReturnType<typeof lookup>;
      try {
        record = lookup(ip.text);
      } catch (error) {
        if (error instanceof AddressNotFoundError) return undefined;
        throw error;
      }
      const asn = record.autonomousSystemNumber;
      if (asn === undefined) return undefined;
      const org = record.autonomousSystemOrganization ?? record.organization ?? record.isp ?? '';
      return { asn, org };
    },
  };
}
