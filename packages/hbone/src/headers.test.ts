import { describe, expect, it } from "vitest";
import { buildConnectHeaders } from "./client.js";
import { HboneError } from "./errors.js";
import { formatForwarded, parseForwarded, randomTraceparentHeader } from "./headers.js";

describe("forwarded", () => {
  it("formats as ztunnel does", () => {
    expect(formatForwarded({ host: "10.0.0.1", port: 4000 })).toBe('for="10.0.0.1:4000"');
    expect(formatForwarded({ host: "fd00::1", port: 4000 }, "echo.ns.svc.cluster.local")).toBe(
      'for="[fd00::1]:4000";host=echo.ns.svc.cluster.local',
    );
    expect(() => formatForwarded("1.2.3.4:5\r\nx: y")).toThrow(HboneError);
  });
  it("parses for= and host=", () => {
    expect(parseForwarded('for="[fd00::1]:4000";host=echo.ns.svc.cluster.local')).toEqual({
      for: "[fd00::1]:4000",
      host: "echo.ns.svc.cluster.local",
    });
    expect(parseForwarded("host=a.b;for=1.2.3.4, for=9.9.9.9")).toEqual({
      for: "1.2.3.4",
      host: "a.b",
    });
    expect(parseForwarded(undefined)).toEqual({});
  });
});

describe("traceparent", () => {
  it("makes random version-00 headers with non-zero ids, as ztunnel sends per connection", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const t = randomTraceparentHeader();
      expect(t).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      expect(t.slice(3, 35)).not.toBe("0".repeat(32));
      seen.add(t);
    }
    expect(seen.size).toBe(100);
  });
});

describe("CONNECT headers", () => {
  it("carries authority, baggage, forwarded, traceparent and x-forwarded-network", () => {
    const h = buildConnectHeaders({
      authority: "echo.ns.svc.cluster.local:80",
      baggage: "k8s.namespace.name=ns",
      forwarded: { for: "10.0.0.1:3333", host: "echo.ns.svc.cluster.local" },
      forwardedNetwork: "net-a",
    });
    expect(h[":method"]).toBe("CONNECT");
    expect(h[":authority"]).toBe("echo.ns.svc.cluster.local:80");
    expect(h[":path"]).toBeUndefined();
    expect(h.baggage).toBe("k8s.namespace.name=ns");
    expect(h.forwarded).toBe('for="10.0.0.1:3333";host=echo.ns.svc.cluster.local');
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(h["x-forwarded-network"]).toBe("net-a");
    expect(
      buildConnectHeaders({ authority: "1.2.3.4:5", traceparent: false }).traceparent,
    ).toBeUndefined();
  });
  it("refuses bad authorities and header injection", () => {
    expect(() => buildConnectHeaders({ authority: "nope" })).toThrow(HboneError);
    expect(() =>
      buildConnectHeaders({ authority: "1.2.3.4:5", headers: { "x-a": "b\r\nc: d" } }),
    ).toThrow(HboneError);
    expect(() =>
      buildConnectHeaders({ authority: "1.2.3.4:5", headers: { ":path": "/" } }),
    ).toThrow(HboneError);
  });
});
