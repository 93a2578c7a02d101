// SPIFFE IDs and trust domains, exactly per the SPIFFE-ID spec (§2) with go-spiffe's error
// distinctions; Istio's `spiffe://<td>/ns/<ns>/sa/<sa>` convention and trust-domain aliases.
// Universal: no node: imports.
import { IdentityError, type IdentityErrorCode } from "./errors.js";

/** Longest SPIFFE ID URI, in bytes, that implementations must support (SPIFFE-ID §2.3). */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** Longest trust domain name, in bytes (RFC 3986 host limit, SPIFFE-ID §2.3). */
export const MAX_TRUST_DOMAIN_BYTES = 255;
/** Istio's default trust domain. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

const SCHEME = "spiffe://";

// 1 = allowed in a trust domain ([a-z0-9._-]); 2 = allowed in a path segment ([a-zA-Z0-9._-]).
const CHARS: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (let c = 0x61; c <= 0x7a; c++) t[c] = 3;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = 2;
  for (let c = 0x30; c <= 0x39; c++) t[c] = 3;
  for (const c of [0x2e, 0x2d, 0x5f]) t[c] = 3;
  return t;
})();

/** The SPIFFE ID codes of {@link IdentityErrorCode}, one per rule. */
export type SpiffeIdErrorCode = Extract<IdentityErrorCode, `ERR_IDENTITY_SPIFFE_${string}`>;

function idError(
  code: SpiffeIdErrorCode,
  rule: string,
  message: string,
  input: string,
): IdentityError {
  const shown = input.length > 80 ? `${input.slice(0, 77)}...` : input;
  return new IdentityError(code, `invalid SPIFFE ID ${JSON.stringify(shown)}: ${message}`, {
    rule,
  });
}

function tdError(
  code: SpiffeIdErrorCode,
  rule: string,
  message: string,
  input: string,
): IdentityError {
  const shown = input.length > 80 ? `${input.slice(0, 77)}...` : input;
  return new IdentityError(code, `invalid trust domain ${JSON.stringify(shown)}: ${message}`, {
    rule,
  });
}

/** Explains why a trust-domain character is not allowed (the code stays go-spiffe's one code). */
function badTdChar(c: string): { rule: string; hint: string } {
  if (c === ":") return { rule: "trust domain must not contain a port", hint: "remove the port" };
  if (c === "@")
    return { rule: "trust domain must not contain userinfo", hint: "remove the userinfo" };
  if (c === "%") {
    return {
      rule: "trust domain must not be percent-encoded",
      hint: "write the characters themselves",
    };
  }
  if (c === "?") return { rule: "SPIFFE ID must not have a query", hint: "remove the query" };
  if (c === "#") return { rule: "SPIFFE ID must not have a fragment", hint: "remove the fragment" };
  if (c >= "A" && c <= "Z") {
    return {
      rule: "trust domain must be lowercase",
      hint: "write it in lowercase (normalizeSpiffeId() does that explicitly)",
    };
  }
  return {
    rule: "trust domain characters are limited to [a-z0-9._-]",
    hint: "use only lowercase letters, digits, dots, dashes and underscores",
  };
}

function badPathChar(c: string): { rule: string; hint: string } {
  if (c === "%")
    return { rule: "path must not be percent-encoded", hint: "write the characters themselves" };
  if (c === "?") return { rule: "SPIFFE ID must not have a query", hint: "remove the query" };
  if (c === "#") return { rule: "SPIFFE ID must not have a fragment", hint: "remove the fragment" };
  return {
    rule: "path segment characters are limited to [a-zA-Z0-9._-]",
    hint: "use only letters, digits, dots, dashes and underscores",
  };
}

/**
 * The trust-domain rules (SPIFFE-ID §2.1), shared by trust-domain and SPIFFE ID parsing; `report`
 * words the error for what was being parsed (`input`).
 */
