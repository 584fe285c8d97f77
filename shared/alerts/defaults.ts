import type { Settings } from '../config/settings.js';
import { VERSION } from '../version.js';
import { type AlertDefaults, MODEL_REVISION } from './alert.js';

/** The DetectorVersion column: the package version and the scoring model's revision. */
export const DETECTOR_VERSION = `unusual-city/${VERSION}+${MODEL_REVISION}`;

/** The alert fields that come from settings (name, severity, risk score) and the detector version. */
export function alertDefaults(s: Settings): AlertDefaults {
  return {
    name: s.UC_ALERT_NAME,
    severity: s.UC_ALERT_SEVERITY,
    riskScore: s.UC_ALERT_RISK_SCORE,
    detectorVersion: DETECTOR_VERSION,
  };
}
