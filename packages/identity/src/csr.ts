// PKCS#10 certificate signing requests: build one with ztunnel's profile, parse and check any
// CSR (including `openssl req` output). Universal: WebCrypto only.
import { IdentityError } from "./errors.js";
import { children, decodeOid, type KeyPair, readTlv, signingAlgorithm } from "./keys.js";
import { decodePemCsr, encodePem } from "./pem.js";
import { parseSpiffeId, type SpiffeId } from "./spiffe-id.js";
import {
  Pkcs10CertificateRequest,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
} from "./x509-lib.js";

/** What a CSR's public key is, as far as a CA needs to know. */
export interface CsrKeyInfo {
  /** `ECDSA`, `RSA` or `Ed25519`. */
  readonly type: "ECDSA" | "RSA" | "Ed25519";
  /** Curve for ECDSA (`P-256`, `P-384`, `P-521`). */
  readonly curve?: string;
  /** Modulus size in bits for RSA. */
  readonly bits?: number;
}

/** A parsed PKCS#10 request whose self-signature was checked. */
export interface CertificateSigningRequest {
  /** DER bytes of the request. */
  readonly der: Uint8Array;
  /** The request as PEM `CERTIFICATE REQUEST`. */
  readonly pem: string;
  /** RFC 4514 subject, `""` when empty (ztunnel's CSRs). */
  readonly subject: string;
  /** True when the subject has a CommonName (istiod then issues a "dual-use" CN). */
  readonly hasCommonName: boolean;
  /** URI SANs requested in the extensionRequest attribute (a CA ignores them; see CA.sign). */
  readonly uriSans: readonly string[];
  /** DNS SANs requested (ignored by the CA as well). */
  readonly dnsSans: readonly string[];
  /** The public key as SubjectPublicKeyInfo DER; this is what the CA certifies. */
  readonly publicKeyDer: Uint8Array;
  readonly key: CsrKeyInfo;
  /** The signature algorithm the requester used (e.g. `ECDSA` + `SHA-256`). */
  readonly signatureAlgorithm: { readonly name: string; readonly hash?: string };
}

/**
 * Builds a CSR with ztunnel's profile (`src/tls/csr.rs`): empty subject, exactly one URI SAN =
 * `identity`, marked critical (the subject is empty), signed with the key's default algorithm
 * (ECDSA P-256 + SHA-256 for ztunnel's keys). Returns the PEM text.
 */
export async function createCsr(identity: string | SpiffeId, key: KeyPair): Promise<string> {
  const id = typeof identity === "string" ? parseSpiffeId(identity) : identity;
  try {
    const csr = await Pkcs10CertificateRequestGenerator.create({
      keys: { privateKey: key.privateKey, publicKey: key.publicKey },
      signingAlgorithm: signingAlgorithm(key.algorithm),
      extensions: [
        new SubjectAlternativeNameExtension([{ type: "url", value: id.toString() }], true),
      ],
    });
    return csr.toString("pem").replace(/\r\n/g, "\n").trimEnd().concat("\n");
  } catch (cause) {
    throw csrError(`cannot build a CSR for ${id}: ${(cause as Error).message}`, cause);
  }
}

/**
 * Parses a PEM (or DER) PKCS#10 request and checks its self-signature, as istiod does before
 * signing (`csr.CheckSignature()`). Keys: ECDSA P-256/P-384/P-521, RSA ≥ 2048 bits, Ed25519;
 * signatures: ECDSA / RSA PKCS#1 v1.5 with SHA-256/384/512, Ed25519 (SHA-1 and RSA-PSS are
 * refused). Every failure is an `ERR_IDENTITY_CSR` error that says what was wrong.
 */
export async function parseCsr(input: string | Uint8Array): Promise<CertificateSigningRequest> {
  const der = typeof input === "string" ? decodeCsrPem(input) : input;
  let parts: CsrParts;
  try {
    parts = splitCsr(der);
  } catch (cause) {
    if (cause instanceof IdentityError && cause.code === "ERR_IDENTITY_CSR") throw cause;
    throw csrError(`not a PKCS#10 certificate request: ${(cause as Error).message}`, cause);
  }
  const key = asCsrError(() => describeSpki(der, parts.spki));
  const sig = signatureScheme(parts.sigOid);
  const spki = der.subarray(parts.spki.tlvStart, parts.spki.end);
  let valid: boolean;
  try {
    const publicKey = await globalThis.crypto.subtle.importKey(
      "spki",
      spki,
      importParamsFor(key, sig.hash),
      false,
      ["verify"],
    );
    const signature =
      sig.name === "ECDSA" ? ecdsaDerToRaw(parts.signature, curveSize(key.curve)) : parts.signature;
    valid = await globalThis.crypto.subtle.verify(
      sig.hash === undefined ? { name: sig.name } : { name: sig.name, hash: sig.hash },
      publicKey,
      signature,
      der.subarray(parts.info.tlvStart, parts.info.end),
    );
  } catch (cause) {
    throw csrError(`cannot check the CSR signature: ${(cause as Error).message}`, cause);
  }
  if (!valid) {
    throw csrError("the CSR signature does not verify with its own public key; regenerate the CSR");
  }
  return asCsrError(() => new ParsedCsr(der, parts, key, sig));
}