function trustDomainError(
  name: string,
  input: string,
  report: typeof idError,
): IdentityError | undefined {
  if (name.length === 0) {
    return report(
      "ERR_IDENTITY_SPIFFE_MISSING_TRUST_DOMAIN",
      "trust domain must not be empty",
      "trust domain is missing",
      input,
    );
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || ((CHARS[c] as number) & 1) === 0) {
      const why = badTdChar(name[i] as string);
      return report(
        "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
        why.rule,
        `trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores (${why.rule}; ${why.hint})`,
        input,
      );
    }
  }
  if (name.length > MAX_TRUST_DOMAIN_BYTES) {
    return report(
      "ERR_IDENTITY_SPIFFE_TRUST_DOMAIN_TOO_LONG",
      `trust domain must be at most ${MAX_TRUST_DOMAIN_BYTES} bytes`,
      `trust domain is ${name.length} bytes, the limit is ${MAX_TRUST_DOMAIN_BYTES}`,
      input,
    );
  }
  return undefined;
}

/**
 * Checks a trust domain name; returns the error instead of throwing (hot paths and
 * validators). `undefined` means valid.
 */
export function checkTrustDomainName(name: string): IdentityError | undefined {
  return trustDomainError(name, name, tdError);
}

/**
 * Checks a SPIFFE ID path (`""` or `/seg/seg…`) per SPIFFE-ID §2.2, go-spiffe `ValidatePath`.
 * `undefined` means valid.
 */
export function checkSpiffePath(path: string, input: string = path): IdentityError | undefined {
  if (path.length === 0) return undefined;
  if (path.charCodeAt(0) !== 0x2f) {
    return idError(
      "ERR_IDENTITY_SPIFFE_NO_LEADING_SLASH",
      "path must have a leading slash",
      "path must have a leading slash",
      input,
    );
  }
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i === path.length ? 0x2f : path.charCodeAt(i);
    if (c === 0x2f) {
      const len = i - segStart;
      if (len === 0) {
        return i === path.length
          ? idError(
              "ERR_IDENTITY_SPIFFE_TRAILING_SLASH",
              "path must not have a trailing slash",
              "path cannot have a trailing slash",
              input,
            )
          : idError(
              "ERR_IDENTITY_SPIFFE_EMPTY_SEGMENT",
              "path must not contain empty segments",
              "path cannot contain empty segments",
              input,
            );
      }
      if (
        path.charCodeAt(segStart) === 0x2e &&
        (len === 1 || (len === 2 && path.charCodeAt(segStart + 1) === 0x2e))
      ) {
        return idError(
          "ERR_IDENTITY_SPIFFE_DOT_SEGMENT",
          "path must not contain dot segments",
          'path cannot contain dot segments ("." or "..")',
          input,
        );
      }
      segStart = i + 1;
      continue;
    }
    if (c >= 128 || ((CHARS[c] as number) & 2) === 0) {
      const why = badPathChar(path[i] as string);
      return idError(
        "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
        why.rule,
        `path segment characters are limited to letters, numbers, dots, dashes, and underscores (${why.rule}; ${why.hint})`,
        input,
      );
    }
  }
  return undefined;
}

/** Checks one path segment (no slashes): non-empty, not `.`/`..`, charset. */
export function checkSpiffePathSegment(segment: string): IdentityError | undefined {
  if (segment.length === 0) {
    return idError(
      "ERR_IDENTITY_SPIFFE_EMPTY_SEGMENT",
      "path must not contain empty segments",
      "path cannot contain empty segments",
      segment,
    );
  }
  if (segment.includes("/")) {
    return idError(
      "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
      "path segment characters are limited to [a-zA-Z0-9._-]",
      "a path segment cannot contain '/'; pass each segment separately",
      segment,
    );
  }
  return checkSpiffePath(`/${segment}`, segment);
}

const kToken = Symbol("spiffe-id-token");

