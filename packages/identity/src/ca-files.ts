// Istio's plug-in CA directory (`cacerts`: ca-cert.pem, ca-key.pem, root-cert.pem,
// cert-chain.pem) and workload credential files, on disk. Node-only.
//
// Every writer here is all-or-nothing (see writeFilesAtomic): a set of files lands completely or
// the target is left as it was, and a target that cannot hold files is refused up front.
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  type CacertsFiles,
  type CaRuntime,
  type CaTtlPolicy,
  CertificateAuthority,
  type IssuedCertificate,
} from "./ca.js";
import { IdentityError } from "./errors.js";

/** File names of Istio's `cacerts` layout (istiod `ROOT_CA_DIR`, default ./etc/cacerts). */
export const CACERTS_FILE_NAMES: readonly (keyof CacertsFiles)[] = [
  "ca-cert.pem",
  "ca-key.pem",
  "root-cert.pem",
  "cert-chain.pem",
];

/**
 * Loads a `cacerts` directory with istiod's consistency checks (see
 * {@link CertificateAuthority.fromPem}). `cert-chain.pem` may be absent (then the chain is
 * the signing cert up to a root in root-cert.pem); the other three files are required.
 * `ca-crl.pem` is not read.
 */
export async function loadCaDirectory(
  dir: string,
  options: CaRuntime & CaTtlPolicy & { trustDomain?: string } = {},
): Promise<CertificateAuthority> {
  const read = async (name: string, required: boolean): Promise<string | undefined> => {
    try {
      return await fsp.readFile(join(dir, name), "utf8");
    } catch (cause) {
      if (!required && (cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new IdentityError(
        "ERR_IDENTITY_CA_CONFIG",
        `cannot read ${join(dir, name)} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); a cacerts directory holds ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem — create one with \`ambientkit ca init\``,
        { cause },
      );
    }
  };
  const [caCertPem, caKeyPem, rootCertPem, certChainPem] = await Promise.all([
    read("ca-cert.pem", true),
    read("ca-key.pem", true),
    read("root-cert.pem", true),
    read("cert-chain.pem", false),
  ]);
  return CertificateAuthority.fromPem(
    {
      caCertPem: caCertPem as string,
      caKeyPem: caKeyPem as string,
      rootCertPem: rootCertPem as string,
      ...(certChainPem === undefined ? {} : { certChainPem }),
    },
    options,
  );
}

/**
 * Writes the CA in the `cacerts` layout, all four files or none (see {@link writeFilesAtomic});
 * `ca-key.pem` gets mode 0600. Returns the paths written.
 */
export async function writeCaDirectory(dir: string, ca: CertificateAuthority): Promise<string[]> {
  const files = await ca.toCacerts();
  return writeFilesAtomic(
    dir,
    CACERTS_FILE_NAMES.map((name) => ({
      name,
      data: files[name],
      mode: name === "ca-key.pem" ? 0o600 : 0o644,
    })),
  );
}

/**
 * Writes a workload's credentials as istio-agent lays them out, all three files or none (see
 * {@link writeFilesAtomic}): `cert-chain.pem` (leaf + intermediates), `key.pem` (PKCS#8, mode
 * 0600), `root-cert.pem`. Returns the paths written.
 */
export async function writeWorkloadFiles(
  dir: string,
  issued: IssuedCertificate & { privateKeyPem: string },
): Promise<string[]> {
  return writeFilesAtomic(dir, [
    { name: "cert-chain.pem", data: issued.certChainPem, mode: 0o644 },
    { name: "key.pem", data: issued.privateKeyPem, mode: 0o600 },
    { name: "root-cert.pem", data: issued.rootCertPem, mode: 0o644 },
  ]);
}

/** One file of a set written by {@link writeFilesAtomic}. */
export interface OutputFile {
  /** File name inside the target directory: no path separator, not `.` or `..`. */
  readonly name: string;
  readonly data: string | Uint8Array;
  /** Permission bits at creation (the umask still applies); default 0o644. Keys: 0o600. */
  readonly mode?: number;
}

/**
 * Writes one file via a temp file in the same directory and a rename, so readers never see half
 * a file; the same rules as {@link writeFilesAtomic} (it is a set of one).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const target = resolve(path);
  await writeFilesAtomic(dirname(target), [{ name: basename(target), data, mode }]);
}

/**
 * Writes a set of files into `dir`, all or nothing. Returns the paths written, in `files` order.
 *
 * - **Refused targets** (`ERR_IDENTITY_OUTPUT_REFUSED`, nothing is touched): a directory on a
 *   pseudo filesystem (`/proc`, `/sys`, `/dev` except `/dev/shm`, or any procfs, sysfs, cgroup,
 *   debugfs… mount, also reached through a symlink), a path with a file where a directory
 *   should be, and a file name that is taken by something other than a file (e.g. a directory).
 * - **Fresh directory** (`dir` does not exist): missing parents are created one level at a time
 *   (never Node's recursive mkdir, which spins forever on `/proc`), the files are written into a
 *   temp directory beside `dir` (same filesystem), and that directory is renamed to `dir` in one
 *   step. On failure the temp directory and the parents created are removed.
 * - **Existing directory**: every file is first written (and fsynced) to a temp name in `dir`;
 *   only when all are written is each previous file kept as a hard-linked backup and each temp
 *   file renamed over its target. If a rename fails, the files already renamed are put back
 *   (previous content restored, new files removed), so `dir` is exactly as before.
 *
 * Other failures are `ERR_IDENTITY_OUTPUT_WRITE`; the message says whether anything changed.
 * Files in `dir` that are not in `files` are left alone.
 */
export async function writeFilesAtomic(
  dir: string,
  files: readonly OutputFile[],
): Promise<string[]> {
  return writeFilesWith(NODE_FS, dir, files);
}

/** The file-system calls the writer makes; tests swap one for a failing version. @internal */
export interface OutputFs {
  stat: typeof fsp.stat;
  lstat: typeof fsp.lstat;
  realpath: typeof fsp.realpath;
  statfs: typeof fsp.statfs;
  mkdir: typeof fsp.mkdir;
  rmdir: typeof fsp.rmdir;
  open: typeof fsp.open;
  rename: typeof fsp.rename;
  link: typeof fsp.link;
  copyFile: typeof fsp.copyFile;
  rm: typeof fsp.rm;
}

const NODE_FS: OutputFs = {
  stat: fsp.stat,
  lstat: fsp.lstat,
  realpath: fsp.realpath,
  statfs: fsp.statfs,
  mkdir: fsp.mkdir,
  rmdir: fsp.rmdir,
  open: fsp.open,
  rename: fsp.rename,
  link: fsp.link,
  copyFile: fsp.copyFile,
  rm: fsp.rm,
};

/** {@link writeFilesAtomic} with the file-system calls given. Exported for tests. @internal */
export async function writeFilesWith(
  fs: OutputFs,
  dir: string,
  files: readonly OutputFile[],
): Promise<string[]> {
  const target = resolve(dir);
  checkNames(target, files);
  const { exists, missing } = await inspectTarget(fs, target);
  if (exists) await writeIntoExisting(fs, target, files);
  else await writeFresh(fs, target, missing, files);
  await syncDir(fs, exists ? target : dirname(target));
  return files.map((f) => join(dir, f.name));
}

function checkNames(target: string, files: readonly OutputFile[]): void {
  const seen = new Set<string>();
  for (const { name } of files) {
    if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name) || seen.has(name)) {
      throw refused(target, `${JSON.stringify(name)} is not a plain, unique file name`);
    }
    seen.add(name);
  }
}

