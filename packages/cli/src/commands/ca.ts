// `ambientkit ca init|issue|sign`: an Istio-compatible CA on disk, in istiod's plug-in `cacerts`
// layout (see @ambientkit/identity CertificateAuthority).
import { access } from "node:fs/promises";
import { join } from "node:path";
import {
  CertificateAuthority,
  IdentityError,
  type IssuedCertificate,
  isKeyAlgorithm,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  parseDuration,
  parseSpiffeId,
} from "@ambientkit/identity";
import { loadCaDirectory, writeCaDirectory, writeWorkloadFiles } from "@ambientkit/identity/node";
import { type Command, Option } from "commander";
import { type CommandContext, EXIT_OK, outputOption } from "../command.js";
import { CliError } from "../errors.js";
import { readInput, resolvePath } from "../io.js";

type Output = "text" | "json";

interface InitFlags {
  trustDomain: string;
  out: string;
  keyType: string;
  ttl?: string;
  force?: boolean;
  output: Output;
}

interface IssueFlags {
  ca: string;
  id: string;
  ttl?: string;
  keyType: string;
  out: string;
  output: Output;
}

interface SignFlags {
  ca: string;
  csr: string;
  id: string;
  ttl?: string;
  output: "pem" | "json";
}

/** `ca init --output json`. */
export interface CaInitJson {
  trustDomain: string;
  keyType: KeyAlgorithm;
  dir: string;
  files: string[];
  notBefore: string;
  notAfter: string;
}

/** `ca issue --output json` / `ca sign --output json`. */
export interface CaIssuedJson {
  identity: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  /** Files written (issue) — absent for sign. */
  files?: string[];
  /** Istio CreateCertificate order: leaf, intermediates, root bundle (sign only). */
  certChain?: string[];
}

