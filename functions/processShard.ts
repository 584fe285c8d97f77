/**
 * processShard: the queue-triggered half of queue mode (UC_SHARDING=queue). The timer (detectUnusualCity)
 * enqueues UC_SHARD_COUNT messages per tick on the Storage queue UC_SHARD_QUEUE; each message is one shard — the
 * operations in one hash range — of one tick's window, run through the same pipeline (shared/runtime/shards.ts).
 *
 * Connection: `AzureWebJobsStorage`, identity-based in Azure (AzureWebJobsStorage__credential, __clientId and
 * __queueServiceUri, set by infra/modules/functionApp.bicep; the identity has Storage Queue Data Contributor on
 * the account). Retries: a shard that throws (an incomplete Log Analytics window, a spent budget, a store error)
 * is retried by the host after the visibility timeout, up to maxDequeueCount (host.json, 5), then moved to
 * `<UC_SHARD_QUEUE>-poison`; the timer enqueues a shard again if it has not completed 30 minutes after its last
 * enqueue, so the checkpoint never skips it.
 */
import { app, type InvocationContext } from '@azure/functions';

import { loadSettings } from '../shared/config/settings.js';
import type { LogFn } from '../shared/pipeline/tick.js';
import { type AzureDepsOptions, createAzureDeps } from '../shared/runtime/azure.js';
import { requireRuntimeSettings } from '../shared/runtime/clients.js';
import type { DetectorDeps } from '../shared/runtime/detector.js';
import { runShard, type ShardOutcome } from '../shared/runtime/shards.js';

export type ShardHandler = (message: unknown, context: InvocationContext) => Promise<ShardOutcome>;

export interface ShardHandlerOptions extends AzureDepsOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Replaces the Azure clients entirely (tests). */
  deps?: () => Promise<Omit<DetectorDeps, 'log'>>;
  clock?: () => number;
}

/** The handler with injectable dependencies; clients are built on the first message and reused. */
export function makeShardHandler(options: ShardHandlerOptions = {}): ShardHandler {
  const env = options.env ?? process.env;
  let current: LogFn = (level, message) => console[level === 'info' ? 'log' : level](message);
  const forward: LogFn = (level, message) => current(level, message);
  let ready: Promise<Omit<DetectorDeps, 'log'>> | undefined;

  return async (message, context) => {
    current = (level, text) => {
      if (level === 'error') context.error(text);
      else if (level === 'warn') context.warn(text);
      else context.log(text);
    };
    ready ??= (options.deps ?? (() => createAzureDeps(loadSettings(env), env, forward, options)))();
    let deps: Omit<DetectorDeps, 'log'>;
    try {
      deps = await ready;
    } catch (error) {
      ready = undefined;
      context.error(
        `processShard could not start: ${error instanceof Error ? error.message : String(error)}`,
      );
      throw error;
    }
    const dequeueCount = context.triggerMetadata?.dequeueCount;
    return runShard({ ...deps, log: forward, ...(options.clock ? { clock: options.clock } : {}) }, message, {
      invocationId: context.invocationId,
      ...(typeof dequeueCount === 'number' ? { dequeueCount } : {}),
    });
  };
}

export const processShard = makeShardHandler();

if (process.env.FUNCTIONS_WORKER_RUNTIME !== undefined) requireRuntimeSettings(loadSettings(process.env));

app.storageQueue('processShard', {
  queueName: '%UC_SHARD_QUEUE%',
  connection: 'AzureWebJobsStorage',
  handler: async (message: unknown, context: InvocationContext) => {
    await processShard(message, context);
  },
});
