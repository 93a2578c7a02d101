import { isIP } from "node:net";
import { describe, expect, it } from "vitest";
import {
  canonicalIpAddress,
  canonicalIpText,
  cidrContains,
  formatCidr,
  formatIp,
  formatIpAddress,
  formatIpNet,
  ipNetContains,
  ipv4Equivalent,
  parseCidr,
  parseIp,
  parseIpAddress,
  parseIpNet,
  toCanonical,
} from "./ip.js";

describe("parseIp / formatIp", () => {
  it.each([
    ["0.0.0.0", [0, 0, 0, 0]],
    ["127.0.0.1", [127, 0, 0, 1]],
    ["255.255.255.255", [255, 255, 255, 255]],
  ])("IPv4 %s", (text, bytes) => {
    expect(parseIp(text)).toEqual(new Uint8Array(bytes));
    expect(formatIp(new Uint8Array(bytes))).toBe(text);
  });

  it.each([
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run wins
    ["2001:db8:1:1:1:1:1:0", "2001:db8:1:1:1:1:1:0"], // a single zero group is not compressed
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::ffff:c000:0201", "::ffff:192.0.2.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["fe80::1:2:3:4", "fe80::1:2:3:4"],
  ])("IPv6 %s → %s", (text, canonical) => {
    const b = parseIp(text);
    expect(b?.length).toBe(16);
    expect(formatIp(b as Uint8Array)).toBe(canonical);
    expect(parseIp(canonical)).toEqual(b);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "01.2.3.4",
    "1.2.3.-4",
    " 1.2.3.4",
    "1.2.3.4/32",
    "a.b.c.d",
    ":",
    ":::",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "12345::",
    "fe80::1%eth0",
    "::1.2.3",
    "1.2.3.4::",
    "g::1",
    ":1::",
  ])("rejects %j (as Node's isIP does, except where Rust is stricter)", (text) => {
    expect(parseIp(text)).toBeUndefined();
    if (!text.includes("%")) expect(isIP(text)).toBe(0);
  });

  it("formats only 4 or 16 bytes", () => {
    expect(formatIp(new Uint8Array(5))).toBeUndefined();
    expect(formatIp(new Uint8Array(0))).toBeUndefined();
  });

  it("agrees with Node's parser on a sweep of IPv6 shapes", () => {
    // Every way of writing 8 groups with one zero run compressed.
    const groups = [0x2001, 0xdb8, 0, 0, 0x42, 0, 0, 1];
    for (let start = 0; start < 8; start++) {
      for (let end = start + 1; end <= 8; end++) {
        if (!groups.slice(start, end).every((g) => g === 0)) continue;
        const text = `${groups
          .slice(0, start)
          .map((g) => g.toString(16))
          .join(":")}::${groups
          .slice(end)
          .map((g) => g.toString(16))
          .join(":")}`;
        expect(isIP(text)).toBe(6);
        expect(formatIp(parseIp(text) as Uint8Array)).toBe("2001:db8::42:0:0:1");
      }
    }
  });
});

describe("CIDRs", () => {
  it("parses and formats prefixes of both families, keeping host bits", () => {
    expect(parseCidr("10.0.0.0/8")).toEqual({ address: new Uint8Array([10, 0, 0, 0]), length: 8 });
    expect(formatCidr(parseCidr("10.1.2.3/8") as never)).toBe("10.1.2.3/8");
    expect(formatCidr(parseCidr("2001:DB8::/32") as never)).toBe("2001:db8::/32");
    expect(formatCidr(parseCidr("::/0") as never)).toBe("::/0");
  });
  it.each(["10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/08", "10.0.0.0/-1", "x/8"])(
    "rejects %j",
    (t) => expect(parseCidr(t)).toBeUndefined(),
  );
  it("formatCidr refuses out-of-range lengths", () => {
    expect(formatCidr({ address: new Uint8Array(4), length: 33 })).toBeUndefined();
    expect(formatCidr({ address: new Uint8Array(3), length: 8 })).toBeUndefined();
  });
  it("cidrContains", () => {
    const p = parseCidr("10.1.0.0/15") as never;
    expect(cidrContains(p, parseIp("10.0.255.255") as Uint8Array)).toBe(true);
    expect(cidrContains(p, parseIp("10.1.0.1") as Uint8Array)).toBe(true);
    expect(cidrContains(p, parseIp("10.2.0.0") as Uint8Array)).toBe(false);
    expect(cidrContains(p, parseIp("::a01:1") as Uint8Array)).toBe(false);
    expect(cidrContains(parseCidr("0.0.0.0/0") as never, parseIp("1.2.3.4") as Uint8Array)).toBe(
      true,
    );
    expect(
      cidrContains(parseCidr("2001:db8::/33") as never, parseIp("2001:db8:7fff::1") as Uint8Array),
    ).toBe(true);
    expect(
      cidrContains(parseCidr("2001:db8::/33") as never, parseIp("2001:db8:8000::1") as Uint8Array),
    ).toBe(false);
  });
});

