/**
 * Starts Azurite's Table service inside the test process, bound to 127.0.0.1 on a random port and kept in memory.
 *
 * In-process rather than a child process: no port race, no leftover processes when vitest is killed, and every
 * test file gets a fresh, empty server (no state shared between files).
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';

import { AzureNamedKeyCredential } from '@azure/data-tables';

/** Azurite's well-known development account; public, documented, and only valid against the emulator. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteTables {
  /** `http://127.0.0.1:{port}/devstoreaccount1`; clients need `allowInsecureConnection: true`. */
  endpoint: string;
  credential: AzureNamedKeyCredential;
  stop(): Promise<void>;
}

// Azurite ships no type declarations for its internals; these are the few members we use.
interface TableServerInstance {
  start(): Promise<void>;
  close(): Promise<void>;
  clean?(): Promise<void>;
  getHttpServerAddress(): string;
}
type TableConfigurationCtor = new (
  host: string,
  port: number,
  keepAliveTimeout: number,
  metadataDBPath: string,
  enableDebugLog: boolean,
  enableAccessLog: boolean,
  accessLogWriteStream: undefined,
  debugLogFilePath: undefined,
  loose: boolean,
  skipApiVersionCheck: boolean,
  cert: string,
  key: string,
  pwd: string,
  oauth: undefined,
  disableProductStyleUrl: boolean,
  isMemoryPersistence: boolean,
) => unknown;
type TableServerCtor = new (configuration: unknown) => TableServerInstance;
interface TelemetryModule {
  AzuriteTelemetryClient: { enableTelemetry: boolean };
}

// `require('azurite')` resolves to the VS Code extension entry point, so load the table server's modules by path.
const require = createRequire(import.meta.url);
const azuriteDist = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src');

function load<T>(relative: string): T {
  return require(path.join(azuriteDist, relative)) as T;
}

export async function startAzurite(): Promise<AzuriteTables> {
  // Telemetry only starts when Azurite's CLI calls init(); pinning the flag off guards against that ever changing.
  load<TelemetryModule>('common/Telemetry').AzuriteTelemetryClient.enableTelemetry = false;
  const TableConfiguration = load<{ default: TableConfigurationCtor }>('table/TableConfiguration').default;
  const TableServer = load<{ default: TableServerCtor }>('table/TableServer').default;

  const config = new TableConfiguration(
    '127.0.0.1',
    0, // the OS picks a free port
    5,
    // With in-memory persistence this is only LokiJS's database name, never a file; unique for clarity.
    `azurite-table-${randomUUID()}.json`,
    false, // debug log
    false, // access log
    undefined,
    undefined,
    false, // loose
    true, // skipApiVersionCheck: the SDK may be newer than this Azurite build
    '',
    '',
    '',
    undefined,
    false,
    true, // in memory
  );
  const server = new TableServer(config);
  await server.start();
  const address = server.getHttpServerAddress(); // e.g. http://127.0.0.1:41234
  let stopped = false;
  return {
    endpoint: `${address}/${AZURITE_ACCOUNT}`,
    credential: new AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await server.clean?.();
    },
  };
}
