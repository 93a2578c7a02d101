// Relying-party verification of a peer's X509-SVID chain (go-spiffe `x509svid.Verify`, plus the
// full leaf rules of `x509svid.Parse`): the bundle is chosen by the leaf's trust domain, never
// "any root". Universal: WebCrypto via @peculiar/x509, no node: imports.
import { ECDSASigValue } from "@peculiar/asn1-ecc";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate } from "@peculiar/asn1-x509";
import type { TrustBundleSource } from "./bundle.js";
import { IdentityError } from "./errors.js";
import { bufferSource, parseDer } from "./keys.js";
import type { SpiffeId } from "./spiffe-id.js";
import {
  type CertificateFacts,
  certificateFacts,
  checkX509SvidLeaf,
  checkX509SvidSigningCert,
  parseCertificate,
  type SvidCheckOptions,
  svidError,
} from "./svid.js";
import type { X509Certificate } from "./x509-lib.js";

/** Options for {@link verifyX509Svid}. */
export interface VerifyX509SvidOptions extends SvidCheckOptions {
  /** The verification time (injectable clock); default `new Date()`. */
  readonly now?: Date;
  /** Most signing certificates allowed between the leaf and the trust anchor; default 8. */
  readonly maxIntermediates?: number;
}

/** A verified peer X509-SVID. */
export interface VerifiedSvid {
  /** The peer's SPIFFE ID (from the leaf's one URI SAN). */
  readonly id: SpiffeId;
  readonly leaf: X509Certificate;
  /** The verified path: leaf, the intermediates used, and last the trust anchor from the bundle. */
  readonly chain: readonly X509Certificate[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describeCert(cert: X509Certificate): string {
  return cert.subject === "" ? `certificate serial ${cert.serialNumber}` : `"${cert.subject}"`;
}

function checkValidity(cert: X509Certificate, now: Date, what: string): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw svidError(
      "chain-not-yet-valid",
      `could not verify leaf certificate: ${what} ${describeCert(cert)} is not valid before ${cert.notBefore.toISOString()} (now ${now.toISOString()}); check the clocks`,
    );
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw svidError(
      "chain-expired",
      `could not verify leaf certificate: ${what} ${describeCert(cert)} expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()}); rotate it`,
    );
  }
}

type WebCryptoKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>;

// Imported WebCrypto keys per issuer certificate and signature algorithm: trust anchors and
// intermediates are verified against again and again, importing their key once is enough.
const keyCache = new WeakMap<X509Certificate, Map<string, Promise<WebCryptoKey>>>();

function issuerKey(child: X509Certificate, issuer: X509Certificate): Promise<WebCryptoKey> {
  const algorithm = { ...issuer.publicKey.algorithm, ...child.signatureAlgorithm };
  const cacheKey = JSON.stringify(algorithm);
  let byAlg = keyCache.get(issuer);
  if (byAlg === undefined) {
    byAlg = new Map();
    keyCache.set(issuer, byAlg);
  }
  let key = byAlg.get(cacheKey);
  if (key === undefined) {
    key = issuer.publicKey.export(algorithm, ["verify"]) as Promise<WebCryptoKey>;
    // A key that cannot be imported (e.g. a curve that does not match the signature) is not
    // cached, so a later attempt reports the same failure instead of a stale rejection.
    key.catch(() => byAlg.delete(cacheKey));
    byAlg.set(cacheKey, key);
  }
  return key;
}

// --- signature check straight on the DER: the to-be-signed bytes are the ones asn1-schema kept
// while parsing (`tbsCertificateRaw`) instead of re-serialised from the parsed ASN.1 (what
// @peculiar/x509's verify does).

interface SignedParts {
  tbs: Uint8Array;
  signature: Uint8Array;
}

const partsCache = new WeakMap<X509Certificate, SignedParts | null>();

function signedParts(cert: X509Certificate): SignedParts | undefined {
  const cached = partsCache.get(cert);
  if (cached !== undefined) return cached ?? undefined;
  let parts: SignedParts | undefined;
  try {
    // @peculiar/x509 keeps its parsed ASN.1 as `asn`; reuse it instead of parsing the DER again.
    const kept = (cert as unknown as { asn?: Certificate }).asn;
    const asn = kept?.tbsCertificateRaw ? kept : AsnConvert.parse(cert.rawData, Certificate);
    parts =
      asn.tbsCertificateRaw === undefined
        ? undefined
        : {
            tbs: new Uint8Array(asn.tbsCertificateRaw),
            signature: new Uint8Array(asn.signatureValue),
          };
  } catch {
    parts = undefined; // the slow path reports what is wrong
  }
  partsCache.set(cert, parts ?? null);
  return parts;
}

