import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";
import {
  loadCaDirectory,
  type OutputFs,
  writeCaDirectory,
  writeFileAtomic,
  writeFilesAtomic,
  writeFilesWith,
  writeWorkloadFiles,
} from "./ca-files.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-cafiles-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("cacerts directory", () => {
  it("writes the four files atomically (key 0600) and loads them back with the checks", async () => {
    const root = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const inter = await root.createIntermediate({ commonName: "istiod" });
    const out = join(dir, "cacerts");
    const written = await writeCaDirectory(out, inter);
    expect(readdirSync(out).sort()).toEqual([
      "ca-cert.pem",
      "ca-key.pem",
      "cert-chain.pem",
      "root-cert.pem",
    ]);
    expect(written).toHaveLength(4);
    expect(statSync(join(out, "ca-key.pem")).mode & 0o777).toBe(0o600);
    const loaded = await loadCaDirectory(out);
    expect(loaded.caCertPem).toBe(inter.caCertPem);
    expect(loaded.trustDomain).toBe("cluster.local");
    const issued = await loaded.issue("spiffe://cluster.local/ns/a/sa/b");
    const wl = join(dir, "workload");
    await writeWorkloadFiles(wl, issued);
    expect(statSync(join(wl, "key.pem")).mode & 0o777).toBe(0o600);
    const ok = execFileSync(
      "openssl",
      [
        "verify",
        "-CAfile",
        join(wl, "root-cert.pem"),
        "-untrusted",
        join(wl, "cert-chain.pem"),
        join(wl, "cert-chain.pem"),
      ],
      { encoding: "utf8" },
    );
    expect(ok).toContain("OK");
  });

  it("names the missing or inconsistent file", async () => {
    const empty = join(dir, "empty");
    await expect(loadCaDirectory(empty)).rejects.toMatchObject({
      code: "ERR_IDENTITY_CA_CONFIG",
      message: expect.stringContaining("ca-cert.pem"),
    });
    const a = await CertificateAuthority.createRoot({ trustDomain: "a", keyAlgorithm: "ec-p256" });
    const b = await CertificateAuthority.createRoot({ trustDomain: "b", keyAlgorithm: "ec-p256" });
    const mixed = join(dir, "mixed");
    await writeCaDirectory(mixed, a);
    writeFileSync(join(mixed, "ca-key.pem"), (await b.toCacerts())["ca-key.pem"]);
    await expect(loadCaDirectory(mixed)).rejects.toMatchObject({
      message: expect.stringContaining("the cert does not match the key"),
    });
  });
});

/**
 * Everything under `root`: names, file modes and contents, to compare before and after
 * (directory modes are left out: they follow the umask).
 */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const mode = (st.mode & 0o777).toString(8);
      if (st.isDirectory()) {
        out[`${prefix}${name}/`] = "dir";
        walk(path, `${prefix}${name}/`);
      } else {
        out[`${prefix}${name}`] = `${mode} ${readFileSync(path, "utf8")}`;
      }
    }
  };
  walk(root, "");
  return out;
}

const NODE_FS: OutputFs = { ...fsp };

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e as Error & { code?: string },
  );
}

