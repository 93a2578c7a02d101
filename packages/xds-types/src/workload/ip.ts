// IP addresses and prefixes as the workload API carries them: 4 or 16 raw bytes on the wire, text
// ("10.0.0.1", "2001:db8::1", "10.0.0.0/8") in LOCAL_XDS YAML. Parsing follows Rust's `IpAddr` /
// `ipnet::IpNet` rules, which ztunnel uses: dotted quads without leading zeros, RFC 4291 IPv6 text
// (with an optional trailing dotted quad), no zone ids, and CIDRs that always carry a prefix length.
// Formatting follows Rust's Display: RFC 5952 for IPv6 (lowercase, longest zero run compressed),
// IPv4-mapped addresses as `::ffff:a.b.c.d`. Universal: no node:net.

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

/** Parses an IPv4 or IPv6 address to 4 or 16 bytes; `undefined` if it is not one. */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(":")) return parseIpv6(text);
  const out = new Uint8Array(4);
  return parseIpv4Into(text, out, 0) ? out : undefined;
}

function formatIpv4(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** Formats 4 or 16 bytes as Rust's `IpAddr` Display does; `undefined` for any other length. */
export function formatIp(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return formatIpv4(bytes, 0);
  if (bytes.length !== 16) return undefined;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++)
    groups.push(((bytes[i * 2] as number) << 8) | (bytes[i * 2 + 1] as number));
  // IPv4-mapped (::ffff:a.b.c.d) is shown dotted, as Rust does.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes, 12)}`;
  }
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

/** Parses `address/length` (both parts required, as ipnet requires). */
export function parseCidr(text: string): IpPrefix | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (address === undefined || !/^(?:0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
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
