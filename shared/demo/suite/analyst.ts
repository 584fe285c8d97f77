import type { Alert } from '../../alerts/alert.js';
import type { Verdict } from '../../pipeline/verdicts.js';
import { matchesBenign } from '../classes.js';
import { type Labels, matchesAttack } from '../evaluate.js';

const HOUR_MS = 3_600_000;
export const SIMULATED_ANALYST = 'simulated-analyst@suite';

/**
 * The suite's simulated analyst: closes the incident of each alert `hours` after it was raised (TimeGenerated),
 * as a real analyst would in Sentinel — an alert about an attacker as TruePositive, one a benign label explains
 * as BenignPositive, any other as FalsePositive (no attack: the rule was wrong). Its verdicts go through the same
 * code as real ones (VerdictFeed, applyVerdicts).
 */
export function analystVerdict(alert: Alert, labels: Labels, hours: number, incidentNumber: number): Verdict {
  const attack = labels.attacks.some((at) => matchesAttack(alert, { ...at, requiredOperations: undefined }));
  const benign = (labels.benign ?? []).find((b) => matchesBenign(alert, b));
  const [classification, reason] = attack
    ? (['TruePositive', 'SuspiciousActivity'] as const)
    : benign
      ? (['BenignPositive', 'SuspiciousButExpected'] as const)
      : (['FalsePositive', 'IncorrectAlertLogic'] as const);
  return {
    incidentNumber,
    incidentName: '',
    classification,
    reason,
    comment: benign ? `suite label ${benign.id} (${benign.class})` : attack ? 'labelled attack' : 'no attack',
    owner: SIMULATED_ANALYST,
    modifiedBy: SIMULATED_ANALYST,
    closedTimeMs: Date.parse(alert.TimeGenerated) + hours * HOUR_MS,
    alertId: alert.AlertId,
  };
}
