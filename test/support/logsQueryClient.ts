/**
 * The real LogsQueryClient and credential chain (DefaultAzureCredential, through the fake managed identity)
 * against the local query API of fakeLogAnalytics.ts: what the Log Analytics source tests read through.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { LogsQueryClient, type LogsQueryClientOptions } from '@azure/monitor-query-logs';

import { type AzureActivityRow, type FakeLogAnalytics, startFakeLogAnalytics } from './fakeLogAnalytics.js';
import { type FakeIdentity, startFakeIdentity } from './identity.js';

/** A client of `fake`; its own retries are off unless `retryOptions` turns them on. */
export function logsQueryClient(
  fake: FakeLogAnalytics,
  retryOptions: LogsQueryClientOptions['retryOptions'] = { maxRetries: 0 },
): LogsQueryClient {
  return new LogsQueryClient(new DefaultAzureCredential(), {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
    retryOptions,
  });
}

export interface LogAnalyticsClientSetup {
  identity: FakeIdentity;
  fake: FakeLogAnalytics;
  /** Its own retries off, so that the source's retries are what a test sees. */
  client: LogsQueryClient;
  /** Restores the environment the identity was installed in, then stops the fakes. */
  close: () => Promise<void>;
}

/** The fake managed identity (installed in process.env), a fake query API over `rows`, and a client of it. */
export async function startLogAnalyticsClient(rows: AzureActivityRow[]): Promise<LogAnalyticsClientSetup> {
  const identity = await startFakeIdentity();
  const restore = identity.install();
  const fake = await startFakeLogAnalytics({ rows });
  return {
    identity,
    fake,
    client: logsQueryClient(fake),
    close: async () => {
      restore();
      await fake.close();
      await identity.close();
    },
  };
}
