import * as owner from "@ambientkit/xds-types/ip";
import { describe, expect, it } from "vitest";
import { AuthzError } from "./errors.js";
import { canonicalIp, contains, parseIp, parsePrefix, prefixContains } from "./ip.js";

// The parsing and matching cases live with the owner (xds-types' ip.test.ts, "numeric form").
describe("authz's IP names are the owner's numeric form", () => {
  it("parseIp, parsePrefix, contains and canonicalIp are xds-types' functions", () => {
    expect(parseIp).toBe(owner.parseIpAddress);
    expect(parsePrefix).toBe(owner.parseIpNet);
    expect(contains).toBe(owner.ipNetContains);
    expect(canonicalIp).toBe(owner.canonicalIpAddress);
  });
  it("prefixContains matches as contains does and refuses hand-made arguments", () => {
    const p = parsePrefix("10.0.2.1/24");
    const a = parseIp("10.0.2.200");
    expect(p && a && prefixContains(p, a)).toBe(true);
    expect(() =>
      prefixContains({ family: 4, network: 1n << 40n, bits: 8, address: 0n }, a as never),
    ).toThrow(AuthzError);
    expect(() => prefixContains(p as never, { family: 6, value: -1n })).toThrow(AuthzError);
  });
});