describe("IPv4-mapped addresses (ztunnel's to_canonical)", () => {
  it("toCanonical folds ::ffff:a.b.c.d to its 4 bytes, nothing else", () => {
    expect(toCanonical(parseIp("::ffff:10.0.0.1") as Uint8Array)).toEqual(
      new Uint8Array([10, 0, 0, 1]),
    );
    expect(toCanonical(parseIp("::ffff:a00:1") as Uint8Array)).toEqual(
      new Uint8Array([10, 0, 0, 1]),
    );
    for (const t of ["10.0.0.1", "::1", "::a00:1", "64:ff9b::a00:1", "::fffe:a00:1"])
      expect(toCanonical(parseIp(t) as Uint8Array)).toEqual(parseIp(t));
  });
  it("canonicalIpText: a socket's address as ztunnel reports it", () => {
    expect(canonicalIpText("::ffff:10.0.0.1")).toBe("10.0.0.1");
    expect(canonicalIpText("10.0.0.1")).toBe("10.0.0.1");
    expect(canonicalIpText("fd00::1")).toBe("fd00::1");
    expect(canonicalIpText("fe80::1%eth0")).toBe("fe80::1%eth0");
    expect(canonicalIpText(undefined)).toBe("");
    expect(canonicalIpText("")).toBe("");
  });
  it("formatIp writes them dotted, or as hex groups when asked", () => {
    const b = parseIp("::ffff:10.0.0.2") as Uint8Array;
    expect(formatIp(b)).toBe("::ffff:10.0.0.2");
    expect(formatIp(b, { ipv4Mapped: "hex" })).toBe("::ffff:a00:2");
    expect(formatIp(parseIp("fd00::1") as Uint8Array, { ipv4Mapped: "hex" })).toBe("fd00::1");
  });
});

// The numeric form, as authz's matcher uses it (Go netip parsing rules, as istiod).
describe("numeric form: universal IP/CIDR matcher", () => {
  const ip = (s: string) => {
    const a = parseIpAddress(s);
    if (!a) throw new Error(`not an IP: ${s}`);
    return a;
  };
  const HEX = { ipv4Mapped: "hex" } as const;

  it("parses IPv4 and rejects what netip.ParseAddr rejects", () => {
    expect(formatIpAddress(ip("10.0.2.20"))).toBe("10.0.2.20");
    for (const bad of ["10.0.2", "10.0.2.256", "010.0.0.1", "1.2.3.4.5", "", "a.b.c.d", "1.2.3.4/"])
      expect(parseIpAddress(bad)).toBeUndefined();
    expect(parseIpAddress(7 as never)).toBeUndefined();
  });
  it("parses IPv6 forms: compressed, full, embedded IPv4; rejects zones and double ::", () => {
    expect(formatIpAddress(ip("fd00:10:2:0:0:0:0:20"))).toBe("fd00:10:2::20");
    expect(formatIpAddress(ip("::"))).toBe("::");
    expect(formatIpAddress(ip("::ffff:10.0.0.1"), HEX)).toBe("::ffff:a00:1");
    expect(parseIpAddress("fe80::1%eth0")).toBeUndefined();
    expect(parseIpAddress("1::2::3")).toBeUndefined();
    expect(parseIpAddress("12345::")).toBeUndefined();
  });
  it("results are frozen and memoised", () => {
    expect(Object.isFrozen(ip("10.9.8.7"))).toBe(true);
    expect(parseIpAddress("10.9.8.7")).toBe(parseIpAddress("10.9.8.7"));
  });
  it("prefixes keep host bits for printing, mask them for matching", () => {
    const p = parseIpNet("10.0.2.1/24");
    expect(p && formatIpNet(p)).toBe("10.0.2.1/24");
    expect(p && ipNetContains(p, ip("10.0.2.200"))).toBe(true);
    expect(p && ipNetContains(p, ip("10.0.3.1"))).toBe(false);
    expect(parseIpNet("10.0.0.0/33")).toBeUndefined();
    expect(parseIpNet("10.0.0.0/08")).toBeUndefined();
    expect(parseIpNet("fd00::/129")).toBeUndefined();
    expect(parseIpNet("10.0.0.1")?.bits).toBe(32);
    expect(parseIpNet("fd00::1")?.bits).toBe(128);
  });
  it("families never cross, /0 matches its family only", () => {
    const all4 = parseIpNet("0.0.0.0/0");
    const all6 = parseIpNet("::/0");
    expect(all4 && ipNetContains(all4, ip("::ffff:10.0.0.1"))).toBe(false);
    expect(all6 && ipNetContains(all6, ip("10.0.0.1"))).toBe(false);
    expect(all6 && ipNetContains(all6, ip("2001:db8::1"))).toBe(true);
    const v6 = parseIpNet("fd00:10:2::/64");
    expect(v6 && ipNetContains(v6, ip("fd00:10:2::20"))).toBe(true);
    expect(v6 && ipNetContains(v6, ip("fd00:10:3::20"))).toBe(false);
  });
  it("canonicalIpAddress and ipv4Equivalent fold ::ffff:0:0/96 to IPv4", () => {
    expect(canonicalIpAddress(ip("::ffff:10.0.0.1"))).toEqual(ip("10.0.0.1"));
    expect(canonicalIpAddress(ip("fd00::1"))).toBe(ip("fd00::1"));
    const v4 = ipv4Equivalent(parseIpNet("::ffff:10.0.0.0/104") as never);
    expect(v4 && formatIpNet(v4)).toBe("10.0.0.0/8");
    expect(ipv4Equivalent(parseIpNet("fd00::/104") as never)).toBeUndefined();
    expect(ipv4Equivalent(parseIpNet("10.0.0.0/8") as never)).toBeUndefined();
  });
  it("agrees with the bytes form on every case above", () => {
    for (const t of ["10.0.2.20", "fd00:10:2::20", "::", "::ffff:10.0.0.1", "2001:db8::1"])
      expect(formatIpAddress(ip(t))).toBe(formatIp(parseIp(t) as Uint8Array));
  });
});
