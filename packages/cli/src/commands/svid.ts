// `ambientkit svid verify --bundle FILE CERT`: verifies an X509-SVID chain (PEM, leaf first)
// against a trust bundle (PEM roots, a SPIFFE bundle JSON, or a `trust_domains` bundle map) with
// @ambientkit/identity's verifyX509Svid. Exit 0 prints the SPIFFE ID, 1 names the failed rule,
// 2 for unreadable or garbage input.
import {
  decodePemCertificates,
  IdentityError,
  parseTrustDomain,
  TrustBundle,
  TrustBundleSet,
  type TrustBundleSource,
  type TrustDomain,
  type VerifiedSvid,
  verifyX509Svid,
} from "@ambientkit/identity";
import type { Command } from "commander";
import { type CommandContext, EXIT_FAILURE_FOUND, EXIT_OK, outputOption } from "../command.js";
import { CliError } from "../errors.js";
import { readInput } from "../io.js";

interface VerifyFlags {
  bundle: string;
  trustDomain?: string;
  now?: string;
  strict?: boolean;
  output: "text" | "json";
}

/** What kind of bundle file was read. */
export type SvidBundleKind = "pem" | "spiffe-bundle" | "bundle-map";

/** `--output json` of `svid verify`. */
export type SvidVerifyJsonReport =
  | {
      valid: true;
      spiffeId: string;
      trustDomain: string;
      bundle: { kind: SvidBundleKind; trustDomains: string[] | null };
      chain: {
        subject: string;
        issuer: string;
        serialNumber: string;
        notBefore: string;
        notAfter: string;
      }[];
    }
  | { valid: false; code: string; rule: string | null; message: string };

/** A bundle file read from disk: a source plus what it was. */
interface LoadedBundle {
  source: TrustBundleSource;
  kind: SvidBundleKind;
  /** Trust domains the bundle is bound to; null when it applies to the leaf's trust domain. */
  trustDomains: string[] | null;
}

function inputError(what: string, error: unknown): CliError {
  const message = error instanceof Error ? error.message : String(error);
  return new CliError("ERR_CLI_INPUT_INVALID", `${what}: ${message}`, { cause: error });
}

/**
 * Reads the bundle file. A bundle map names its trust domains; PEM roots and a single SPIFFE
 * bundle carry none, so they are bound to `--trust-domain`, or else to the leaf's own trust
 * domain (the operator asserts that these roots are that trust domain's).
 */
function loadBundle(path: string, text: string, pinned: TrustDomain | undefined): LoadedBundle {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{")) {
    let isMap = false;
    try {
      const loose = JSON.parse(text) as unknown;
      isMap = typeof loose === "object" && loose !== null && "trust_domains" in loose;
    } catch {
      // the strict parser below reports the syntax error
    }
    try {
      if (isMap) {
        const set = TrustBundleSet.parseJson(text);
        return {
          source: set,
          kind: "bundle-map",
          trustDomains: set.trustDomains.map((t) => t.name),
        };
      }
      const bundle = TrustBundle.parseJson(pinned ?? "unbound.invalid", text);
      return {
        source: bindTo(bundle.x509Authorities, pinned),
        kind: "spiffe-bundle",
        trustDomains: pinned ? [pinned.name] : null,
      };
    } catch (error) {
      throw inputError(`cannot read the bundle ${path}`, error);
    }
  }
  let bundle: TrustBundle;
  try {
    bundle = TrustBundle.fromPem(pinned ?? "unbound.invalid", text);
  } catch (error) {
    throw inputError(
      `cannot read the bundle ${path} (expected PEM roots or SPIFFE bundle JSON)`,
      error,
    );
  }
  return {
    source: bindTo(bundle.x509Authorities, pinned),
    kind: "pem",
    trustDomains: pinned ? [pinned.name] : null,
  };
}

