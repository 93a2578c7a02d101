// IP, CIDR and URL parsing with Go's rules (netip.ParseAddr/ParsePrefix, url.ParseRequestURI),
// which Istio's validation and the Kubernetes CEL library use.
import { parseCidr, parseIp } from "@ambientkit/xds-types/ip";

// Addresses and prefixes are parsed by @ambientkit/xds-types/ip, whose rules are Go netip's for
// these inputs (four decimal parts without leading zeros, one "::", an embedded IPv4 tail).
// Kubernetes' isIP rejects zones, so a "%" never passes here.

/** Go netip.ParseAddr for IPv4: four decimal parts, no leading zeros. */
export function isIPv4(s: string): boolean {
  return !s.includes(":") && parseIp(s) !== undefined;
}

/** Go netip.ParseAddr for IPv6 (zones rejected, as Kubernetes' isIP does). */
export function isIPv6(s: string): boolean {
  return s.includes(":") && !s.includes("%") && parseIp(s) !== undefined;
}

export function isIP(s: string): boolean {
  return !s.includes("%") && parseIp(s) !== undefined;
}

/** Go netip.ParsePrefix: an address, "/", a decimal prefix length within the family's bits. */
export function isCIDR(s: string): boolean {
  return !s.includes("%") && parseCidr(s) !== undefined;
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
