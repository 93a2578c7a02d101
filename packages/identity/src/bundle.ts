// Trust bundles: PEM roots, SPIFFE bundles (RFC 7517 JWK Set, SPIFFE Trust Domain and Bundle
// §4, X509-SVID §6) and bundle maps (`trust_domains`, §5). Universal: no node: imports.
import type { X509Certificate } from "@peculiar/x509";
import { IdentityError } from "./errors.js";
import { base64Decode, base64Encode, decodePemCertificates, encodePemCertificates } from "./pem.js";
import { checkTrustDomainName, parseTrustDomain, type TrustDomain } from "./spiffe-id.js";
import { parseCertificate } from "./svid.js";

/**
 * Where verification finds the X.509 authorities of a trust domain. Trust is always chosen by
 * the leaf's trust domain, never "any root": return `undefined` when there is no bundle for
 * `td` (an empty array means the bundle exists but trusts nothing).
 */
export interface TrustBundleSource {
  getX509Authorities(td: TrustDomain): readonly X509Certificate[] | undefined;
}

/** A JWT-SVID authority kept from a SPIFFE bundle (this package does not verify JWT-SVIDs). */
export interface JwtAuthority {
  readonly keyId: string;
  /** The JWK as it appeared in the bundle. */
  readonly jwk: Readonly<Record<string, unknown>>;
}

/** Options when building a bundle. */
export interface TrustBundleInit {
  readonly x509Authorities?: readonly X509Certificate[];
  readonly jwtAuthorities?: readonly JwtAuthority[];
  /** `spiffe_sequence`: monotonic; bigint keeps the spec's 64-bit precision. */
  readonly sequence?: bigint;
  /** `spiffe_refresh_hint` in whole seconds. */
  readonly refreshHintSeconds?: number;
}

