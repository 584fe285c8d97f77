import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local server speaking the App Service managed-identity protocol, as Azure Functions exposes it:
 * `GET {IDENTITY_ENDPOINT}?resource=…&api-version=2019-08-01` with header `X-IDENTITY-HEADER`, answering
 * `{access_token, expires_on, resource, token_type}`. With IDENTITY_ENDPOINT / IDENTITY_HEADER set, the real
 * DefaultAzureCredential chain ends up here. Tokens are `test-token:<resource>` so fakes can check the audience.
 */
export interface FakeIdentity {
  endpoint: string;
  header: string;
  /** Resources tokens were asked for, in order. */
  requests: { resource: string; clientId?: string }[];
  /** Sets IDENTITY_ENDPOINT / IDENTITY_HEADER (and clears other credential variables); returns a restore function. */
  install(env?: NodeJS.ProcessEnv): () => void;
  close(): Promise<void>;
}

export const tokenFor = (resource: string): string => `test-token:${resource.replace(/\/\.default$/, '')}`;

export async function startFakeIdentity(): Promise<FakeIdentity> {
  const header = `secret-${Math.random().toString(36).slice(2)}`;
  const requests: FakeIdentity['requests'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const resource = url.searchParams.get('resource') ?? '';
    if (
      req.headers['x-identity-header'] !== header ||
      url.searchParams.get('api-version') !== '2019-08-01' ||
      !resource
    ) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: 'bad_request',
          error_description: 'missing header, api-version or resource',
        }),
      );
      return;
    }
    const clientId = url.searchParams.get('client_id') ?? undefined;
    requests.push(clientId === undefined ? { resource } : { resource, clientId });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        access_token: tokenFor(resource),
        expires_on: String(Math.floor(Date.now() / 1000) + 3600),
        resource,
        token_type: 'Bearer',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}/msi/token`;
  return {
    endpoint,
    header,
    requests,
    install(env = process.env) {
      const names = [
        'IDENTITY_ENDPOINT',
        'IDENTITY_HEADER',
        'MSI_ENDPOINT',
        'MSI_SECRET',
        'AZURE_CLIENT_SECRET',
        'AZURE_TENANT_ID',
        'AZURE_FEDERATED_TOKEN_FILE',
      ];
      const saved = Object.fromEntries(names.map((n) => [n, env[n]]));
      for (const n of names) delete env[n];
      env.IDENTITY_ENDPOINT = endpoint;
      env.IDENTITY_HEADER = header;
      return () => {
        for (const n of names) {
          if (saved[n] === undefined) delete env[n];
          else env[n] = saved[n];
        }
      };
    },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
