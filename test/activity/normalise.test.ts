import { describe, expect, it } from 'vitest';

import {
  CLAIM,
  classifyCaller,
  normaliseActivityRow,
  normaliseCallerIp,
  normaliseDiagnosticRecord,
  parseActivityTime,
} from '../../shared/activity/normalise.js';
import type { CallerType } from '../../shared/activity/types.js';

const iso = (s: string): number => Date.parse(s);

describe('parseActivityTime', () => {
  it.each([
    ['4/28/2021, 2:32:14.029 PM', '2021-04-28T14:32:14.029Z'],
    ['4/28/2021, 12:00:00.000 AM', '2021-04-28T00:00:00.000Z'],
    ['4/28/2021, 12:30:05.007 AM', '2021-04-28T00:30:05.007Z'],
    ['4/28/2021, 12:00:00.000 PM', '2021-04-28T12:00:00.000Z'],
    ['4/28/2021, 12:59:59.999 PM', '2021-04-28T12:59:59.999Z'],
    ['4/28/2021, 1:00:00.000 AM', '2021-04-28T01:00:00.000Z'],
    ['12/31/2021, 11:59:59.999 PM', '2021-12-31T23:59:59.999Z'],
    ['2/29/2024, 6:07 am', '2024-02-29T06:07:00.000Z'],
    ['4/28/2021, 14:32:14', '2021-04-28T14:32:14.000Z'],
    ['2021-04-28T14:32:14.0290000Z', '2021-04-28T14:32:14.029Z'],
    ['2021-04-28T14:32:14.1234567Z', '2021-04-28T14:32:14.123Z'],
    ['2021-04-28T14:32:14Z', '2021-04-28T14:32:14.000Z'],
    ['2021-04-28 14:32:14', '2021-04-28T14:32:14.000Z'],
    ['2021-04-28T16:32:14.5+02:00', '2021-04-28T14:32:14.500Z'],
    ['2021-04-28T09:02:14-0530', '2021-04-28T14:32:14.000Z'],
    ['1619620334029', '2021-04-28T14:32:14.029Z'],
  ])('parses %s', (input, expected) => {
    expect(new Date(parseActivityTime(input)).toISOString()).toBe(expected);
  });

  it('accepts Date objects and epoch seconds or milliseconds', () => {
    expect(parseActivityTime(new Date('2021-04-28T14:32:14.029Z'))).toBe(iso('2021-04-28T14:32:14.029Z'));
    expect(parseActivityTime(1619620334029)).toBe(iso('2021-04-28T14:32:14.029Z'));
    expect(parseActivityTime(1619620334)).toBe(iso('2021-04-28T14:32:14.000Z'));
    expect(parseActivityTime(1619620334.5)).toBe(iso('2021-04-28T14:32:14.500Z'));
  });

  it.each([
    ['13/28/2021, 2:32:14 PM'],
    ['2/30/2021, 2:32:14 PM'],
    ['4/28/2021, 13:32:14 PM'],
    ['4/28/2021, 0:32:14 AM'],
    ['4/28/2021, 2:61:14 PM'],
    ['2021-02-29T00:00:00Z'],
    ['2021-04-28T24:00:00Z'],
    ['yesterday'],
    ['28.04.2021 14:32'],
    [''],
  ])('rejects %s', (input) => {
    expect(parseActivityTime(input)).toBeNaN();
  });

  it('rejects non-time values', () => {
    expect(parseActivityTime({})).toBeNaN();
    expect(parseActivityTime(Number.NaN)).toBeNaN();
    expect(parseActivityTime(new Date('nope'))).toBeNaN();
    expect(parseActivityTime(true)).toBeNaN();
  });
});

describe('classifyCaller', () => {
  const GUID = '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d';
  const MIRID =
    '/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id';
  const cases: Array<
    [string, string, Record<string, unknown> | undefined, Record<string, unknown> | undefined, CallerType]
  > = [
    ['xms_mirid claim', GUID, { xms_mirid: MIRID, appid: GUID }, undefined, 'managedIdentity'],
    [
      'xms_mirid with idtyp app and SP evidence',
      GUID,
      { xms_mirid: MIRID, idtyp: 'app' },
      { principalType: 'ServicePrincipal' },
      'managedIdentity',
    ],
    ['UPN claim', 'alice@contoso.com', { [CLAIM.upn]: 'alice@contoso.com' }, undefined, 'user'],
    ['short upn claim', '', { upn: 'alice@contoso.com' }, undefined, 'user'],
    ['idtyp user', GUID, { idtyp: 'user' }, undefined, 'user'],
    ['caller looks like a UPN', 'bob@contoso.com', undefined, undefined, 'user'],
    ['evidence principalType User', GUID, undefined, { principalType: 'User' }, 'user'],
    [
      'user token also carries the client appid',
      'a@b.com',
      { appid: GUID, [CLAIM.upn]: 'a@b.com' },
      undefined,
      'user',
    ],
    ['idtyp app', GUID, { idtyp: 'app' }, undefined, 'servicePrincipal'],
    ['appid without UPN', GUID, { appid: GUID }, undefined, 'servicePrincipal'],
    [
      'GUID caller with SP evidence',
      GUID,
      undefined,
      { principalType: 'ServicePrincipal' },
      'servicePrincipal',
    ],
    ['idtyp outranks an @ in the caller', 'svc@contoso.com', { idtyp: 'app' }, undefined, 'servicePrincipal'],
    ['GUID caller without evidence', GUID, undefined, undefined, 'unknown'],
    ['group evidence', GUID, undefined, { principalType: 'Group' }, 'unknown'],
    [
      'non-GUID caller with SP evidence',
      'Microsoft.PolicyInsights',
      {},
      { principalType: 'ServicePrincipal' },
      'unknown',
    ],
    ['nothing at all', '', undefined, undefined, 'unknown'],
  ];
  it.each(cases)('%s', (_name, caller, claims, evidence, expected) => {
    expect(classifyCaller(caller, claims, evidence)).toBe(expected);
  });
});

