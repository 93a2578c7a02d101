// X509-SVID rules (SPIFFE X509-SVID spec §2–§5, go-spiffe x509svid distinctions) for leaves and
// signing certificates. Synchronous checks on parsed certificates; chain verification against a
// trust bundle is in verify.ts. Universal: no node: imports.
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from "@peculiar/asn1-x509";
import { IdentityError, type IdentityErrorCode } from "./errors.js";
import { base64Encode, decodePemCertificates } from "./pem.js";
import { checkSpiffeId, parseSpiffeId, type SpiffeId } from "./spiffe-id.js";
import { X509Certificate } from "./x509-lib.js";

/**
 * The X509-SVID rule that failed; the `rule` of an {@link IdentityError}. Stable identifiers:
 * add new ones, never rename.
 */
export type SvidRule =
  | "certificate-parse"
  | "duplicate-extension"
  | "unhandled-critical-extension"
  | "leaf-uri-san-missing"
  | "leaf-uri-san-multiple"
  | "leaf-spiffe-id-invalid"
  | "leaf-spiffe-id-root-path"
  | "leaf-ca"
  | "leaf-digital-signature-missing"
  | "leaf-key-cert-sign"
  | "leaf-crl-sign"
  | "leaf-eku-incomplete"
  | "signing-not-ca"
  | "signing-key-cert-sign-missing"
  | "strict-key-usage-not-critical"
  | "strict-san-not-critical"
  | "strict-signing-spiffe-id-has-path"
  | "chain-empty"
  | "chain-too-long"
  | "chain-no-bundle"
  | "chain-untrusted"
  | "chain-bad-signature"
  | "chain-expired"
  | "chain-not-yet-valid"
  | "chain-path-length";

/** One line per rule: what the spec demands. Used in messages and docs. */
export const SVID_RULES: Readonly<Record<SvidRule, string>> = {
  "certificate-parse": "certificates must be DER X.509",
  "duplicate-extension": "a certificate must not include an extension twice (RFC 5280 §4.2)",
  "unhandled-critical-extension":
    "a certificate with a critical extension the verifier does not process must be rejected (RFC 5280 §4.2)",
  "leaf-uri-san-missing": "a leaf X509-SVID must contain a URI SAN (X509-SVID §2)",
  "leaf-uri-san-multiple": "a leaf X509-SVID must contain exactly one URI SAN (X509-SVID §2)",
  "leaf-spiffe-id-invalid": "the URI SAN of a leaf must be a valid SPIFFE ID (X509-SVID §2)",
  "leaf-spiffe-id-root-path": "a leaf SPIFFE ID must have a non-root path (X509-SVID §3.1)",
  "leaf-ca": "a leaf must set CA:false (X509-SVID §4.1)",
  "leaf-digital-signature-missing": "a leaf must have key usage digitalSignature (X509-SVID §4.3)",
  "leaf-key-cert-sign": "a leaf must not have key usage keyCertSign (X509-SVID §4.3)",
  "leaf-crl-sign": "a leaf must not have key usage cRLSign (X509-SVID §4.3)",
  "leaf-eku-incomplete":
    "when a leaf has extended key usage, both serverAuth and clientAuth must be set (X509-SVID §4.4)",
  "signing-not-ca": "a signing certificate must set CA:true (X509-SVID §4.1)",
  "signing-key-cert-sign-missing":
    "a signing certificate must have key usage keyCertSign (X509-SVID §4.3)",
  "strict-key-usage-not-critical":
    "key usage must be present and critical on every SVID (X509-SVID §4.3)",
  "strict-san-not-critical":
    "the URI SAN must be critical when the subject is empty (X509-SVID §3.1)",
  "strict-signing-spiffe-id-has-path":
    "a signing certificate's SPIFFE ID must not have a path (X509-SVID §3.2)",
  "chain-empty": "the peer must present at least one certificate",
  "chain-too-long": "the certification path is longer than the verifier allows",
  "chain-no-bundle": "there must be a trust bundle for the leaf's trust domain (never any root)",
  "chain-untrusted":
    "the chain must lead to an authority of the leaf's trust domain bundle (X509-SVID §5.1)",
  "chain-bad-signature":
    "every certificate must be signed by the next one in the path (X509-SVID §5.1)",
  "chain-expired":
    "every certificate in the path must be within its validity window (now <= notAfter)",
  "chain-not-yet-valid":
    "every certificate in the path must be within its validity window (now >= notBefore)",
  "chain-path-length":
    "a signing certificate's pathLenConstraint must not be exceeded (RFC 5280 §4.2.1.9)",
};

