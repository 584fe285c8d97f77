import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { testCertificate } from './tls.js';

/**
 * A local Azure Resource Manager over https, for what doctor reads: GET of a resource by id (data collection rules,
 * Log Analytics workspaces and tables, Application Insights components, Sentinel alert rules, each at the API
 * version doctor uses) and the role-assignment list
 * `{scope}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '…'` with ARM's semantics (the
 * principal's assignments at, above and below the scope; 404 under a scope that does not exist), paged with
 * nextLink. Tokens must be the fake identity's for the endpoint's audience. Errors have ARM's shape.
 */
export interface FakeRoleAssignment {
  scope: string;
  principalId: string;
  /** The role definition's GUID. */
  role: string;
}

export interface FakeResourceManager {
  /** https://127.0.0.1:port: UC_ARM_ENDPOINT. */
  endpoint: string;
  ca: string;
  /** Resources by id (matched case-insensitively): the GET body. */
  resources: Map<string, unknown>;
  roleAssignments: FakeRoleAssignment[];
  /** Requests answered, as path?query. */
  requests: string[];
  /** Requests whose path starts with `prefix` (case-insensitive) answer this status until reset. */
  fail(prefix: string, status: 403 | 404 | 500): void;
  reset(): void;
  close(): Promise<void>;
}

/** The API version ARM requires here for each kind of path (the one doctor is written against). */
const API_VERSIONS: [RegExp, string][] = [
  [/\/providers\/Microsoft\.Authorization\/roleAssignments$/i, '2022-04-01'],
  [/\/providers\/Microsoft\.SecurityInsights\/alertRules\/[^/]+$/i, '2025-09-01'],
  [/\/providers\/Microsoft\.Insights\/dataCollectionRules\/[^/]+$/i, '2023-03-11'],
  [/\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+\/tables\/[^/]+$/i, '2022-10-01'],
  [/\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+$/i, '2022-10-01'],
  [/\/providers\/Microsoft\.Insights\/components\/[^/]+$/i, '2020-02-02'],
];
const PAGE = 2;

const errorBody = (code: string, message: string): string => JSON.stringify({ error: { code, message } });

export async function startFakeResourceManager(): Promise<FakeResourceManager> {
  const { cert, key } = await testCertificate();
  let endpoint = '';
  let faults: { prefix: string; status: number }[] = [];
  const fake: FakeResourceManager = {
    endpoint,
    ca: cert,
    resources: new Map(),
    roleAssignments: [],
    requests: [],
    fail(prefix, status) {
      faults.push({ prefix: prefix.toLowerCase(), status });
    },
    reset() {
      faults = [];
      fake.requests.length = 0;
    },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
  const known = (id: string): boolean =>
    [...fake.resources.keys()].some((r) => r.toLowerCase() === id.toLowerCase()) ||
    /^\/subscriptions\/[^/]+(\/resourceGroups\/[^/]+)?$/i.test(id);

  const answer = (url: URL): [number, string] => {
    const path = decodeURIComponent(url.pathname);
    const fault = faults.find((f) => path.toLowerCase().startsWith(f.prefix));
    if (fault)
      return fault.status === 403
        ? [
            403,
            errorBody(
              'AuthorizationFailed',
              `The client does not have authorization to perform action over scope '${path}' or the scope is invalid.`,
            ),
          ]
        : fault.status === 404
          ? [404, errorBody('ResourceNotFound', `The Resource '${path}' was not found.`)]
          : [500, errorBody('InternalServerError', 'Encountered internal server error.')];
    const version = API_VERSIONS.find(([pattern]) => pattern.test(path))?.[1];
    if (version === undefined) return [400, errorBody('InvalidResourceType', `No handler for ${path}`)];
    if (url.searchParams.get('api-version') !== version)
      return [
        400,
        errorBody(
          'InvalidApiVersionParameter',
          `The api-version '${url.searchParams.get('api-version')}' is invalid.`,
        ),
      ];
    if (/\/roleAssignments$/i.test(path))
      return listAssignments(
        path.replace(/\/providers\/Microsoft\.Authorization\/roleAssignments$/i, ''),
        url,
      );
    const body = [...fake.resources].find(([id]) => id.toLowerCase() === path.toLowerCase())?.[1];
    return body === undefined
      ? [404, errorBody('ResourceNotFound', `The Resource '${path}' was not found.`)]
      : [200, JSON.stringify(body)];
  };

  const listAssignments = (scope: string, url: URL): [number, string] => {
    if (!known(scope)) return [404, errorBody('ResourceNotFound', `The Resource '${scope}' was not found.`)];
    const filter = /^principalId eq '([^']*)'$/.exec(url.searchParams.get('$filter') ?? '');
    if (!filter)
      return [400, errorBody('InvalidFilter', `Unsupported filter ${url.searchParams.get('$filter')}`)];
    const s = scope.toLowerCase();
    const matching = fake.roleAssignments.filter((a) => {
      const at = a.scope.toLowerCase();
      const related = s === at || s.startsWith(`${at}/`) || at.startsWith(`${s}/`);
      return related && a.principalId.toLowerCase() === filter[1]!.toLowerCase();
    });
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
    const page = matching.slice(skip, skip + PAGE).map((a) => assignmentBody(a));
    const next = new URL(url);
    next.searchParams.set('$skiptoken', String(skip + PAGE));
    return [
      200,
      JSON.stringify({
        value: page,
        ...(skip + PAGE < matching.length ? { nextLink: next.toString() } : {}),
      }),
    ];
  };

  const server: Server = createServer({ cert, key }, (req, res) => {
    const url = new URL(req.url ?? '/', endpoint);
    fake.requests.push(`${url.pathname}${url.search}`);
    const send = (status: number, body: string) => {
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'x-ms-request-id': randomUUID(),
      });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, errorBody('MethodNotAllowed', 'doctor only reads'));
    if (req.headers.authorization !== `Bearer test-token:${endpoint}`)
      return send(401, errorBody('InvalidAuthenticationToken', 'The access token is invalid.'));
    send(...answer(url));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.endpoint = endpoint;
  return fake;
}

function assignmentBody(a: FakeRoleAssignment): unknown {
  const name = randomUUID();
  const subscription = /^\/subscriptions\/([^/]+)/i.exec(a.scope)?.[1] ?? '';
  return {
    id: `${a.scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
    name,
    type: 'Microsoft.Authorization/roleAssignments',
    properties: {
      roleDefinitionId: `/subscriptions/${subscription}/providers/Microsoft.Authorization/roleDefinitions/${a.role}`,
      principalId: a.principalId,
      principalType: 'ServicePrincipal',
      scope: a.scope,
      condition: null,
      createdOn: '2026-12-01T10:00:00.0000000Z',
    },
  };
}
