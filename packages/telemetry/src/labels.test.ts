import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  canonicalService,
  envoyTcpLabels,
  httpLabels,
  LabelSet,
  namespaceFromPrincipal,
  TcpLabelCache,
  TelemetryError,
  tcpLabels,
  workloadFromKubernetes,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { describe, expect, test } from "vitest";

describe("canonical service (istiod's rule)", () => {
  test.each([
    [{}, "wl", { name: "wl", revision: "latest" }],
    [{ app: "a", version: "v" }, "wl", { name: "a", revision: "v" }],
    [
      { app: "a", "app.kubernetes.io/name": "k", "app.kubernetes.io/version": "kv" },
      "wl",
      { name: "k", revision: "kv" },
    ],
    [
      {
        "service.istio.io/canonical-name": "c",
        "service.istio.io/canonical-revision": "r",
        app: "a",
        version: "v",
      },
      "wl",
      { name: "c", revision: "r" },
    ],
    // A present but empty label still wins (lookup is by presence).
    [{ app: "" }, "wl", { name: "", revision: "latest" }],
  ])("%j → %j", (labels, wl, want) => {
    expect(canonicalService(labels, wl)).toEqual(want);
  });

  test("workloadFromKubernetes builds the SPIFFE identity and honours workload-name", () => {
    expect(
      workloadFromKubernetes({
        workloadName: "deploy",
        namespace: "ns",
        labels: { "service.istio.io/workload-name": "override" },
        serviceAccount: "sa",
        trustDomain: "td.example",
      }),
    ).toEqual({
      workloadName: "override",
      namespace: "ns",
      canonicalService: "override",
      canonicalRevision: "latest",
      identity: "spiffe://td.example/ns/ns/sa/sa",
    });
  });
});

describe("ztunnel derivation quirks", () => {
  test("source_principal comes only from the mTLS identity, never from the xDS workload", () => {
    const src = workloadFromKubernetes({ workloadName: "a", namespace: "n", serviceAccount: "sa" });
    const l = ztunnelTcpLabels({ reporter: "source", source: src });
    expect(l.labels.get("source_principal")).toBe("unknown");
    expect(l.labels.get("connection_security_policy")).toBe("unknown");
  });

  test("a derived (baggage) source reports its workload name as source_app", () => {
    const l = ztunnelTcpLabels({
      reporter: "destination",
      derivedSource: {
        workloadName: "client-deploy",
        canonicalService: "client",
        canonicalRevision: "v9",
        namespace: "x",
        identity: "spiffe://cluster.local/ns/x/sa/c",
      },
    });
    expect(l.labels.get("source_app")).toBe("client-deploy");
    expect(l.labels.get("source_canonical_service")).toBe("client");
    expect(l.labels.get("source_principal")).toBe("spiffe://cluster.local/ns/x/sa/c");
    expect(l.log.srcWorkload).toBe("client");
  });

  test("ztunnel never reports `none`; no workload known → no locality labels", () => {
    const l = ztunnelTcpLabels({ reporter: "destination", securityPolicy: "none" });
    expect(l.labels.get("connection_security_policy")).toBe("unknown");
    expect(l.labels.names).not.toContain("source_region");
  });

  test("waypoint is not a ztunnel reporter", () => {
    expect(() => ztunnelTcpLabels({ reporter: "waypoint" })).toThrow(TelemetryError);
  });
});

