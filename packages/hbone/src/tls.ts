// HBONE mutual TLS: an adapter of @ambientkit/identity's node-tls, which decides the policy
// (ztunnel's rules: TLS 1.3 only, AES-GCM suites, key-exchange groups, ALPN h2; the peer's leaf must
// be a valid X509-SVID whose chain anchors in the bundle of ITS OWN trust domain, never "any root";
// SPIFFE IDs parsed by `parseSpiffeId`, never lower-cased). Here only: hbone's credentials type
// (PEM + `ca` or bundles) turned into identity's config, and identity's errors as HboneErrors.
import { X509Certificate } from "node:crypto";
import type tls from "node:tls";
import {
  certificateFacts,
  checkX509SvidLeaf,
  decodePemCertificates,
  parseCertificate,
  parseTrustDomain,
  type SpiffeId,
  TrustBundle,
  TrustBundleSet,
  tryParseSpiffeId,
} from "@ambientkit/identity";
import {
  checkPeerTrustDomain,
  type HboneServerTlsConfig,
  hboneClientTlsOptions,
  hboneServerTlsOptions,
  type MtlsIdentity,
  matchesExpectedIdentity,
  peerIdentity,
} from "@ambientkit/identity/node";
import { HboneError } from "./errors.js";

/**
 * One workload's mTLS material: its SVID chain (leaf first), private key and the trust bundle(s).
 *
 * Trust is always chosen by the PEER leaf's trust domain (ztunnel, SPIFFE): a chain counts only
 * when it anchors in the bundle of the trust domain named in the peer's SPIFFE ID. `ca` is the
 * bundle of OUR trust domain (the trust domain of `cert`'s SPIFFE ID, e.g. Istio's
 * `root-cert.pem`); for peers of other trust domains pass `trustBundles`. A credentials object is
 * treated as immutable (parsed once and cached): after rotation pass a new object.
 */
export interface HboneCredentials {
  /** PEM: the leaf SVID, then any intermediates. */
  cert: string | Buffer;
  /** PEM private key of the leaf. */
  key: string | Buffer;
  /**
   * PEM roots of our own trust domain (the one in `cert`'s SPIFFE ID). They verify peers of that
   * trust domain only. Ignored when `trustBundles` is set (pass `[]` then).
   */
  ca: string | Buffer | (string | Buffer)[];
  /**
   * Bundles per trust domain (multi-trust-domain meshes, federation). When set it replaces `ca`:
   * a peer of trust domain T is verified against `trustBundles.get(T)` only, and a peer whose
   * trust domain has no bundle is rejected.
   */
  trustBundles?: TrustBundleSet;
}

function configError(message: string, cause?: unknown): HboneError {
  return new HboneError("ERR_HBONE_CONFIG", message, cause === undefined ? undefined : { cause });
}

function peerError(message: string, cause?: unknown): HboneError {
  return new HboneError(
    "ERR_HBONE_PEER_IDENTITY",
    message,
    cause === undefined ? undefined : { cause },
  );
}

function pemText(value: string | Buffer): string {
  return typeof value === "string" ? value : value.toString("utf8");
}

/** The SPIFFE ID of the leaf in `cert`, checked with identity's X509-SVID leaf rules. */
function leafIdOf(cert: string | Buffer): SpiffeId {
  let der: Uint8Array;
  try {
    der = decodePemCertificates(pemText(cert), { allowOtherBlocks: true })[0] as Uint8Array;
  } catch (cause) {
    throw configError("the certificate is not a readable PEM X.509 certificate", cause);
  }
  try {
    return checkX509SvidLeaf(parseCertificate(der));
  } catch (cause) {
    throw configError(
      `the certificate is not a valid X509-SVID (${(cause as Error).message}); issue it from the mesh CA`,
      cause,
    );
  }
}

interface Resolved {
  readonly id: SpiffeId;
  readonly identity: MtlsIdentity;
  readonly bundles: TrustBundleSet;
}

