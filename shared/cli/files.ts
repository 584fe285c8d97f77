/**
 * The command line's files and folders checked before any work: inputs that exist and are files, an `--out` that
 * is not one of them and is not another run's, a `--state` folder that can be made. Each mistake is one
 * {@link CliError} or {@link UsageError} line naming the path, never a stack trace.
 */
import { constants, type Stats } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

import { CliError, EXIT, UsageError } from './args.js';

const statOrUndefined = (p: string): Promise<Stats | undefined> => stat(p).catch(() => undefined);

/** Every input exists and is a readable file. */
export async function checkInputs(files: readonly string[]): Promise<void> {
  for (const file of files) {
    const st = await statOrUndefined(file);
    if (st === undefined) throw new CliError(`${file}: no such file`, EXIT.noInput);
    if (st.isDirectory())
      throw new CliError(
        `${file} is a folder: name the export files in it (e.g. ${file}/*.jsonl)`,
        EXIT.noInput,
      );
    await access(file, constants.R_OK).catch(() => {
      throw new CliError(`${file}: not readable (permission denied)`, EXIT.noInput);
    });
  }
}

/** A file the command reads besides its inputs (`--labels`, `--alerts`). */
export async function checkReadable(flag: string, file: string): Promise<void> {
  const st = await statOrUndefined(file);
  if (st === undefined) throw new CliError(`${flag} ${file}: no such file`, EXIT.noInput);
  if (st.isDirectory()) throw new CliError(`${flag} ${file} is a folder; ${flag} takes a file`, EXIT.noInput);
}

export interface OutCheck {
  out: string;
  inputs: readonly string[];
  append: boolean;
  /** The --state folder, when one is given. */
  state?: string;
}

/**
 * `--out` is not an input (alerts would be appended to the export), not a folder, in a writable folder, and not
 * holding another run's alerts unless `--append` says so or `--state` resumes the run that wrote them.
 */
export async function checkOut(o: OutCheck): Promise<void> {
  const st = await statOrUndefined(o.out);
  if (st?.isDirectory())
    throw new CliError(`--out ${o.out} is a folder; --out takes a file`, EXIT.cantCreate);
  if (st !== undefined) {
    for (const input of o.inputs) {
      const inSt = await statOrUndefined(input);
      if (inSt !== undefined && inSt.ino === st.ino && inSt.dev === st.dev)
        throw new UsageError(
          `--out ${o.out} is the input file ${input}: alerts would be appended to the export`,
        );
    }
  }
  const dir = path.dirname(path.resolve(o.out));
  await access(st !== undefined ? o.out : dir, constants.W_OK).catch(() => {
    throw new CliError(
      `--out ${o.out}: cannot write there (missing folder or no permission)`,
      EXIT.cantCreate,
    );
  });
  if (st === undefined || st.size === 0 || o.append) return;
  const resuming = o.state !== undefined && (await statOrUndefined(path.join(o.state, 'state.sqlite')));
  if (!resuming)
    throw new UsageError(
      `--out ${o.out} already holds alerts of another run: name a new file, add --append to add this run's ` +
        `alerts to it (alerts already there are not written again), or give the --state of the run that wrote it`,
    );
}

/**
 * Makes the `--state` folder and its missing parents one level at a time (Node's recursive mkdir loops forever
 * under /proc), refusing a path that is a file.
 */
export async function makeStateDir(dir: string): Promise<void> {
  const absolute = path.resolve(dir);
  const missing: string[] = [];
  let at = absolute;
  for (;;) {
    const st = await statOrUndefined(at);
    if (st !== undefined) {
      if (!st.isDirectory())
        throw new CliError(
          at === absolute
            ? `--state ${dir} is a file; --state takes a folder (created if missing)`
            : `--state ${dir}: ${at} is a file, not a folder`,
          EXIT.cantCreate,
        );
      break;
    }
    missing.unshift(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const d of missing) {
    await mkdir(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') return;
      throw new CliError(`--state ${dir}: cannot create ${d} (${err.code ?? err.message})`, EXIT.cantCreate);
    });
  }
}