describe("Envoy derivation", () => {
  test("server side: peer namespace from its SAN, `none` without mTLS, `latest` default", () => {
    const l = envoyTcpLabels({
      reporter: "destination",
      sourcePrincipal: "spiffe://cluster.local/ns/from-san/sa/x",
      source: { namespace: "from-metadata" },
      destination: { workloadName: "srv", canonicalService: "srv", namespace: "prod" },
    });
    expect(l.labels.get("source_workload_namespace")).toBe("from-san");
    expect(l.labels.get("source_canonical_revision")).toBe("latest");
    expect(l.labels.get("destination_canonical_revision")).toBe("latest");
    // No local principal → not mutual TLS.
    expect(l.labels.get("connection_security_policy")).toBe("none");
    // A sidecar's destination_service falls back to its canonical name.
    expect(l.labels.get("destination_service")).toBe("srv");
    expect(l.labels.get("destination_service_namespace")).toBe("prod");
  });

  test("a sidecar server reports its own namespace as destination_service_namespace", () => {
    const l = envoyTcpLabels({
      reporter: "destination",
      destination: { namespace: "prod", canonicalService: "srv" },
      destinationService: {
        hostname: "srv.other.svc.cluster.local",
        name: "srv",
        namespace: "other",
      },
    });
    expect(l.labels.get("destination_service_namespace")).toBe("prod");
    expect(l.labels.get("destination_service")).toBe("srv.other.svc.cluster.local");
    const w = envoyTcpLabels({
      reporter: "waypoint",
      destinationService: { hostname: "srv.other.svc.cluster.local", namespace: "other" },
    });
    expect(w.labels.get("destination_service_namespace")).toBe("other");
    expect(w.labels.get("destination_service_name")).toBe("srv");
  });

  test("client side: connection_security_policy is unknown, own identity is source_principal", () => {
    const l = httpLabels({
      reporter: "source",
      source: { identity: "spiffe://cluster.local/ns/a/sa/b", app: "web", version: "v1" },
      destinationPrincipal: "spiffe://cluster.local/ns/z/sa/y",
    });
    expect(l.securityPolicy).toBe("unknown");
    expect(l.peer.get("source_principal")).toBe("spiffe://cluster.local/ns/a/sa/b");
    expect(l.peer.get("source_app")).toBe("web");
    expect(l.peer.get("destination_workload_namespace")).toBe("z");
    expect(l.peer.get("destination_service_namespace")).toBe("z");
  });

  test("namespaceFromPrincipal", () => {
    expect(namespaceFromPrincipal("spiffe://td/ns/abc/sa/x")).toBe("abc");
    expect(namespaceFromPrincipal("spiffe://td/other")).toBeUndefined();
  });
});

describe("TcpLabelCache", () => {
  test("one resolution per (objects, strings); same result as tcpLabels", () => {
    const cache = new TcpLabelCache();
    const src = workloadFromKubernetes({ workloadName: "a", namespace: "n", serviceAccount: "sa" });
    const dst = workloadFromKubernetes({ workloadName: "b", namespace: "n", serviceAccount: "sb" });
    const ctx = {
      reporter: "source" as const,
      source: src,
      destination: dst,
      securityPolicy: "mutual_tls" as const,
    };
    const first = cache.get(ctx);
    expect(cache.get({ ...ctx })).toBe(first);
    expect(first.labels.key).toBe(tcpLabels(ctx).labels.key);
    const other = cache.get({ ...ctx, sourcePrincipal: src.identity as string });
    expect(other).not.toBe(first);
    expect(other.labels.get("source_principal")).toBe(src.identity);
    // A new object for a changed workload resolves again.
    const moved = cache.get({ ...ctx, destination: { ...dst, namespace: "m" } });
    expect(moved.labels.get("destination_workload_namespace")).toBe("m");
    expect(cache.get({ ...ctx, reporter: "destination" }).labels.get("reporter")).toBe(
      "destination",
    );
  });
});

describe("LabelSet", () => {
  test("record keeps emission order; with() is cached and validated", () => {
    const s = new LabelSet(["b", "a"], ["1", "2"]);
    expect(Object.keys(s.record)).toEqual(["b", "a"]);
    const t = s.with("a", "3");
    expect(t.values).toEqual(["1", "3"]);
    expect(s.with("a", "3")).toBe(t);
    expect(s.with("a", "2")).toBe(s);
    expect(() => s.with("zz", "1")).toThrow(TelemetryError);
    expect(() => new LabelSet(["a"], [])).toThrow(TelemetryError);
    expect(new LabelSet(["b", "a"], ["1", "2"]).key).toBe(s.key);
  });
});

describe("universal core", () => {
  // The core must run outside Node: only prometheus.ts (the ./prometheus subpath) may touch Node.
  test("no node: imports, Buffer or process in non-test sources except prometheus.ts", () => {
    const dir = dirname(fileURLToPath(import.meta.url));
    const files = readdirSync(dir).filter(
      (f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "prometheus.ts",
    );
    expect(files.length).toBeGreaterThanOrEqual(7);
    for (const f of files) {
      const src = readFileSync(join(dir, f), "utf8");
      expect(src, f).not.toMatch(/from\s+["']node:/);
      expect(src, f).not.toMatch(/\b(Buffer|process)\./);
      expect(src, f).not.toMatch(/from\s+["']prom-client["']/);
    }
  });
});
