/**
 * Where Azure regions are: the city of each region's datacentres, for the regions the Service Tags name most.
 * Keys are the `properties.region` values of the Service Tags (lower case; some are abbreviated there, e.g.
 * `switzerlandn`, `germanywc`, `centralfrance`; the ARM location names are listed as aliases). A region that is
 * not here is still recognised as Azure; it only lacks a country and coordinates of its own.
 */
export interface AzureRegionSite {
  /** The city the region is named after or built near (display only). */
  city: string;
  /** ISO 3166-1 alpha-2. */
  country: string;
  countryName: string;
  latitude: number;
  longitude: number;
}

const site = (
  city: string,
  country: string,
  countryName: string,
  latitude: number,
  longitude: number,
): AzureRegionSite => Object.freeze({ city, country, countryName, latitude, longitude });

const NL = 'Netherlands';
const US = 'United States';
const GB = 'United Kingdom';

/** Region → site; [aliases…] share an entry. */
const SITES: readonly (readonly [readonly string[], AzureRegionSite])[] = [
  [['westeurope'], site('Amsterdam', 'NL', NL, 52.37, 4.9)],
  [['northeurope'], site('Dublin', 'IE', 'Ireland', 53.35, -6.26)],
  [['uksouth'], site('London', 'GB', GB, 51.51, -0.13)],
  [['ukwest'], site('Cardiff', 'GB', GB, 51.48, -3.18)],
  [['centralfrance', 'francecentral'], site('Paris', 'FR', 'France', 48.86, 2.35)],
  [['southfrance', 'francesouth'], site('Marseille', 'FR', 'France', 43.3, 5.37)],
  [['germanywc', 'germanywestcentral'], site('Frankfurt am Main', 'DE', 'Germany', 50.11, 8.68)],
  [['germanyn', 'germanynorth'], site('Berlin', 'DE', 'Germany', 52.52, 13.4)],
  [['switzerlandn', 'switzerlandnorth'], site('Zurich', 'CH', 'Switzerland', 47.38, 8.54)],
  [['switzerlandw', 'switzerlandwest'], site('Geneva', 'CH', 'Switzerland', 46.2, 6.14)],
  [['norwaye', 'norwayeast'], site('Oslo', 'NO', 'Norway', 59.91, 10.75)],
  [['norwayw', 'norwaywest'], site('Stavanger', 'NO', 'Norway', 58.97, 5.73)],
  [['swedencentral'], site('Gävle', 'SE', 'Sweden', 60.67, 17.14)],
  [['polandcentral'], site('Warsaw', 'PL', 'Poland', 52.23, 21.01)],
  [['italynorth'], site('Milan', 'IT', 'Italy', 45.46, 9.19)],
  [['spaincentral'], site('Madrid', 'ES', 'Spain', 40.42, -3.7)],
  [['austriaeast'], site('Vienna', 'AT', 'Austria', 48.21, 16.37)],
  [['belgiumcentral'], site('Brussels', 'BE', 'Belgium', 50.85, 4.35)],
  [['denmarkeast'], site('Copenhagen', 'DK', 'Denmark', 55.68, 12.57)],
  [['eastus'], site('Virginia', 'US', US, 37.37, -79.82)],
  [['eastus2'], site('Boydton', 'US', US, 36.67, -78.39)],
  [['centralus'], site('Des Moines', 'US', US, 41.59, -93.62)],
  [['northcentralus'], site('Chicago', 'US', US, 41.88, -87.63)],
  [['southcentralus'], site('San Antonio', 'US', US, 29.42, -98.49)],
  [['westcentralus'], site('Cheyenne', 'US', US, 41.14, -104.82)],
  [['westus'], site('San Francisco', 'US', US, 37.78, -122.42)],
  [['westus2'], site('Quincy', 'US', US, 47.23, -119.85)],
  [['westus3'], site('Phoenix', 'US', US, 33.45, -112.07)],
  [['canadacentral'], site('Toronto', 'CA', 'Canada', 43.65, -79.38)],
  [['canadaeast'], site('Québec', 'CA', 'Canada', 46.81, -71.21)],
  [['brazilsouth'], site('São Paulo', 'BR', 'Brazil', -23.55, -46.63)],
  [['mexicocentral'], site('Querétaro', 'MX', 'Mexico', 20.59, -100.39)],
  [['chilec', 'chilecentral'], site('Santiago', 'CL', 'Chile', -33.45, -70.67)],
  [['southeastasia'], site('Singapore', 'SG', 'Singapore', 1.28, 103.83)],
  [['eastasia'], site('Hong Kong', 'HK', 'Hong Kong', 22.27, 114.19)],
  [['japaneast'], site('Tokyo', 'JP', 'Japan', 35.68, 139.77)],
  [['japanwest'], site('Osaka', 'JP', 'Japan', 34.69, 135.5)],
  [['koreacentral'], site('Seoul', 'KR', 'South Korea', 37.57, 126.98)],
  [['koreasouth'], site('Busan', 'KR', 'South Korea', 35.18, 129.08)],
  [['centralindia'], site('Pune', 'IN', 'India', 18.52, 73.86)],
  [['southindia'], site('Chennai', 'IN', 'India', 13.08, 80.27)],
  [['westindia'], site('Mumbai', 'IN', 'India', 19.08, 72.88)],
  [['australiaeast'], site('Sydney', 'AU', 'Australia', -33.87, 151.21)],
  [['australiasoutheast'], site('Melbourne', 'AU', 'Australia', -37.81, 144.96)],
  [['australiacentral'], site('Canberra', 'AU', 'Australia', -35.28, 149.13)],
  [['newzealandnorth'], site('Auckland', 'NZ', 'New Zealand', -36.85, 174.76)],
  [['indonesiacentral'], site('Jakarta', 'ID', 'Indonesia', -6.21, 106.85)],
  [['malaysiawest'], site('Kuala Lumpur', 'MY', 'Malaysia', 3.14, 101.69)],
  [['taiwannorth'], site('Taipei', 'TW', 'Taiwan', 25.03, 121.57)],
  [['uaenorth'], site('Dubai', 'AE', 'United Arab Emirates', 25.27, 55.3)],
  [['uaecentral'], site('Abu Dhabi', 'AE', 'United Arab Emirates', 24.47, 54.37)],
  [['qatarcentral'], site('Doha', 'QA', 'Qatar', 25.29, 51.53)],
  [['southafricanorth'], site('Johannesburg', 'ZA', 'South Africa', -26.2, 28.05)],
  [['southafricawest'], site('Cape Town', 'ZA', 'South Africa', -33.92, 18.42)],
];

const BY_REGION = new Map(SITES.flatMap(([names, s]) => names.map((n) => [n, s] as const)));

/** The site of a region (case-insensitive), or undefined when the table does not know it. */
export function azureRegionSite(region: string): AzureRegionSite | undefined {
  return BY_REGION.get(region.toLowerCase());
}
