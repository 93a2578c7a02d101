import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadScenario } from "./config.js";

const dir = join(import.meta.dirname, "..", "..", "scenario");

describe("loadScenario", () => {
  it("loads the demo scenario and converts the PeerAuthentication as istiod would", async () => {
    const c = await loadScenario(join(dir, "mesh.yaml"), join(dir, "istio.yaml"));
    expect(c.local.workloads.length).toBe(6);
    expect(c.local.policies.map((p) => `${p.namespace}/${p.name}`)).toContain(
      "istio-system/istio_converted_static_strict",
    );
    expect(c.httpRoutes.length).toBe(1);
  });
});