const resolvedCache = new WeakMap<HboneCredentials, Resolved>();

/** Our SPIFFE ID, the identity's `MtlsIdentity` and the `TrustBundleSet` (cached per object). */
function resolve(creds: HboneCredentials): Resolved {
  const hit = resolvedCache.get(creds);
  if (hit !== undefined) return hit;
  const id = leafIdOf(creds.cert);
  let bundles = creds.trustBundles;
  if (bundles === undefined) {
    const ca = Array.isArray(creds.ca) ? creds.ca : [creds.ca];
    try {
      bundles = new TrustBundleSet([
        TrustBundle.fromPem(id.trustDomain, ca.map((c) => pemText(c)).join("\n")),
      ]);
    } catch (cause) {
      throw configError(
        `the trust bundle (ca) is not readable PEM certificates: ${(cause as Error).message}`,
        cause,
      );
    }
  }
  const resolved: Resolved = {
    id,
    identity: { certChainPem: pemText(creds.cert), privateKeyPem: pemText(creds.key) },
    bundles,
  };
  resolvedCache.set(creds, resolved);
  return resolved;
}

/**
 * The valid SPIFFE IDs among a certificate's URI SANs (other SAN types, and URIs that are not
 * valid SPIFFE IDs per identity's `parseSpiffeId` — e.g. an upper-case trust domain — are left
 * out). Reads the DER when the certificate carries it (`X509Certificate`, a `PeerCertificate`).
 * Peers are checked with identity's stricter X509-SVID rules (exactly one URI SAN).
 */
export function spiffeIdsOf(
  cert: { subjectaltname?: string | undefined } | X509Certificate | undefined,
): string[] {
  if (cert === undefined) return [];
  const raw = cert instanceof X509Certificate ? cert.raw : (cert as { raw?: unknown }).raw;
  let uris: readonly string[];
  if (raw instanceof Uint8Array && raw.length > 0) {
    try {
      uris = certificateFacts(parseCertificate(new Uint8Array(raw))).uriSans;
    } catch {
      return [];
    }
  } else {
    // Node's text form: `URI:x, DNS:y`; a value with special characters is quoted, and no valid
    // SPIFFE ID needs quoting, so quoted values are skipped.
    const san = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
    uris = (san ?? "")
      .split(", ")
      .filter((p) => p.startsWith("URI:"))
      .map((p) => p.slice(4));
  }
  return uris.filter((u) => tryParseSpiffeId(u).ok);
}

/**
 * The trust domain of a SPIFFE ID, or `undefined` when `id` is not a valid SPIFFE ID. Never
 * lower-cases: `spiffe://Cluster.Local/…` is invalid (SPIFFE-ID §2.1), so `undefined`.
 */
export function trustDomainOf(id: string): string | undefined {
  const r = tryParseSpiffeId(id);
  return r.ok ? r.id.trustDomain.name : undefined;
}

/** The SPIFFE identity of the leaf in `creds.cert` (a valid X509-SVID leaf, else ERR_HBONE_CONFIG). */
export function identityOfCredentials(creds: Pick<HboneCredentials, "cert">): string {
  return leafIdOf(creds.cert).toString();
}

/**
 * True when `id` equals an expected SPIFFE ID or lies under an expected entry ending in `/`
 * (`spiffe://cluster.local/` = any identity of that trust domain): identity's
 * `matchesExpectedIdentity`, the rule `clientTlsOptions` applies.
 */
export const matchesExpected: (id: string, expected: readonly string[]) => boolean =
  matchesExpectedIdentity;

/**
 * node:tls client options for an HBONE hop: identity's `hboneClientTlsOptions` (TLS 1.3 only,
 * ztunnel's AES-GCM suites, ALPN h2, no resumption, our SVID as client certificate; the server's
 * leaf must be a valid X509-SVID whose chain anchors in the bundle of ITS trust domain, and its
 * SPIFFE ID one of `expected` or under an entry ending in `/`, see {@link matchesExpected}).
 * The hostname is ignored. Here only: our credentials type, and identity's errors as
 * ERR_HBONE_CONFIG (a malformed or empty `expected`) and ERR_HBONE_PEER_IDENTITY.
 */
