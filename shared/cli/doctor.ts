/** `unusual-city doctor`: checks a live deployment (shared/runtime/doctor.ts); exit 0 only when every check passes. */
import { parseArgs } from 'node:util';

import { displaySafe } from '../display.js';
import { type Check, runDoctor } from '../runtime/doctor.js';
import { type CliIo, parseSets, processIo, UsageError } from './args.js';

export const DOCTOR_USAGE = `Usage: unusual-city doctor [--json] [--set NAME=VALUE]...

Checks the live deployment with the detector's settings (environment or --set) and your sign-in (az login /
azd auth login, or the app's managed identity): settings valid; a token for each service; AzureActivity rows in
the workspace (age of the newest, subscriptions sending); Table Storage reachable, the checkpoint's lag, the
bootstrap, the alert outbox; the GeoIP database; through Azure Resource Manager (UC_ARM_ENDPOINT), the roles of
the detector's identity (UC_IDENTITY_PRINCIPAL_ID) on each resource (UC_*_RESOURCE_ID), the alerts table, the
data collection rule, the Sentinel analytics rule (enabled); the last UnusualCityRun event. One line per check,
✓ or ✗, with the fix for each ✗. Exit code 0 only when all pass, 1 otherwise. Your identity needs read access
to the resource group (Reader or Monitoring Reader; grantDeployerDataAccess=true grants it).

  --json   one JSON object: {"ok": boolean, "checks": [{"name","ok","detail","fix"?}]}

Examples:
  eval "$(azd env get-values)" && unusual-city doctor
  unusual-city doctor --json | jq '.checks[] | select(.ok | not)'
`;

const options = {
  json: { type: 'boolean' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

export function formatChecks(checks: readonly Check[]): string {
  return checks
    .map(
      (c) =>
        // Details quote what services answered (error messages, a rule's display name): shown display-safe.
        `${c.ok ? '✓' : '✗'} ${c.name}: ${displaySafe(c.detail)}${c.ok || c.fix === undefined ? '' : `\n    fix: ${displaySafe(c.fix)}`}\n`,
    )
    .join('');
}

export async function runDoctorCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout(DOCTOR_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`doctor takes no arguments (got ${positionals.join(' ')})`);
  const checks = await runDoctor({
    env: io.env,
    sets: parseSets(values.set),
    ...(io.clock !== undefined ? { clock: io.clock } : {}),
    ...(io.tlsCa !== undefined ? { tlsCa: io.tlsCa } : {}),
  });
  const ok = checks.every((c) => c.ok);
  io.stdout(values.json ? `${JSON.stringify({ ok, checks }, null, 2)}\n` : formatChecks(checks));
  return ok ? 0 : 1;
}

export const run = (args: string[]): Promise<number> => runDoctorCommand(args, processIo());
