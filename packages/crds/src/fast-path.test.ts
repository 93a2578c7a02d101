// The first-error validator (fast-path.ts) against the reporting pipeline it stands in for:
// ajv all-errors on the reporting schema plus the list-type walk. The fast path may only be
// stricter, never looser; on real documents and their mutations the verdicts must be the same.
import { describe, expect, it } from "vitest";
import { ajvValidator, lookupKind, structuralSchema } from "./registry.js";
import { applyDefaults, checkRules } from "./structural.js";
import { loadCorpus } from "./testdata/corpus.js";
import type { GatewayApiChannel, IstioVersion } from "./types.js";

interface Verdicts {
  fast: boolean;
  reporting: boolean;
}

function schemaIndex(
  doc: Record<string, unknown>,
  istio: IstioVersion,
  gatewayApi: GatewayApiChannel,
): number | undefined {
  const apiVersion = String(doc.apiVersion);
  const slash = apiVersion.lastIndexOf("/");
  const group = apiVersion.slice(0, slash);
  const family = group.endsWith("istio.io") ? "istio" : "gateway-api";
  const crd = lookupKind(family, group, String(doc.kind), istio, gatewayApi);
  return crd?.versions.find((v) => v.name === apiVersion.slice(slash + 1))?.schema;
}

function verdicts(i: number, doc: unknown): Verdicts {
  const schema = structuralSchema(i);
  const value = applyDefaults(schema, doc);
  const issues: Parameters<typeof checkRules>[3] = [];
  checkRules(schema, value, [], issues, false, false, true);
  return {
    fast: ajvValidator(i, "fast")(value),
    reporting: ajvValidator(i, "full")(value) && issues.length === 0,
  };
}

/** Deterministic mutations of a document: unknown fields, wrong types, duplicated list items. */
function* mutations(doc: unknown, limit: number): Generator<unknown> {
  const sites: Array<{ path: Array<string | number>; value: unknown }> = [];
  const walk = (v: unknown, path: Array<string | number>): void => {
    sites.push({ path, value: v });
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) walk(v[i], [...path, i]);
    } else if (typeof v === "object" && v !== null) {
      for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    }
  };
  walk(doc, []);
  const replaced = (path: Array<string | number>, fn: (v: unknown) => unknown): unknown => {
    const copy = structuredClone(doc) as Record<string | number, unknown>;
    if (path.length === 0) return fn(copy);
    let node = copy;
    for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
    const last = path[path.length - 1] as string | number;
    node[last] = fn(node[last]);
    return copy;
  };
  let n = 0;
  for (const { path, value } of sites) {
    if (n >= limit) return;
    if (Array.isArray(value)) {
      if (value.length > 0) {
        yield replaced(path, (v) => [...(v as unknown[]), structuredClone((v as unknown[])[0])]);
        n++;
      }
    } else if (typeof value === "object" && value !== null) {
      yield replaced(path, (v) => ({ ...(v as object), zzUnknownField: 1 }));
      n++;
    } else {
      const wrong = typeof value === "string" ? 7 : typeof value === "number" ? "7" : 1;
      yield replaced(path, () => wrong);
      if (typeof value === "string") yield replaced(path, () => "");
      n++;
    }
  }
}

describe("fast path", () => {
  const corpus = loadCorpus().filter((d) => d.expect !== "analyzer-input");

  it("gives the reporting pipeline's verdict on every corpus document", () => {
    const differ: string[] = [];
    let checked = 0;
    for (const d of corpus) {
      for (const gatewayApi of ["experimental", "standard"] as const) {
        const i = schemaIndex(d.doc, d.istio, gatewayApi);
        if (i === undefined) continue;
        const v = verdicts(i, d.doc);
        checked++;
        if (v.fast !== v.reporting) differ.push(`${d.key} ${JSON.stringify(v)}`);
      }
    }
    expect(checked).toBeGreaterThan(2500);
    expect(differ).toEqual([]);
  });

  it("gives the same verdict on mutations of valid documents, and never a looser one", () => {
    const looser: string[] = [];
    const stricter: string[] = [];
    let rejected = 0;
    let total = 0;
    for (const d of corpus.filter((c) => c.expect === "valid")) {
      const i = schemaIndex(d.doc, d.istio, "experimental");
      if (i === undefined) continue;
      for (const m of mutations(d.doc, 12)) {
        const v = verdicts(i, m);
        total++;
        if (!v.reporting) rejected++;
        if (v.fast && !v.reporting) looser.push(`${d.key}: ${JSON.stringify(m).slice(0, 300)}`);
        if (!v.fast && v.reporting) stricter.push(`${d.key}: ${JSON.stringify(m).slice(0, 300)}`);
      }
    }
    expect(total).toBeGreaterThan(10_000);
    // The mutations must actually exercise rejections, not only harmless edits.
    expect(rejected).toBeGreaterThan(total / 3);
    expect(looser).toEqual([]);
    expect(stricter).toEqual([]);
  });

  it("rewrites what it claims to, with the reporting validator's verdicts", () => {
    const ap = schemaIndex(
      { apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy" },
      "1.30",
      "experimental",
    ) as number;
    const base = { apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy" };
    // at most one of exact / prefix / regex (protoc-gen-crd's oneOf)
    const vs = schemaIndex(
      { apiVersion: "networking.istio.io/v1", kind: "VirtualService" },
      "1.30",
      "experimental",
    ) as number;
    const withUri = (uri: object) => ({
      apiVersion: "networking.istio.io/v1",
      kind: "VirtualService",
      metadata: { name: "a" },
      spec: { hosts: ["a"], http: [{ match: [{ uri }], route: [{ destination: { host: "a" } }] }] },
    });
    expect(verdicts(vs, withUri({ exact: "/a", prefix: "/b" }))).toEqual({
      fast: false,
      reporting: false,
    });
    expect(verdicts(vs, withUri({ prefix: "/b" }))).toEqual({ fast: true, reporting: true });
    expect(verdicts(vs, withUri({}))).toEqual({ fast: true, reporting: true });
    // unknown field, and an own key holding undefined (fast: stricter; the reporting one decides)
    expect(verdicts(ap, { ...base, spec: { actoin: "DENY" } })).toEqual({
      fast: false,
      reporting: false,
    });
    expect(verdicts(ap, { ...base, spec: { action: undefined } }).reporting).toBe(true);
  });
});
