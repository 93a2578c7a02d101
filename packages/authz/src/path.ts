/**
 * Envoy request-path handling as Istio configures it for waypoints and sidecars (istio.io
 * "Authorization policy normalization"): query and fragment are not matched; BASE decodes
 * percent-encoded unreserved characters, turns `\` into `/` and removes dot segments; MERGE_SLASHES
 * also merges `//`; DECODE_AND_MERGE_SLASHES also unescapes `%2F`/`%5C`; NONE leaves the path alone.
 */
import { Guard } from "./guards.js";
import type { PathNormalization } from "./types.js";

const MODES: readonly PathNormalization[] = [
  "BASE",
  "MERGE_SLASHES",
  "DECODE_AND_MERGE_SLASHES",
  "NONE",
];

function isUnreserved(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    code === 0x2d ||
    code === 0x2e ||
    code === 0x5f ||
    code === 0x7e
  );
}

/** RFC 3986 §5.2.4 remove_dot_segments. */
export function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segs = path.split("/");
  const absolute = path.startsWith("/");
  for (let i = absolute ? 1 : 0; i < segs.length; i++) {
    const s = segs[i] ?? "";
    const last = i === segs.length - 1;
    if (s === ".") {
      if (last) out.push("");
    } else if (s === "..") {
      out.pop();
      if (last) out.push("");
    } else out.push(s);
  }
  return (absolute ? "/" : "") + out.join("/");
}

/**
 * Returns the path Envoy's RBAC filter matches (`url_path`), or null when Envoy rejects the request
 * with 400 before authorization: the path does not start with `/` (`admin`, `""`, `%2Fadmin`,
 * `?x`), or holds `%00`.
 */
export function normalizeRequestPath(raw: string, mode: PathNormalization = "BASE"): string | null {
  const g = new Guard("ERR_AUTHZ_INVALID_INPUT", "argument");
  g.string(raw, ["path"]);
  g.oneOf(mode, MODES, ["mode"]);
  // Matching a relative path against `/admin*` would let `admin` through; Envoy answers 400.
  if (!raw.startsWith("/")) return null;
  // Fast path: nothing to strip, decode or normalise.
  if (!/[%\\?#]|\/\.|\/\//.test(raw)) return raw;
  let end = raw.length;
  const q = raw.indexOf("?");
  const h = raw.indexOf("#");
  if (q >= 0) end = q;
  if (h >= 0 && h < end) end = h;
  let path = raw.slice(0, end);
  if (/%00/.test(path)) return null;
  if (mode === "NONE") return path;
  if (mode === "DECODE_AND_MERGE_SLASHES") path = path.replace(/%2f/gi, "/").replace(/%5c/gi, "\\");
  path = path.replace(/%([0-9a-fA-F]{2})/g, (m, hex: string) => {
    const code = Number.parseInt(hex, 16);
    return isUnreserved(code) ? String.fromCharCode(code) : m.toUpperCase();
  });
  path = path.replace(/\\/g, "/");
  path = removeDotSegments(path);
  if (mode === "MERGE_SLASHES" || mode === "DECODE_AND_MERGE_SLASHES")
    path = path.replace(/\/{2,}/g, "/");
  return path;
}

const PCHAR = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]";

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** True if the value uses Istio's `{*}` / `{**}` path template operators. */
export function isPathTemplate(v: string): boolean {
  return v.includes("{*}") || v.includes("{**}");
}

/** Compiles a `{*}`/`{**}` path template (Envoy uri_template) to an anchored RegExp. */
export function compilePathTemplate(v: string): RegExp {
  const parts = v.split("/").map((seg) => {
    if (seg === "{*}") return `${PCHAR}+`;
    if (seg === "{**}") return `(?:${PCHAR}|/)*`;
    return escapeRegex(seg);
  });
  return new RegExp(`^${parts.join("/")}$`);
}