/** ECDSA-Sig-Value (DER SEQUENCE of r, s) → the fixed-size r‖s WebCrypto expects. */
function ecdsaRaw(sig: Uint8Array, size: number): Uint8Array | undefined {
  let value: ECDSASigValue;
  try {
    value = parseDer(sig, ECDSASigValue, "ECDSA signature", (m) => new Error(m));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(size * 2);
  for (const [int, offset] of [
    [value.r, 0],
    [value.s, size],
  ] as const) {
    let v = new Uint8Array(int);
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) return undefined;
    out.set(v, offset + size - v.length);
  }
  return out;
}

const CURVE_BYTES: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66 };

/** Verifies with WebCrypto directly; `undefined` when this fast path does not apply. */
function fastVerify(child: X509Certificate, key: WebCryptoKey): Promise<boolean> | undefined {
  const parts = signedParts(child);
  if (parts === undefined) return undefined;
  const alg = child.signatureAlgorithm as { name: string; hash?: unknown; saltLength?: number };
  const subtle = globalThis.crypto.subtle;
  switch (alg.name) {
    case "ECDSA": {
      const size = CURVE_BYTES[(key.algorithm as { namedCurve?: string }).namedCurve ?? ""];
      const raw = size === undefined ? undefined : ecdsaRaw(parts.signature, size);
      if (raw === undefined || alg.hash === undefined) return undefined;
      return subtle.verify(
        { name: "ECDSA", hash: alg.hash } as EcdsaParams,
        key,
        bufferSource(raw),
        bufferSource(parts.tbs),
      );
    }
    case "RSASSA-PKCS1-v1_5":
    case "Ed25519":
      return subtle.verify(
        { name: alg.name },
        key,
        bufferSource(parts.signature),
        bufferSource(parts.tbs),
      );
    case "RSA-PSS":
      if (alg.saltLength === undefined) return undefined;
      return subtle.verify(
        { name: "RSA-PSS", saltLength: alg.saltLength },
        key,
        bufferSource(parts.signature),
        bufferSource(parts.tbs),
      );
    default:
      return undefined;
  }
}

type EcdsaParams = Parameters<typeof globalThis.crypto.subtle.verify>[0];

/** Most signature checks one path search may do. */
const MAX_SIGNATURE_CHECKS = 100;

// Signature results per (child, issuer) certificate object. A signature check is a pure function
// of the two certificates' bytes, and parseCertificate returns one object per DER, so a peer
// presenting the same chain again skips the WebCrypto round trips (a failed check is remembered
// too: with an intermediate named like its root, the root is tried first every time). Entries go
// away with the certificate objects.
const signatureResults = new WeakMap<X509Certificate, WeakMap<X509Certificate, boolean>>();

async function signedBy(child: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  const known = signatureResults.get(child)?.get(issuer);
  if (known !== undefined) return known;
  let ok: boolean;
  try {
    const key = await issuerKey(child, issuer);
    ok = await (fastVerify(child, key) ?? child.verify({ publicKey: key, signatureOnly: true }));
  } catch {
    ok = false;
  }
  let results = signatureResults.get(child);
  if (results === undefined) {
    results = new WeakMap();
    signatureResults.set(child, results);
  }
  results.set(issuer, ok);
  return ok;
}

/** Could `issuer` have issued `child`? Same name, and key identifiers agree when both are present. */
function mayHaveIssued(child: CertificateFacts, issuer: CertificateFacts): boolean {
  if (!sameBytes(issuer.subjectDer, child.issuerDer)) return false;
  return (
    child.authorityKeyId === undefined ||
    issuer.subjectKeyId === undefined ||
    child.authorityKeyId === issuer.subjectKeyId
  );
}

/**
 * Verifies a peer's X509-SVID chain (DER or parsed certificates, leaf first, intermediates in
 * any order; a trailing copy of the root is fine) against the bundle of the leaf's trust
 * domain. Checks every X509-SVID leaf rule, CA:true + keyCertSign on each signing certificate
 * of the path including the anchor, signatures, validity windows at `options.now`, and
 * pathLenConstraint. Returns the SPIFFE ID and the verified path; throws IdentityError whose
 * `rule` is the failed {@link SvidRule} (`code` e.g. `ERR_IDENTITY_CHAIN_UNTRUSTED`).
 */