const CODES: Readonly<Record<SvidRule, IdentityErrorCode>> = {
  "certificate-parse": "ERR_IDENTITY_SVID_PARSE",
  "duplicate-extension": "ERR_IDENTITY_SVID_PARSE",
  "unhandled-critical-extension": "ERR_IDENTITY_SVID_RULE",
  "leaf-uri-san-missing": "ERR_IDENTITY_SVID_RULE",
  "leaf-uri-san-multiple": "ERR_IDENTITY_SVID_RULE",
  "leaf-spiffe-id-invalid": "ERR_IDENTITY_SVID_RULE",
  "leaf-spiffe-id-root-path": "ERR_IDENTITY_SVID_RULE",
  "leaf-ca": "ERR_IDENTITY_SVID_RULE",
  "leaf-digital-signature-missing": "ERR_IDENTITY_SVID_RULE",
  "leaf-key-cert-sign": "ERR_IDENTITY_SVID_RULE",
  "leaf-crl-sign": "ERR_IDENTITY_SVID_RULE",
  "leaf-eku-incomplete": "ERR_IDENTITY_SVID_RULE",
  "signing-not-ca": "ERR_IDENTITY_SVID_RULE",
  "signing-key-cert-sign-missing": "ERR_IDENTITY_SVID_RULE",
  "strict-key-usage-not-critical": "ERR_IDENTITY_SVID_RULE",
  "strict-san-not-critical": "ERR_IDENTITY_SVID_RULE",
  "strict-signing-spiffe-id-has-path": "ERR_IDENTITY_SVID_RULE",
  "chain-empty": "ERR_IDENTITY_SVID_PARSE",
  "chain-too-long": "ERR_IDENTITY_CHAIN_UNTRUSTED",
  "chain-no-bundle": "ERR_IDENTITY_NO_BUNDLE_FOR_TRUST_DOMAIN",
  "chain-untrusted": "ERR_IDENTITY_CHAIN_UNTRUSTED",
  "chain-bad-signature": "ERR_IDENTITY_CHAIN_BAD_SIGNATURE",
  "chain-expired": "ERR_IDENTITY_CHAIN_EXPIRED",
  "chain-not-yet-valid": "ERR_IDENTITY_CHAIN_NOT_YET_VALID",
  "chain-path-length": "ERR_IDENTITY_CHAIN_UNTRUSTED",
};

/** Builds the IdentityError for a failed X509-SVID rule (`rule` is the {@link SvidRule}). */
export function svidError(rule: SvidRule, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(
    CODES[rule],
    `x509svid: ${detail} [rule ${rule}: ${SVID_RULES[rule]}]`,
    cause === undefined ? { rule } : { rule, cause },
  );
}

/** Key usage bits (RFC 5280 §4.2.1.3), as numbers in {@link CertificateFacts.keyUsage}. */
export const KEY_USAGE = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const;

const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
/** Extensions whose semantics this verifier processes (critical ones are accepted). */
const HANDLED = new Set<string>([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
]);

/** What the SVID rules look at, decoded once per certificate from its DER. */
export interface CertificateFacts {
  /** `undefined` when the basic constraints extension is absent. */
  readonly basicConstraints:
    | { readonly ca: boolean; readonly pathLength: number | undefined }
    | undefined;
  /** Key usage bits ({@link KEY_USAGE}); `undefined` when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly keyUsageCritical: boolean;
  /** Extended key usage OIDs; `undefined` when the extension is absent. */
  readonly extendedKeyUsage: readonly string[] | undefined;
  /** URI SANs, exactly as encoded. */
  readonly uriSans: readonly string[];
  readonly sanCritical: boolean;
  readonly subjectEmpty: boolean;
  /** DER of the subject and issuer names (path building compares them byte for byte). */
  readonly subjectDer: Uint8Array;
  readonly issuerDer: Uint8Array;
  /** Subject / authority key identifiers, hex; used to skip impossible issuers while path building. */
  readonly subjectKeyId: string | undefined;
  readonly authorityKeyId: string | undefined;
  readonly duplicateExtension: string | undefined;
  readonly unhandledCritical: readonly string[];
}

