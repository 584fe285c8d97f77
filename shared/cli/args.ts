/** A command line that cannot be understood: exit code 64 with the usage text. */
export class UsageError extends Error {}

export function parseSets(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects NAME=VALUE, got ${JSON.stringify(v)}`);
    out[v.slice(0, eq).trim()] = v.slice(eq + 1);
  }
  return out;
}

export function parseTime(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new UsageError(
      `${flag} expects an ISO 8601 time such as 2026-11-01T00:00:00Z, got ${JSON.stringify(value)}`,
    );
  return ms;
}

/** What a command talks to: the process's streams and environment, or a test's (and a CA for the https fakes). */
export interface CliIo {
  env: Readonly<Record<string, string | undefined>>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  isTty?: boolean;
  /** Trust this CA for the local https fakes (tests only). */
  tlsCa?: string;
  clock?: () => number;
}

/** The real process as a command's {@link CliIo}. */
export const processIo = (): CliIo => ({
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  isTty: process.stderr.isTTY,
});

/** A mistake the user can fix that is not a malformed command line: one line, its own exit code (sysexits.h). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** sysexits.h codes the CLI uses. */
export const EXIT = { usage: 64, dataErr: 65, noInput: 66, cantCreate: 73, ioErr: 74, config: 78 } as const;
