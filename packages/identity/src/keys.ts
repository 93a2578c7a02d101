// Key pairs for workloads and CAs: generation, PKCS#8 PEM import/export. Universal: WebCrypto
// (globalThis.crypto.subtle) only, no node: imports.
import { ECParameters, ECPrivateKey } from "@peculiar/asn1-ecc";
import { PrivateKey, PrivateKeyInfo } from "@peculiar/asn1-pkcs8";
import { RSAPrivateKey } from "@peculiar/asn1-rsa";
import { AsnConvert, AsnParser } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { fromBER } from "asn1js";
import { IdentityError } from "./errors.js";
import { decodePemPrivateKey, encodePem } from "./pem.js";

/**
 * A WebCrypto `CryptoKey`, named through the global `crypto` so the declaration works with the
 * DOM lib (browsers, Deno) and with @types/node alike.
 */
export type WebCryptoKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>;

/**
 * Key algorithms ambientkit generates and imports. `ec-p256` is what ztunnel uses for every
 * workload key; `rsa-2048` is istiod's self-signed root default and istio-agent's workload default.
 */
export type KeyAlgorithm = "ec-p256" | "ec-p384" | "rsa-2048" | "rsa-3072" | "rsa-4096" | "ed25519";

/** Every {@link KeyAlgorithm}, in the order the docs list them. */
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = [
  "ec-p256",
  "ec-p384",
  "rsa-2048",
  "rsa-3072",
  "rsa-4096",
  "ed25519",
];

/** ECDSA P-256 with SHA-256, as ztunnel. */
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = "ec-p256";

/** A private key with its public half and the algorithm they were made for. */
export interface KeyPair {
  readonly algorithm: KeyAlgorithm;
  readonly privateKey: WebCryptoKey;
  readonly publicKey: WebCryptoKey;
}

/** WebCrypto parameters for signing with a key of `algorithm` (what X.509 signatures use). */
export interface SigningAlgorithm {
  readonly name: string;
  readonly hash?: string;
  readonly namedCurve?: string;
}

interface AlgorithmSpec {
  importParams: { name: string; namedCurve?: string; hash?: string };
  generateParams: Record<string, unknown>;
  signing: SigningAlgorithm;
}

const RSA_EXPONENT = new Uint8Array([1, 0, 1]);

function spec(algorithm: KeyAlgorithm): AlgorithmSpec {
  switch (algorithm) {
    case "ec-p256":
    case "ec-p384": {
      const namedCurve = algorithm === "ec-p256" ? "P-256" : "P-384";
      const hash = algorithm === "ec-p256" ? "SHA-256" : "SHA-384";
      return {
        importParams: { name: "ECDSA", namedCurve },
        generateParams: { name: "ECDSA", namedCurve },
        signing: { name: "ECDSA", hash, namedCurve },
      };
    }
    case "rsa-2048":
    case "rsa-3072":
    case "rsa-4096": {
      const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
      return {
        importParams: rsa,
        generateParams: {
          ...rsa,
          modulusLength: Number(algorithm.slice(4)),
          publicExponent: RSA_EXPONENT,
        },
        signing: rsa,
      };
    }
    case "ed25519":
      return {
        importParams: { name: "Ed25519" },
        generateParams: { name: "Ed25519" },
        signing: { name: "Ed25519" },
      };
    default:
      throw keyError(
        `unknown key algorithm ${JSON.stringify(algorithm)}; use one of ${KEY_ALGORITHMS.join(", ")}`,
      );
  }
}

/** True when `value` names a {@link KeyAlgorithm}. */
export function isKeyAlgorithm(value: string): value is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(value);
}

/** WebCrypto signing parameters for `algorithm` (ECDSA P-384 signs with SHA-384, RSA and P-256 with SHA-256). */
export function signingAlgorithm(algorithm: KeyAlgorithm): SigningAlgorithm {
  return spec(algorithm).signing;
}

function subtle(): SubtleCryptoLike {
  const c = (globalThis as { crypto?: { subtle?: SubtleCryptoLike } }).crypto;
  if (c?.subtle === undefined) {
    throw keyError("WebCrypto (globalThis.crypto.subtle) is not available in this runtime");
  }
  return c.subtle;
}
type SubtleCryptoLike = typeof globalThis.crypto.subtle;