function hex(bytes: ArrayBuffer): string {
  let out = "";
  for (const b of new Uint8Array(bytes)) out += b.toString(16).padStart(2, "0");
  return out;
}

const factsCache = new WeakMap<X509Certificate, CertificateFacts>();

// Parsed certificates by DER. Peers present the same intermediates (and, across connections,
// the same leaves) again and again; ASN.1 parsing dominates verification cost, so a small LRU
// keyed by the full DER bytes pays. Parsed certificates are treated as immutable.
const PARSE_CACHE_SIZE = 512;
const parseCache = new Map<string, X509Certificate>();

/**
 * Parses a DER certificate into @peculiar/x509's `X509Certificate`; garbage is
 * `ERR_IDENTITY_SVID_PARSE` (rule `certificate-parse`). Results are cached by DER (a small
 * LRU), so parsing the same bytes twice returns the same object.
 */
export function parseCertificate(der: Uint8Array): X509Certificate {
  const key = base64Encode(der);
  const hit = parseCache.get(key);
  if (hit !== undefined) {
    parseCache.delete(key);
    parseCache.set(key, hit);
    return hit;
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der as Uint8Array<ArrayBuffer>);
  } catch (cause) {
    throw svidError(
      "certificate-parse",
      `cannot parse certificate: ${(cause as Error).message}`,
      cause,
    );
  }
  certificateFacts(cert);
  parseCache.set(key, cert);
  if (parseCache.size > PARSE_CACHE_SIZE)
    parseCache.delete(parseCache.keys().next().value as string);
  return cert;
}

/** Decodes the extensions the SVID rules need (cached per certificate object). */
export function certificateFacts(cert: X509Certificate): CertificateFacts {
  const cached = factsCache.get(cert);
  if (cached) return cached;
  let facts: CertificateFacts;
  try {
    // @peculiar/x509 keeps its parsed ASN.1 as `asn`; reuse it instead of parsing the DER again.
    const parsed = (cert as unknown as { asn?: Certificate }).asn;
    facts = decodeFacts(
      parsed?.tbsCertificate ? parsed : AsnConvert.parse(cert.rawData, Certificate),
    );
  } catch (cause) {
    throw svidError(
      "certificate-parse",
      `cannot decode certificate extensions: ${(cause as Error).message}`,
      cause,
    );
  }
  factsCache.set(cert, facts);
  return facts;
}

function decodeFacts(asn: Certificate): CertificateFacts {
  const tbs = asn.tbsCertificate;
  let basicConstraints: CertificateFacts["basicConstraints"];
  let keyUsage: number | undefined;
  let keyUsageCritical = false;
  let extendedKeyUsage: string[] | undefined;
  const uriSans: string[] = [];
  let sanCritical = false;
  let subjectKeyId: string | undefined;
  let authorityKeyId: string | undefined;
  let duplicateExtension: string | undefined;
  const unhandledCritical: string[] = [];
  const seen = new Set<string>();
  for (const ext of tbs.extensions ?? []) {
    const oid = ext.extnID;
    if (seen.has(oid)) duplicateExtension ??= oid;
    seen.add(oid);
    const value = ext.extnValue.buffer;
    switch (oid) {
      case id_ce_basicConstraints: {
        const bc = AsnConvert.parse(value, BasicConstraints);
        basicConstraints = { ca: bc.cA, pathLength: bc.pathLenConstraint };
        break;
      }
      case id_ce_keyUsage: {
        keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
        keyUsageCritical = ext.critical;
        break;
      }
      case id_ce_extKeyUsage: {
        extendedKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)].map(String);
        break;
      }
      case id_ce_subjectAltName: {
        sanCritical = ext.critical;
        for (const name of AsnConvert.parse(value, SubjectAlternativeName)) {
          if (name.uniformResourceIdentifier !== undefined)
            uriSans.push(name.uniformResourceIdentifier);
        }
        break;
      }
      case id_ce_subjectKeyIdentifier: {
        subjectKeyId = hex(AsnConvert.parse(value, SubjectKeyIdentifier).buffer);
        break;
      }
      case id_ce_authorityKeyIdentifier: {
        const id = AsnConvert.parse(value, AuthorityKeyIdentifier).keyIdentifier;
        if (id !== undefined) authorityKeyId = hex(id.buffer);
        break;
      }
      default:
        if (ext.critical && !HANDLED.has(oid)) {
          unhandledCritical.push(oid === id_ce_nameConstraints ? `${oid} (name constraints)` : oid);
        }
    }
  }
  return {
    basicConstraints,
    keyUsage,
    keyUsageCritical,
    extendedKeyUsage,
    uriSans,
    sanCritical,
    subjectEmpty: tbs.subject.length === 0,
    subjectDer: new Uint8Array(AsnConvert.serialize(tbs.subject)),
    issuerDer: new Uint8Array(AsnConvert.serialize(tbs.issuer)),
    subjectKeyId,
    authorityKeyId,
    duplicateExtension,
    unhandledCritical,
  };
}