function bindTo(
  authorities: TrustBundle["x509Authorities"],
  pinned: TrustDomain | undefined,
): TrustBundleSource {
  return {
    getX509Authorities: (td) =>
      pinned === undefined || td.name === pinned.name ? authorities : undefined,
  };
}

function report(v: VerifiedSvid, loaded: LoadedBundle): SvidVerifyJsonReport {
  return {
    valid: true,
    spiffeId: v.id.toString(),
    trustDomain: v.id.trustDomain.name,
    bundle: { kind: loaded.kind, trustDomains: loaded.trustDomains },
    chain: v.chain.map((c) => ({
      subject: c.subject,
      issuer: c.issuer,
      serialNumber: c.serialNumber,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
    })),
  };
}

/** Registers `ambientkit svid verify`. */
export function registerSvid(program: Command, ctx: CommandContext): void {
  const svid = program
    .command("svid")
    .description("work with X.509 SPIFFE verifiable identity documents");
  svid
    .command("verify")
    .description(
      "verify an X509-SVID chain (PEM, leaf first) against a trust bundle; prints the SPIFFE ID (exit 0) or the failed rule (exit 1)",
    )
    .argument("<cert>", "PEM certificate chain, leaf first, or - for stdin")
    .requiredOption(
      "--bundle <file>",
      "trust bundle: PEM roots, SPIFFE bundle JSON, or a trust_domains bundle map",
    )
    .option(
      "--trust-domain <td>",
      "trust domain the PEM roots / SPIFFE bundle belong to (default: the leaf's; bundle maps name their own)",
    )
    .option(
      "--now <iso-time>",
      "verify at this time instead of the current time (e.g. 2026-06-01T12:00:00Z)",
    )
    .option(
      "--strict",
      "also enforce issuer-side MUSTs (critical key usage, critical SAN with empty subject)",
    )
    .addOption(outputOption())
    .action(async (cert: string, flags: VerifyFlags) => {
      let pinned: TrustDomain | undefined;
      if (flags.trustDomain !== undefined) {
        try {
          pinned = parseTrustDomain(flags.trustDomain);
        } catch (error) {
          throw inputError("--trust-domain", error);
        }
      }
      let now: Date | undefined;
      if (flags.now !== undefined) {
        now = new Date(flags.now);
        if (Number.isNaN(now.getTime())) {
          throw new CliError(
            "ERR_CLI_USAGE",
            `--now: ${JSON.stringify(flags.now)} is not an ISO 8601 time`,
          );
        }
      }
      const loaded = loadBundle(flags.bundle, await readInput(ctx.io, flags.bundle), pinned);
      const pem = await readInput(ctx.io, cert);
      let chain: Uint8Array[];
      try {
        chain = decodePemCertificates(pem);
      } catch (error) {
        throw inputError(`cannot read the certificate chain ${cert}`, error);
      }
      let verified: VerifiedSvid;
      try {
        verified = await verifyX509Svid(chain, loaded.source, {
          ...(now ? { now } : {}),
          strict: flags.strict === true,
        });
      } catch (error) {
        if (!(error instanceof IdentityError)) throw error;
        if (error.rule === "certificate-parse")
          throw inputError(`cannot parse the certificate chain ${cert}`, error);
        const out: SvidVerifyJsonReport = {
          valid: false,
          code: error.code,
          rule: error.rule ?? null,
          message: error.message,
        };
        if (flags.output === "json") ctx.io.stdout(`${JSON.stringify(out, null, 2)}\n`);
        else ctx.io.stdout(`invalid: ${error.rule ?? error.code}: ${error.message}\n`);
        ctx.setExit(EXIT_FAILURE_FOUND);
        return;
      }
      if (flags.output === "json")
        ctx.io.stdout(`${JSON.stringify(report(verified, loaded), null, 2)}\n`);
      else ctx.io.stdout(`${verified.id.toString()}\n`);
      ctx.setExit(EXIT_OK);
    });
}
