/**
 * What test/support/azurite.ts (Tables), azuriteBlob.ts and azuriteQueue.ts share: Azurite's development account,
 * loading its service modules, and starting one service inside this process, bound to 127.0.0.1 on a random port
 * and kept in memory.
 *
 * In-process rather than a child process: no port race, no leftover processes when vitest is killed, and every
 * test file gets a fresh, empty server (no state shared between files).
 */
import { createRequire } from 'node:module';
import path from 'node:path';

/** Azurite's well-known development account; public, documented, and only valid against the emulator. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

// Azurite ships no type declarations for its internals; these are the few members we use.
export interface AzuriteServerInstance {
  start(): Promise<void>;
  close(): Promise<void>;
  clean?(): Promise<void>;
  getHttpServerAddress(): string;
}
interface TelemetryModule {
  AzuriteTelemetryClient: { enableTelemetry: boolean };
}

// `require('azurite')` resolves to the VS Code extension entry point, so load the servers' modules by path.
const require = createRequire(import.meta.url);
const azuriteDist = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src');

/** A module of Azurite's dist/src, e.g. `table/TableServer`. */
export function loadAzurite<T>(relative: string): T {
  return require(path.join(azuriteDist, relative)) as T;
}

/**
 * The Blob and Queue configurations' arguments between keepAliveTimeout and `loose` (the Table configuration has
 * its own: test/support/azurite.ts).
 */
export type ExtentServiceArgs = [
  metadataDBPath: string,
  extentDBPath: string,
  persistencePathArray: unknown[] | undefined,
  enableAccessLog: boolean,
  accessLogWriteStream: undefined,
  enableDebugLog: boolean,
  debugLogFilePath: undefined,
];

export interface StartedAzurite<S extends AzuriteServerInstance> {
  server: S;
  /** `http://127.0.0.1:{port}/devstoreaccount1`. */
  endpoint: string;
  /** Closes and cleans the server; a second call does nothing. */
  stop: () => Promise<void>;
}

/**
 * Starts one Azurite service (`<service>/<Service>Configuration` and `<service>/<Service>Server`) on 127.0.0.1, a
 * port the OS picks, in memory, with Azurite's telemetry off. `args` are the configuration's arguments that differ
 * between services (those between keepAliveTimeout and `loose`), `trailing` any after isMemoryPersistence;
 * `beforeStart` sees the server before it listens.
 */
export async function startAzuriteService<S extends AzuriteServerInstance>(
  service: 'table' | 'blob' | 'queue',
  args: readonly unknown[],
  options: { trailing?: readonly unknown[]; beforeStart?: (server: S) => void } = {},
): Promise<StartedAzurite<S>> {
  // Telemetry only starts when Azurite's CLI calls init(); pinning the flag off guards against that ever changing.
  loadAzurite<TelemetryModule>('common/Telemetry').AzuriteTelemetryClient.enableTelemetry = false;
  const name = service[0]!.toUpperCase() + service.slice(1);
  const Configuration = loadAzurite<{ default: new (...a: unknown[]) => unknown }>(
    `${service}/${name}Configuration`,
  ).default;
  const Server = loadAzurite<{ default: new (configuration: unknown) => S }>(
    `${service}/${name}Server`,
  ).default;

  const config = new Configuration(
    '127.0.0.1',
    0, // the OS picks a free port
    5,
    ...args,
    false, // loose
    true, // skipApiVersionCheck: the SDK may be newer than this Azurite build
    '',
    '',
    '',
    undefined,
    false,
    true, // in memory
    ...(options.trailing ?? []),
  );
  const server = new Server(config);
  options.beforeStart?.(server);
  await server.start();
  const endpoint = `${server.getHttpServerAddress()}/${AZURITE_ACCOUNT}`; // e.g. http://127.0.0.1:41234/…
  let stopped = false;
  return {
    server,
    endpoint,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.close();
      await server.clean?.();
    },
  };
}
