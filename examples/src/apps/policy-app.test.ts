// The policy app of the scenario, Express and Fastify alike: a mesh client (sleep, by its pod IP in
// mesh.yaml) is allowed, /admin is denied by the scenario's waypoint policy, and an intruder is
// denied at L4 by the Authorization that selects echo-v1.
import { Agent, fetch } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { startPolicyApp } from "./policy-app.js";

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

function from(ip: string) {
  const a = new Agent({ localAddress: ip });
  closers.push(() => a.close());
  return a;
}

describe.each(["express", "fastify"] as const)("policy app on %s", (framework) => {
  it("enforces istio.yaml (L7) and mesh.yaml (identity, L4)", async () => {
    const decisions: string[] = [];
    const app = await startPolicyApp({ framework, onDecision: (e) => decisions.push(e.decidedBy) });
    closers.push(() => app.close());
    const sleep = await fetch(`${app.url}/hello`, { dispatcher: from("127.0.10.1") });
    expect(sleep.status).toBe(200);
    expect(await sleep.json()).toMatchObject({
      caller: "spiffe://cluster.local/ns/default/sa/sleep",
      identitySource: "workload-state",
      decidedBy: "implicit:no-allow-policies",
    });
    const admin = await fetch(`${app.url}/admin`, { dispatcher: from("127.0.10.1") });
    expect(admin.status).toBe(403);
    expect(await admin.text()).toBe("RBAC: access denied");
    const intruder = await fetch(`${app.url}/hello`, { dispatcher: from("127.0.10.4") });
    expect(intruder.status).toBe(403);
    expect(decisions).toContain("default/echo-deny-admin");
    // No ALLOW matched at L4: the intruder is not one of the principals the Authorization lists.
    expect(decisions).toContain("ztunnel:implicit:no-allow-match");
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/ambientkit_authz_http_decisions_total\{decision="deny",/);
  });
});
