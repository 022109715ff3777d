/**
 * Files that several processes may write at once (Node only): an advisory lock that names
 * its holder, and writes that never go through a symbolic link and that readers see whole
 * or not at all. The model cache and the evaluation app's outputs both use these, so one
 * rule holds everywhere: a planted link is refused, a half-written file is never used, and
 * a second writer waits (downloads) or is refused naming the first (evaluation runs).
 */
import {
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { SdkError } from './errors.js';

/** Who holds a lock: enough for a person to find the process, and for us to see it died. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  /** what the holder is doing, e.g. "download of https://..." */
  readonly purpose: string;
  /** the kernel's start time of the process (Linux), so a reused pid is not taken for the holder */
  readonly procStart?: string;
}

export interface FileLock {
  readonly path: string;
  release(): void;
}

const { O_CREAT, O_EXCL, O_WRONLY, O_TRUNC, O_NOFOLLOW } = constants;

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined off Linux / when gone. */
function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true; // cannot tell: assume it runs
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (holder.procStart !== undefined) {
    const now = procStart(holder.pid);
    if (now !== undefined && now !== holder.procStart) return false;
  }
  return true;
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string') return h as LockHolder;
  } catch {}
  return undefined;
}

const held = new Set<string>();
let exitHook = false;

/**
 * Takes the lock at `path` (a file created with O_EXCL, which never follows a link) or returns
 * who holds it. A lock whose holder died on this host is broken and taken; breaking goes
 * through a second O_EXCL file so two processes cannot both break it and both win.
 */
export function tryLock(path: string, purpose: string): { lock: FileLock } | { holder: LockHolder } {
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    purpose,
    ...(procStart(process.pid) !== undefined ? { procStart: procStart(process.pid) } : {}),
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, O_CREAT | O_EXCL | O_WRONLY, 0o644);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== 'EEXIST') throw fileError(path, 'create the lock file', err);
      const holder = readHolder(path);
      if (holder === undefined) {
        // a holder that died between creating and writing it, or a planted link or junk:
        // taken over only once it is old enough not to be a lock being written right now
        if (Date.now() - mtimeOf(path) < 5_000) return { holder: unknownHolder(path, purpose) };
      } else if (isAlive(holder)) return { holder };
      breakLock(path, holder);
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(me)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    held.add(path);
    if (!exitHook) {
      exitHook = true;
      // a lock left by a crash is broken by the next run; one left by a plain exit need not wait for that
      process.once('exit', () => {
        for (const p of held) releaseIfMine(p);
      });
    }
    return {
      lock: {
        path,
        release: () => {
          if (held.delete(path)) releaseIfMine(path);
        },
      },
    };
  }
  const holder = readHolder(path);
  return { holder: holder ?? unknownHolder(path, purpose) };
}

/** Waits for the lock at `path` while a live process holds it (polling), then takes it. */
export async function waitForLock(
  path: string,
  purpose: string,
  options: { signal?: AbortSignal; pollMs?: number; onWait?: (holder: LockHolder) => void } = {},
): Promise<FileLock> {
  let told = false;
  for (;;) {
    const got = tryLock(path, purpose);
    if ('lock' in got) return got.lock;
    if (!told) options.onWait?.(got.holder);
    told = true;
    if (options.signal?.aborted) {
      throw new SdkError('E_ABORTED', `aborted while waiting for ${describeHolder(got.holder)} (${path})`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 100));
  }
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} on host ${h.host} (${h.purpose}, since ${h.startedAt})`;
}

function unknownHolder(path: string, purpose: string): LockHolder {
  return { pid: -1, host: 'unknown', startedAt: new Date(mtimeOf(path)).toISOString(), purpose };
}

function mtimeOf(path: string): number {
  try {
    return lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function breakLock(path: string, seen: LockHolder | undefined): void {
  const breaker = `${path}.break`;
  let fd: number;
  try {
    fd = openSync(breaker, O_CREAT | O_EXCL | O_WRONLY, 0o644);
  } catch {
    // someone else is breaking it; a breaker left by a crash is cleared after a while
    if (Date.now() - mtimeOf(breaker) > 10_000) rmQuiet(breaker);
    return;
  }
  closeSync(fd);
  try {
    const now = readHolder(path);
    const same = JSON.stringify(now) === JSON.stringify(seen);
    if (same) rmQuiet(path);
  } finally {
    rmQuiet(breaker);
  }
}

function releaseIfMine(path: string): void {
  const h = readHolder(path);
  if (h && h.pid === process.pid && h.host === hostname()) rmQuiet(path);
}

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}

function fileError(path: string, what: string, e: NodeJS.ErrnoException): SdkError {
  return new SdkError('E_FILE', `${path}: cannot ${what}: ${e.code ?? e.message}`, { cause: e });
}

/**
 * Refuses `path` when it is anything but a regular file or absent: a symbolic link (dangling or
 * not), a directory, a FIFO or a device. Returns whether it exists.
 */
export function checkWritableTarget(path: string, role: string): boolean {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fileError(path, `inspect ${role}`, e as NodeJS.ErrnoException);
  }
  if (st.isSymbolicLink())
    throw new SdkError(
      'E_FILE',
      `${path} (${role}) is a symbolic link; files are never written through links`,
    );
  if (st.isDirectory()) throw new SdkError('E_FILE', `${path} (${role}) is a directory, not a file`);
  if (!st.isFile()) throw new SdkError('E_FILE', `${path} (${role}) is not a regular file`);
  return true;
}

/** Opens `path` for writing without following a link at its last component (O_NOFOLLOW). */
export function openNoFollow(path: string, mode: 'truncate' | 'exclusive' | 'append'): number {
  const flags =
    O_WRONLY |
    O_NOFOLLOW |
    (mode === 'truncate' ? O_CREAT | O_TRUNC : mode === 'exclusive' ? O_CREAT | O_EXCL : constants.O_APPEND);
  try {
    return openSync(path, flags, 0o644);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ELOOP')
      throw new SdkError('E_FILE', `${path} is a symbolic link; files are never written through links`);
    throw fileError(path, 'open it for writing', err);
  }
}

/** Writes all of `data` (writeSync may write less than asked, e.g. on a full disk). */
export function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** fsyncs a folder so that a rename into it survives a power cut. */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems cannot fsync a folder; the rename itself is still atomic
  }
}

/**
 * Writes `data` to `path` so that readers see the old content or the new, never part of it:
 * a fresh temporary file (O_EXCL: never a link), fsync, rename over `path` (which replaces a
 * link rather than following it), fsync of the folder.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fd = openNoFollow(tmp, 'exclusive');
  try {
    writeAll(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmQuiet(tmp);
    throw fileError(path, 'write it', e as NodeJS.ErrnoException);
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmQuiet(tmp);
    throw fileError(path, 'rename the new file into place', e as NodeJS.ErrnoException);
  }
  syncDir(dirname(path));
}