function asCsrError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (cause) {
    if (cause instanceof IdentityError && cause.code === "ERR_IDENTITY_CSR") throw cause;
    throw csrError(`malformed certificate request: ${(cause as Error).message}`, cause);
  }
}

interface Span {
  tlvStart: number;
  start: number;
  end: number;
}

interface CsrParts {
  info: Span;
  subject: Span;
  spki: Span;
  attributes: Span | undefined;
  sigOid: string;
  signature: Uint8Array;
}

function span(buf: Uint8Array, at: number, limit: number): Span & { tag: number } {
  const t = readTlv(buf, at, limit);
  return { tag: t.tag, tlvStart: at, start: t.start, end: t.end };
}

/** CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, BIT STRING } (RFC 2986). */
function splitCsr(der: Uint8Array): CsrParts {
  const top = span(der, 0, der.length);
  if (top.tag !== 0x30 || top.end !== der.length) throw csrError("not a DER SEQUENCE");
  const info = span(der, top.start, top.end);
  const sigAlg = span(der, info.end, top.end);
  const sigBits = span(der, sigAlg.end, top.end);
  if (info.tag !== 0x30 || sigAlg.tag !== 0x30 || sigBits.tag !== 0x03 || sigBits.end !== top.end) {
    throw csrError("expected certificationRequestInfo, signatureAlgorithm and signature");
  }
  const version = span(der, info.start, info.end);
  const subject = span(der, version.end, info.end);
  const spki = span(der, subject.end, info.end);
  if (version.tag !== 0x02 || subject.tag !== 0x30 || spki.tag !== 0x30) {
    throw csrError("malformed certificationRequestInfo");
  }
  let attributes: Span | undefined;
  if (spki.end < info.end) {
    const a = span(der, spki.end, info.end);
    if (a.tag !== 0xa0) throw csrError("malformed attributes in certificationRequestInfo");
    attributes = a;
  }
  const oid = readTlv(der, sigAlg.start, sigAlg.end);
  if (der[sigBits.start] !== 0) throw csrError("signature BIT STRING has unused bits");
  return {
    info,
    subject,
    spki,
    attributes,
    sigOid: decodeOid(der, oid),
    signature: der.slice(sigBits.start + 1, sigBits.end),
  };
}

const SIGNATURES: Record<string, { name: string; hash?: string }> = {
  "1.2.840.10045.4.3.2": { name: "ECDSA", hash: "SHA-256" },
  "1.2.840.10045.4.3.3": { name: "ECDSA", hash: "SHA-384" },
  "1.2.840.10045.4.3.4": { name: "ECDSA", hash: "SHA-512" },
  "1.2.840.113549.1.1.11": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  "1.2.840.113549.1.1.12": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" },
  "1.2.840.113549.1.1.13": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" },
  "1.3.101.112": { name: "Ed25519" },
};

function signatureScheme(oid: string): { name: string; hash?: string } {
  const s = SIGNATURES[oid];
  if (s === undefined) {
    throw csrError(
      `unsupported CSR signature algorithm ${oid}; sign it with ECDSA or RSA PKCS#1 v1.5 and SHA-256/384/512, or Ed25519 (SHA-1 and RSA-PSS are refused)`,
    );
  }
  return s;
}

const CURVES: Record<string, string> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};

function describeSpki(der: Uint8Array, spki: Span): CsrKeyInfo {
  const [algId] = children(der, readTlv(der, spki.tlvStart, spki.end));
  if (algId?.tag !== 0x30) throw csrError("malformed SubjectPublicKeyInfo");
  const [oidTlv, params] = children(der, algId);
  if (oidTlv === undefined) throw csrError("malformed SubjectPublicKeyInfo algorithm");
  const oid = decodeOid(der, oidTlv);
  if (oid === "1.2.840.10045.2.1") {
    const curveOid = params?.tag === 0x06 ? decodeOid(der, params) : "";
    const curve = CURVES[curveOid];
    if (curve === undefined) {
      throw csrError(
        `unsupported CSR key curve ${curveOid || "(none)"}; use P-256 (ztunnel) or P-384`,
      );
    }
    return { type: "ECDSA", curve };
  }
  if (oid === "1.3.101.112") return { type: "Ed25519" };
  if (oid === "1.2.840.113549.1.1.1") {
    const bits = rsaModulusBits(der.subarray(spki.tlvStart, spki.end));
    if (bits < 2048) {
      throw csrError(`CSR RSA key is ${bits} bits; istiod and ztunnel require at least 2048`);
    }
    return { type: "RSA", bits };
  }
  throw csrError(`unsupported CSR key algorithm ${oid}; use ECDSA P-256, RSA ≥ 2048 or Ed25519`);
}

function importParamsFor(
  key: CsrKeyInfo,
  hash: string | undefined,
): { name: string; namedCurve?: string; hash?: string } {
  if (key.type === "ECDSA") return { name: "ECDSA", namedCurve: key.curve as string };
  if (key.type === "RSA") return { name: "RSASSA-PKCS1-v1_5", hash: hash ?? "SHA-256" };
  return { name: "Ed25519" };
}