describe("all-or-nothing output", () => {
  const issued = async () => {
    const root = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    return root.issue("spiffe://cluster.local/ns/a/sa/b");
  };
  const FILES = [
    { name: "cert-chain.pem", data: "new chain\n" },
    { name: "key.pem", data: "new key\n", mode: 0o600 },
    { name: "root-cert.pem", data: "new root\n" },
  ] as const;

  it("creates a fresh directory (and missing parents) from one complete temp directory", async () => {
    const base = mkdtempSync(join(dir, "fresh-"));
    const out = join(base, "a", "b", "certs");
    const seen: string[] = [];
    const fs: OutputFs = {
      ...NODE_FS,
      rename: async (from, to) => {
        // the one rename moves a directory that already holds every file
        seen.push(...readdirSync(from as string).sort());
        await fsp.rename(from, to);
      },
    };
    const written = await writeFilesWith(fs, out, FILES);
    expect(seen).toEqual(["cert-chain.pem", "key.pem", "root-cert.pem"]);
    expect(written).toEqual(FILES.map((f) => join(out, f.name)));
    expect(snapshot(base)).toEqual({
      "a/": "dir",
      "a/b/": "dir",
      "a/b/certs/": "dir",
      "a/b/certs/cert-chain.pem": "644 new chain\n",
      "a/b/certs/key.pem": "600 new key\n",
      "a/b/certs/root-cert.pem": "644 new root\n",
    });
  });

  it("replaces files in an existing directory, keeps the others, leaves no temp or backup file", async () => {
    const out = mkdtempSync(join(dir, "existing-"));
    writeFileSync(join(out, "cert-chain.pem"), "old chain\n");
    writeFileSync(join(out, "notes.txt"), "mine\n");
    await writeFilesAtomic(out, FILES);
    expect(snapshot(out)).toEqual({
      "cert-chain.pem": "644 new chain\n",
      "key.pem": "600 new key\n",
      "notes.txt": "644 mine\n",
      "root-cert.pem": "644 new root\n",
    });
  });

  // Regression (#14): the last file of a set could not be written and the first ones stayed.
  it("leaves an existing directory exactly as before when the last file cannot be written", async () => {
    const out = mkdtempSync(join(dir, "blocked-"));
    writeFileSync(join(out, "cert-chain.pem"), "old chain\n");
    writeFileSync(join(out, "key.pem"), "old key\n", { mode: 0o600 });
    mkdirSync(join(out, "root-cert.pem")); // something in the way of the last file
    const before = snapshot(out);
    const err = await rejection(writeWorkloadFiles(out, await issued()));
    expect(err.code).toBe("ERR_IDENTITY_OUTPUT_REFUSED");
    expect(err.message).toContain(`${join(out, "root-cert.pem")} is a directory`);
    expect(snapshot(out)).toEqual(before);
  });

  it("puts the previous files back when a rename fails halfway", async () => {
    const out = mkdtempSync(join(dir, "rollback-"));
    writeFileSync(join(out, "cert-chain.pem"), "old chain\n");
    writeFileSync(join(out, "root-cert.pem"), "old root\n");
    const before = snapshot(out);
    const fs: OutputFs = {
      ...NODE_FS,
      rename: async (from, to) => {
        if (String(to) === join(out, "root-cert.pem") && String(from).endsWith(".tmp")) {
          throw Object.assign(new Error("injected"), { code: "EIO" });
        }
        await fsp.rename(from, to);
      },
    };
    // cert-chain.pem (replaced) and key.pem (new) are renamed before root-cert.pem fails
    const err = await rejection(writeFilesWith(fs, out, FILES));
    expect(err.code).toBe("ERR_IDENTITY_OUTPUT_WRITE");
    expect(err.message).toMatch(/root-cert\.pem.*EIO.*previous files were restored/);
    expect(snapshot(out)).toEqual(before);
  });

  it("changes nothing in an existing directory when a temp file cannot be written", async () => {
    const out = mkdtempSync(join(dir, "temp-fail-"));
    writeFileSync(join(out, "cert-chain.pem"), "old chain\n");
    const before = snapshot(out);
    const fs: OutputFs = {
      ...NODE_FS,
      open: (async (path: string, ...rest: unknown[]) => {
        const handle = await (fsp.open as (...a: unknown[]) => Promise<fsp.FileHandle>)(
          path,
          ...rest,
        );
        if (!String(path).includes("root-cert.pem")) return handle;
        // the file is created, then the write fails (a full disk)
        return Object.assign(Object.create(handle) as fsp.FileHandle, {
          writeFile: async () => {
            throw Object.assign(new Error("injected"), { code: "ENOSPC" });
          },
          close: () => handle.close(),
        });
      }) as OutputFs["open"],
    };
    const err = await rejection(writeFilesWith(fs, out, FILES));
    expect(err.code).toBe("ERR_IDENTITY_OUTPUT_WRITE");
    expect(err.message).toMatch(/root-cert\.pem \(ENOSPC\); nothing was changed/);
    expect(snapshot(out)).toEqual(before);
  });

  it("says which file to restore by hand when putting a previous file back fails too", async () => {
    const out = mkdtempSync(join(dir, "stuck-"));
    writeFileSync(join(out, "cert-chain.pem"), "old chain\n");
    const fs: OutputFs = {
      ...NODE_FS,
      rename: async (from, to) => {
        if (String(to) === join(out, "key.pem") || String(from).endsWith(".bak")) {
          throw Object.assign(new Error("injected"), { code: "EIO" });
        }
        await fsp.rename(from, to);
      },
    };
    const err = await rejection(writeFilesWith(fs, out, FILES));
    const backup = readdirSync(out).find((n) => n.endsWith(".bak"));
    expect(backup).toMatch(/^\.cert-chain\.pem\.[0-9a-f]+\.bak$/);
    expect(readFileSync(join(out, backup as string), "utf8")).toBe("old chain\n");
    expect(err.message).toContain(
      `could not restore ${join(out, "cert-chain.pem")} (its previous content is in ${join(out, backup as string)})`,
    );
    expect(readdirSync(out).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("removes the temp directory and the parents it made when a fresh write fails", async () => {
    const base = mkdtempSync(join(dir, "fresh-fail-"));
    const fs: OutputFs = {
      ...NODE_FS,
      open: (async (path: string, ...rest: unknown[]) => {
        if (String(path).endsWith("root-cert.pem")) {
          throw Object.assign(new Error("injected"), { code: "ENOSPC" });
        }
        return (fsp.open as (...a: unknown[]) => Promise<fsp.FileHandle>)(path, ...rest);
      }) as OutputFs["open"],
    };
    const err = await rejection(writeFilesWith(fs, join(base, "x", "y"), FILES));
    expect(err.code).toBe("ERR_IDENTITY_OUTPUT_WRITE");
    expect(err.message).toMatch(/ENOSPC.*nothing was created/);
    expect(readdirSync(base)).toEqual([]);
  });

  it("refuses a path whose component is a file, and a file name that is a path", async () => {
    const base = mkdtempSync(join(dir, "notdir-"));
    writeFileSync(join(base, "file"), "x");
    const before = snapshot(base);
    for (const out of [join(base, "file", "sub"), join(base, "file")]) {
      const err = await rejection(writeFilesAtomic(out, FILES));
      expect(err.code, out).toBe("ERR_IDENTITY_OUTPUT_REFUSED");
      expect(err.message, out).toMatch(/not a directory/);
    }
    const bad = await rejection(writeFilesAtomic(base, [{ name: "../escape", data: "x" }]));
    expect(bad.code).toBe("ERR_IDENTITY_OUTPUT_REFUSED");
    expect(snapshot(base)).toEqual(before);
  });

  // Regression (#14): `ca issue --out /proc/x` spun forever in Node's recursive mkdir.
  it("refuses pseudo filesystems at once, by path, through symlinks and by statfs type", async () => {
    const base = mkdtempSync(join(dir, "pseudo-"));
    symlinkSync("/proc", join(base, "proc-link"));
    const targets = [
      "/proc/x",
      "/proc/self/x/y",
      "/sys/x",
      "/dev/x",
      "/dev",
      join(base, "proc-link", "x"),
    ];
    for (const target of targets) {
      const started = performance.now();
      const err = await rejection(writeWorkloadFiles(target, await issued()));
      expect(err.code, target).toBe("ERR_IDENTITY_OUTPUT_REFUSED");
      expect(err.message, target).toMatch(/pseudo filesystem.*choose a directory/);
      expect(performance.now() - started, target).toBeLessThan(2000);
    }
    expect(existsSync("/proc/x")).toBe(false);
    // /dev/shm is an ordinary tmpfs (in-memory credentials), not refused with the rest of /dev
    if (existsSync("/dev/shm")) {
      const shm = mkdtempSync("/dev/shm/ambientkit-cafiles-");
      try {
        await writeFilesAtomic(join(shm, "certs"), FILES);
        expect(readdirSync(join(shm, "certs")).sort()).toEqual(FILES.map((f) => f.name).sort());
      } finally {
        rmSync(shm, { recursive: true, force: true });
      }
    }
    // a procfs mounted somewhere else is recognised by its f_type
    const elsewhere = join(base, "mnt");
    mkdirSync(elsewhere);
    const procLike: OutputFs = {
      ...NODE_FS,
      statfs: (async () => ({
        ...(await fsp.statfs(base)),
        type: 0x9fa0,
      })) as unknown as OutputFs["statfs"],
    };
    const err = await rejection(writeFilesWith(procLike, join(elsewhere, "x"), FILES));
    expect(err.code).toBe("ERR_IDENTITY_OUTPUT_REFUSED");
    expect(err.message).toMatch(/on a proc filesystem/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it("writeFileAtomic is a set of one: replaces a file, refuses a directory in its place", async () => {
    const out = mkdtempSync(join(dir, "single-"));
    await writeFileAtomic(join(out, "a.pem"), "one", 0o600);
    await writeFileAtomic(join(out, "a.pem"), "two", 0o600);
    mkdirSync(join(out, "b.pem"));
    await expect(writeFileAtomic(join(out, "b.pem"), "x")).rejects.toMatchObject({
      code: "ERR_IDENTITY_OUTPUT_REFUSED",
    });
    expect(snapshot(out)).toEqual({ "a.pem": "600 two", "b.pem/": "dir" });
  });
});
