/**
 * detectUnusualCity: the 15-minute timer (UC_SCHEDULE) that reads the last UC_LOOKBACK of AzureActivity from
 * Log Analytics, scores each (operation, city, hour) against the baselines in Table Storage, and delivers
 * alerts to the UnusualCityAlerts_CL table through the Logs Ingestion API.
 *
 * Thin on purpose: validated settings → clients (built once per process, reused across invocations) → the
 * shared pipeline (shared/runtime/detector.ts) → logs through the InvocationContext.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';

import { loadSettings } from '../shared/config/settings.js';
import type { LogFn } from '../shared/pipeline/tick.js';
import { type AzureDepsOptions, createAzureDeps } from '../shared/runtime/azure.js';
import { requireRuntimeSettings } from '../shared/runtime/clients.js';
import { type DetectorDeps, runScheduled } from '../shared/runtime/detector.js';
import type { RunReport } from '../shared/runtime/telemetry.js';

export type DetectHandler = (timer: Timer, context: InvocationContext) => Promise<RunReport>;

export interface DetectHandlerOptions extends AzureDepsOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Replaces the Azure clients entirely (unit tests). */
  deps?: () => Promise<Omit<DetectorDeps, 'log'>>;
  clock?: () => number;
}

/** The handler with injectable dependencies. Clients are built on the first invocation and then reused. */
export function makeDetectHandler(options: DetectHandlerOptions = {}): DetectHandler {
  const env = options.env ?? process.env;
  // Logs of clients built once per process go to whichever invocation is running.
  let current: LogFn = (level, message) => console[level === 'info' ? 'log' : level](message);
  const forward: LogFn = (level, message) => current(level, message);
  let ready: Promise<Omit<DetectorDeps, 'log'>> | undefined;

  return async (timer, context) => {
    current = (level, message) => {
      if (level === 'error') context.error(message);
      else if (level === 'warn') context.warn(message);
      else context.log(message);
    };
    ready ??= (options.deps ?? (() => createAzureDeps(loadSettings(env), env, forward, options)))();
    let deps: Omit<DetectorDeps, 'log'>;
    try {
      deps = await ready;
    } catch (error) {
      ready = undefined; // a fixed setting or a transient start-up failure takes effect on the next run
      context.error(
        `detectUnusualCity could not start: ${error instanceof Error ? error.message : String(error)}`,
      );
      throw error;
    }
    return runScheduled(
      { ...deps, log: forward, ...(options.clock ? { clock: options.clock } : {}) },
      { invocationId: context.invocationId, isPastDue: timer.isPastDue },
    );
  };
}

export const detectUnusualCity = makeDetectHandler();

// A bad or missing setting stops start-up here, with one message naming each setting, its value and what is
// allowed — before the host schedules anything. (Outside the host, e.g. in tests, registration only warns.)
if (process.env.FUNCTIONS_WORKER_RUNTIME !== undefined) requireRuntimeSettings(loadSettings(process.env));

app.timer('detectUnusualCity', {
  // Required for the schedule to be an app setting (UC_SCHEDULE): the %…% form is resolved by the host.
  schedule: '%UC_SCHEDULE%',
  runOnStartup: false,
  handler: async (timer: Timer, context: InvocationContext) => {
    await detectUnusualCity(timer, context);
  },
});
