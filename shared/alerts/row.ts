import type { CallerType } from '../activity/types.js';
import type { RarityScore } from '../scoring/score.js';

export interface BaselineCityEntry {
  city: string;
  country: string;
  latitude: number;
  longitude: number;
  hours: number;
}

export interface OperationExplanation {
  operation: string;
  score: number;
  hour: string;
  sentence: string;
  factors: Omit<RarityScore, 'sentence' | 'knownCities'>;
}

/** One row of the alerts table; property names and types follow shared/alerts/columns.json exactly. */
export interface Alert {
  TimeGenerated: string;
  AlertId: string;
  AlertName: string;
  Severity: string;
  RiskScore: number;
  AnomalyScore: number;
  Description: string;
  Tactics: string;
  Techniques: string;
  Operation: string;
  Operations: string[];
  Caller: string;
  CallerType: CallerType;
  SrcIpAddr: string;
  SrcIpAddrs: string[];
  SrcGeoCity: string;
  SrcGeoRegion: string;
  SrcGeoCountry: string;
  SrcGeoLatitude: number;
  SrcGeoLongitude: number;
  SubscriptionId: string;
  ResourceGroup: string;
  ResourceIds: string[];
  CorrelationIds: string[];
  EventCount: number;
  FirstEventTime: string;
  LastEventTime: string;
  BaselineCities: BaselineCityEntry[];
  /** `operations`: the top findings by score within the alert's budget; `omitted`: `…and N more` when cut. */
  /** `callers`: the callers a move or wave alert names (shared/pipeline/arrivals.ts). */
  Explanation: { summary: string; operations: OperationExplanation[]; omitted?: string; callers?: string[] };
  DetectorVersion: string;
  /** An update alert of an open episode: the AlertId of the episode's first alert. Empty for a first alert. */
  ParentAlertId: string;
  /** MaxMind geoname id of the city (what allow rules take); empty for an egress range or a country-level place. */
  SrcGeoCityId: string;
}
