import type { Settings } from '../config/settings.js';
import { DETECTOR_VERSION } from '../version.js';
import type { AlertDefaults } from './alert.js';

/** The alert fields that come from settings (name, severity, risk score) and the detector version. */
export function alertDefaults(s: Settings): AlertDefaults {
  return {
    name: s.UC_ALERT_NAME,
    severity: s.UC_ALERT_SEVERITY,
    riskScore: s.UC_ALERT_RISK_SCORE,
    detectorVersion: DETECTOR_VERSION,
  };
}