/** A validated SPIFFE trust domain name. Build with {@link parseTrustDomain}. */
export class TrustDomain {
  /** The name, e.g. `cluster.local`. */
  readonly name: string;
  /** @internal use parseTrustDomain() */
  constructor(token: symbol, name: string) {
    if (token !== kToken) throw new TypeError("use parseTrustDomain() to build a TrustDomain");
    this.name = name;
  }
  /** The trust domain's own SPIFFE ID, `spiffe://<name>` (root path). */
  id(): SpiffeId {
    return new SpiffeId(kToken, this, "");
  }
  /** The ID string `spiffe://<name>`. */
  idString(): string {
    return SCHEME + this.name;
  }
  equals(other: TrustDomain | string): boolean {
    return this.name === (typeof other === "string" ? other : other.name);
  }
  toString(): string {
    return this.name;
  }
  toJSON(): string {
    return this.name;
  }
}

/** A validated SPIFFE ID. Build with {@link parseSpiffeId}, {@link spiffeIdFromPath} or {@link spiffeIdFromSegments}. */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** `""` for a trust-domain (root) ID, else `/seg/seg…`; case-sensitive. */
  readonly path: string;
  /** @internal use parseSpiffeId() */
  constructor(token: symbol, trustDomain: TrustDomain, path: string) {
    if (token !== kToken) throw new TypeError("use parseSpiffeId() to build a SpiffeId");
    this.trustDomain = trustDomain;
    this.path = path;
  }
  /** The path split into segments (`[]` for a root ID). */
  get segments(): string[] {
    return this.path === "" ? [] : this.path.slice(1).split("/");
  }
  /** True when the ID has no path (a trust-domain / signing-authority ID). */
  get isRoot(): boolean {
    return this.path === "";
  }
  /** True when the ID is in `td` (exact trust domain name equality, as go-spiffe `MemberOf`). */
  memberOf(td: TrustDomain | string): boolean {
    return this.trustDomain.equals(td);
  }
  equals(other: SpiffeId | string): boolean {
    return this.toString() === (typeof other === "string" ? other : other.toString());
  }
  toString(): string {
    return SCHEME + this.trustDomain.name + this.path;
  }
  toJSON(): string {
    return this.toString();
  }
}

/**
 * Parses a trust domain name (`example.org`), or takes the trust domain of a SPIFFE ID when
 * the input contains `:/` (as go-spiffe `TrustDomainFromString`). Throws IdentityError.
 */
export function parseTrustDomain(input: string): TrustDomain {
  if (typeof input !== "string") throw new TypeError("trust domain must be a string");
  if (input.includes(":/")) return parseSpiffeId(input).trustDomain;
  const err = checkTrustDomainName(input);
  if (err) throw err;
  return new TrustDomain(kToken, input);
}

/**
 * Checks a SPIFFE ID string; returns the error (with `code` and `rule`) or `undefined` when it
 * is valid. Never lowercases: `SPIFFE://` or an uppercase trust domain is an error.
 */
export function checkSpiffeId(input: string): IdentityError | undefined {
  const r = parse(input);
  return r instanceof SpiffeId ? undefined : r;
}

/** True when `input` is a valid SPIFFE ID. */
export function isSpiffeId(input: string): boolean {
  return parse(input) instanceof SpiffeId;
}

/** Parses a SPIFFE ID per SPIFFE-ID §2; throws IdentityError with one code per rule. */
export function parseSpiffeId(input: string): SpiffeId {
  const r = parse(input);
  if (r instanceof SpiffeId) return r;
  throw r;
}

/** Parses, returning a result instead of throwing. */
export function tryParseSpiffeId(
  input: string,
): { ok: true; id: SpiffeId } | { ok: false; error: IdentityError } {
  const r = parse(input);
  return r instanceof SpiffeId ? { ok: true, id: r } : { ok: false, error: r };
}

