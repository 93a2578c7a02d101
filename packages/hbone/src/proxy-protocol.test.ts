import { describe, expect, it } from "vitest";
import { HboneError } from "./errors.js";
import { decodeProxyV2, encodeProxyV2, PROXY_TLV_PEER_IDENTITY } from "./proxy-protocol.js";

const ID = "spiffe://cluster.local/ns/default/sa/client";

describe("PROXY protocol v2", () => {
  it("encodes IPv4 with TLV 0xD0 byte for byte", () => {
    const b = encodeProxyV2({
      source: { address: "10.0.0.1", port: 4000 },
      destination: { address: "10.0.0.2", port: 8080 },
      identity: ID,
    });
    const id = Buffer.from(ID);
    const expected = Buffer.concat([
      Buffer.from("0d0a0d0a000d0a515549540a", "hex"),
      Buffer.from([0x21, 0x11]),
      Buffer.from([0, 12 + 3 + id.length]),
      Buffer.from([10, 0, 0, 1, 10, 0, 0, 2, 0x0f, 0xa0, 0x1f, 0x90]),
      Buffer.from([0xd0, 0, id.length]),
      id,
    ]);
    expect(b.equals(expected)).toBe(true);
    const d = decodeProxyV2(b);
    expect(d?.length).toBe(b.length);
    expect(d?.header).toMatchObject({
      command: "PROXY",
      source: { address: "10.0.0.1", port: 4000 },
      destination: { address: "10.0.0.2", port: 8080 },
      identity: ID,
    });
    expect(d?.header.tlvs[0]?.type).toBe(PROXY_TLV_PEER_IDENTITY);
  });
  it("round-trips IPv6 and mixed families (v4 mapped)", () => {
    const b = encodeProxyV2({
      source: { address: "fd00::1", port: 1 },
      destination: { address: "10.0.0.2", port: 2 },
      identity: ID,
    });
    expect(b[13]).toBe(0x21);
    const d = decodeProxyV2(b);
    expect(d?.header.source).toEqual({ address: "fd00::1", port: 1 });
    expect(d?.header.destination).toEqual({ address: "::ffff:a00:2", port: 2 });
    const full = encodeProxyV2({
      source: { address: "2001:db8:1:2:3:4:5:6", port: 9 },
      destination: { address: "::1", port: 10 },
    });
    expect(decodeProxyV2(full)?.header.source?.address).toBe("2001:db8:1:2:3:4:5:6");
    expect(decodeProxyV2(full)?.header.destination?.address).toBe("::1");
  });
  it("waits for more bytes, keeps trailing data, rejects garbage", () => {
    const b = encodeProxyV2({
      source: { address: "1.1.1.1", port: 1 },
      destination: { address: "2.2.2.2", port: 2 },
      identity: ID,
    });
    for (let i = 0; i < b.length; i++) expect(decodeProxyV2(b.subarray(0, i))).toBeUndefined();
    expect(decodeProxyV2(Buffer.concat([b, Buffer.from("GET /")]))?.length).toBe(b.length);
    expect(() => decodeProxyV2(Buffer.from("GET / HTTP/1.1\r\n"))).toThrow(HboneError);
    const bad = Buffer.from(b);
    bad[12] = 0x31;
    expect(() => decodeProxyV2(bad)).toThrow(HboneError);
    const trunc = Buffer.from(b);
    trunc.writeUInt16BE(b.length - 16 - 2, 14);
    expect(() => decodeProxyV2(trunc)).toThrow(HboneError);
    expect(() =>
      encodeProxyV2({
        source: { address: "host", port: 1 },
        destination: { address: "1.1.1.1", port: 1 },
      }),
    ).toThrow(HboneError);
  });
  it("encodes LOCAL without addresses", () => {
    const d = decodeProxyV2(encodeProxyV2({ command: "LOCAL" }));
    expect(d?.header).toEqual({ command: "LOCAL", tlvs: [] });
  });
});