/**
 * Generates a key pair (default ECDSA P-256). The private key is extractable by default so it
 * can be written as PKCS#8; pass `extractable: false` to keep it inside WebCrypto.
 */
export async function generateKeyPair(
  algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
  options: { extractable?: boolean } = {},
): Promise<KeyPair> {
  const s = spec(algorithm);
  const extractable = options.extractable ?? true;
  let pair: { privateKey: WebCryptoKey; publicKey: WebCryptoKey };
  try {
    pair = (await subtle().generateKey(
      s.generateParams as unknown as Parameters<SubtleCryptoLike["generateKey"]>[0],
      extractable,
      ["sign", "verify"],
    )) as unknown as { privateKey: WebCryptoKey; publicKey: WebCryptoKey };
  } catch (cause) {
    throw keyError(`cannot generate a ${algorithm} key: ${(cause as Error).message}`, cause);
  }
  return { algorithm, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** The private key as unencrypted PKCS#8 DER. The key must be extractable. */
export async function exportPrivateKeyDer(key: KeyPair | WebCryptoKey): Promise<Uint8Array> {
  const privateKey = "privateKey" in key ? key.privateKey : key;
  try {
    return new Uint8Array(await subtle().exportKey("pkcs8", privateKey));
  } catch (cause) {
    throw keyError(
      `cannot export the private key as PKCS#8 (${(cause as Error).message}); generate or import it with extractable: true`,
      cause,
    );
  }
}

/** The private key as a PKCS#8 PEM `PRIVATE KEY` block (the format ztunnel and istiod read). */
export async function exportPrivateKeyPem(key: KeyPair | WebCryptoKey): Promise<string> {
  return encodePem("PRIVATE KEY", await exportPrivateKeyDer(key));
}

/** The public key as SubjectPublicKeyInfo DER. */
export async function exportPublicKeyDer(key: KeyPair | WebCryptoKey): Promise<Uint8Array> {
  const publicKey = "publicKey" in key ? key.publicKey : key;
  return new Uint8Array(await subtle().exportKey("spki", publicKey));
}

/** The public key as a PEM `PUBLIC KEY` block. */
export async function exportPublicKeyPem(key: KeyPair | WebCryptoKey): Promise<string> {
  return encodePem("PUBLIC KEY", await exportPublicKeyDer(key));
}

/**
 * Imports a PEM private key: PKCS#8 `PRIVATE KEY`, or the legacy `EC PRIVATE KEY` (SEC 1) and
 * `RSA PRIVATE KEY` (PKCS#1) that Go's istiod writes into `istio-ca-secret`. Certificates in the
 * same text are skipped. Encrypted keys, unsupported curves and RSA keys shorter than 2048 bits
 * are `ERR_IDENTITY_KEY` errors.
 */
export async function importPrivateKeyPem(
  pem: string,
  options: { extractable?: boolean } = {},
): Promise<KeyPair> {
  const { label, der } = decodePemPrivateKey(pem);
  const pkcs8 =
    label === "PRIVATE KEY" ? der : label === "EC PRIVATE KEY" ? wrapSec1(der) : wrapPkcs1(der);
  return importPrivateKeyDer(pkcs8, options);
}

/** Imports an unencrypted PKCS#8 DER private key; see {@link importPrivateKeyPem}. */
export async function importPrivateKeyDer(
  pkcs8: Uint8Array,
  options: { extractable?: boolean } = {},
): Promise<KeyPair> {
  const guess = detectPkcs8Algorithm(pkcs8);
  const s = spec(guess);
  let privateKey: WebCryptoKey;
  try {
    // Always import extractable first: WebCrypto cannot derive the public key from a private
    // CryptoKey, so we go through JWK once and re-import non-extractable if asked.
    privateKey = await subtle().importKey("pkcs8", bufferSource(pkcs8), s.importParams, true, [
      "sign",
    ]);
  } catch (cause) {
    throw keyError(`cannot import the ${guess} private key: ${(cause as Error).message}`, cause);
  }
  let algorithm = guess;
  if (guess.startsWith("rsa-")) {
    const bits = (privateKey.algorithm as { modulusLength?: number }).modulusLength ?? 0;
    const named = `rsa-${bits}`;
    if (!isKeyAlgorithm(named)) {
      throw keyError(
        `unsupported RSA key size ${bits} bits; use 2048, 3072 or 4096 (istiod's minimum is 2048)`,
      );
    }
    algorithm = named;
  }
  const jwk = (await subtle().exportKey("jwk", privateKey)) as Record<string, unknown>;
  const publicJwk: Record<string, unknown> = {};
  for (const k of ["kty", "crv", "x", "y", "n", "e"])
    if (jwk[k] !== undefined) publicJwk[k] = jwk[k];
  if (jwk.kty === "RSA") checkRsaComponents(jwk);
  let publicKey: WebCryptoKey;
  try {
    publicKey = await subtle().importKey("jwk", publicJwk as never, s.importParams, true, [
      "verify",
    ]);
    // The pair must work: sign once and verify with the public half (a private key whose
    // embedded public key was altered would otherwise surface only when peers reject its certs).
    const probe = new TextEncoder().encode("ambientkit key check");
    const signing = s.signing as Parameters<SubtleCryptoLike["sign"]>[0];
    const signature = await subtle().sign(signing, privateKey, probe);
    if (!(await subtle().verify(signing, publicKey, signature, probe))) {
      throw new Error("a signature made with it does not verify with its public key");
    }
  } catch (cause) {
    throw keyError(
      `the ${algorithm} private key is inconsistent (${(cause as Error).message}); it is corrupted: export it again`,
      cause,
    );
  }
  if (options.extractable === false) {
    privateKey = await subtle().importKey("pkcs8", bufferSource(pkcs8), s.importParams, false, [
      "sign",
    ]);
  }
  return { algorithm, privateKey, publicKey };
}

/**
 * RSA private components must agree (p·q = n, d·e ≡ 1 mod p−1 and q−1, the CRT values): OpenSSL
 * imports an inconsistent key and may even sign with it, Go's `rsa.PrivateKey.Validate` refuses it.
 */
function checkRsaComponents(jwk: Record<string, unknown>): void {
  const big = (name: string): bigint => {
    const v = jwk[name];
    if (typeof v !== "string") throw keyError(`RSA private key without ${name}; it is corrupted`);
    const b64 = v.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    let hexText = "";
    for (let i = 0; i < bin.length; i++) hexText += bin.charCodeAt(i).toString(16).padStart(2, "0");
    return BigInt(`0x${hexText || "0"}`);
  };
  const [n, e, d, p, q, dp, dq, qi] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"].map(big) as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
  ];
  const ok =
    p > 1n &&
    q > 1n &&
    p * q === n &&
    (d * e) % (p - 1n) === 1n &&
    (d * e) % (q - 1n) === 1n &&
    d % (p - 1n) === dp &&
    d % (q - 1n) === dq &&
    (qi * q) % p === 1n;
  if (!ok) {
    throw keyError(
      "the RSA private key is inconsistent (its primes, exponents and CRT values do not agree); it is corrupted: export it again",
    );
  }
}

/** The {@link KeyAlgorithm} of a WebCrypto key, or undefined when ambientkit does not support it. */
export function keyAlgorithmOf(key: WebCryptoKey): KeyAlgorithm | undefined {
  const a = key.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (a.name === "ECDSA") {
    return a.namedCurve === "P-256" ? "ec-p256" : a.namedCurve === "P-384" ? "ec-p384" : undefined;
  }
  if (a.name === "RSASSA-PKCS1-v1_5") {
    const named = `rsa-${a.modulusLength}`;
    return isKeyAlgorithm(named) ? named : undefined;
  }
  if (a.name === "Ed25519") return "ed25519";
  return undefined;
}

/** True when two public keys (CryptoKeys or SPKI DER) are the same key. */
export async function samePublicKey(
  a: WebCryptoKey | Uint8Array,
  b: WebCryptoKey | Uint8Array,
): Promise<boolean> {
  const x = a instanceof Uint8Array ? a : await exportPublicKeyDer(a);
  const y = b instanceof Uint8Array ? b : await exportPublicKeyDer(b);
  return bytesEqual(x, y);
}

export function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}

