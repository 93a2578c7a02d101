import { describe, expect, it } from "vitest";
import { buildConnectHeaders } from "./client.js";
import { HboneError } from "./errors.js";
import {
  formatBaggage,
  formatForwarded,
  formatTraceParent,
  newTraceParent,
  parseBaggage,
  parseForwarded,
  parseTraceParent,
} from "./headers.js";

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

describe("baggage", () => {
  it("omits empty values and round-trips", () => {
    const b = {
      "k8s.namespace.name": "default",
      "k8s.deployment.name": "echo",
      "service.version": "",
      "cloud.region": "eu west",
    };
    const text = formatBaggage(b);
    expect(text).toBe("k8s.namespace.name=default,k8s.deployment.name=echo,cloud.region=eu%20west");
    expect(parseBaggage(text)).toEqual({
      "k8s.namespace.name": "default",
      "k8s.deployment.name": "echo",
      "cloud.region": "eu west",
    });
    expect(parseBaggage("a=1;prop=x, bad, =2,b=%zz")).toEqual({ a: "1", b: "%zz" });
  });
});

describe("traceparent", () => {
  it("makes random version-00 values of length 55", () => {
    const a = formatTraceParent(newTraceParent());
    const b = formatTraceParent(newTraceParent());
    expect(a).toHaveLength(55);
    expect(a).not.toBe(b);
    expect(a).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(parseTraceParent(a)?.flags).toBe(0);
  });
  it("ignores malformed values", () => {
    expect(parseTraceParent("00-0000")).toBeUndefined();
    expect(parseTraceParent(`00-${"0".repeat(32)}-${"1".repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceParent(`01-${"a".repeat(32)}-${"1".repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceParent(`00-${"a".repeat(32)}-${"1".repeat(16)}-01`)).toEqual({
      traceId: "a".repeat(32),
      parentId: "1".repeat(16),
      flags: 1,
    });
  });
});

describe("CONNECT headers", () => {
  it("carries authority, baggage, forwarded, traceparent and x-forwarded-network", () => {
    const h = buildConnectHeaders({
      authority: "echo.ns.svc.cluster.local:80",
      baggage: { "k8s.namespace.name": "ns" },
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