describe('normaliseCallerIp', () => {
  it.each([
    ['203.0.113.10', '203.0.113.10'],
    [' 203.0.113.10 ', '203.0.113.10'],
    ['203.0.113.10:5678', '203.0.113.10'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['::ffff:203.0.113.10', '::ffff:203.0.113.10'],
    ['', ''],
  ])('%s → %s', (input, expected) => {
    expect(normaliseCallerIp(input)).toBe(expected);
  });

  it('treats non-strings as absent', () => {
    expect(normaliseCallerIp(null)).toBe('');
    expect(normaliseCallerIp(undefined)).toBe('');
  });
});

const SUB = '1b2c3d4e-0000-4000-8000-00000000abcd';
const RID = `/subscriptions/${SUB}/resourcegroups/rg-prod/providers/microsoft.storage/storageaccounts/st1`;

describe('normaliseActivityRow', () => {
  it('maps a complete AzureActivity row', () => {
    const r = normaliseActivityRow({
      TimeGenerated: '2021-04-28T14:32:14.029Z',
      OperationNameValue: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
      OperationName: 'List Storage Account Keys',
      Caller: 'alice@contoso.com',
      CallerIpAddress: '203.0.113.10:1234',
      Claims_d: JSON.stringify({ [CLAIM.upn]: 'alice@contoso.com' }),
      Authorization_d: { evidence: { principalType: 'User' } },
      CategoryValue: 'Administrative',
      ActivityStatusValue: 'Success',
      CorrelationId: 'corr-1',
      EventDataId: 'edi-1',
      SubscriptionId: SUB,
      ResourceGroup: 'RG-PROD',
      _ResourceId: RID,
    });
    expect(r).toEqual({
      ok: true,
      event: {
        timeMs: Date.parse('2021-04-28T14:32:14.029Z'),
        operation: 'MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION',
        operationKey: 'microsoft.storage/storageaccounts/listkeys/action',
        caller: 'alice@contoso.com',
        callerType: 'user',
        callerIp: '203.0.113.10',
        category: 'Administrative',
        status: 'Succeeded',
        correlationId: 'corr-1',
        eventDataId: 'edi-1',
        subscriptionId: SUB,
        resourceGroup: 'RG-PROD',
        resourceId: RID,
      },
    });
  });

  it('falls back to the legacy OperationName (string or {value}) when OperationNameValue is empty', () => {
    const base = { TimeGenerated: '2021-04-28T14:32:14Z', OperationNameValue: '' };
    const s = normaliseActivityRow({ ...base, OperationName: 'Microsoft.Web/sites/write' });
    const o = normaliseActivityRow({
      ...base,
      OperationName: { value: 'Microsoft.Web/sites/config/list/action', localizedValue: 'List settings' },
    });
    expect(s.ok && s.event.operationKey).toBe('microsoft.web/sites/write');
    expect(o.ok && o.event.operation).toBe('Microsoft.Web/sites/config/list/action');
  });

  it('derives the caller from claims in order: upn, name, objectidentifier (as the table Caller column), appid', () => {
    const row = (claims: Record<string, string>): string => {
      const r = normaliseActivityRow({
        TimeGenerated: '2021-04-28T14:32:14Z',
        OperationNameValue: 'op',
        Claims_d: claims,
      });
      return r.ok ? r.event.caller : 'FAILED';
    };
    const all = { [CLAIM.upn]: 'upn@x', [CLAIM.name]: 'name@x', appid: 'app-id', [CLAIM.objectId]: 'oid' };
    expect(row(all)).toBe('upn@x');
    expect(row({ ...all, [CLAIM.upn]: '' })).toBe('name@x');
    expect(row({ appid: 'app-id', [CLAIM.objectId]: 'oid' })).toBe('oid');
    expect(row({ appid: 'app-id' })).toBe('app-id');
    expect(row({})).toBe('');
  });

  it('reads the legacy text columns, parses dynamic text and tolerates unparsable dynamics', () => {
    const r = normaliseActivityRow({
      TimeGenerated: '4/28/2021, 2:32:14.029 PM',
      OperationNameValue: 'op',
      Claims: '{"idtyp":"app","appid":"a1"}',
      Properties_d: '{"eventDataId":"from-properties"}',
      Authorization_d: 'not json {',
      _ResourceId: '/SUBSCRIPTIONS/ABCD/RESOURCEGROUPS/RG-X/PROVIDERS/P/T/N',
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.event).toMatchObject({
      caller: 'a1',
      callerType: 'servicePrincipal',
      eventDataId: 'from-properties',
      subscriptionId: 'abcd',
      resourceGroup: 'RG-X',
      callerIp: '',
      status: '',
    });
  });

  it('uses EventSubmissionTimestamp when TimeGenerated is absent', () => {
    const r = normaliseActivityRow({
      EventSubmissionTimestamp: '2021-04-28T14:32:14Z',
      OperationNameValue: 'op',
    });
    expect(r.ok && r.event.timeMs).toBe(Date.parse('2021-04-28T14:32:14Z'));
  });

  it('reports missing-time, invalid-time and missing-operation with the record id', () => {
    expect(normaliseActivityRow({ OperationNameValue: 'op', EventDataId: 'e1' })).toEqual({
      ok: false,
      reason: 'missing-time',
      id: 'e1',
    });
    expect(normaliseActivityRow({ TimeGenerated: '  ', OperationNameValue: 'op' })).toMatchObject({
      ok: false,
      reason: 'missing-time',
    });
    expect(
      normaliseActivityRow({ TimeGenerated: 'soon', OperationNameValue: 'op', CorrelationId: 'c1' }),
    ).toMatchObject({
      ok: false,
      reason: 'invalid-time',
      id: 'c1',
      detail: expect.stringContaining('soon') as unknown,
    });
    expect(
      normaliseActivityRow({ TimeGenerated: '2021-04-28T14:32:14Z', OperationName: { value: '' } }),
    ).toMatchObject({
      ok: false,
      reason: 'missing-operation',
    });
  });
});

describe('normaliseDiagnosticRecord', () => {
  it('maps camelCase fields and derives caller, subscription and resource group', () => {
    const r = normaliseDiagnosticRecord({
      time: '2024-03-05T11:00:00.5000000Z',
      resourceId: '/SUBSCRIPTIONS/1B2C3D4E-0000-4000-8000-00000000ABCD/RESOURCEGROUPS/RG-APP/PROVIDERS/X/Y/Z',
      operationName: 'MICROSOFT.KEYVAULT/VAULTS/WRITE',
      category: 'Administrative',
      resultType: 'Start',
      callerIpAddress: '[2001:db8::5]:443',
      correlationId: 'corr',
      identity: {
        authorization: { evidence: { principalType: 'User' } },
        claims: { [CLAIM.name]: 'alice@contoso.com', appid: 'portal' },
      },
      properties: { eventDataId: 'edi' },
    });
    expect(r).toEqual({
      ok: true,
      event: {
        timeMs: Date.parse('2024-03-05T11:00:00.500Z'),
        operation: 'MICROSOFT.KEYVAULT/VAULTS/WRITE',
        operationKey: 'microsoft.keyvault/vaults/write',
        caller: 'alice@contoso.com',
        callerType: 'user',
        callerIp: '2001:db8::5',
        category: 'Administrative',
        status: 'Started',
        correlationId: 'corr',
        eventDataId: 'edi',
        subscriptionId: SUB,
        resourceGroup: 'RG-APP',
        resourceId:
          '/SUBSCRIPTIONS/1B2C3D4E-0000-4000-8000-00000000ABCD/RESOURCEGROUPS/RG-APP/PROVIDERS/X/Y/Z',
      },
    });
  });

  it('classifies a managed identity and uses its object id as the caller', () => {
    const r = normaliseDiagnosticRecord({
      time: '2024-03-05T11:00:00Z',
      operationName: 'op',
      identity: {
        claims: {
          appid: 'mi-app',
          xms_mirid: '/subscriptions/s/…/userAssignedIdentities/id',
          [CLAIM.objectId]: 'mi-oid',
        },
      },
    });
    expect(r.ok && [r.event.caller, r.event.callerType]).toEqual(['mi-oid', 'managedIdentity']);
  });

  it('reports bad records', () => {
    expect(normaliseDiagnosticRecord({ operationName: 'op', correlationId: 'c' })).toMatchObject({
      reason: 'missing-time',
      id: 'c',
    });
    expect(
      normaliseDiagnosticRecord({ time: 'x', operationName: 'op', properties: { eventDataId: 'e' } }),
    ).toMatchObject({
      reason: 'invalid-time',
      id: 'e',
    });
    expect(normaliseDiagnosticRecord({ time: '2024-03-05T11:00:00Z' })).toMatchObject({
      reason: 'missing-operation',
    });
  });
});
