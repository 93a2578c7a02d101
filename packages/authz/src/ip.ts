/**
 * A small universal IP/CIDR matcher (no `node:net`): IPv4 and IPv6 addresses as bigint, prefixes
 * as (family, network, bits). Parsing follows Go's `netip.ParseAddr`/`ParsePrefix`, which istiod
 * uses: host bits may be set in a prefix (`10.0.0.1/24` is valid), IPv4 has no leading zeros, zones
 * are rejected in prefixes. Families never cross: an IPv4 prefix never contains an IPv6 address
 * (ztunnel `IpNet::contains`, Envoy CIDR matcher). Parsing keeps IPv4-mapped IPv6 as IPv6 (as Go
 * does); `canonicalIp` folds a connection's address to IPv4 as ztunnel's `to_canonical` does.
 */
import { AuthzError } from "./errors.js";

export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A CIDR prefix; `bits` is the prefix length, `network` the address with host bits cleared. */
export interface IpPrefix {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly bits: number;
  /** The address as written (host bits kept), e.g. for printing `10.0.0.1/24`. */
  readonly address: bigint;
}

function parseIpv4Number(s: string): number | undefined {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let leadingZero = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return undefined;
      v = v * 256 + part;
      part = 0;
      digits = 0;
      dots++;
      if (dots > 3) return undefined;
      continue;
    }
    if (c < 48 || c > 57) return undefined;
    if (digits === 1 && leadingZero) return undefined;
    if (digits === 0) leadingZero = c === 48;
    part = part * 10 + (c - 48);
    digits++;
    if (part > 255) return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return v * 256 + part;
}

function parseIpv4(s: string): bigint | undefined {
  const n = parseIpv4Number(s);
  return n === undefined ? undefined : BigInt(n);
}

function parseIpv6(input: string): bigint | undefined {
  let s = input;
  if (s.includes("%")) return undefined;
  // Embedded IPv4 in the last 32 bits.
  let tail: bigint | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = s.indexOf("::");
  if (dbl !== s.lastIndexOf("::")) return undefined;
  let groups: string[];
  if (dbl >= 0) {
    const left = s.slice(0, dbl);
    const right = s.slice(dbl + 2);
    const l = left === "" ? [] : left.split(":");
    const r = right === "" ? [] : right.split(":");
    if (l.length + r.length > 7) return undefined;
    groups = [...l, ...Array<string>(8 - l.length - r.length).fill("0"), ...r];
  } else {
    groups = s.split(":");
    if (groups.length !== 8) return undefined;
  }
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(Number.parseInt(g, 16));
  }
  if (tail !== undefined) v = (v & ~0xffffffffn) | tail;
  return v;
}

const cache = new Map<string, IpAddress | null>();
const CACHE_MAX = 4096;

/** Parses an IPv4 or IPv6 address (no zone, no brackets); undefined if it is not one. */
export function parseIp(s: string): IpAddress | undefined {
  if (typeof s !== "string") return undefined;
  const hit = cache.get(s);
  if (hit !== undefined) return hit ?? undefined;
  let out: IpAddress | undefined;
  if (s.includes(":")) {
    const v = parseIpv6(s);
    out = v === undefined ? undefined : { family: 6, value: v };
  } else {
    const v = parseIpv4(s);
    out = v === undefined ? undefined : { family: 4, value: v };
  }
  // Decisions see the same few addresses again and again; keep a bounded memo (values are frozen).
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(s, out ? Object.freeze(out) : null);
  return out;
}

function maskOf(family: 4 | 6, bits: number): bigint {
  const width = family === 4 ? 32 : 128;
  if (bits === 0) return 0n;
  return ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
}

/**
 * Parses `ip` or `ip/bits` the way istiod's `stringToIP` does: a bare address becomes a full-length
 * prefix (/32 or /128); undefined when unparsable (istiod silently drops such entries).
 */
export function parsePrefix(s: string): IpPrefix | undefined {
  if (typeof s !== "string") return undefined;
  const slash = s.indexOf("/");
  if (slash < 0) {
    const a = parseIp(s);
    if (!a) return undefined;
    const bits = a.family === 4 ? 32 : 128;
    return { family: a.family, network: a.value, bits, address: a.value };
  }
  const a = parseIp(s.slice(0, slash));
  const b = s.slice(slash + 1);
  if (!a || !/^[0-9]{1,3}$/.test(b) || (b.length > 1 && b.startsWith("0"))) return undefined;
  const bits = Number(b);
  if (bits > (a.family === 4 ? 32 : 128)) return undefined;
  return { family: a.family, network: a.value & maskOf(a.family, bits), bits, address: a.value };
}

/**
 * IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it carries; other addresses unchanged.
 * ztunnel canonicalises both ends of every inbound connection this way (`socket::to_canonical`).
 */
export function canonicalIp(ip: IpAddress): IpAddress {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn)
    return Object.freeze({ family: 4, value: ip.value & 0xffff_ffffn });
  return ip;
}

/**
 * The IPv4 prefix an IPv6 prefix inside `::ffff:0:0/96` stands for (`::ffff:10.0.0.0/104` →
 * `10.0.0.0/8`), or undefined. Real ztunnel never matches such a prefix against a canonical IPv4
 * peer, so callers use this only where matching more is the side that denies.
 */
export function ipv4Equivalent(p: IpPrefix): IpPrefix | undefined {
  if (p.family !== 6 || p.bits < 96 || p.network >> 32n !== 0xffffn) return undefined;
  return {
    family: 4,
    network: p.network & 0xffff_ffffn,
    bits: p.bits - 96,
    address: p.address & 0xffff_ffffn,
  };
}

function isIpAddress(v: unknown): v is IpAddress {
  const o = v as IpAddress | null;
  return (
    typeof o === "object" &&
    o !== null &&
    (o.family === 4 || o.family === 6) &&
    typeof o.value === "bigint" &&
    o.value >= 0n &&
    o.value < (o.family === 4 ? 1n << 32n : 1n << 128n)
  );
}

function isIpPrefix(v: unknown): v is IpPrefix {
  if (typeof v !== "object" || v === null) return false;
  const o = v as IpPrefix;
  return (
    isIpAddress({ family: o.family, value: o.network }) &&
    Number.isInteger(o.bits) &&
    o.bits >= 0 &&
    o.bits <= (o.family === 4 ? 32 : 128)
  );
}

/** True if `ip` lies in `prefix` (same family only). */
export function prefixContains(prefix: IpPrefix, ip: IpAddress): boolean {
  if (!isIpPrefix(prefix) || !isIpAddress(ip))
    throw new AuthzError(
      "ERR_AUTHZ_INVALID_INPUT",
      "prefixContains takes an IpPrefix from parsePrefix and an IpAddress from parseIp",
    );
  return contains(prefix, ip);
}

/** `prefixContains` without the argument check, for matchers that built both sides themselves. */
export function contains(prefix: IpPrefix, ip: IpAddress): boolean {
  return (
    prefix.family === ip.family &&
    (ip.value & maskOf(prefix.family, prefix.bits)) === prefix.network
  );
}

/** Formats an address canonically (RFC 5952 for IPv6). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Formats a prefix as `address/bits`, keeping host bits as written (like Go's `netip.Prefix`). */
export function formatPrefix(p: IpPrefix): string {
  return `${formatIp({ family: p.family, value: p.address })}/${p.bits}`;
}