function bundleError(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    "ERR_IDENTITY_BUNDLE",
    `spiffebundle: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** The trust bundle of one trust domain: its X.509 authorities (and JWT authorities, kept as data). */
export class TrustBundle implements TrustBundleSource {
  readonly trustDomain: TrustDomain;
  readonly x509Authorities: readonly X509Certificate[];
  readonly jwtAuthorities: readonly JwtAuthority[];
  readonly sequence: bigint | undefined;
  readonly refreshHintSeconds: number | undefined;
  readonly #raw: ReadonlySet<string>;

  constructor(trustDomain: TrustDomain | string, init: TrustBundleInit = {}) {
    this.trustDomain =
      typeof trustDomain === "string" ? parseTrustDomain(trustDomain) : trustDomain;
    this.x509Authorities = [...(init.x509Authorities ?? [])];
    this.jwtAuthorities = [...(init.jwtAuthorities ?? [])];
    this.sequence = init.sequence;
    this.refreshHintSeconds = init.refreshHintSeconds;
    this.#raw = new Set(this.x509Authorities.map((c) => base64Encode(new Uint8Array(c.rawData))));
  }

  /** A bundle from PEM roots (e.g. Istio's `root-cert.pem`) for `trustDomain`. */
  static fromPem(trustDomain: TrustDomain | string, pem: string): TrustBundle {
    return TrustBundle.fromDer(trustDomain, decodePemCertificates(pem));
  }

  /** A bundle from DER certificates for `trustDomain`. */
  static fromDer(trustDomain: TrustDomain | string, ders: readonly Uint8Array[]): TrustBundle {
    return new TrustBundle(trustDomain, { x509Authorities: ders.map(parseCertificate) });
  }

  /**
   * Parses a SPIFFE bundle (JWK Set) for `trustDomain`. Rules: `keys` must be present (may be
   * `[]`); entries with an unknown or missing `use`, or an unknown `kty`, are ignored; an
   * `x509-svid` entry must carry exactly one base64 DER certificate in `x5c` (go-spiffe rejects
   * other counts, and so does this); a `jwt-svid` entry needs a `kid`; duplicate JSON keys
   * anywhere are rejected. Throws `ERR_IDENTITY_BUNDLE`.
   */
  static parseJson(trustDomain: TrustDomain | string, json: string): TrustBundle {
    const td = typeof trustDomain === "string" ? parseTrustDomain(trustDomain) : trustDomain;
    return bundleFromValue(td, parseStrictJson(json), "");
  }

  /** True when `cert` (same DER) is one of the X.509 authorities. */
  hasX509Authority(cert: X509Certificate | Uint8Array): boolean {
    const der = cert instanceof Uint8Array ? cert : new Uint8Array(cert.rawData);
    return this.#raw.has(base64Encode(der));
  }

  getX509Authorities(td: TrustDomain): readonly X509Certificate[] | undefined {
    return td.name === this.trustDomain.name ? this.x509Authorities : undefined;
  }

  /** The X.509 authorities as concatenated PEM. */
  toPem(): string {
    return encodePemCertificates(this.x509Authorities.map((c) => new Uint8Array(c.rawData)));
  }

  /**
   * The SPIFFE bundle JSON: `spiffe_sequence` and `spiffe_refresh_hint` when set, then `keys`
   * with one `{kty, use: "x509-svid", x5c: [cert], …key params}` per X.509 authority (no `kid`)
   * followed by the JWT authorities' JWKs. Async because key parameters come from WebCrypto.
   */
  async toJson(): Promise<string> {
    const keys: Record<string, unknown>[] = [];
    for (const cert of this.x509Authorities) {
      keys.push({
        use: "x509-svid",
        ...(await publicJwk(cert)),
        x5c: [base64Encode(new Uint8Array(cert.rawData))],
      });
    }
    for (const a of this.jwtAuthorities) keys.push({ ...a.jwk, kid: a.keyId, use: "jwt-svid" });
    // Written by hand so a 64-bit spiffe_sequence keeps every digit.
    let out = "{";
    if (this.sequence !== undefined) out += `"spiffe_sequence":${this.sequence.toString()},`;
    if (this.refreshHintSeconds !== undefined)
      out += `"spiffe_refresh_hint":${Math.ceil(this.refreshHintSeconds)},`;
    return `${out}"keys":${JSON.stringify(keys)}}`;
  }
}

/** A JSON number kept as its text, so 64-bit integers survive parsing. */
class RawJsonNumber {
  readonly raw: string;
  constructor(raw: string) {
    this.raw = raw;
  }
}

async function publicJwk(cert: X509Certificate): Promise<Record<string, unknown>> {
  let jwk: Record<string, unknown>;
  try {
    const key = await cert.publicKey.export();
    jwk = (await globalThis.crypto.subtle.exportKey("jwk", key)) as unknown as Record<
      string,
      unknown
    >;
  } catch (cause) {
    throw bundleError(
      `cannot export the public key of authority ${cert.subject || "(empty subject)"} as a JWK`,
      cause,
    );
  }
  const out: Record<string, unknown> = { kty: jwk.kty };
  for (const k of ["crv", "n", "e", "x", "y"]) if (jwk[k] !== undefined) out[k] = jwk[k];
  return out;
}

function bundleFromValue(td: TrustDomain, value: JsonValue, where: string): TrustBundle {
  if (!isObject(value))
    throw bundleError(`${where}unable to parse JWKS: the bundle must be a JSON object`);
  const keys = value.keys;
  if (keys === undefined || keys === null)
    throw bundleError(`${where}no authorities found (the "keys" member is missing)`);
  if (!Array.isArray(keys))
    throw bundleError(`${where}unable to parse JWKS: "keys" must be an array`);
  let sequence: bigint | undefined;
  const seq = value.spiffe_sequence;
  if (seq !== undefined) {
    if (!(seq instanceof RawJsonNumber) || !/^-?\d+$/.test(seq.raw)) {
      throw bundleError(`${where}spiffe_sequence must be an integer`);
    }
    sequence = BigInt(seq.raw);
  }
  let refreshHintSeconds: number | undefined;
  const hint = value.spiffe_refresh_hint;
  if (hint !== undefined) {
    if (!(hint instanceof RawJsonNumber) || !/^-?\d+$/.test(hint.raw)) {
      throw bundleError(`${where}spiffe_refresh_hint must be an integer number of seconds`);
    }
    refreshHintSeconds = Number(hint.raw);
  }
  const x509Authorities: X509Certificate[] = [];
  const jwtAuthorities: JwtAuthority[] = [];
  keys.forEach((entry, i) => {
    if (!isObject(entry))
      throw bundleError(`${where}unable to parse JWKS: entry ${i} is not an object`);
    const kty = entry.kty;
    if (typeof kty !== "string" || kty === "") throw bundleError(`${where}entry ${i} has no "kty"`);
    if (kty !== "EC" && kty !== "RSA" && kty !== "OKP") return; // unknown key type: ignore (spec §4.2.1)
    const use = entry.use;
    if (use === "x509-svid") {
      const x5c = entry.x5c;
      const n = Array.isArray(x5c) ? x5c.length : 0;
      if (!Array.isArray(x5c) || n !== 1) {
        throw bundleError(
          `${where}expected a single certificate in x509-svid entry ${i}; got ${n}`,
        );
      }
      const b64 = x5c[0];
      if (typeof b64 !== "string")
        throw bundleError(`${where}x5c of entry ${i} must be a base64 string`);
      try {
        x509Authorities.push(parseCertificate(base64Decode(b64)));
      } catch (cause) {
        throw bundleError(
          `${where}error adding authority ${i} of JWKS: ${(cause as Error).message}`,
          cause,
        );
      }
    } else if (use === "jwt-svid") {
      const kid = entry.kid;
      if (typeof kid !== "string" || kid === "") {
        throw bundleError(`${where}error adding authority ${i} of JWKS: keyID cannot be empty`);
      }
      jwtAuthorities.push({ keyId: kid, jwk: toPlain(entry) as Record<string, unknown> });
    }
    // any other use (or none): ignored, as the spec says
  });
  return new TrustBundle(td, {
    x509Authorities,
    jwtAuthorities,
    ...(sequence === undefined ? {} : { sequence }),
    ...(refreshHintSeconds === undefined ? {} : { refreshHintSeconds }),
  });
}

/** Bundles keyed by trust domain; a {@link TrustBundleSource} that picks the leaf's trust domain. */
export class TrustBundleSet implements TrustBundleSource {
  readonly #bundles = new Map<string, TrustBundle>();

  /** Throws `ERR_IDENTITY_BUNDLE` when two bundles have the same trust domain. */
  constructor(bundles: Iterable<TrustBundle> = []) {
    for (const b of bundles) this.add(b);
  }

  /** Adds a bundle; a second bundle for the same trust domain is an error (use {@link set} to replace). */
  add(bundle: TrustBundle): void {
    if (this.#bundles.has(bundle.trustDomain.name)) {
      throw bundleError(`duplicate bundle for trust domain "${bundle.trustDomain.name}"`);
    }
    this.#bundles.set(bundle.trustDomain.name, bundle);
  }

  /** Adds or replaces the bundle of its trust domain. */
  set(bundle: TrustBundle): void {
    this.#bundles.set(bundle.trustDomain.name, bundle);
  }

  get(td: TrustDomain | string): TrustBundle | undefined {
    return this.#bundles.get(typeof td === "string" ? td : td.name);
  }

  get trustDomains(): TrustDomain[] {
    return [...this.#bundles.values()].map((b) => b.trustDomain);
  }

  get size(): number {
    return this.#bundles.size;
  }

  [Symbol.iterator](): IterableIterator<TrustBundle> {
    return this.#bundles.values();
  }

  getX509Authorities(td: TrustDomain): readonly X509Certificate[] | undefined {
    return this.#bundles.get(td.name)?.x509Authorities;
  }

  /**
   * Parses a bundle map `{"trust_domains": {"<td>": <SPIFFE bundle>, …}}` (§5). Each key must be
   * a valid trust domain; duplicate keys — which `JSON.parse` would silently collapse — are
   * rejected (§6.3). Throws `ERR_IDENTITY_BUNDLE`.
   */
  static parseJson(json: string): TrustBundleSet {
    const value = parseStrictJson(json);
    if (!isObject(value) || !isObject(value.trust_domains)) {
      throw bundleError('bundle map must be a JSON object with a "trust_domains" object');
    }
    const set = new TrustBundleSet();
    for (const [name, b] of Object.entries(value.trust_domains)) {
      // A bare name only: parseTrustDomain would also take the trust domain out of a SPIFFE ID.
      const invalid = checkTrustDomainName(name);
      if (invalid) {
        throw bundleError(
          `bundle map key ${JSON.stringify(name)} is not a trust domain: ${invalid.message}`,
          invalid,
        );
      }
      const td = parseTrustDomain(name);
      set.add(bundleFromValue(td, b, `trust domain "${name}": `));
    }
    return set;
  }

  /** The bundle map JSON (`trust_domains`, trust domains in insertion order). */
  async toJson(): Promise<string> {
    const parts: string[] = [];
    for (const b of this.#bundles.values())
      parts.push(`${JSON.stringify(b.trustDomain.name)}:${await b.toJson()}`);
    return `{"trust_domains":{${parts.join(",")}}}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Strict JSON (RFC 8259) with duplicate-key detection and exact integers.