// ---- PKCS#8 algorithm detection and SEC 1 / PKCS#1 → PKCS#8 wrapping, via @peculiar/asn1-* ----

const OID_RSA = "1.2.840.113549.1.1.1";
const OID_EC = "1.2.840.10045.2.1";
const OID_ED25519 = "1.3.101.112";
const OID_P256 = "1.2.840.10045.3.1.7";
const OID_P384 = "1.3.132.0.34";
const CURVE_NAMES: Record<string, string> = {
  [OID_P256]: "P-256",
  [OID_P384]: "P-384",
  "1.3.132.0.35": "P-521",
  "1.3.132.0.10": "secp256k1",
};

/**
 * The same bytes typed as WebCrypto's `BufferSource` wants them (an ArrayBuffer-backed view). Every
 * buffer passed here comes from a decoder or a Uint8Array we made, never a SharedArrayBuffer.
 * @internal shared by csr.ts, ca.ts and verify.ts
 */
export function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

/**
 * Parses DER `der` as the ASN.1 type `target`; any failure of the parser (truncated or corrupted
 * bytes, wrong tags, trailing data) becomes `onError(message, cause)`.
 * @internal shared by csr.ts, ca.ts and verify.ts
 */
export function parseDer<T>(
  der: Uint8Array,
  target: new () => T,
  what: string,
  onError: (message: string, cause?: unknown) => Error,
): T {
  let decoded: ReturnType<typeof fromBER>;
  try {
    // parseEmbedded: false — OCTET/BIT STRING contents are parsed on demand by their own type,
    // not speculatively; asn1js's depth/node/length limits stay on (untrusted input).
    decoded = fromBER(der, { parseEmbedded: false });
  } catch (cause) {
    throw onError(`malformed ${what}: ${(cause as Error).message}`, cause);
  }
  if (decoded.offset === -1) {
    throw onError(`malformed ${what}: ${decoded.result.error || "not DER"}`);
  }
  if (decoded.offset !== der.byteLength) {
    throw onError(`malformed ${what}: unexpected data after the DER structure`);
  }
  try {
    return AsnParser.fromASN(decoded.result, target);
  } catch (cause) {
    throw onError(`malformed ${what}: ${(cause as Error).message}`, cause);
  }
}