function parse(input: string): SpiffeId | IdentityError {
  if (typeof input !== "string") {
    return idError(
      "ERR_IDENTITY_SPIFFE_EMPTY",
      "SPIFFE ID must be a string",
      "SPIFFE ID must be a string",
      String(input),
    );
  }
  if (input.length === 0) {
    return idError(
      "ERR_IDENTITY_SPIFFE_EMPTY",
      "SPIFFE ID must not be empty",
      "cannot be empty",
      input,
    );
  }
  if (!input.startsWith(SCHEME)) {
    const lower = input.slice(0, SCHEME.length).toLowerCase();
    const hint =
      lower === SCHEME
        ? ' (the scheme must be lowercase "spiffe://")'
        : ' (it must start with "spiffe://")';
    return idError(
      "ERR_IDENTITY_SPIFFE_WRONG_SCHEME",
      "scheme must be spiffe",
      `scheme is missing or invalid${hint}`,
      input,
    );
  }
  // Every valid character is ASCII, so UTF-16 length >= UTF-8 length for valid IDs and any
  // string over the limit in UTF-16 units is over it in bytes too.
  if (input.length > MAX_SPIFFE_ID_BYTES) {
    return idError(
      "ERR_IDENTITY_SPIFFE_TOO_LONG",
      `SPIFFE ID must be at most ${MAX_SPIFFE_ID_BYTES} bytes`,
      `SPIFFE ID is ${input.length} characters, the limit is ${MAX_SPIFFE_ID_BYTES} bytes`,
      input,
    );
  }
  let slash = input.indexOf("/", SCHEME.length);
  if (slash < 0) slash = input.length;
  const tdName = input.slice(SCHEME.length, slash);
  const tdErr = trustDomainError(tdName, input, idError);
  if (tdErr) return tdErr;
  const path = input.slice(slash);
  const err = checkSpiffePath(path, input);
  if (err) return err;
  return new SpiffeId(kToken, new TrustDomain(kToken, tdName), path);
}

/** Builds `spiffe://<td><path>`; `path` is `""` or must start with `/`. Throws IdentityError. */
export function spiffeIdFromPath(td: TrustDomain | string, path: string): SpiffeId {
  const trustDomain = typeof td === "string" ? parseTrustDomain(td) : td;
  const err = checkSpiffePath(path, SCHEME + trustDomain.name + path);
  if (err) throw err;
  return checkLength(new SpiffeId(kToken, trustDomain, path));
}

/** Builds `spiffe://<td>/<seg>/<seg>…` from path segments; each is validated. Throws IdentityError. */
export function spiffeIdFromSegments(td: TrustDomain | string, ...segments: string[]): SpiffeId {
  const trustDomain = typeof td === "string" ? parseTrustDomain(td) : td;
  for (const s of segments) {
    const err = checkSpiffePathSegment(s);
    if (err) throw err;
  }
  const path = segments.length === 0 ? "" : `/${segments.join("/")}`;
  return checkLength(new SpiffeId(kToken, trustDomain, path));
}

function checkLength(id: SpiffeId): SpiffeId {
  const s = id.toString();
  if (s.length > MAX_SPIFFE_ID_BYTES) {
    throw idError(
      "ERR_IDENTITY_SPIFFE_TOO_LONG",
      `SPIFFE ID must be at most ${MAX_SPIFFE_ID_BYTES} bytes`,
      `SPIFFE ID is ${s.length} bytes, the limit is ${MAX_SPIFFE_ID_BYTES}`,
      s,
    );
  }
  return id;
}

/**
 * Explicit normalisation (SPIFFE-ID §2.4: scheme and trust domain compare case-insensitively):
 * lowercases the scheme and trust domain, keeps the path as is, then parses. {@link parseSpiffeId}
 * itself never lowercases.
 */