/**
 * Pseudo filesystems by `statfs` f_type (linux/magic.h). Their directories cannot hold ordinary
 * files; procfs even makes Node's recursive mkdir loop forever.
 */
const PSEUDO_FS_TYPES: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
  [0x65735543, "fusectl"],
  [0x42494e4d, "binfmt_misc"],
]);

/** Kernel-owned trees, refused by path (devtmpfs reports the same f_type as an ordinary tmpfs). */
function pseudoTree(path: string): string | undefined {
  const under = (root: string): boolean => path === root || path.startsWith(`${root}/`);
  if (under("/dev/shm")) return undefined; // an ordinary tmpfs, fine for in-memory credentials
  return ["/proc", "/sys", "/dev"].find(under);
}

/** Finds the nearest existing ancestor of `target` and refuses targets that cannot hold files. */
async function inspectTarget(
  fs: OutputFs,
  target: string,
): Promise<{ exists: boolean; missing: string[] }> {
  const lexical = pseudoTree(target);
  if (lexical !== undefined) throw refusedPseudo(target, `it is under ${lexical}`);
  const missing: string[] = []; // outermost first; the last one is the target itself
  let existing = target;
  let stats: Stats;
  for (;;) {
    try {
      stats = await fs.stat(existing);
      break;
    } catch (cause) {
      const code = errnoOf(cause);
      const up = dirname(existing);
      if (
        code === "ENOENT" &&
        (await fs.lstat(existing).then(
          () => true,
          () => false,
        ))
      ) {
        throw refused(target, `${existing} is a symlink to nothing`);
      }
      if ((code === "ENOENT" || code === "ENOTDIR") && up !== existing) {
        missing.unshift(existing);
        existing = up;
        continue;
      }
      throw writeFailed(target, `cannot look at ${existing}`, cause, "nothing was changed");
    }
  }
  if (!stats.isDirectory()) {
    throw refused(
      target,
      existing === target
        ? "it exists and is not a directory"
        : `${existing} is ${stats.isFile() ? "a file" : "something else"}, not a directory`,
    );
  }
  let real: string;
  try {
    real = await fs.realpath(existing);
  } catch (cause) {
    throw writeFailed(target, `cannot resolve ${existing}`, cause, "nothing was changed");
  }
  const resolved = join(real, ...missing.map((m) => basename(m)));
  const tree = pseudoTree(resolved);
  if (tree !== undefined) throw refusedPseudo(target, `it resolves to ${resolved}, under ${tree}`);
  if (process.platform === "linux") {
    let type: number | undefined;
    try {
      type = (await fs.statfs(real)).type >>> 0; // f_type is unsigned; some ABIs sign it
    } catch {
      type = undefined; // no statfs here: the path rule above still applies
    }
    const name = type === undefined ? undefined : PSEUDO_FS_TYPES.get(type);
    if (name !== undefined) throw refusedPseudo(target, `${real} is on a ${name} filesystem`);
  }
  return { exists: missing.length === 0, missing };
}