type JsonValue = null | boolean | string | RawJsonNumber | JsonValue[] | { [k: string]: JsonValue };

function isObject(v: JsonValue | undefined): v is { [k: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof RawJsonNumber);
}

function toPlain(v: JsonValue): unknown {
  if (v instanceof RawJsonNumber) return Number(v.raw);
  if (Array.isArray(v)) return v.map(toPlain);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
  return v;
}

/**
 * Parses JSON text strictly: like JSON.parse, but a duplicate member name in any object is an
 * `ERR_IDENTITY_BUNDLE` error, and numbers keep their text (64-bit `spiffe_sequence`).
 */
function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw bundleError(`unable to parse JWKS: ${what} at offset ${i}`);
  };
  const ws = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const str = (): string => {
    // text[i] === '"'
    i++;
    let out = "";
    let start = i;
    for (;;) {
      if (i >= text.length) return fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) return fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        const simple: Record<string, string> = {
          '"': '"',
          "\\": "\\",
          "/": "/",
          b: "\b",
          f: "\f",
          n: "\n",
          r: "\r",
          t: "\t",
        };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === "u") {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) return fail("bad \\u escape");
          out += String.fromCharCode(Number.parseInt(hex, 16));
          i += 6;
        } else {
          return fail("bad escape");
        }
        start = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > 64) return fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: { [k: string]: JsonValue } = Object.create(null);
      const keys = new Set<string>();
      ws();
      if (text[i] === "}") {
        i++;
        return { ...obj };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') return fail("expected a member name");
        const key = str();
        if (keys.has(key))
          throw bundleError(
            `duplicate JSON key ${JSON.stringify(key)} at offset ${i} (the spec requires rejecting duplicates)`,
          );
        keys.add(key);
        ws();
        if (text[i] !== ":") return fail("expected ':'");
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          const plain: { [k: string]: JsonValue } = {};
          for (const k of keys)
            Object.defineProperty(plain, k, {
              value: obj[k],
              enumerable: true,
              writable: true,
              configurable: true,
            });
          return plain;
        }
        return fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        return fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = i;
    const num = m.exec(text);
    if (num === null)
      return fail(
        i >= text.length ? "unexpected end of input" : `unexpected character ${JSON.stringify(c)}`,
      );
    i += num[0].length;
    return new RawJsonNumber(num[0]);
  };
  if (typeof text !== "string") throw bundleError("bundle JSON must be a string");
  const v = value(0);
  ws();
  if (i !== text.length) fail("unexpected trailing data");
  return v;
}
