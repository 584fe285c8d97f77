/**
 * Azurite's Queue service inside the calling process (127.0.0.1, random port, in memory), and a worker loop that
 * drives a queue-triggered function the way the Functions host does: receive a message, decode it (base64, then
 * JSON), invoke the handler with an InvocationContext carrying the trigger metadata, delete the message when the
 * handler resolves, leave it to reappear after the visibility timeout when it throws, and move it to the
 * `<queue>-poison` queue once it has been dequeued `maxDequeueCount` times.
 *
 * Used by test/scale (end to end) and by the benchmark's shard workers (bench/measure.ts).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

// @azure/functions is CommonJS and Node cannot see InvocationContext as a named export of it from ESM (vitest
// can): take it from the default export so the compiled benchmark runs under plain Node too.
import azureFunctions, { type InvocationContext } from '@azure/functions';
import { QueueClient, StorageSharedKeyCredential } from '@azure/storage-queue';

import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  type ExtentServiceArgs,
  startAzuriteService,
} from './azuriteCommon.js';

export { AZURITE_ACCOUNT, AZURITE_KEY };

export interface AzuriteQueues {
  /** `http://127.0.0.1:{port}/devstoreaccount1`: the Queue service URL. */
  endpoint: string;
  credential: StorageSharedKeyCredential;
  /** A client for one queue of this service. */
  queue(name: string): QueueClient;
  stop(): Promise<void>;
}

export async function startAzuriteQueue(): Promise<AzuriteQueues> {
  const id = randomUUID();
  const args: ExtentServiceArgs = [
    // In memory: LokiJS database names only, never files.
    `azurite-queue-${id}.json`,
    `azurite-queue-extent-${id}.json`,
    undefined,
    false, // access log
    undefined,
    false, // debug log
    undefined,
  ];
  const { endpoint, stop } = await startAzuriteService('queue', args);
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  return {
    endpoint,
    credential,
    queue: (name) => new QueueClient(`${endpoint}/${name}`, credential),
    stop,
  };
}

export type QueueHandler = (message: unknown, context: InvocationContext) => Promise<unknown>;

export interface QueueWorkerOptions {
  queue: QueueClient;
  /** The poison queue (`<queue>-poison`); created when first needed. */
  poison: QueueClient;
  handler: QueueHandler;
  functionName?: string;
  /** Seconds a received message stays invisible; a failed one reappears after it (host default 10 min; short here). */
  visibilityTimeoutSeconds?: number;
  /** Dequeues before a message goes to the poison queue (host.json extensions.queues.maxDequeueCount). */
  maxDequeueCount?: number;
  /** Stop once this returns true, checked whenever the queue is found empty. */
  until: () => boolean | Promise<boolean>;
  /** Give up (throw) after this long. */
  timeoutMs?: number;
  /** Poll interval when the queue is empty. */
  idleMs?: number;
  log?: (line: string) => void;
}

export interface QueueWorkerResult {
  processed: number;
  failed: number;
  poisoned: number;
}

/** Runs until `until()` holds when the queue is empty; one message at a time (host.json batchSize 1). */
export async function runQueueWorker(o: QueueWorkerOptions): Promise<QueueWorkerResult> {
  const started = Date.now();
  const maxDequeueCount = o.maxDequeueCount ?? 5;
  const result: QueueWorkerResult = { processed: 0, failed: 0, poisoned: 0 };
  for (;;) {
    if (o.timeoutMs !== undefined && Date.now() - started > o.timeoutMs) {
      throw new Error(`queue worker gave up after ${o.timeoutMs} ms`);
    }
    const received = await o.queue.receiveMessages({
      numberOfMessages: 1,
      visibilityTimeout: o.visibilityTimeoutSeconds ?? 5,
    });
    const item = received.receivedMessageItems[0];
    if (item === undefined) {
      if (await o.until()) return result;
      await sleep(o.idleMs ?? 100);
      continue;
    }
    if (item.dequeueCount > maxDequeueCount) {
      // What the host does with a message it has already failed on maxDequeueCount times.
      await o.poison.createIfNotExists();
      await o.poison.sendMessage(item.messageText);
      await o.queue.deleteMessage(item.messageId, item.popReceipt);
      result.poisoned += 1;
      o.log?.(`message ${item.messageId} moved to the poison queue after ${item.dequeueCount - 1} attempts`);
      continue;
    }
    const text = Buffer.from(item.messageText, 'base64').toString('utf8');
    let payload: unknown = text;
    try {
      payload = JSON.parse(text);
    } catch {
      // not JSON: the host hands the string over as it is
    }
    const context: InvocationContext = new azureFunctions.InvocationContext({
      invocationId: randomUUID(),
      functionName: o.functionName ?? 'processShard',
      triggerMetadata: {
        id: item.messageId,
        dequeueCount: item.dequeueCount,
        insertionTime: item.insertedOn.toISOString(),
        expirationTime: item.expiresOn.toISOString(),
        popReceipt: item.popReceipt,
      },
      logHandler: (level, ...args) => o.log?.(`${level}: ${args.map(String).join(' ')}`),
    });
    let handled = false;
    try {
      await o.handler(payload, context);
      handled = true;
      result.processed += 1;
      await o.queue.deleteMessage(item.messageId, item.popReceipt);
    } catch (error) {
      if (handled) {
        // The handler outlived the visibility timeout: the message is someone else's now (the host logs this too).
        o.log?.(`message ${item.messageId} done but not deleted (visibility timeout passed): it runs again`);
        continue;
      }
      // Left in the queue: it becomes visible again after the visibility timeout (the host's retry).
      result.failed += 1;
      o.log?.(
        `message ${item.messageId} failed (attempt ${item.dequeueCount}): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}
