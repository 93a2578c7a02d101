// IP addresses and prefixes: the repository's one parser and formatter (authz, hbone and the
// examples import it from `@ambientkit/xds-types/ip`). Universal: no node:net.
//
// Parsing follows Rust's `IpAddr` / `ipnet::IpNet` (ztunnel) and Go's `netip.ParseAddr` (istiod),
// which agree: dotted quads without leading zeros, RFC 4291 IPv6 text (with an optional trailing
// dotted quad), no zone ids. Formatting follows Rust's Display: RFC 5952 for IPv6 (lowercase,
// longest zero run compressed), IPv4-mapped addresses as `::ffff:a.b.c.d` unless asked for hex.
//
// Two forms of one address: bytes (4 or 16, as the workload API carries them) and numeric (family
// and a bigint, for matchers that test one address against many prefixes). Parsing keeps
// IPv4-mapped IPv6 as IPv6; `toCanonical` and friends fold it to IPv4 as ztunnel's `to_canonical`.

/** An IP prefix: `address` is 4 or 16 bytes, `length` 0..32 or 0..128. Host bits are kept as given. */
export interface IpPrefix {
  readonly address: Uint8Array;
  readonly length: number;
}

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!DEC_OCTET.test(part)) return false;
    const n = Number(part);
    if (n > 255) return false;
    out[offset + i] = n;
  }
  return true;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const out = new Uint8Array(16);
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const head = parseGroups(halves[0] as string);
  const tail = halves.length === 2 ? parseGroups(halves[1] as string) : [];
  // A dotted quad may end the address; it fills the last 4 bytes.
  const last = halves.length === 2 ? tail : head;
  let v4: string | undefined;
  if (last.length > 0 && (last[last.length - 1] as string).includes(".")) {
    v4 = last.pop();
  }
  const groupsAvailable = v4 === undefined ? 8 : 6;
  const used = head.length + tail.length;
  if (halves.length === 2 ? used >= groupsAvailable : used !== groupsAvailable) return undefined;
  const write = (groups: readonly string[], start: number): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] as string;
      if (!HEX_GROUP.test(g)) return false;
      const n = Number.parseInt(g, 16);
      out[(start + i) * 2] = n >> 8;
      out[(start + i) * 2 + 1] = n & 0xff;
    }
    return true;
  };
  if (!write(head, 0)) return undefined;
  if (!write(tail, groupsAvailable - tail.length)) return undefined;
  if (v4 !== undefined && !parseIpv4Into(v4, out, 12)) return undefined;
  return out;
}

/** Parses an IPv4 or IPv6 address (no zone, no brackets) to 4 or 16 bytes; `undefined` if it is not one. */
export function parseIp(text: string): Uint8Array | undefined {
  if (typeof text !== "string") return undefined;
  if (text.includes(":")) return parseIpv6(text);
  const out = new Uint8Array(4);
  return parseIpv4Into(text, out, 0) ? out : undefined;
}

