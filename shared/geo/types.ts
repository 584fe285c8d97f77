/**
 * A place callers come from. `key` is the CityKey used in baselines:
 *  - `g:<geonameId>`            a MaxMind city (geoname id is the identity, names are for display)
 *  - `c:<ISO country>`          country-level place (only when UC_NO_CITY_MODE=country)
 *  - `e:<provider>`             a configured egress / cloud range, keyed as its provider/region
 */
export interface City {
  key: string;
  geonameId?: number;
  name: string;
  /** First subdivision (state / region) name, '' if unknown. */
  region: string;
  /** ISO 3166-1 alpha-2 country code, '' if unknown. */
  country: string;
  countryName: string;
  latitude: number;
  longitude: number;
  accuracyRadiusKm?: number;
  /** Set when the IP fell in a configured egress / cloud range. */
  egress?: string;
}

export type GeoResult =
  | { kind: 'city'; city: City }
  /** Private, loopback, link-local, CGNAT, documentation, unspecified or empty: never looked up, never alerted on. */
  | { kind: 'internal' }
  /** Found a country but no city, and UC_NO_CITY_MODE=skip. */
  | { kind: 'no-city'; country: string }
  /** Not in the database. */
  | { kind: 'not-found' }
  /** Not an IP address. */
  | { kind: 'invalid' };

export interface GeoStats {
  lookups: number;
  cacheHits: number;
  internal: number;
  noCity: number;
  notFound: number;
  invalid: number;
  egress: number;
}

export interface Geolocator {
  locate(ip: string): GeoResult;
  readonly stats: GeoStats;
  /** Build date of the database, for the "your GeoIP data is old" warning. */
  readonly databaseBuildDate: Date;
  readonly databaseType: string;
}
