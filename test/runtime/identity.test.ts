import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

import { DefaultAzureCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type FakeIdentity, startFakeIdentity, tokenFor } from '../support/identity.js';
import { testCertificate } from '../support/tls.js';

describe('test support: the production credential chain against a local managed-identity endpoint', () => {
  let identity: FakeIdentity;
  let restore: () => void;
  beforeAll(async () => {
    identity = await startFakeIdentity();
    restore = identity.install();
  });
  afterAll(async () => {
    restore();
    await identity.close();
  });

  it('DefaultAzureCredential gets its token from IDENTITY_ENDPOINT with the identity header', async () => {
    const token = await new DefaultAzureCredential().getToken('https://api.loganalytics.io/.default');
    expect(token.token).toBe(tokenFor('https://api.loganalytics.io'));
    expect(identity.requests.at(-1)?.resource).toBe('https://api.loganalytics.io');
  });

  it('a user-assigned identity sends its client id', async () => {
    const token = await new DefaultAzureCredential({
      managedIdentityClientId: 'c0ffee00-0000-4000-8000-000000000001',
    }).getToken('https://monitor.azure.com/.default');
    expect(token.token).toBe(tokenFor('https://monitor.azure.com'));
    expect(identity.requests.at(-1)?.clientId).toBe('c0ffee00-0000-4000-8000-000000000001');
  });

  it('the self-signed test certificate serves https on 127.0.0.1', async () => {
    const { cert, key } = await testCertificate();
    const server = createServer({ cert, key }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const { request } = await import('node:https');
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/', ca: cert }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toBe('ok');
    await new Promise<void>((r) => server.close(() => r()));
  });
});