function detectPkcs8Algorithm(der: Uint8Array): KeyAlgorithm {
  const info = parseDer(der, PrivateKeyInfo, "PKCS#8 private key", keyError);
  const oid = info.privateKeyAlgorithm.algorithm;
  if (oid === OID_RSA) return "rsa-2048"; // refined from the modulus after import
  if (oid === OID_ED25519) return "ed25519";
  if (oid === OID_EC) {
    const params = info.privateKeyAlgorithm.parameters;
    let curve = "";
    if (params) {
      curve =
        parseDer(new Uint8Array(params), ECParameters, "EC key parameters", keyError).namedCurve ??
        "";
    }
    if (curve === OID_P256) return "ec-p256";
    if (curve === OID_P384) return "ec-p384";
    throw keyError(
      `unsupported EC curve ${CURVE_NAMES[curve] ?? (curve || "(none)")}; use P-256 (ztunnel) or P-384`,
    );
  }
  throw keyError(
    `unsupported private key algorithm OID ${oid}; use ECDSA P-256/P-384, RSA or Ed25519 (RSA-PSS keys are not supported)`,
  );
}

function pkcs8(algorithm: AlgorithmIdentifier, inner: Uint8Array): Uint8Array {
  const info = new PrivateKeyInfo({
    version: 0,
    privateKeyAlgorithm: algorithm,
    privateKey: new PrivateKey(inner),
  });
  return new Uint8Array(AsnConvert.serialize(info));
}

/** SEC 1 ECPrivateKey → PKCS#8 PrivateKeyInfo (the curve comes from the SEC 1 parameters). */
function wrapSec1(sec1: Uint8Array): Uint8Array {
  const key = parseDer(sec1, ECPrivateKey, "EC PRIVATE KEY", keyError);
  const curve = key.parameters?.namedCurve;
  if (curve === undefined) {
    throw keyError(
      "EC PRIVATE KEY without named curve parameters; convert it with `openssl pkcs8 -topk8 -nocrypt`",
    );
  }
  const params = new Uint8Array(AsnConvert.serialize(new ECParameters({ namedCurve: curve })));
  return pkcs8(new AlgorithmIdentifier({ algorithm: OID_EC, parameters: params.buffer }), sec1);
}

/** PKCS#1 RSAPrivateKey → PKCS#8 PrivateKeyInfo. */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  parseDer(pkcs1, RSAPrivateKey, "RSA PRIVATE KEY", keyError);
  return pkcs8(new AlgorithmIdentifier({ algorithm: OID_RSA, parameters: null }), pkcs1);
}

function keyError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_KEY",
    message,
    cause === undefined ? undefined : { cause },
  );
}