/** Options for the rule checks. */
export interface SvidCheckOptions {
  /**
   * Also enforce the issuer-side MUSTs that validators are not required to check (§5 lists
   * what they must) and that some real issuers skip (Istio's `tools/certs` leaves have a
   * non-critical key usage): key usage critical, URI SAN critical when the subject is empty,
   * signing certificates' SPIFFE IDs without a path. Default false. Use it on certificates
   * you issue.
   */
  readonly strict?: boolean;
}

function checkCommon(facts: CertificateFacts, what: string): void {
  if (facts.duplicateExtension !== undefined) {
    throw svidError(
      "duplicate-extension",
      `${what} includes extension ${facts.duplicateExtension} more than once`,
    );
  }
  if (facts.unhandledCritical.length > 0) {
    throw svidError(
      "unhandled-critical-extension",
      `${what} has critical extension(s) this verifier does not process: ${facts.unhandledCritical.join(", ")}`,
    );
  }
}

/**
 * Returns the SPIFFE ID in a certificate's URI SAN (go-spiffe `IDFromCert`): exactly one URI
 * SAN, which must be a valid SPIFFE ID. Throws IdentityError (`rule` names the failure).
 */
export function spiffeIdFromCertificate(cert: X509Certificate): SpiffeId {
  const facts = certificateFacts(cert);
  const [uri, ...more] = facts.uriSans;
  if (uri === undefined) throw svidError("leaf-uri-san-missing", "certificate contains no URI SAN");
  if (more.length > 0) {
    throw svidError(
      "leaf-uri-san-multiple",
      `certificate contains more than one URI SAN (${facts.uriSans.length})`,
    );
  }
  const err = checkSpiffeId(uri);
  if (err)
    throw svidError(
      "leaf-spiffe-id-invalid",
      `cannot get leaf certificate SPIFFE ID: ${err.message}`,
      err,
    );
  return parseSpiffeId(uri);
}

/**
 * Checks a parsed leaf against the X509-SVID leaf rules, synchronously (fits node:tls
 * callbacks): exactly one URI SAN that is a valid SPIFFE ID with a non-root path, CA:false,
 * digitalSignature set, no keyCertSign/cRLSign, EKU absent or with both serverAuth and
 * clientAuth, no duplicate or unhandled critical extensions. Returns the SPIFFE ID; throws
 * IdentityError with `rule` set to the {@link SvidRule}. Does not check signatures or validity.
 */