export function clientTlsOptions(
  creds: HboneCredentials,
  expected: readonly string[],
): tls.ConnectionOptions {
  if (expected.length === 0) {
    throw configError("expected server identities are empty; pass at least one SPIFFE ID");
  }
  const { identity, bundles } = resolve(creds);
  let base: tls.ConnectionOptions;
  try {
    base = hboneClientTlsOptions({ identity, trustBundles: bundles, expectedIdentities: expected });
  } catch (cause) {
    throw configError(`expected identity: ${(cause as Error).message}`, cause);
  }
  const check = base.checkServerIdentity as NonNullable<
    tls.ConnectionOptions["checkServerIdentity"]
  >;
  return {
    ...base,
    checkServerIdentity: (host: string, cert: tls.PeerCertificate): Error | undefined => {
      const e = check(host, cert);
      return e === undefined ? undefined : peerError(e.message, e);
    },
  };
}

/**
 * identity's `HboneServerTlsConfig` for serving `creds`: clients are accepted from
 * `acceptedTrustDomains` (default: our certificate's trust domain), each verified against its own
 * trust domain's bundle. Throws ERR_HBONE_CONFIG.
 */
export function serverTlsConfig(
  creds: HboneCredentials,
  acceptedTrustDomains?: readonly string[],
): HboneServerTlsConfig {
  const { identity, bundles } = resolve(creds);
  const accepted = acceptedTrustDomains?.map((td) => {
    try {
      return parseTrustDomain(td).name;
    } catch (cause) {
      throw configError(`trust domain: ${(cause as Error).message}`, cause);
    }
  });
  for (const td of accepted ?? []) {
    if (bundles.get(td) === undefined) {
      throw configError(
        `no trust bundle for accepted trust domain "${td}": \`ca\` holds the roots of our own trust domain only; pass credentials.trustBundles with a bundle for "${td}"`,
      );
    }
  }
  return {
    identity,
    trustBundles: bundles,
    ...(accepted !== undefined ? { acceptedTrustDomains: accepted } : {}),
  };
}

/** Server options from a {@link serverTlsConfig} (identity's `hboneServerTlsOptions`). */
export function serverTlsOptionsOf(config: HboneServerTlsConfig): tls.TlsOptions {
  let options: tls.TlsOptions;
  try {
    options = hboneServerTlsOptions(config);
  } catch (cause) {
    throw configError((cause as Error).message, cause);
  }
  return options;
}

/**
 * Server TLS options (identity's `hboneServerTlsOptions`): TLS 1.3 only, ztunnel suites, ALPN h2,
 * our SVID, a client certificate required and verified against the bundle of our trust domain
 * only. Run {@link checkClientTrustDomain} — or better identity's `verifyHboneClient`, which
 * `HboneServer` uses — after the handshake.
 */
export function serverTlsOptions(creds: HboneCredentials): tls.TlsOptions {
  return serverTlsOptionsOf(serverTlsConfig(creds));
}

/**
 * The server-side identity check after a verified handshake: the client's leaf is a valid
 * X509-SVID whose SPIFFE ID is in `trustDomain` (ztunnel `TrustDomainVerifier`; exact, never
 * lower-cased). Returns the peer identity or throws ERR_HBONE_PEER_IDENTITY. It does not look
 * at which root the chain anchors in: `HboneServer` uses identity's `verifyHboneClient`, which does.
 */
export function checkClientTrustDomain(socket: tls.TLSSocket, trustDomain: string): string {
  try {
    return checkPeerTrustDomain(peerIdentity(socket), [trustDomain]);
  } catch (cause) {
    throw peerError((cause as Error).message, cause);
  }
}
