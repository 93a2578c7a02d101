import { formatIp, parseIp } from "@ambientkit/xds-types/ip";
import { HboneError } from "./errors.js";

/** The 12-byte PROXY protocol v2 signature. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** TLV type ztunnel uses for the source SPIFFE identity (`PROXY_PROTOCOL_AUTHORITY_TLV`). */
export const PROXY_TLV_PEER_IDENTITY = 0xd0;
/** TLV type the workload API documents for the target service hostname (ztunnel doesn't write it yet). */
export const PROXY_TLV_SERVICE_HOST = 0xd1;

export interface ProxyHeader {
  /** `PROXY` for a proxied connection, `LOCAL` for a health check (no addresses). */
  command: "PROXY" | "LOCAL";
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
  /** The source SPIFFE identity, TLV 0xD0. */
  identity?: string;
  /** Every TLV, including 0xD0, in order. */
  tlvs: { type: number; value: Buffer }[];
}

function perr(msg: string): HboneError {
  return new HboneError("ERR_HBONE_PROXY_PROTOCOL", msg);
}

// Node's isIP accepts a zone id (`fe80::1%eth0`, as link-local peers carry one); PROXY v2 has no
// room for it, so it is dropped and the address kept.
const ZONE = /%[0-9a-zA-Z.:-]+$/;

function ipBytes(address: string, family: 4 | 6): Uint8Array {
  const bytes =
    parseIp(address) ?? (address.includes(":") ? parseIp(address.replace(ZONE, "")) : undefined);
  if (bytes === undefined) throw perr(`${address} is not an IP address; PROXY v2 carries IPs only`);
  if (family === 4 || bytes.length === 16) return bytes;
  // An IPv4 end beside an IPv6 one travels IPv4-mapped.
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(bytes, 12);
  return mapped;
}

/** Decoded addresses keep the IPv4-mapped form as hex groups (`::ffff:a00:2`). */
function addressText(bytes: Uint8Array): string {
  return formatIp(bytes, { ipv4Mapped: "hex" }) as string; // 4 or 16 bytes by the family byte
}

/**
 * Encodes a PROXY protocol v2 header (TCP over IPv4 or IPv6) with TLV 0xD0 carrying the source
 * SPIFFE identity, as ztunnel writes it before the application bytes.
 */
export function encodeProxyV2(header: {
  command?: "PROXY" | "LOCAL";
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
  identity?: string;
  tlvs?: { type: number; value: Uint8Array }[];
}): Buffer {
  const command = header.command ?? "PROXY";
  const tlvParts: Buffer[] = [];
  const tlvs = [
    ...(header.identity !== undefined
      ? [{ type: PROXY_TLV_PEER_IDENTITY, value: Buffer.from(header.identity, "utf8") }]
      : []),
    ...(header.tlvs ?? []),
  ];
  for (const t of tlvs) {
    if (t.type < 0 || t.type > 255 || t.value.length > 0xffff)
      throw perr(`TLV 0x${t.type.toString(16)} is out of range`);
    const h = Buffer.alloc(3);
    h.writeUInt8(t.type, 0);
    h.writeUInt16BE(t.value.length, 1);
    tlvParts.push(h, Buffer.from(t.value));
  }
  let famByte = 0x00;
  let addr = Buffer.alloc(0);
  if (command === "PROXY") {
    const { source, destination } = header;
    if (!source || !destination)
      throw perr("a PROXY command needs source and destination addresses");
    for (const p of [source.port, destination.port]) {
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw perr(`port ${p} is out of range`);
    }
    const v4 = parseIp(source.address)?.length === 4 && parseIp(destination.address)?.length === 4;
    const fam: 4 | 6 = v4 ? 4 : 6;
    famByte = v4 ? 0x11 : 0x21;
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(source.port, 0);
    ports.writeUInt16BE(destination.port, 2);
    addr = Buffer.concat([ipBytes(source.address, fam), ipBytes(destination.address, fam), ports]);
  }
  const body = Buffer.concat([addr, ...tlvParts]);
  if (body.length > 0xffff) throw perr("the header is longer than 65535 bytes");
  const fixed = Buffer.alloc(4);
  fixed.writeUInt8(command === "PROXY" ? 0x21 : 0x20, 0);
  fixed.writeUInt8(famByte, 1);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, fixed, body]);
}

/**
 * Decodes a PROXY v2 header at the start of `data`. Returns `undefined` while more bytes are
 * needed, or the header and how many bytes it used. Malformed input throws ERR_HBONE_PROXY_PROTOCOL.
 */
export function decodeProxyV2(
  data: Uint8Array,
): { header: ProxyHeader; length: number } | undefined {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const sigLen = Math.min(buf.length, 12);
  if (!buf.subarray(0, sigLen).equals(PROXY_V2_SIGNATURE.subarray(0, sigLen)))
    throw perr("missing the PROXY v2 signature");
  if (buf.length < 16) return undefined;
  const verCmd = buf.readUInt8(12);
  if (verCmd >> 4 !== 2) throw perr(`unsupported PROXY version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw perr(`unknown PROXY command ${cmd}`);
  const fam = buf.readUInt8(13);
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return undefined;
  const body = buf.subarray(16, 16 + len);
  const header: ProxyHeader = { command: cmd === 1 ? "PROXY" : "LOCAL", tlvs: [] };
  let off = 0;
  if (fam === 0x11 || fam === 0x21) {
    const ipLen = fam === 0x11 ? 4 : 16;
    if (body.length < ipLen * 2 + 4) throw perr("address block shorter than its family needs");
    if (cmd === 1) {
      header.source = {
        address: addressText(body.subarray(0, ipLen)),
        port: body.readUInt16BE(ipLen * 2),
      };
      header.destination = {
        address: addressText(body.subarray(ipLen, ipLen * 2)),
        port: body.readUInt16BE(ipLen * 2 + 2),
      };
    }
    off = ipLen * 2 + 4;
  } else if (fam === 0x00) {
    if (cmd === 1) throw perr("a PROXY command with AF_UNSPEC is not supported");
  } else if (cmd === 1) {
    throw perr(`unsupported address family/protocol 0x${fam.toString(16)}`);
  } else {
    off = body.length;
  }
  while (off < body.length) {
    if (body.length - off < 3) throw perr("truncated TLV");
    const type = body.readUInt8(off);
    const tlen = body.readUInt16BE(off + 1);
    if (off + 3 + tlen > body.length) throw perr(`TLV 0x${type.toString(16)} overruns the header`);
    const value = Buffer.from(body.subarray(off + 3, off + 3 + tlen));
    header.tlvs.push({ type, value });
    if (type === PROXY_TLV_PEER_IDENTITY) header.identity = value.toString("utf8");
    off += 3 + tlen;
  }
  return { header, length: 16 + len };
}
