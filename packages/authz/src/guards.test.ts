import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuthzError } from "./errors.js";
import { fullDecisionInputCheck, quickDecisionInput } from "./guards.js";
import { REQ, WP_CONN } from "./helpers.testutil.js";

const VALID = {
  enforcement: "waypoint",
  workload: { namespace: "foo", labels: { app: "httpbin" }, serviceAccount: "sa" },
  waypoint: { name: "waypoint", namespace: "foo", serviceAccount: "wp" },
  service: { kind: "Service", name: "httpbin", namespace: "foo", protocol: "HTTP", port: 80 },
  connection: { ...WP_CONN, sni: "x" },
  request: {
    ...REQ,
    headers: { a: "1", b: ["2", "3"] },
    jwt: { iss: "i" },
    filterMetadata: { f: {} },
  },
  customProviders: { ext: "allow" },
};

function leafPaths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== "object" || v === null) return [];
  const out: (string | number)[][] = [];
  for (const [k, x] of Object.entries(v)) {
    const p = [...prefix, Array.isArray(v) ? Number(k) : k];
    out.push(p, ...leafPaths(x, p));
  }
  return out;
}

describe("decision input checks", () => {
  it("the quick accept path accepts exactly what the full check accepts (2,000 mutations)", () => {
    const paths = leafPaths(VALID);
    fc.assert(
      fc.property(fc.nat(), fc.option(fc.anything(), { nil: undefined }), (pick, value) => {
        const input = JSON.parse(JSON.stringify(VALID)) as Record<string, unknown>;
        const path = paths[pick % paths.length] as (string | number)[];
        let cur = input as Record<string | number, unknown>;
        for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
        const last = path.at(-1) as string | number;
        if (value === undefined) delete cur[last];
        else cur[last] = value;
        const quick = quickDecisionInput(input);
        let full: unknown;
        try {
          full = fullDecisionInputCheck(input);
        } catch (e) {
          expect(e).toBeInstanceOf(AuthzError);
          full = "rejected";
        }
        if (quick === undefined) expect(full).toBe("rejected");
        else expect(full).toEqual(quick);
      }),
      { numRuns: 2000 },
    );
  });
  it("the full check names the field", () => {
    expect(() =>
      fullDecisionInputCheck({ ...VALID, connection: { ...VALID.connection, sourceIp: "x" } }),
    ).toThrow(
      'invalid decision input (see DecisionInput): connection.sourceIp is not an IP address: "x"',
    );
  });
});
