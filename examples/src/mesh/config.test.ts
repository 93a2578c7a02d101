import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadScenario, parseScenario } from "./config.js";

const dir = join(import.meta.dirname, "..", "..", "scenario");

describe("loadScenario", () => {
  it("loads the demo scenario and converts the PeerAuthentication as istiod would", async () => {
    const c = await loadScenario(join(dir, "mesh.yaml"), join(dir, "istio.yaml"));
    expect(c.local.workloads.length).toBe(6);
    expect(c.local.policies.map((p) => `${p.namespace}/${p.name}`)).toContain(
      "istio-system/istio_converted_static_strict",
    );
    expect(c.httpRoutes.length).toBe(1);
    // istiod lists the static strict policy on every workload of a STRICT namespace (mesh-wide here)
    for (const w of c.local.workloads) {
      expect(w.authorizationPolicies).toContain("istio-system/istio_converted_static_strict");
    }
  });

  it("attaches STRICT by effective mode: a namespace PERMISSIVE overrides the mesh-wide STRICT", () => {
    const mesh = `workloads:
  - { uid: u1, name: a, namespace: strict-ns, serviceAccount: a, trustDomain: cluster.local, workloadIps: ["127.0.98.1"], protocol: HBONE, services: {} }
  - { uid: u2, name: b, namespace: open-ns, serviceAccount: b, trustDomain: cluster.local, workloadIps: ["127.0.98.2"], protocol: HBONE, services: {} }
services: []
`;
    const istio = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: open-ns }
spec: { mtls: { mode: PERMISSIVE } }
`;
    const c = parseScenario({ file: "mesh.yaml", text: mesh }, { file: "istio.yaml", text: istio });
    const byName = new Map(c.local.workloads.map((w) => [w.name, w.authorizationPolicies]));
    expect(byName.get("a")).toEqual(["istio-system/istio_converted_static_strict"]);
    expect(byName.get("b")).toEqual([]);
  });
});

describe("parseScenario rejects bad config with file and line", () => {
  const base = `workloads:
  - { uid: u1, name: a, namespace: ns, serviceAccount: a, trustDomain: cluster.local, workloadIps: ["127.0.99.1"], protocol: HBONE, services: {} }
services:
  - { name: s, namespace: ns, hostname: s.ns.svc.cluster.local, vips: ["/127.0.99.100"], ports: { 8000: 8080 } }
`;
  const local = (text: string) => ({ file: "mesh.yaml", text });
  const istio = (text: string) => ({ file: "istio.yaml", text });

  it("accepts the base", () => {
    expect(parseScenario(local(base)).local.workloads).toHaveLength(1);
  });
  it("YAML syntax", () => {
    expect(() => parseScenario(local(`${base}  - [unclosed\n`))).toThrow(/^mesh\.yaml:\d+: /);
  });
  it("a VIP that is also a workload IP", () => {
    expect(() => parseScenario(local(base.replace("/127.0.99.100", "/127.0.99.1")))).toThrow(
      "mesh.yaml:4: duplicate address 127.0.99.1 (already used by workload a)",
    );
  });
  it("a workload naming an unknown service or policy", () => {
    expect(() =>
      parseScenario(
        local(
          base.replace(
            "services: {} }",
            'services: { "ns/nope.ns.svc.cluster.local": { 1: 1 } } }',
          ),
        ),
      ),
    ).toThrow("mesh.yaml:2: workload a names unknown service ns/nope.ns.svc.cluster.local");
    expect(() =>
      parseScenario(
        local(base.replace("services: {} }", 'services: {}, authorizationPolicies: ["ns/nope"] }')),
      ),
    ).toThrow("mesh.yaml:2: workload a names unknown policy ns/nope");
  });
  it("an HTTPRoute backendRef to an unknown Service, and an unsupported kind", () => {
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: ns }
spec:
  parentRefs: [{ group: "", kind: Service, name: s, port: 8000 }]
  rules:
    - backendRefs: [{ name: t, port: 8000 }]
`;
    expect(() => parseScenario(local(base), istio(route))).toThrow(
      "istio.yaml:1: HTTPRoute ns/r backendRef names unknown Service ns/t",
    );
    expect(() =>
      parseScenario(
        local(base),
        istio(
          `---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: c, namespace: ns }\ndata: {}\n`,
        ),
      ),
    ).toThrow(/istio\.yaml:2: unsupported kind ConfigMap/);
  });
  it("an AuthorizationPolicy with a schema error", () => {
    const ap = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: p, namespace: ns }
spec:
  action: ALLOW
  rules:
    - to: [{ operation: { methodz: ["GET"] } }]
`;
    expect(() => parseScenario(local(base), istio(ap))).toThrow(
      /^istio\.yaml:7: AuthorizationPolicy .*methodz/,
    );
  });
});
