import { describe, expect, it } from "vitest";
import { formatIp, formatPrefix, parseIp, parsePrefix, prefixContains } from "./ip.js";

const ip = (s: string) => {
  const a = parseIp(s);
  if (!a) throw new Error(`not an IP: ${s}`);
  return a;
};

describe("universal IP/CIDR matcher (Go netip parsing rules)", () => {
  it("parses IPv4 and rejects what netip.ParseAddr rejects", () => {
    expect(formatIp(ip("10.0.2.20"))).toBe("10.0.2.20");
    for (const bad of ["10.0.2", "10.0.2.256", "010.0.0.1", "1.2.3.4.5", "", "a.b.c.d", "1.2.3.4/"])
      expect(parseIp(bad)).toBeUndefined();
  });
  it("parses IPv6 forms: compressed, full, embedded IPv4; rejects zones and double ::", () => {
    expect(formatIp(ip("fd00:10:2:0:0:0:0:20"))).toBe("fd00:10:2::20");
    expect(formatIp(ip("::"))).toBe("::");
    expect(formatIp(ip("::ffff:10.0.0.1"))).toBe("::ffff:a00:1");
    expect(parseIp("fe80::1%eth0")).toBeUndefined();
    expect(parseIp("1::2::3")).toBeUndefined();
    expect(parseIp("12345::")).toBeUndefined();
  });
  it("prefixes keep host bits for printing, mask them for matching", () => {
    const p = parsePrefix("10.0.2.1/24");
    expect(p && formatPrefix(p)).toBe("10.0.2.1/24");
    expect(p && prefixContains(p, ip("10.0.2.200"))).toBe(true);
    expect(p && prefixContains(p, ip("10.0.3.1"))).toBe(false);
    expect(parsePrefix("10.0.0.0/33")).toBeUndefined();
    expect(parsePrefix("10.0.0.0/08")).toBeUndefined();
    expect(parsePrefix("fd00::/129")).toBeUndefined();
    expect(parsePrefix("10.0.0.1")?.bits).toBe(32);
    expect(parsePrefix("fd00::1")?.bits).toBe(128);
  });
  it("families never cross, /0 matches its family only", () => {
    const all4 = parsePrefix("0.0.0.0/0");
    const all6 = parsePrefix("::/0");
    expect(all4 && prefixContains(all4, ip("::ffff:10.0.0.1"))).toBe(false);
    expect(all6 && prefixContains(all6, ip("10.0.0.1"))).toBe(false);
    expect(all6 && prefixContains(all6, ip("2001:db8::1"))).toBe(true);
    const v6 = parsePrefix("fd00:10:2::/64");
    expect(v6 && prefixContains(v6, ip("fd00:10:2::20"))).toBe(true);
    expect(v6 && prefixContains(v6, ip("fd00:10:3::20"))).toBe(false);
  });
});
