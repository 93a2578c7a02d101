import { describe, expect, it } from "vitest";
import { formatAuthority, parseAuthority } from "./authority.js";
import { HboneError } from "./errors.js";

describe("parseAuthority", () => {
  it("parses the three forms ztunnel sends", () => {
    expect(parseAuthority("10.0.0.2:8080")).toEqual({
      kind: "ip",
      host: "10.0.0.2",
      port: 8080,
      family: 4,
    });
    expect(parseAuthority("[fd00::2]:8080")).toEqual({
      kind: "ip",
      host: "fd00::2",
      port: 8080,
      family: 6,
    });
    expect(parseAuthority("echo.ns.svc.cluster.local:80")).toEqual({
      kind: "hostname",
      host: "echo.ns.svc.cluster.local",
      port: 80,
    });
  });
  it.each([
    "",
    "10.0.0.2",
    "10.0.0.2:",
    "10.0.0.2:0",
    "10.0.0.2:65536",
    "10.0.0.2:80a",
    "fd00::2:80",
    "[fd00::2]",
    "[10.0.0.1]:80",
    "[fd00::2]80",
    "300.1.1.1:80",
    "bad host:80",
    "-bad.example:80",
    "a..b:80",
    ":80",
    // a zone names an interface of the sender, meaningless at the other end
    "[fe80::1%eth0]:80",
  ])("rejects %j", (v) => {
    expect(() => parseAuthority(v)).toThrow(HboneError);
    try {
      parseAuthority(v);
    } catch (e) {
      expect((e as HboneError).code).toBe("ERR_HBONE_BAD_AUTHORITY");
    }
  });
  it("formats IPv6 in brackets and round-trips", () => {
    expect(formatAuthority({ host: "fd00::2", port: 15008 })).toBe("[fd00::2]:15008");
    expect(formatAuthority({ host: "[fd00::2]", port: 1 })).toBe("[fd00::2]:1");
    expect(formatAuthority({ host: "10.1.2.3", port: 80 })).toBe("10.1.2.3:80");
    expect(formatAuthority({ host: "svc.ns.svc.cluster.local", port: 80 })).toBe(
      "svc.ns.svc.cluster.local:80",
    );
    expect(() => formatAuthority({ host: "10.1.2.3", port: 0 })).toThrow(HboneError);
  });
});
