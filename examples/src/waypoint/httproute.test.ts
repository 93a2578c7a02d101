import { describe, expect, it } from "vitest";
import type { HttpRoute } from "../mesh/httproute-types.js";
import { seededRandom } from "../mesh/state.js";
import {
  applyHeaderModifier,
  matches,
  parseGatewayDuration,
  pickBackend,
  selectRule,
} from "./httproute.js";

const req = (url: string, method = "GET", headers: Record<string, string> = {}) => ({
  url,
  method,
  headers,
});

describe("HTTPRoute matching", () => {
  it("matches paths as Gateway API defines them", () => {
    expect(matches({ path: { type: "PathPrefix", value: "/api" } }, req("/api"))).toBe(true);
    expect(matches({ path: { type: "PathPrefix", value: "/api" } }, req("/api/v1?x=1"))).toBe(true);
    expect(matches({ path: { type: "PathPrefix", value: "/api/" } }, req("/api/v1"))).toBe(true);
    expect(matches({ path: { type: "PathPrefix", value: "/api" } }, req("/apis"))).toBe(false);
    expect(matches({ path: { type: "Exact", value: "/a" } }, req("/a/"))).toBe(false);
    expect(
      matches({ path: { type: "RegularExpression", value: "/v[0-9]+/.*" } }, req("/v2/x")),
    ).toBe(true);
    expect(matches({}, req("/anything"))).toBe(true);
  });

  it("matches method, headers and query parameters together", () => {
    const m = {
      method: "POST",
      headers: [{ name: "X-Env", value: "canary" }],
      queryParams: [{ name: "debug", value: "1" }],
    };
    expect(matches(m, req("/?debug=1", "POST", { "x-env": "canary" }))).toBe(true);
    expect(matches(m, req("/?debug=1", "GET", { "x-env": "canary" }))).toBe(false);
    expect(matches(m, req("/?debug=2", "POST", { "x-env": "canary" }))).toBe(false);
    expect(matches(m, req("/?debug=1", "POST", {}))).toBe(false);
  });

  it("picks the most specific rule across rules", () => {
    const route: HttpRoute = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "r", namespace: "ns" },
      spec: {
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/" } }],
            backendRefs: [{ name: "root" }],
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/api" } }],
            backendRefs: [{ name: "api" }],
          },
          {
            matches: [{ path: { type: "Exact", value: "/api/health" } }],
            backendRefs: [{ name: "health" }],
          },
        ],
      },
    };
    expect(selectRule([route], req("/x"))?.rule.backendRefs?.[0]?.name).toBe("root");
    expect(selectRule([route], req("/api/users"))?.rule.backendRefs?.[0]?.name).toBe("api");
    expect(selectRule([route], req("/api/health"))?.rule.backendRefs?.[0]?.name).toBe("health");
    expect(selectRule([route], req("/api/health"))?.routeKey).toBe("ns/r");
  });

  it("splits by weight and never picks weight 0", () => {
    const rnd = seededRandom(1);
    const refs = [
      { name: "a", weight: 3 },
      { name: "b", weight: 1 },
      { name: "c", weight: 0 },
    ];
    const n: Record<string, number> = {};
    for (let i = 0; i < 4000; i++) {
      const r = pickBackend(refs, rnd)?.name ?? "";
      n[r] = (n[r] ?? 0) + 1;
    }
    expect(n.c).toBeUndefined();
    expect(Math.abs((n.a ?? 0) / 4000 - 0.75)).toBeLessThan(0.05);
    expect(pickBackend([{ name: "z", weight: 0 }], rnd)).toBeUndefined();
    // an injected random picks exactly
    expect(pickBackend(refs, () => 0.74)?.name).toBe("a");
    expect(pickBackend(refs, () => 0.76)?.name).toBe("b");
  });

  it("applies header modifiers and parses timeouts", () => {
    const h: Record<string, string | string[] | undefined> = { a: "1", b: "2", c: "3" };
    applyHeaderModifier(h, {
      set: [{ name: "A", value: "x" }],
      add: [{ name: "b", value: "y" }],
      remove: ["c"],
    });
    expect(h).toEqual({ a: "x", b: "2,y" });
    expect(parseGatewayDuration("10s")).toBe(10_000);
    expect(parseGatewayDuration("1m30s")).toBe(90_000);
    expect(parseGatewayDuration("250ms")).toBe(250);
    expect(parseGatewayDuration("0s")).toBeUndefined();
    expect(parseGatewayDuration(undefined)).toBeUndefined();
  });
});
