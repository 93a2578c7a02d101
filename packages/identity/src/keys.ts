// Key pairs for workloads and CAs: generation, PKCS#8 PEM import/export. Universal: WebCrypto
// (globalThis.crypto.subtle) only, no node: imports.
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
    privateKey = await subtle().importKey("pkcs8", pkcs8, s.importParams, true, ["sign"]);
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
  const publicKey = await subtle().importKey("jwk", publicJwk as never, s.importParams, true, [
    "verify",
  ]);
  if (options.extractable === false) {
    privateKey = await subtle().importKey("pkcs8", pkcs8, s.importParams, false, ["sign"]);
  }
  return { algorithm, privateKey, publicKey };
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

// ---- minimal DER, only what PKCS#8 detection and SEC1/PKCS#1 wrapping need ----

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

/** @internal A DER tag-length-value position. */
export interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function readTlv(buf: Uint8Array, at: number, limit: number = buf.length): Tlv {
  if (at + 2 > limit) throw keyError("malformed DER: truncated");
  const tag = buf[at] as number;
  let len = buf[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) throw keyError("malformed DER: bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | (buf[start + i] as number);
    start += n;
  }
  const end = start + len;
  if (end > limit) throw keyError("malformed DER: length beyond the data");
  return { tag, start, end };
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(buf, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end <= t.start) throw keyError("malformed DER: expected an OID");
  const first = buf[t.start] as number;
  const parts = [
    Math.floor(Math.min(first, 80) / 40),
    first - 40 * Math.floor(Math.min(first, 80) / 40),
  ];
  let v = 0;
  for (let i = t.start + 1; i < t.end; i++) {
    const b = buf[i] as number;
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function encodeOid(oid: string): Uint8Array {
  const nums = oid.split(".").map(Number);
  const bytes: number[] = [(nums[0] as number) * 40 + (nums[1] as number)];
  for (const n of nums.slice(2)) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128))
      chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(bytes));
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const len = content.length;
  const header =
    len < 0x80
      ? [tag, len]
      : len < 0x100
        ? [tag, 0x81, len]
        : len < 0x10000
          ? [tag, 0x82, len >> 8, len & 0xff]
          : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(header.length + len);
  out.set(header);
  out.set(content, header.length);
  return out;
}

/** @internal minimal DER helper shared by csr.ts and ca.ts */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function detectPkcs8Algorithm(der: Uint8Array): KeyAlgorithm {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30) throw keyError("malformed PKCS#8 private key: not a SEQUENCE");
  const [version, algId] = children(der, top);
  if (version?.tag !== 0x02 || algId?.tag !== 0x30) {
    throw keyError("malformed PKCS#8 private key: expected version and AlgorithmIdentifier");
  }
  const [oidTlv, params] = children(der, algId);
  if (oidTlv === undefined)
    throw keyError("malformed PKCS#8 private key: empty AlgorithmIdentifier");
  const oid = decodeOid(der, oidTlv);
  if (oid === OID_RSA) return "rsa-2048"; // refined from the modulus after import
  if (oid === OID_ED25519) return "ed25519";
  if (oid === OID_EC) {
    const curve = params?.tag === 0x06 ? decodeOid(der, params) : "";
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

const DER_VERSION_0 = Uint8Array.from([0x02, 0x01, 0x00]);
const DER_NULL = Uint8Array.from([0x05, 0x00]);

/** SEC 1 ECPrivateKey → PKCS#8 PrivateKeyInfo (the curve comes from the SEC 1 parameters). */
function wrapSec1(sec1: Uint8Array): Uint8Array {
  const top = readTlv(sec1, 0);
  if (top.tag !== 0x30) throw keyError("malformed EC PRIVATE KEY: not a SEQUENCE");
  const params = children(sec1, top).find((t) => t.tag === 0xa0);
  const inner = params ? readTlv(sec1, params.start, params.end) : undefined;
  if (inner === undefined) {
    throw keyError(
      "EC PRIVATE KEY without curve parameters; convert it with `openssl pkcs8 -topk8 -nocrypt`",
    );
  }
  const curveOid = sec1.subarray(params?.start ?? 0, inner.end);
  const algId = tlv(0x30, concat(encodeOid(OID_EC), curveOid));
  return tlv(0x30, concat(DER_VERSION_0, algId, tlv(0x04, sec1)));
}

/** PKCS#1 RSAPrivateKey → PKCS#8 PrivateKeyInfo. */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  if (readTlv(pkcs1, 0).tag !== 0x30) throw keyError("malformed RSA PRIVATE KEY: not a SEQUENCE");
  const algId = tlv(0x30, concat(encodeOid(OID_RSA), DER_NULL));
  return tlv(0x30, concat(DER_VERSION_0, algId, tlv(0x04, pkcs1)));
}

function keyError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_KEY",
    message,
    cause === undefined ? undefined : { cause },
  );
}
