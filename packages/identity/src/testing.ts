// @ambientkit/identity/testing — a mesh CA for tests, in one call: a root, SVIDs issued from it,
// the trust bundles that trust it, and each SVID in the shapes the TLS helpers take. For tests
// only: keys live in memory and nothing is persisted. Universal (WebCrypto), like the CA.
import { TrustBundle, TrustBundleSet } from "./bundle.js";
import { CertificateAuthority, type IssuedKeyAndCertificate } from "./ca.js";
import type { KeyAlgorithm } from "./keys.js";
import { istioIdentity } from "./spiffe-id.js";

export interface TestCaOptions {
  /** Default `cluster.local`. */
  readonly trustDomain?: string;
  /** The root's key; default `ec-p256` (fast; istiod's own default is RSA 2048). */
  readonly keyAlgorithm?: KeyAlgorithm;
}

/** An issued SVID plus the shapes other packages take. */
export interface TestSvid extends IssuedKeyAndCertificate {
  /** `{ certChainPem, privateKeyPem }`: identity/node's `MtlsIdentity`. */
  readonly mtls: { readonly certChainPem: string; readonly privateKeyPem: string };
  /** `{ cert, key, ca }`: hbone's `HboneCredentials` (PEM leaf chain, key, our roots). */
  readonly credentials: { readonly cert: string; readonly key: string; readonly ca: string };
}

export interface TestCa {
  readonly ca: CertificateAuthority;
  readonly trustDomain: string;
  /** The root, PEM (`root-cert.pem`). */
  readonly rootCertPem: string;
  /** A bundle set holding this CA's trust domain and root. */
  readonly trustBundles: TrustBundleSet;
  /**
   * Issues an SVID (ECDSA P-256, as ztunnel asks for). `id` is a SPIFFE ID or `ns/sa`, which
   * becomes `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
   */
  issue(id: string): Promise<TestSvid>;
}

/** A root CA for tests and what trusts it. */
export async function createTestCa(options: TestCaOptions = {}): Promise<TestCa> {
  const trustDomain = options.trustDomain ?? "cluster.local";
  const ca = await CertificateAuthority.createRoot({
    trustDomain,
    keyAlgorithm: options.keyAlgorithm ?? "ec-p256",
  });
  const rootCertPem = ca.rootCertPem;
  return {
    ca,
    trustDomain,
    rootCertPem,
    trustBundles: new TrustBundleSet([TrustBundle.fromPem(trustDomain, rootCertPem)]),
    issue: async (id) => toTestSvid(await ca.issue(spiffeIdOf(trustDomain, id))),
  };
}

/** `ns/sa` → `spiffe://<td>/ns/<ns>/sa/<sa>` (istioIdentity: segments checked); a SPIFFE ID as given. */
function spiffeIdOf(trustDomain: string, id: string): string {
  if (id.startsWith("spiffe://")) return id;
  const [ns, sa, ...rest] = id.split("/");
  if (!ns || !sa || rest.length > 0) {
    throw new TypeError(`expected a SPIFFE ID or "<namespace>/<service account>", got ${id}`);
  }
  return istioIdentity(trustDomain, ns, sa).toString();
}

/** Adds the `mtls` and `credentials` shapes to an issued SVID (of any CA). */
export function toTestSvid(issued: IssuedKeyAndCertificate): TestSvid {
  return {
    ...issued,
    mtls: { certChainPem: issued.certChainPem, privateKeyPem: issued.privateKeyPem },
    credentials: { cert: issued.certChainPem, key: issued.privateKeyPem, ca: issued.rootCertPem },
  };
}
