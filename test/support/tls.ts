import { generate } from 'selfsigned';

export interface TestCertificate {
  /** PEM of the self-signed certificate: pass as `tlsOptions: { ca }` to SDK clients. */
  cert: string;
  key: string;
}

let cached: Promise<TestCertificate> | undefined;

/**
 * A self-signed certificate for 127.0.0.1 (and localhost), made once per test process. The SDK clients refuse
 * bearer tokens over plain http, so every local fake of an Azure service speaks https with this certificate.
 */
export function testCertificate(): Promise<TestCertificate> {
  cached ??= generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    notBeforeDate: new Date(Date.now() - 3_600_000),
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  }).then((p) => ({ cert: p.cert, key: p.private }));
  return cached;
}
