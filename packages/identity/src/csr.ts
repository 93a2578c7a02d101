// PKCS#10 certificate signing requests: build one with ztunnel's profile, parse and check any
// CSR (including `openssl req` output). Universal: WebCrypto only.
import { CertificationRequest } from "@peculiar/asn1-csr";
import { ECDSASigValue, ECParameters } from "@peculiar/asn1-ecc";
import { RSAPublicKey } from "@peculiar/asn1-rsa";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Extensions, SubjectAlternativeName } from "@peculiar/asn1-x509";
import { IdentityError } from "./errors.js";
import { bufferSource, type KeyPair, parseDer, signingAlgorithm } from "./keys.js";
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
  const request = parseDer(der, CertificationRequest, "PKCS#10 certificate request", csrError);
  const infoDer = request.certificationRequestInfoRaw;
  if (infoDer === undefined || request.certificationRequestInfo.version !== 0) {
    throw csrError("malformed certificationRequestInfo: expected version 1 (0)");
  }
  const publicKeyDer = asCsrError(
    () => new Uint8Array(AsnConvert.serialize(request.certificationRequestInfo.subjectPKInfo)),
  );
  const key = asCsrError(() => describeSpki(request));
  const sig = signatureScheme(request.signatureAlgorithm.algorithm);
  let valid: boolean;
  try {
    const publicKey = await globalThis.crypto.subtle.importKey(
      "spki",
      publicKeyDer,
      importParamsFor(key, sig.hash),
      false,
      ["verify"],
    );
    const signature =
      sig.name === "ECDSA"
        ? ecdsaDerToRaw(new Uint8Array(request.signature), curveSize(key.curve))
        : new Uint8Array(request.signature);
    valid = await globalThis.crypto.subtle.verify(
      sig.hash === undefined ? { name: sig.name } : { name: sig.name, hash: sig.hash },
      publicKey,
      bufferSource(signature),
      infoDer,
    );
  } catch (cause) {
    if (cause instanceof IdentityError && cause.code === "ERR_IDENTITY_CSR") throw cause;
    throw csrError(`cannot check the CSR signature: ${(cause as Error).message}`, cause);
  }
  if (!valid) {
    throw csrError("the CSR signature does not verify with its own public key; regenerate the CSR");
  }
  return asCsrError(() => new ParsedCsr(der, request, publicKeyDer, key, sig));
}

function asCsrError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (cause) {
    if (cause instanceof IdentityError && cause.code === "ERR_IDENTITY_CSR") throw cause;
    throw csrError(`malformed certificate request: ${(cause as Error).message}`, cause);
  }
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

/**
 * The ECDSA curves a CSR key may use: the NIST curves Go's `x509.ParseCertificateRequest`
 * parses for istiod (which then only runs `csr.CheckSignature()`, no curve policy), minus P-224,
 * which WebCrypto cannot verify. ztunnel (rustls/webpki) verifies P-256/384/521 signatures too.
 */
const CURVES: Record<string, string> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};

/** Names of curves a CSR may carry that are refused, for the error message. */
const CURVE_NAMES: Record<string, string> = {
  "1.3.132.0.33": "P-224 (secp224r1)",
  "1.3.132.0.10": "secp256k1",
  "1.2.840.10045.3.1.1": "P-192 (prime192v1)",
  "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
  "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
  "1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
};

/** The one rule for CSR keys, said the same way everywhere it is refused. */
const ACCEPTED_CSR_KEYS =
  "a CSR key must be ECDSA P-256 (ztunnel), P-384 or P-521, RSA ≥ 2048 bits, or Ed25519";

function describeSpki(request: CertificationRequest): CsrKeyInfo {
  const spki = request.certificationRequestInfo.subjectPKInfo;
  const oid = spki.algorithm.algorithm;
  if (oid === "1.2.840.10045.2.1") {
    const params = spki.algorithm.parameters;
    const curveOid =
      params instanceof ArrayBuffer
        ? (parseDer(new Uint8Array(params), ECParameters, "EC key parameters", csrError)
            .namedCurve ?? "")
        : "";
    const curve = CURVES[curveOid];
    if (curve === undefined) {
      throw csrError(
        `unsupported CSR key curve ${CURVE_NAMES[curveOid] ?? (curveOid || "(none)")}; ${ACCEPTED_CSR_KEYS}`,
      );
    }
    return { type: "ECDSA", curve };
  }
  if (oid === "1.3.101.112") return { type: "Ed25519" };
  if (oid === "1.2.840.113549.1.1.1") {
    const rsa = parseDer(
      new Uint8Array(spki.subjectPublicKey),
      RSAPublicKey,
      "RSA public key",
      csrError,
    );
    const bits = unsignedBits(new Uint8Array(rsa.modulus));
    if (bits < 2048) {
      throw csrError(`CSR RSA key is ${bits} bits; ${ACCEPTED_CSR_KEYS}`);
    }
    return { type: "RSA", bits };
  }
  throw csrError(`unsupported CSR key algorithm ${oid}; ${ACCEPTED_CSR_KEYS}`);
}

/** Bit length of an unsigned big-endian integer. */
function unsignedBits(v: Uint8Array): number {
  let i = 0;
  while (i < v.length && v[i] === 0) i++;
  if (i === v.length) return 0;
  return (v.length - i - 1) * 8 + (32 - Math.clz32(v[i] as number));
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
  const value = parseDer(sig, ECDSASigValue, "ECDSA signature", csrError);
  const out = new Uint8Array(2 * size);
  for (const [i, int] of [value.r, value.s].entries()) {
    let v = new Uint8Array(int);
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
    request: CertificationRequest,
    publicKeyDer: Uint8Array,
    key: CsrKeyInfo,
    sig: { name: string; hash?: string },
  ) {
    this.der = der;
    this.key = key;
    this.signatureAlgorithm = sig;
    this.publicKeyDer = publicKeyDer;
    this.hasCommonName = request.certificationRequestInfo.subject.some((rdn) =>
      rdn.some((atv) => atv.type === OID_CN),
    );
    const { uris, dns } = requestedSans(request);
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

function requestedSans(request: CertificationRequest): { uris: string[]; dns: string[] } {
  const uris: string[] = [];
  const dns: string[] = [];
  for (const attr of request.certificationRequestInfo.attributes ?? []) {
    if (attr.type !== OID_EXTENSION_REQUEST) continue;
    for (const value of attr.values) {
      const exts = parseDer(new Uint8Array(value), Extensions, "extensionRequest", csrError);
      for (const ext of exts) {
        if (ext.extnID !== OID_SAN) continue;
        const names = parseDer(
          new Uint8Array(ext.extnValue.buffer),
          SubjectAlternativeName,
          "subjectAltName",
          csrError,
        );
        for (const name of names) {
          if (name.uniformResourceIdentifier !== undefined)
            uris.push(name.uniformResourceIdentifier);
          else if (name.dNSName !== undefined) dns.push(name.dNSName);
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

function csrError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_CSR",
    message,
    cause === undefined ? undefined : { cause },
  );
}