function curveSize(curve: string | undefined): number {
  return curve === "P-384" ? 48 : curve === "P-521" ? 66 : 32;
}

/** ECDSA-Sig-Value DER → the r‖s form WebCrypto verifies. */
function ecdsaDerToRaw(sig: Uint8Array, size: number): Uint8Array {
  const seq = readTlv(sig, 0);
  const [r, s] = children(sig, seq);
  if (seq.tag !== 0x30 || r?.tag !== 0x02 || s?.tag !== 0x02)
    throw csrError("malformed ECDSA signature");
  const out = new Uint8Array(2 * size);
  for (const [i, t] of [r, s].entries()) {
    let v = sig.subarray(t.start, t.end);
    while (v.length > 0 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw csrError("malformed ECDSA signature: integer too large");
    out.set(v, (i + 1) * size - v.length);
  }
  return out;
}

const OID_CN = "2.5.4.3";
const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const OID_SAN = "2.5.29.17";

/** The checked request; subject text is formatted on first use (it needs the full ASN.1 parser). */
class ParsedCsr implements CertificateSigningRequest {
  readonly der: Uint8Array;
  readonly key: CsrKeyInfo;
  readonly signatureAlgorithm: { readonly name: string; readonly hash?: string };
  readonly hasCommonName: boolean;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly publicKeyDer: Uint8Array;
  #subject: string | undefined;

  constructor(
    der: Uint8Array,
    parts: CsrParts,
    key: CsrKeyInfo,
    sig: { name: string; hash?: string },
  ) {
    this.der = der;
    this.key = key;
    this.signatureAlgorithm = sig;
    this.publicKeyDer = der.slice(parts.spki.tlvStart, parts.spki.end);
    this.hasCommonName = subjectHasCn(der, parts.subject);
    const { uris, dns } = requestedSans(der, parts.attributes);
    this.uriSans = uris;
    this.dnsSans = dns;
  }

  get pem(): string {
    return encodePem("CERTIFICATE REQUEST", this.der);
  }

  get subject(): string {
    this.#subject ??= new Pkcs10CertificateRequest(this.der as Uint8Array<ArrayBuffer>).subject;
    return this.#subject;
  }
}

function subjectHasCn(der: Uint8Array, subject: Span): boolean {
  for (const rdn of children(der, readTlv(der, subject.tlvStart, subject.end))) {
    for (const atv of children(der, rdn)) {
      const [oid] = children(der, atv);
      if (oid?.tag === 0x06 && decodeOid(der, oid) === OID_CN) return true;
    }
  }
  return false;
}

function requestedSans(
  der: Uint8Array,
  attributes: Span | undefined,
): { uris: string[]; dns: string[] } {
  const uris: string[] = [];
  const dns: string[] = [];
  if (attributes === undefined) return { uris, dns };
  const text = new TextDecoder();
  for (const attr of children(der, readTlv(der, attributes.tlvStart, attributes.end))) {
    const [oid, values] = children(der, attr);
    if (oid?.tag !== 0x06 || values === undefined || decodeOid(der, oid) !== OID_EXTENSION_REQUEST)
      continue;
    for (const exts of children(der, values)) {
      for (const ext of children(der, exts)) {
        const fields = children(der, ext);
        const extOid = fields[0];
        const value = fields.at(-1);
        if (extOid?.tag !== 0x06 || value?.tag !== 0x04 || decodeOid(der, extOid) !== OID_SAN)
          continue;
        for (const name of children(der, readTlv(der, value.start, value.end))) {
          const v = text.decode(der.subarray(name.start, name.end));
          if (name.tag === 0x86) uris.push(v);
          else if (name.tag === 0x82) dns.push(v);
        }
      }
    }
  }
  return { uris, dns };
}

function decodeCsrPem(text: string): Uint8Array {
  try {
    return decodePemCsr(text);
  } catch (cause) {
    throw csrError(`cannot read the CSR PEM: ${(cause as Error).message}`, cause);
  }
}

/** Bits of the modulus in an RSA SubjectPublicKeyInfo (SEQUENCE{alg, BIT STRING{SEQUENCE{n, e}}}). */
function rsaModulusBits(spki: Uint8Array): number {
  // Walk: SPKI SEQUENCE → skip AlgorithmIdentifier → BIT STRING (skip unused-bits byte) →
  // RSAPublicKey SEQUENCE → INTEGER n.
  let at = 0;
  const header = (): { len: number } => {
    at++; // tag
    let len = spki[at++] as number;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = (len << 8) | (spki[at++] as number);
    }
    return { len };
  };
  header(); // SPKI
  const alg = header();
  at += alg.len;
  header(); // BIT STRING
  at++; // unused bits
  header(); // RSAPublicKey
  const n = header();
  let start = at;
  let len = n.len;
  while (len > 0 && spki[start] === 0) {
    start++;
    len--;
  }
  if (len === 0) return 0;
  return (len - 1) * 8 + (32 - Math.clz32(spki[start] as number));
}

function csrError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_CSR",
    message,
    cause === undefined ? undefined : { cause },
  );
}
