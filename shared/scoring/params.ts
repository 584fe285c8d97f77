import type { Settings } from '../config/settings.js';
import type { ScoringParams } from './model.js';

export function scoringParams(s: Settings): ScoringParams {
  return {
    halfLifeDays: s.UC_HALF_LIFE_DAYS,
    priorWeight: s.UC_PRIOR_WEIGHT,
    smoothingAlpha: s.UC_SMOOTHING_ALPHA,
    mergeKm: s.UC_MERGE_KM,
    distanceScaleKm: s.UC_DISTANCE_SCALE_KM,
    nearFactor: s.UC_NEAR_FACTOR,
    newCountryOperationBoost: s.UC_NEW_COUNTRY_OPERATION_BOOST,
    newCountryTenantBoost: s.UC_NEW_COUNTRY_TENANT_BOOST,
    learningOperationHours: s.UC_LEARNING_OPERATION_HOURS,
    learningTenantDays: s.UC_LEARNING_TENANT_DAYS,
    establishHours: s.UC_ESTABLISH_HOURS,
    establishDays: s.UC_ESTABLISH_DAYS,
    establishCallers: s.UC_ESTABLISH_CALLERS,
    unestablishedWeight: s.UC_UNESTABLISHED_WEIGHT,
    egressScoreCap: s.UC_EGRESS_SCORE_CAP,
    callerNewCityBoost: s.UC_NEW_CITY_FOR_CALLER_BOOST,
    callerNoveltyWeight: s.UC_CALLER_NOVELTY_WEIGHT,
    absenceWeight: s.UC_ABSENCE_WEIGHT,
    knownNetworkScoreCap: s.UC_KNOWN_NETWORK_SCORE_CAP,
    newNetworkBoost: s.UC_NEW_NETWORK_BOOST,
    networkKnownDays: s.UC_NETWORK_KNOWN_DAYS,
    familiarScoreCap: s.UC_FAMILIAR_SCORE_CAP,
    callerLearningHours: s.UC_CALLER_LEARNING_HOURS,
    maxCallersPerCity: s.UC_MAX_CALLERS_PER_CITY,
    topCities: s.UC_TOP_CITIES,
  };
}
