import { describeSkipped, verdictPolicy } from '../ops/verdicts.js';
import { applyVerdicts, type VerdictStats } from '../pipeline/verdicts.js';
import type { DetectorDeps } from './deps.js';

/**
 * Each timer run, before scoring: reads the analysts' verdicts back from Sentinel and applies the new ones
 * (shared/pipeline/verdicts.ts), so this run's allowlist and quarantines already follow them. A failure is a
 * warning: verdicts never stop detection (they are read again next run; the applied ones are remembered).
 */
export async function applyRunVerdicts(deps: DetectorDeps, nowMs: number): Promise<VerdictStats | undefined> {
  if (!deps.verdicts) return undefined;
  try {
    const read = await deps.verdicts.read(nowMs);
    if (read.skipped.length > 0) deps.log('warn', `Verdicts: ${describeSkipped(read.skipped, 'row')}`);
    const stats = await applyVerdicts(
      deps.store,
      read.verdicts,
      verdictPolicy(deps.store, deps.settings, deps.log),
    );
    if (stats.applied > 0 || stats.unknownAlert > 0) {
      deps.log(
        'info',
        `Verdicts: ${stats.applied} applied (${stats.benign} benign, ${stats.confirmed} true positive), ` +
          `${stats.alreadyApplied} already applied, ${stats.unknownAlert} for alerts this detector does not know`,
      );
    }
    return stats;
  } catch (error) {
    deps.log(
      'warn',
      `Verdicts could not be read or applied (detection goes on; retried next run): ${error instanceof Error ? error.message : String(error)}`,
    );
    return undefined;
  }
}