function formatIpv4(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

export interface FormatIpOptions {
  /**
   * How to write an IPv4-mapped address: `dotted` (`::ffff:10.0.0.1`, Rust's and Go's Display, the
   * default) or `hex` (`::ffff:a00:1`, plain RFC 5952 groups, as the PROXY v2 decoder reports it).
   */
  readonly ipv4Mapped?: "dotted" | "hex";
}

/** Formats 4 or 16 bytes as Rust's `IpAddr` Display does; `undefined` for any other length. */
export function formatIp(bytes: Uint8Array, options?: FormatIpOptions): string | undefined {
  if (bytes.length === 4) return formatIpv4(bytes, 0);
  if (bytes.length !== 16) return undefined;
  if (options?.ipv4Mapped !== "hex" && isIpv4Mapped(bytes))
    return `::ffff:${formatIpv4(bytes, 12)}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++)
    groups.push(((bytes[i * 2] as number) << 8) | (bytes[i * 2 + 1] as number));
  // Longest run of two or more zero groups, first one on ties (RFC 5952 §4.2).
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
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the 4 bytes of IPv4 it carries; other addresses as given.
 * ztunnel canonicalises both ends of every connection this way (`socket::to_canonical`).
 */
export function toCanonical(bytes: Uint8Array): Uint8Array {
  return isIpv4Mapped(bytes) ? bytes.slice(12) : bytes;
}

/**
 * A socket's address text with an IPv4-mapped address written as IPv4 (`::ffff:10.0.0.1` →
 * `10.0.0.1`, ztunnel's `to_canonical`); any other text as given, and `""` for none (a socket
 * that already closed reports `undefined`).
 */
export function canonicalIpText(text: string | undefined): string {
  if (!text) return "";
  if (!text.includes(":")) return text;
  const bytes = parseIp(text);
  return bytes !== undefined && isIpv4Mapped(bytes) ? formatIpv4(bytes, 12) : text;
}

/** Parses `address/length` (both parts required, as ipnet requires). */
export function parseCidr(text: string): IpPrefix | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (address === undefined || !DEC_OCTET.test(lenText)) return undefined;
  const length = Number(lenText);
  if (length > address.length * 8) return undefined;
  return { address, length };
}

/** Formats a prefix as `address/length`; `undefined` if the bytes or the length are out of range. */
export function formatCidr(prefix: IpPrefix): string | undefined {
  const ip = formatIp(prefix.address);
  if (ip === undefined) return undefined;
  if (
    !Number.isInteger(prefix.length) ||
    prefix.length < 0 ||
    prefix.length > prefix.address.length * 8
  ) {
    return undefined;
  }
  return `${ip}/${prefix.length}`;
}

/** True if `ip` (4 or 16 bytes) lies inside `prefix` (same family only). */
export function cidrContains(prefix: IpPrefix, ip: Uint8Array): boolean {
  if (prefix.address.length !== ip.length) return false;
  let bits = prefix.length;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((prefix.address[i] as number) & mask) !== ((ip[i] as number) & mask)) return false;
  }
  return true;
}

// --- numeric form ---

/** An address as a number: IPv4 in 32 bits, IPv6 in 128. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A CIDR prefix as numbers; `bits` is the prefix length, `network` the address with host bits cleared. */
export interface IpNet {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly bits: number;
  /** The address as written (host bits kept), e.g. for printing `10.0.0.1/24`. */
  readonly address: bigint;
}

/** The numeric form of 4 or 16 bytes. */
export function ipAddressOf(bytes: Uint8Array): IpAddress {
  let value = 0n;
  for (let i = 0; i < bytes.length; i += 2)
    value = (value << 16n) | BigInt(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  return { family: bytes.length === 4 ? 4 : 6, value };
}

/** The bytes of a numeric address. */
export function ipBytesOf(ip: IpAddress): Uint8Array {
  const out = new Uint8Array(ip.family === 4 ? 4 : 16);
  let v = ip.value;
  for (let i = out.length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

const cache = new Map<string, IpAddress | null>();
const CACHE_MAX = 4096;

/** Parses an address to its numeric form; `undefined` if it is not one. Results are frozen. */
export function parseIpAddress(text: string): IpAddress | undefined {
  const hit = cache.get(text);
  if (hit !== undefined) return hit ?? undefined;
  const bytes = parseIp(text);
  const out = bytes === undefined ? undefined : Object.freeze(ipAddressOf(bytes));
  // Decisions see the same few addresses again and again; keep a bounded memo (values are frozen).
  if (typeof text === "string") {
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(text, out ?? null);
  }
  return out;
}

function maskOf(family: 4 | 6, bits: number): bigint {
  const width = family === 4 ? 32 : 128;
  if (bits === 0) return 0n;
  return ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
}

/**
 * Parses `ip` or `ip/bits` the way istiod's `stringToIP` does: a bare address becomes a full-length
 * prefix (/32 or /128); host bits may be set (`10.0.0.1/24`); undefined when unparsable (istiod
 * silently drops such entries).
 */
export function parseIpNet(text: string): IpNet | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  const bytes = slash < 0 ? parseIp(text) : parseCidr(text)?.address;
  if (bytes === undefined) return undefined;
  const { family, value } = ipAddressOf(bytes);
  const bits = slash < 0 ? bytes.length * 8 : Number(text.slice(slash + 1));
  return { family, network: value & maskOf(family, bits), bits, address: value };
}

/** True if `ip` lies in `net` (same family only; no argument check, see `isIpNet`/`isIpAddress`). */
export function ipNetContains(net: IpNet, ip: IpAddress): boolean {
  return net.family === ip.family && (ip.value & maskOf(net.family, net.bits)) === net.network;
}

/** `toCanonical` for the numeric form. */
export function canonicalIpAddress(ip: IpAddress): IpAddress {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn)
    return Object.freeze({ family: 4, value: ip.value & 0xffff_ffffn });
  return ip;
}

/**
 * The IPv4 prefix an IPv6 prefix inside `::ffff:0:0/96` stands for (`::ffff:10.0.0.0/104` →
 * `10.0.0.0/8`), or undefined. Real ztunnel never matches such a prefix against a canonical IPv4
 * peer, so callers use this only where matching more is the side that denies.
 */
export function ipv4Equivalent(net: IpNet): IpNet | undefined {
  if (net.family !== 6 || net.bits < 96 || net.network >> 32n !== 0xffffn) return undefined;
  return {
    family: 4,
    network: net.network & 0xffff_ffffn,
    bits: net.bits - 96,
    address: net.address & 0xffff_ffffn,
  };
}

/** True if `v` is a well-formed `IpAddress` (a family and a value that fits it). */
export function isIpAddress(v: unknown): v is IpAddress {
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

/** True if `v` is a well-formed `IpNet` (its network fits its family, `bits` is in range). */
export function isIpNet(v: unknown): v is IpNet {
  if (typeof v !== "object" || v === null) return false;
  const o = v as IpNet;
  return (
    isIpAddress({ family: o.family, value: o.network }) &&
    Number.isInteger(o.bits) &&
    o.bits >= 0 &&
    o.bits <= (o.family === 4 ? 32 : 128)
  );
}

/** Formats a numeric address (as `formatIp`). */
export function formatIpAddress(ip: IpAddress, options?: FormatIpOptions): string {
  return formatIp(ipBytesOf(ip), options) as string;
}

/** Formats a prefix as `address/bits`, keeping host bits as written (like Go's `netip.Prefix`). */
export function formatIpNet(net: IpNet, options?: FormatIpOptions): string {
  return `${formatIpAddress({ family: net.family, value: net.address }, options)}/${net.bits}`;
}
