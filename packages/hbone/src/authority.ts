import { parseIp } from "@ambientkit/xds-types/ip";
import { HboneError } from "./errors.js";

/**
 * A CONNECT `:authority`, as ztunnel parses it: a socket address (`10.0.0.2:8080`,
 * `[fd00::2]:8080`) or a hostname with a port (`echo.ns.svc.cluster.local:80`, double HBONE).
 */
export type Authority =
  | { kind: "ip"; host: string; port: number; family: 4 | 6 }
  | { kind: "hostname"; host: string; port: number };

const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/;

function bad(value: string, why: string): HboneError {
  return new HboneError(
    "ERR_HBONE_BAD_AUTHORITY",
    `invalid :authority ${JSON.stringify(value)}: ${why}; use ip:port, [ipv6]:port or host:port`,
  );
}

function parsePort(value: string, text: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw bad(value, "the port must be a decimal number");
  const port = Number(text);
  if (port < 1 || port > 65535) throw bad(value, "the port must be 1-65535");
  return port;
}

/** Parses a CONNECT `:authority`; a missing or invalid port, or a malformed host, throws ERR_HBONE_BAD_AUTHORITY. */
export function parseAuthority(value: string): Authority {
  if (typeof value !== "string" || value.length === 0) throw bad(String(value), "it is empty");
  if (value.length > 300) throw bad(value.slice(0, 40), "it is too long");
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) throw bad(value, "missing ']'");
    const host = value.slice(1, close);
    if (ipFamily(host) !== 6) throw bad(value, "brackets must hold an IPv6 address");
    if (value[close + 1] !== ":") throw bad(value, "missing port");
    return { kind: "ip", host, port: parsePort(value, value.slice(close + 2)), family: 6 };
  }
  const colon = value.lastIndexOf(":");
  if (colon < 0) throw bad(value, "missing port");
  const host = value.slice(0, colon);
  if (host.includes(":")) throw bad(value, "an IPv6 address must be written as [addr]:port");
  const port = parsePort(value, value.slice(colon + 1));
  if (ipFamily(host) === 4) return { kind: "ip", host, port, family: 4 };
  if (/^[0-9.]+$/.test(host)) throw bad(value, "malformed IPv4 address");
  if (!HOSTNAME.test(host)) throw bad(value, "malformed hostname");
  return { kind: "hostname", host: host.toLowerCase(), port };
}

/** Formats an address as an `:authority`: `ip:port`, `[v6]:port` or `host:port`. */
export function formatAuthority(address: { host: string; port: number }): string {
  const { host, port } = address;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`${host}:${port}`, "the port must be 1-65535");
  }
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (ipFamily(bare) === 6) return `[${bare}]:${port}`;
  const text = `${bare}:${port}`;
  parseAuthority(text);
  return text;
}

/** `host:port` for a socket address, IPv6 in brackets (how ztunnel renders a SocketAddr). */
export function formatSocketAddress(host: string, port: number): string {
  return ipFamily(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** 4, 6, or 0 when `host` is no IP literal (no zone: an authority cannot carry one unescaped). */
function ipFamily(host: string): 0 | 4 | 6 {
  const bytes = parseIp(host);
  return bytes === undefined ? 0 : bytes.length === 4 ? 4 : 6;
}