/** Registers `ambientkit ca`. */
export function registerCa(program: Command, ctx: CommandContext): void {
  const ca = program
    .command("ca")
    .description("run an Istio-compatible CA: create a root, issue and sign workload certificates");

  ca.command("init")
    .description(
      "create a self-signed root CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)",
    )
    .requiredOption("--trust-domain <td>", "trust domain, e.g. cluster.local (the root's O=)")
    .requiredOption("--out <dir>", "directory to write the cacerts files to")
    .addOption(keyTypeOption("rsa-2048", "root key type (istiod's default is rsa-2048)"))
    .option("--ttl <duration>", "root lifetime, e.g. 87600h (default 10 years)")
    .option("--force", "replace an existing CA in --out")
    .addOption(outputOption())
    .action(async (flags: InitFlags) => {
      const trustDomain = checked(() => parseSpiffeIdTrustDomain(flags.trustDomain));
      const keyType = keyTypeOf(flags.keyType);
      const dir = resolvePath(ctx.io, flags.out);
      if (!flags.force && (await exists(join(dir, "ca-key.pem")))) {
        throw new CliError(
          "ERR_CLI_USAGE",
          `${flags.out} already holds a CA (ca-key.pem); pass --force to replace it`,
        );
      }
      const root = await checkedAsync(() =>
        CertificateAuthority.createRoot({
          trustDomain,
          keyAlgorithm: keyType,
          ...(flags.ttl === undefined ? {} : { ttlMs: ttlOf(flags.ttl) }),
        }),
      );
      // all four files or none; an existing --out (with --force) is left as it was on failure
      const written = await checkedAsync(() => writeCaDirectory(dir, root));
      if (flags.output === "json") {
        const report: CaInitJson = {
          trustDomain,
          keyType,
          dir,
          files: written,
          notBefore: root.notBefore.toISOString(),
          notAfter: root.notAfter.toISOString(),
        };
        ctx.io.stdout(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        ctx.io.stdout(
          `created ${keyType} root CA "O=${trustDomain}" valid until ${root.notAfter.toISOString()}\n` +
            written.map((f) => `  wrote ${f}\n`).join(""),
        );
      }
      ctx.setExit(EXIT_OK);
    });

  ca.command("issue")
    .description(
      "generate a key and an X.509-SVID for a SPIFFE ID; writes cert-chain.pem, key.pem, root-cert.pem",
    )
    .requiredOption(
      "--ca <dir>",
      "cacerts directory (from `ambientkit ca init` or Istio's plug-in CA)",
    )
    .requiredOption("--id <spiffe-id>", "identity, e.g. spiffe://cluster.local/ns/default/sa/app")
    .option("--ttl <duration>", "certificate lifetime, e.g. 24h (default 24h, max 2160h)")
    .addOption(keyTypeOption("ec-p256", "workload key type (ztunnel uses ec-p256)"))
    .requiredOption(
      "--out <dir>",
      "directory to write cert-chain.pem, key.pem and root-cert.pem to",
    )
    .addOption(outputOption())
    .action(async (flags: IssueFlags) => {
      const identity = checked(() => parseSpiffeId(flags.id).toString());
      const ttlMs = flags.ttl === undefined ? undefined : ttlOf(flags.ttl);
      const authority = await loadCa(ctx, flags.ca);
      const issued = await checkedAsync(() =>
        authority.issue(identity, {
          keyAlgorithm: keyTypeOf(flags.keyType),
          ...(ttlMs === undefined ? {} : { ttlMs }),
        }),
      );
      const dir = resolvePath(ctx.io, flags.out);
      // all three files or none; an existing --out is left as it was on failure
      const written = await checkedAsync(() => writeWorkloadFiles(dir, issued));
      if (flags.output === "json") {
        ctx.io.stdout(`${JSON.stringify({ ...summary(issued), files: written }, null, 2)}\n`);
      } else {
        ctx.io.stdout(
          `issued ${issued.identity} serial ${issued.serialNumber} valid until ${issued.notAfter.toISOString()}\n` +
            written.map((f) => `  wrote ${f}\n`).join(""),
        );
      }
      ctx.setExit(EXIT_OK);
    });

  ca.command("sign")
    .description(
      "sign a PEM CSR for a SPIFFE ID (the CSR's own SANs are ignored, as istiod does); prints the chain",
    )
    .requiredOption("--ca <dir>", "cacerts directory")
    .requiredOption("--csr <file>", "PEM certificate request, or - for stdin")
    .requiredOption("--id <spiffe-id>", "identity to certify")
    .option("--ttl <duration>", "certificate lifetime (default 24h, max 2160h)")
    .addOption(
      new Option(
        "-o, --output <format>",
        "pem: the chain leaf → root; json: a report with the chain",
      )
        .choices(["pem", "json"])
        .default("pem"),
    )
    .action(async (flags: SignFlags) => {
      const identity = checked(() => parseSpiffeId(flags.id).toString());
      const ttlMs = flags.ttl === undefined ? undefined : ttlOf(flags.ttl);
      const csr = await readInput(ctx.io, flags.csr);
      const authority = await loadCa(ctx, flags.ca);
      const issued = await checkedAsync(() =>
        authority.sign(csr, { identity, ...(ttlMs === undefined ? {} : { ttlMs }) }),
      );
      if (flags.output === "json") {
        ctx.io.stdout(
          `${JSON.stringify({ ...summary(issued), certChain: [...issued.chain] }, null, 2)}\n`,
        );
      } else {
        ctx.io.stdout(issued.chain.join(""));
      }
      ctx.setExit(EXIT_OK);
    });
}

function keyTypeOption(defaultValue: KeyAlgorithm, description: string): Option {
  return new Option("--key-type <type>", description)
    .choices([...KEY_ALGORITHMS])
    .default(defaultValue);
}

function keyTypeOf(value: string): KeyAlgorithm {
  if (!isKeyAlgorithm(value)) {
    throw new CliError(
      "ERR_CLI_USAGE",
      `unknown --key-type ${value}; use one of ${KEY_ALGORITHMS.join(", ")}`,
    );
  }
  return value;
}

function ttlOf(text: string): number {
  const ms = checked(() => parseDuration(text));
  if (!(ms > 0)) throw new CliError("ERR_CLI_INPUT_INVALID", `--ttl must be positive, got ${text}`);
  return ms;
}

function parseSpiffeIdTrustDomain(td: string): string {
  return parseSpiffeId(`spiffe://${td}`).trustDomain.name;
}

function summary(issued: IssuedCertificate): CaIssuedJson {
  return {
    identity: issued.identity,
    serialNumber: issued.serialNumber,
    notBefore: issued.notBefore.toISOString(),
    notAfter: issued.notAfter.toISOString(),
  };
}

async function loadCa(ctx: CommandContext, dir: string): Promise<CertificateAuthority> {
  return checkedAsync(() => loadCaDirectory(resolvePath(ctx.io, dir)));
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Library errors about the input or the output become one-line errors (exit 2). */
function toCliError(error: unknown): unknown {
  if (
    error instanceof IdentityError &&
    (error.code === "ERR_IDENTITY_OUTPUT_REFUSED" || error.code === "ERR_IDENTITY_OUTPUT_WRITE")
  ) {
    return new CliError("ERR_CLI_OUTPUT_UNWRITABLE", `${error.message} (${error.code})`, {
      cause: error,
    });
  }
  if (error instanceof IdentityError) {
    return new CliError("ERR_CLI_INPUT_INVALID", `${error.message} (${error.code})`, {
      cause: error,
    });
  }
  return error;
}

function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw toCliError(error);
  }
}

async function checkedAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toCliError(error);
  }
}