async function writeFresh(
  fs: OutputFs,
  target: string,
  missing: readonly string[],
  files: readonly OutputFile[],
): Promise<void> {
  const created: string[] = [];
  const tmpDir = join(dirname(target), `.${basename(target)}.${token()}.tmp`);
  let tmpMade = false;
  const undo = async (): Promise<string[]> => {
    const left: string[] = [];
    if (tmpMade) {
      await fs.rm(tmpDir, { recursive: true, force: true }).catch(() => left.push(tmpDir));
    }
    for (const d of [...created].reverse()) await fs.rmdir(d).catch(() => left.push(d));
    return left;
  };
  const fail = async (what: string, cause: unknown): Promise<never> => {
    const left = await undo();
    throw writeFailed(
      target,
      what,
      cause,
      left.length === 0
        ? `nothing was created`
        : `could not remove ${left.join(", ")}; remove by hand`,
    );
  };
  for (const parent of missing.slice(0, -1)) {
    try {
      await fs.mkdir(parent);
      created.push(parent);
    } catch (cause) {
      await fail(`cannot create ${parent}`, cause);
    }
  }
  try {
    await fs.mkdir(tmpDir);
    tmpMade = true;
  } catch (cause) {
    await fail(`cannot create ${tmpDir}`, cause);
  }
  for (const file of files) {
    try {
      await writeSynced(fs, join(tmpDir, file.name), file);
    } catch (cause) {
      await fail(`cannot write ${file.name} (into ${tmpDir})`, cause);
    }
  }
  try {
    await fs.rename(tmpDir, target);
  } catch (cause) {
    await fail(`cannot move ${tmpDir} to ${target}`, cause);
  }
}