export function checkX509SvidLeaf(cert: X509Certificate, options: SvidCheckOptions = {}): SpiffeId {
  const facts = certificateFacts(cert);
  checkCommon(facts, "leaf certificate");
  const id = spiffeIdFromCertificate(cert);
  if (id.isRoot) {
    throw svidError(
      "leaf-spiffe-id-root-path",
      `leaf certificate SPIFFE ID must have a non-root path, got ${id}`,
    );
  }
  if (facts.basicConstraints?.ca === true) {
    throw svidError("leaf-ca", "leaf certificate must not have CA flag set to true");
  }
  const ku = facts.keyUsage ?? 0;
  if ((ku & KEY_USAGE.digitalSignature) === 0) {
    throw svidError(
      "leaf-digital-signature-missing",
      facts.keyUsage === undefined
        ? "leaf certificate has no key usage extension; it must have 'digitalSignature'"
        : "leaf certificate must have 'digitalSignature' set as key usage",
    );
  }
  if ((ku & KEY_USAGE.keyCertSign) !== 0) {
    throw svidError(
      "leaf-key-cert-sign",
      "leaf certificate must not have 'keyCertSign' set as key usage",
    );
  }
  if ((ku & KEY_USAGE.cRLSign) !== 0) {
    throw svidError("leaf-crl-sign", "leaf certificate must not have 'cRLSign' set as key usage");
  }
  const eku = facts.extendedKeyUsage;
  if (eku !== undefined && !(eku.includes(OID_SERVER_AUTH) && eku.includes(OID_CLIENT_AUTH))) {
    const missing = [
      eku.includes(OID_SERVER_AUTH) ? undefined : "serverAuth",
      eku.includes(OID_CLIENT_AUTH) ? undefined : "clientAuth",
    ].filter((x) => x !== undefined);
    throw svidError(
      "leaf-eku-incomplete",
      `leaf certificate extended key usage lacks ${missing.join(" and ")}`,
    );
  }
  if (options.strict) {
    if (!facts.keyUsageCritical) {
      throw svidError(
        "strict-key-usage-not-critical",
        "leaf certificate key usage is not marked critical",
      );
    }
    if (facts.subjectEmpty && !facts.sanCritical) {
      throw svidError(
        "strict-san-not-critical",
        "leaf certificate has an empty subject but a non-critical SAN",
      );
    }
  }
  return id;
}

/**
 * Checks a signing (intermediate or root) certificate: CA:true and keyCertSign, no duplicate or
 * unhandled critical extensions. Throws IdentityError with `rule` set.
 */
export function checkX509SvidSigningCert(
  cert: X509Certificate,
  options: SvidCheckOptions = {},
): void {
  const facts = certificateFacts(cert);
  checkCommon(facts, "signing certificate");
  if (facts.basicConstraints?.ca !== true) {
    throw svidError(
      "signing-not-ca",
      facts.basicConstraints === undefined
        ? "signing certificate has no basic constraints; it must have CA flag set to true"
        : "signing certificate must have CA flag set to true",
    );
  }
  if (((facts.keyUsage ?? 0) & KEY_USAGE.keyCertSign) === 0) {
    throw svidError(
      "signing-key-cert-sign-missing",
      "signing certificate must have 'keyCertSign' set as key usage",
    );
  }
  if (options.strict) {
    if (!facts.keyUsageCritical) {
      throw svidError(
        "strict-key-usage-not-critical",
        "signing certificate key usage is not marked critical",
      );
    }
    for (const uri of facts.uriSans) {
      if (uri.startsWith("spiffe://") && uri.indexOf("/", 9) >= 0) {
        throw svidError(
          "strict-signing-spiffe-id-has-path",
          `signing certificate SPIFFE ID ${uri} has a path`,
        );
      }
    }
  }
}

/** A parsed X509-SVID: its SPIFFE ID, the leaf and the whole chain (leaf first). */
export interface X509Svid {
  readonly id: SpiffeId;
  readonly leaf: X509Certificate;
  /** Leaf first, then the intermediates as presented. */
  readonly chain: readonly X509Certificate[];
}

/**
 * Parses an X509-SVID chain (DER certificates or PEM text, leaf first) and checks the leaf
 * and signing-certificate rules (go-spiffe `x509svid.Parse` without the key). Does not verify
 * trust: use `verifyX509Svid` for a peer's chain.
 */
export function parseX509Svid(
  chain: string | readonly Uint8Array[],
  options: SvidCheckOptions = {},
): X509Svid {
  const ders = typeof chain === "string" ? decodePemCertificates(chain) : chain;
  if (ders.length === 0) throw svidError("chain-empty", "no certificates found");
  const certs = ders.map(parseCertificate);
  const leaf = certs[0] as X509Certificate;
  const id = checkX509SvidLeaf(leaf, options);
  for (const c of certs.slice(1)) checkX509SvidSigningCert(c, options);
  return { id, leaf, chain: certs };
}