export function normalizeSpiffeId(input: string): SpiffeId {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)(.*)$/s.exec(input);
  if (m === null) return parseSpiffeId(input);
  return parseSpiffeId(
    `${(m[1] as string).toLowerCase()}://${(m[2] as string).toLowerCase()}${m[3] as string}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Istio identities

/** An Istio workload identity, `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export interface IstioIdentity {
  readonly id: SpiffeId;
  readonly trustDomain: TrustDomain;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/**
 * Builds Istio's identity `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. Namespace and
 * service account must be valid, non-empty SPIFFE path segments (Istio errors on empty ones).
 * Istio's `genSpiffeURI` rewrites `@` in the trust domain to `.`; this does not — pass a valid
 * trust domain. Throws IdentityError.
 */
export function istioIdentity(
  td: TrustDomain | string,
  namespace: string,
  serviceAccount: string,
): SpiffeId {
  if (namespace === "" || serviceAccount === "") {
    throw new IdentityError(
      "ERR_IDENTITY_SPIFFE_NOT_ISTIO",
      `namespace or service account empty for SPIFFE uri ns=${namespace} serviceAccount=${serviceAccount}`,
      { rule: "Istio identity needs a namespace and a service account" },
    );
  }
  return spiffeIdFromSegments(td, "ns", namespace, "sa", serviceAccount);
}

/**
 * Parses an Istio identity: a valid SPIFFE ID whose path is exactly `/ns/<ns>/sa/<sa>`
 * (Istio `ParseIdentity`, ztunnel `Identity::from_str`, plus the SPIFFE charset rules).
 * Throws the SPIFFE error for an invalid ID, `ERR_IDENTITY_SPIFFE_NOT_ISTIO` for another shape.
 */
export function parseIstioIdentity(input: string | SpiffeId): IstioIdentity {
  const id = typeof input === "string" ? parseSpiffeId(input) : input;
  const seg = id.segments;
  if (seg.length !== 4 || seg[0] !== "ns" || seg[2] !== "sa") {
    throw new IdentityError(
      "ERR_IDENTITY_SPIFFE_NOT_ISTIO",
      `identity is not a spiffe format: ${JSON.stringify(id.toString())} — Istio identities look like spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
      { rule: "Istio identity path is /ns/<namespace>/sa/<service-account>" },
    );
  }
  return {
    id,
    trustDomain: id.trustDomain,
    namespace: seg[1] as string,
    serviceAccount: seg[3] as string,
  };
}

/**
 * Istio trust-domain aliases (MeshConfig `trustDomain` + `trustDomainAliases`): an identity is
 * treated the same under the trust domain or any alias.
 */
export class TrustDomainAliases {
  /** The trust domain and its aliases (deduplicated, trust domain first). */
  readonly trustDomains: readonly TrustDomain[];
  readonly #names: ReadonlySet<string>;
  constructor(trustDomain: TrustDomain | string, aliases: readonly (TrustDomain | string)[] = []) {
    const all = [trustDomain, ...aliases].map((t) =>
      typeof t === "string" ? parseTrustDomain(t) : t,
    );
    const seen = new Set<string>();
    const unique: TrustDomain[] = [];
    for (const t of all) {
      if (seen.has(t.name)) continue;
      seen.add(t.name);
      unique.push(t);
    }
    this.trustDomains = unique;
    this.#names = seen;
  }
  /** True when `td` is the trust domain or one of its aliases. */
  includes(td: TrustDomain | string): boolean {
    return this.#names.has(typeof td === "string" ? td : td.name);
  }
  /**
   * True when `peer` is `expected`, or has the same path and both trust domains are in this
   * alias set (e.g. `td1/ns/foo/sa/x` matches `td2/ns/foo/sa/x` when td1 and td2 are aliases).
   */
  matches(peer: SpiffeId | string, expected: SpiffeId | string): boolean {
    const p = typeof peer === "string" ? tryParse(peer) : peer;
    const e = typeof expected === "string" ? tryParse(expected) : expected;
    if (p === undefined || e === undefined) return false;
    if (p.path !== e.path) return false;
    if (p.trustDomain.name === e.trustDomain.name) return true;
    return this.includes(p.trustDomain) && this.includes(e.trustDomain);
  }
  /**
   * Istio `ExpandWithTrustDomains`: every ID plus its variant under each trust domain of this
   * set, deduplicated, originals first. Strings that are not SPIFFE IDs pass through unchanged.
   */
  expand(ids: Iterable<string | SpiffeId>): string[] {
    const out = new Set<string>();
    const variants: string[] = [];
    for (const raw of ids) {
      const s = raw.toString();
      out.add(s);
      const id = typeof raw === "string" ? tryParse(raw) : raw;
      if (id === undefined) continue;
      for (const td of this.trustDomains) variants.push(SCHEME + td.name + id.path);
    }
    for (const v of variants) out.add(v);
    return [...out];
  }
}

function tryParse(s: string): SpiffeId | undefined {
  const r = parse(s);
  return r instanceof SpiffeId ? r : undefined;
}