export async function verifyX509Svid(
  chain: readonly (Uint8Array | X509Certificate)[],
  bundles: TrustBundleSource,
  options: VerifyX509SvidOptions = {},
): Promise<VerifiedSvid> {
  if (chain.length === 0) throw svidError("chain-empty", "empty certificates chain");
  if (bundles === undefined || bundles === null)
    throw new TypeError("x509svid: bundleSource is required");
  const now = options.now ?? new Date();
  const maxIntermediates = options.maxIntermediates ?? 8;
  const certs = chain.map((c) => (c instanceof Uint8Array ? parseCertificate(c) : c));
  const leaf = certs[0] as X509Certificate;
  const id = checkX509SvidLeaf(leaf, options);
  const authorities = bundles.getX509Authorities(id.trustDomain);
  if (authorities === undefined) {
    throw svidError(
      "chain-no-bundle",
      `could not get X509 bundle: no X.509 bundle found for trust domain "${id.trustDomain.name}" (peer ${id}); add that trust domain's roots to the bundle source`,
    );
  }
  checkValidity(leaf, now, "leaf certificate");

  const intermediates = certs.slice(1);
  // Bound the work a hostile peer can cause with many same-named certificates (Go: 100).
  let signatureChecks = 0;
  const check = (child: X509Certificate, issuer: X509Certificate): Promise<boolean> => {
    if (++signatureChecks > MAX_SIGNATURE_CHECKS) {
      throw svidError(
        "chain-too-long",
        `could not verify leaf certificate: more than ${MAX_SIGNATURE_CHECKS} signature checks needed to build a path`,
      );
    }
    return signedBy(child, issuer);
  };

  // Depth-first path search: every issuer whose name, key identifier and signature fit is tried
  // in turn (bundle authorities first), so an expired or unsuitable candidate — say the old root
  // of a rotation that kept the key — does not hide a good one. The first failure is reported.
  const extend = async (
    path: X509Certificate[],
    used: ReadonlySet<number>,
  ): Promise<X509Certificate[]> => {
    const current = path[path.length - 1] as X509Certificate;
    const facts = certificateFacts(current);
    const candidates: { cert: X509Certificate; anchor: boolean; index: number }[] = [];
    for (const a of authorities) candidates.push({ cert: a, anchor: true, index: -1 });
    intermediates.forEach((c, index) => {
      if (!used.has(index)) candidates.push({ cert: c, anchor: false, index });
    });
    let nameMatched = false;
    let firstError: IdentityError | undefined;
    for (const candidate of candidates) {
      const next = candidate.cert;
      if (!mayHaveIssued(facts, certificateFacts(next))) continue;
      nameMatched = true;
      if (!(await check(current, next))) continue;
      try {
        checkX509SvidSigningCert(next, options);
        checkValidity(next, now, candidate.anchor ? "trust anchor" : "intermediate certificate");
        const below = path.length - 1; // intermediates between `next` and the leaf
        const pathLength = certificateFacts(next).basicConstraints?.pathLength;
        if (pathLength !== undefined && below > pathLength) {
          throw svidError(
            "chain-path-length",
            `could not verify leaf certificate: ${describeCert(next)} allows ${pathLength} intermediate(s) below it, the path has ${below}`,
          );
        }
        if (candidate.anchor) return [...path, next];
        if (path.length > maxIntermediates) {
          throw svidError(
            "chain-too-long",
            `could not verify leaf certificate: more than ${maxIntermediates} signing certificates`,
          );
        }
        return await extend([...path, next], new Set([...used, candidate.index]));
      } catch (error) {
        // Running out of signature checks ends the search; any other failure tries the next candidate.
        if (!(error instanceof IdentityError) || signatureChecks > MAX_SIGNATURE_CHECKS)
          throw error;
        firstError ??= error;
      }
    }
    if (firstError) throw firstError;
    throw nameMatched
      ? svidError(
          "chain-bad-signature",
          `could not verify leaf certificate: the signature of ${describeCert(current)} does not verify with its issuer "${current.issuer}"`,
        )
      : svidError(
          "chain-untrusted",
          `could not verify leaf certificate: certificate signed by unknown authority: no authority of trust domain "${id.trustDomain.name}" or presented intermediate is named "${current.issuer}"`,
        );
  };
  return { id, leaf, chain: await extend([leaf], new Set()) };
}
