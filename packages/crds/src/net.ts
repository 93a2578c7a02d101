// IP, CIDR and URL parsing with Go's rules (netip.ParseAddr/ParsePrefix, url.ParseRequestURI),
// which Istio's validation and the Kubernetes CEL library use.

const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;

/** Go netip.ParseAddr for IPv4: four decimal parts, no leading zeros. */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!IPV4_PART.test(p) || Number(p) > 255) return false;
  }
  return true;
}

/** Go netip.ParseAddr for IPv6 (zones rejected, as Kubernetes' isIP does). */
export function isIPv6(s: string): boolean {
  if (s.length < 2 || s.includes("%")) return false;
  let text = s;
  let groupsNeeded = 8;
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.slice(lastColon + 1).includes(".")) {
    if (!isIPv4(text.slice(lastColon + 1))) return false;
    text = `${text.slice(0, lastColon + 1)}0`;
    groupsNeeded = 7;
  }
  const dbl = text.indexOf("::");
  if (dbl !== text.lastIndexOf("::")) return false;
  const hex = /^[0-9a-fA-F]{1,4}$/;
  if (dbl >= 0) {
    const head = text.slice(0, dbl);
    const tail = text.slice(dbl + 2);
    const h = head === "" ? [] : head.split(":");
    const t = tail === "" ? [] : tail.split(":");
    if (![...h, ...t].every((g) => hex.test(g))) return false;
    return h.length + t.length < groupsNeeded;
  }
  const groups = text.split(":");
  return groups.length === groupsNeeded && groups.every((g) => hex.test(g));
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

/** Go netip.ParsePrefix: an address, "/", a decimal prefix length within the family's bits. */
export function isCIDR(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash < 0) return false;
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
  if (isIPv4(addr)) return Number(bits) <= 32;
  if (isIPv6(addr)) return Number(bits) <= 128;
  return false;
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;
const BAD_ESCAPE = /%(?![0-9a-fA-F]{2})/;
// Characters Go's url package accepts unescaped in a host (shouldEscape with encodeHost).
const HOST_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"%]*$/;
// validUserinfo in net/url.
const USERINFO_CHARS = /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/;

function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export interface ParsedURL {
  scheme: string;
  host: string;
  port: string;
  path: string;
}

/**
 * Go `url.ParseRequestURI` (what Kubernetes' CEL `isURL`/`url` use): an absolute URI or an
 * absolute path; returns undefined where Go returns an error.
 */
export function parseRequestURI(raw: string): ParsedURL | undefined {
  if (raw === "" || hasControlChar(raw)) return undefined;
  let rest = raw;
  let scheme = "";
  const m = SCHEME.exec(rest);
  if (m?.[1] !== undefined) {
    scheme = m[1].toLowerCase();
    rest = rest.slice(m[0].length);
  } else if (rest.startsWith(":")) {
    return undefined;
  }
  const q = rest.indexOf("?");
  if (q >= 0) rest = rest.slice(0, q);
  if (!rest.startsWith("/")) {
    if (scheme !== "") return { scheme, host: "", port: "", path: "" }; // opaque
    return undefined; // "invalid URI for request"
  }
  let host = "";
  let port = "";
  if (scheme !== "" && rest.startsWith("//")) {
    const afterSlashes = rest.slice(2);
    const slash = afterSlashes.indexOf("/");
    let authority = slash >= 0 ? afterSlashes.slice(0, slash) : afterSlashes;
    rest = slash >= 0 ? afterSlashes.slice(slash) : "";
    const at = authority.lastIndexOf("@");
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      if (!USERINFO_CHARS.test(userinfo) || BAD_ESCAPE.test(userinfo)) return undefined;
      authority = authority.slice(at + 1);
    }
    if (authority.startsWith("[")) {
      const close = authority.indexOf("]");
      if (close < 0) return undefined;
      host = authority.slice(0, close + 1);
      const after = authority.slice(close + 1);
      if (after !== "" && !/^:[0-9]*$/.test(after)) return undefined;
      port = after.slice(1);
    } else {
      const colon = authority.lastIndexOf(":");
      if (colon >= 0) {
        port = authority.slice(colon + 1);
        host = authority.slice(0, colon);
        if (!/^[0-9]*$/.test(port)) return undefined;
      } else {
        host = authority;
      }
      if (!HOST_CHARS.test(host) || BAD_ESCAPE.test(host)) return undefined;
    }
  }
  if (BAD_ESCAPE.test(rest)) return undefined;
  return { scheme, host, port, path: rest };
}
