import { isIP } from "node:net";
import { describe, expect, it } from "vitest";
import { cidrContains, formatCidr, formatIp, parseCidr, parseIp } from "./ip.js";

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