async function writeIntoExisting(
  fs: OutputFs,
  target: string,
  files: readonly OutputFile[],
): Promise<void> {
  // What is there now: nothing, or a file (or symlink) that a rename may replace.
  const previous = new Map<string, boolean>();
  for (const { name } of files) {
    const path = join(target, name);
    try {
      const st = await fs.lstat(path);
      if (!st.isFile() && !st.isSymbolicLink()) {
        throw refused(
          target,
          `${path} is ${st.isDirectory() ? "a directory" : "not a regular file"}; move it away or choose another directory`,
        );
      }
      previous.set(name, true);
    } catch (cause) {
      if (cause instanceof IdentityError) throw cause;
      if (errnoOf(cause) !== "ENOENT") {
        throw writeFailed(target, `cannot look at ${path}`, cause, "nothing was changed");
      }
      previous.set(name, false);
    }
  }
  const id = token();
  const tmpOf = (name: string): string => join(target, `.${name}.${id}.tmp`);
  const bakOf = (name: string): string => join(target, `.${name}.${id}.bak`);
  const cleanup = async (paths: readonly string[]): Promise<void> => {
    for (const p of paths) await fs.rm(p, { force: true }).catch(() => undefined);
  };

  // 1. every file to its temp name; a failure here has changed nothing
  const temps: string[] = [];
  for (const file of files) {
    const tmp = tmpOf(file.name);
    try {
      await writeSynced(fs, tmp, file);
      temps.push(tmp);
    } catch (cause) {
      await cleanup(temps);
      throw writeFailed(
        target,
        `cannot write ${join(target, file.name)}`,
        cause,
        "nothing was changed",
      );
    }
  }
  // 2. keep each previous file under a backup name (a hard link: same inode, nothing copied)
  const backups: string[] = [];
  for (const file of files) {
    if (previous.get(file.name) !== true) continue;
    const bak = bakOf(file.name);
    try {
      await fs
        .link(join(target, file.name), bak)
        .catch(() => fs.copyFile(join(target, file.name), bak, fsp.constants.COPYFILE_EXCL));
      backups.push(bak);
    } catch (cause) {
      await cleanup([...temps, ...backups]);
      throw writeFailed(
        target,
        `cannot keep a backup of ${join(target, file.name)}`,
        cause,
        "nothing was changed",
      );
    }
  }
  // 3. all renames; on a failure put back what was already renamed
  const renamed: string[] = [];
  for (const file of files) {
    try {
      await fs.rename(tmpOf(file.name), join(target, file.name));
      renamed.push(file.name);
    } catch (cause) {
      const stuck: string[] = [];
      const kept = new Set<string>(); // backups still needed because their restore failed
      for (const name of renamed.reverse()) {
        const path = join(target, name);
        try {
          if (previous.get(name) === true) await fs.rename(bakOf(name), path);
          else await fs.rm(path, { force: true });
        } catch {
          if (previous.get(name) === true) {
            kept.add(bakOf(name));
            stuck.push(`${path} (its previous content is in ${bakOf(name)})`);
          } else {
            stuck.push(`${path} (new, remove it)`);
          }
        }
      }
      await cleanup([...temps, ...backups.filter((b) => !kept.has(b))]);
      throw writeFailed(
        target,
        `cannot move ${file.name} into place`,
        cause,
        stuck.length === 0
          ? "the previous files were restored, nothing was changed"
          : `could not restore ${stuck.join(", ")}; restore by hand`,
      );
    }
  }
  await cleanup(backups);
}

/**
 * Creates `path` exclusively, writes it and flushes it to disk before it is renamed; a file it
 * created but could not complete is removed again.
 */
async function writeSynced(fs: OutputFs, path: string, file: OutputFile): Promise<void> {
  const handle = await fs.open(path, "wx", file.mode ?? 0o644);
  try {
    await handle.writeFile(file.data);
    await handle.sync();
  } catch (cause) {
    await handle.close().catch(() => undefined);
    await fs.rm(path, { force: true }).catch(() => undefined);
    throw cause;
  }
  await handle.close();
}

/** Makes the renames durable (best effort: not every platform can open a directory). */
async function syncDir(fs: OutputFs, dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // the files are complete either way; only their durability across a crash is weaker
  }
}

function token(): string {
  return randomBytes(6).toString("hex");
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function refused(target: string, why: string): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_OUTPUT_REFUSED",
    `refusing to write to ${target}: ${why}; nothing was changed`,
  );
}

function refusedPseudo(target: string, why: string): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_OUTPUT_REFUSED",
    `refusing to write to ${target}: ${why}, a kernel pseudo filesystem that cannot hold files; choose a directory on a regular filesystem`,
  );
}

function writeFailed(target: string, what: string, cause: unknown, outcome: string): IdentityError {
  const reason = errnoOf(cause) ?? (cause instanceof Error ? cause.message : String(cause));
  return new IdentityError(
    "ERR_IDENTITY_OUTPUT_WRITE",
    `cannot write to ${target}: ${what} (${reason}); ${outcome}. Check the path, permissions and free space, then run again`,
    { cause },
  );
}
