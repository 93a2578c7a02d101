import { X509Certificate } from "node:crypto";
import type tls from "node:tls";
import { HboneError } from "./errors.js";
import { TLS_CIPHERSUITES, TLS_ECDH_CURVES } from "./settings.js";

/** One workload's mTLS material: its SVID chain (leaf first), private key and the trust bundle. */
export interface HboneCredentials {
  /** PEM: the leaf SVID, then any intermediates. */
  cert: string | Buffer;
  /** PEM private key of the leaf. */
  key: string | Buffer;
  /** PEM trust bundle (mesh roots) used to verify the peer. */
  ca: string | Buffer | (string | Buffer)[];
}

/** The SPIFFE IDs in a certificate's URI SANs (other SAN types are ignored, as ztunnel does). */
export function spiffeIdsOf(
  cert: { subjectaltname?: string | undefined } | X509Certificate | undefined,
): string[] {
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert?.subjectaltname;
  if (!san) return [];
  const out: string[] = [];
  for (const part of san.split(", ")) {
    let v = part.trim();
    if (!v.startsWith("URI:")) continue;
    v = v.slice(4);
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    if (v.startsWith("spiffe://")) out.push(v);
  }
  return out;
}

/** The trust domain of `spiffe://td/path` (lower-cased), or `undefined` when it is not a SPIFFE ID. */
export function trustDomainOf(id: string): string | undefined {
  if (!id.startsWith("spiffe://")) return undefined;
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const td = slash < 0 ? rest : rest.slice(0, slash);
  return td === "" ? undefined : td.toLowerCase();
}

/** The SPIFFE identity of the leaf in `creds.cert`. */
export function identityOfCredentials(creds: Pick<HboneCredentials, "cert">): string {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(creds.cert);
  } catch (cause) {
    throw new HboneError(
      "ERR_HBONE_CONFIG",
      "the certificate is not a readable PEM X.509 certificate",
      { cause },
    );
  }
  const ids = spiffeIdsOf(leaf);
  if (ids.length !== 1 || ids[0] === undefined) {
    throw new HboneError(
      "ERR_HBONE_CONFIG",
      `the certificate must carry exactly one spiffe:// URI SAN (found ${ids.length}); issue it from the mesh CA`,
    );
  }
  return ids[0];
}

/**
 * True when `id` equals an expected SPIFFE ID, or starts with an expected entry that ends in `/`
 * (`spiffe://cluster.local/` = any identity of that trust domain, as Envoy's prefix matchers).
 */
export function matchesExpected(id: string, expected: readonly string[]): boolean {
  return expected.some((e) => (e.endsWith("/") ? id.startsWith(e) : id === e));
}

/**
 * node:tls client options for an HBONE hop: TLS 1.3 only, ztunnel's AES-GCM suites, ALPN h2, no SNI,
 * no resumption, our SVID as client certificate, and the server must present one of `expected`
 * (any URI SAN equal to any expected SPIFFE ID; the hostname is ignored).
 */
export function clientTlsOptions(
  creds: HboneCredentials,
  expected: readonly string[],
): tls.ConnectionOptions {
  if (expected.length === 0) {
    throw new HboneError(
      "ERR_HBONE_CONFIG",
      "expected server identities are empty; pass at least one SPIFFE ID",
    );
  }
  return {
    cert: creds.cert,
    key: creds.key,
    ca: creds.ca,
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    ciphers: TLS_CIPHERSUITES,
    ecdhCurve: TLS_ECDH_CURVES,
    ALPNProtocols: ["h2"],
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      const got = spiffeIdsOf(cert);
      if (got.some((id) => matchesExpected(id, expected))) return undefined;
      return new HboneError(
        "ERR_HBONE_PEER_IDENTITY",
        `identity verification error: peer did not present the expected SAN (${expected.join(", ")}), got ${got.join(", ") || "none"}`,
      );
    },
  };
}

/** Server TLS options: TLS 1.3 only, ztunnel suites, the workload's SVID, client certificates verified against the bundle. */
export function serverTlsOptions(creds: HboneCredentials): tls.TlsOptions {
  return {
    cert: creds.cert,
    key: creds.key,
    ca: creds.ca,
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    ciphers: TLS_CIPHERSUITES,
    ecdhCurve: TLS_ECDH_CURVES,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ["h2"],
  };
}

/**
 * The server-side check after a verified handshake: the client presented a SPIFFE ID in our trust
 * domain (ztunnel `TrustDomainVerifier`). Returns the peer identity or throws ERR_HBONE_PEER_IDENTITY.
 */
export function checkClientTrustDomain(socket: tls.TLSSocket, trustDomain: string): string {
  const cert = socket.getPeerCertificate();
  const ids = spiffeIdsOf(cert);
  const match = ids.find((id) => trustDomainOf(id) === trustDomain.toLowerCase());
  if (match === undefined) {
    throw new HboneError(
      "ERR_HBONE_PEER_IDENTITY",
      `identity verification error: peer did not present the expected trustdomain (${trustDomain}), got ${ids.join(", ") || "none"}`,
    );
  }
  return match;
}
