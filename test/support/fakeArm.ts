/**
 * A local https Azure Resource Manager answering the Service Tags list as ARM does:
 * `GET /subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/serviceTags?api-version=2025-05-01`
 * with `Authorization: Bearer <token for the endpoint>`, answering `{name, id, type, changeNumber, cloud, values,
 * nextLink?}` with change numbers as strings (the ARM shape, not the published file's numbers). The tags are the
 * repository's offline sample, served in two pages joined by nextLink. Modes: 'good', 'forbidden' (403
 * AuthorizationFailed, as ARM says it), 'malformed' (a tag without addressPrefixes on the second page),
 * 'foreign-next' (a nextLink to another host, which must never receive the token).
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { SAMPLE_SERVICE_TAGS } from '../../shared/geo/azureSample.js';
import { tokenFor } from './identity.js';
import { testCertificate } from './tls.js';

export interface FakeArm {
  /** `https://127.0.0.1:{port}`: UC_ARM_ENDPOINT. */
  endpoint: string;
  ca: string;
  mode: 'good' | 'forbidden' | 'malformed' | 'foreign-next';
  changeNumber: string;
  /** Every request: path with query, and the Authorization header. */
  requests: { url: string; authorization: string }[];
  close(): Promise<void>;
}

interface SampleTag {
  name: string;
  id: string;
  properties: { changeNumber: number; region: string; systemService: string; addressPrefixes: string[] };
}

/** The sample's tags in the ARM shape (strings, resource-style ids, no networkFeatures as the SDK model has). */
function armValues(): unknown[] {
  return (SAMPLE_SERVICE_TAGS as { values: SampleTag[] }).values.map((t) => ({
    name: t.name,
    id: t.id,
    serviceTagChangeNumber: String(t.properties.changeNumber),
    properties: {
      changeNumber: String(t.properties.changeNumber),
      region: t.properties.region,
      systemService: t.properties.systemService,
      addressPrefixes: t.properties.addressPrefixes,
      state: 'GA',
    },
  }));
}

const PATH =
  /^\/subscriptions\/([0-9a-f-]{36})\/providers\/Microsoft\.Network\/locations\/([a-z0-9]+)\/serviceTags$/;

export async function startFakeArm(): Promise<FakeArm> {
  const { cert, key } = await testCertificate();
  const values = armValues();
  const half = Math.ceil(values.length / 2);
  const fake: FakeArm = {
    endpoint: '',
    ca: cert,
    mode: 'good',
    changeNumber: '63',
    requests: [],
    close: () => new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
  const server: Server = createServer({ cert, key }, (req, res) => {
    const url = new URL(req.url ?? '/', fake.endpoint);
    const authorization = req.headers.authorization ?? '';
    fake.requests.push({ url: `${url.pathname}${url.search}`, authorization });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    const match = PATH.exec(url.pathname);
    if (req.method !== 'GET' || !match)
      return send(404, { error: { code: 'NotFound', message: 'no route' } });
    if (authorization !== `Bearer ${tokenFor(fake.endpoint)}`)
      return send(401, { error: { code: 'InvalidAuthenticationToken', message: 'bad token' } });
    if (url.searchParams.get('api-version') !== '2025-05-01')
      return send(400, { error: { code: 'InvalidApiVersionParameter', message: 'api-version' } });
    const subscription = match[1]!;
    if (fake.mode === 'forbidden') {
      return send(403, {
        error: {
          code: 'AuthorizationFailed',
          message:
            `The client '9a3c…' with object id '9a3c…' does not have authorization to perform action ` +
            `'Microsoft.Network/locations/serviceTags/read' over scope '/subscriptions/${subscription}' or the ` +
            'scope is invalid. If access was recently granted, please refresh your credentials.',
        },
      });
    }
    const second = url.searchParams.get('$skipToken') === '2';
    const nextBase = () =>
      fake.mode === 'foreign-next' ? 'https://management.example.invalid' : fake.endpoint;
    const page = second ? values.slice(half) : values.slice(0, half);
    const body = {
      name: 'public',
      id: `/subscriptions/${subscription}/providers/Microsoft.Network/serviceTags/public`,
      type: 'Microsoft.Network/serviceTags',
      changeNumber: fake.changeNumber,
      cloud: 'Public',
      values: second && fake.mode === 'malformed' ? [...page, { name: 'Broken.Tag', properties: {} }] : page,
      ...(second ? {} : { nextLink: `${nextBase()}${url.pathname}${url.search}&$skipToken=2` }),
    };
    send(200, body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
