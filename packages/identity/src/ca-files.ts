// Istio's plug-in CA directory (`cacerts`: ca-cert.pem, ca-key.pem, root-cert.pem,
// cert-chain.pem) and workload credential files, on disk. Node-only.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
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
      return await readFile(join(dir, name), "utf8");
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
 * Writes the CA in the `cacerts` layout; each file goes to a temp file then is renamed, the key
 * with mode 0600. Returns the paths written.
 */
export async function writeCaDirectory(dir: string, ca: CertificateAuthority): Promise<string[]> {
  const files = await ca.toCacerts();
  const written: string[] = [];
  for (const name of CACERTS_FILE_NAMES) {
    const path = join(dir, name);
    await writeFileAtomic(path, files[name], name === "ca-key.pem" ? 0o600 : 0o644);
    written.push(path);
  }
  return written;
}

/**
 * Writes a workload's credentials as istio-agent lays them out: `cert-chain.pem` (leaf +
 * intermediates), `key.pem` (PKCS#8, mode 0600), `root-cert.pem`. Returns the paths written.
 */
export async function writeWorkloadFiles(
  dir: string,
  issued: IssuedCertificate & { privateKeyPem: string },
): Promise<string[]> {
  const out: [string, string, number][] = [
    ["cert-chain.pem", issued.certChainPem, 0o644],
    ["key.pem", issued.privateKeyPem, 0o600],
    ["root-cert.pem", issued.rootCertPem, 0o644],
  ];
  const written: string[] = [];
  for (const [name, data, mode] of out) {
    const path = join(dir, name);
    await writeFileAtomic(path, data, mode);
    written.push(path);
  }
  return written;
}

/** Writes via a temp file in the same directory and a rename, so readers never see half a file. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, data, { mode, flag: "wx" });
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new IdentityError(
      "ERR_IDENTITY_CA_CONFIG",
      `cannot write ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
}
