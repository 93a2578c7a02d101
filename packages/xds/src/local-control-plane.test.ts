// The local control plane with our own client (the client itself is tested against python-grpcio).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import type { LocalConfig, Workload } from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { afterEach, describe, expect, it } from "vitest";
import { IstioCaClient } from "./ca-client.js";
import { DeltaXdsClient } from "./client.js";
import { LocalControlPlane } from "./local-control-plane.js";
import { ztunnelNode } from "./node-info.js";
import { MeshStateStore } from "./state.js";

const file = fileURLToPath(
  new URL("../../xds-types/src/workload/testdata/localhost.yaml", import.meta.url),
);
function config(): LocalConfig {
  const r = parseLocalXds(readFileSync(file, "utf8"));
  if (!r.ok) throw new Error("fixture");
  return r.value;
}
const node = ztunnelNode({ instanceIp: "127.0.0.1", podName: "zt", podNamespace: "istio-system" });

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function start(cfg: LocalConfig, token?: string): Promise<LocalControlPlane> {
  const ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const cp = await LocalControlPlane.start(cfg, { ca, ...(token !== undefined ? { token } : {}) });
  closers.push(() => cp.close());
  return cp;
}

function connect(
  cp: LocalControlPlane,
  extra: { tokenFile?: string } = {},
): { client: DeltaXdsClient; state: MeshStateStore } {
  const state = new MeshStateStore();
  const client = new DeltaXdsClient({
    address: cp.address,
    node,
    state,
    backoff: { initialMs: 20, maxMs: 100, jitter: 0 },
    ...extra,
  });
  closers.push(() => client.close());
  client.start();
  return { client, state };
}

describe("LocalControlPlane", () => {
  it("serves a LOCAL_XDS config; a config change reaches the client as a diff", async () => {
    const cfg = config();
    const cp = await start(cfg);
    const { client, state } = connect(cp);
    await client.ready();
    expect(state.workloadCount).toBe(2);
    expect(state.serviceCount).toBe(cfg.services.length);
    expect(state.policyCount).toBe(1);

    const ops: string[] = [];
    state.subscribe((events) => ops.push(...events.map((e) => `${e.op} ${e.kind} ${e.key}`)));
    const [first, second] = cfg.workloads as [Workload, Workload];
    cp.setConfig({ ...cfg, workloads: [{ ...first, canonicalRevision: "v2" }], policies: [] });
    await expect.poll(() => ops.length).toBe(3);
    expect(ops.sort()).toEqual(
      [
        `remove workload ${second.uid}`,
        `update workload ${first.uid}`,
        "remove policy default/deny-9999",
      ].sort(),
    );
    expect(state.workloadByUid(first.uid)?.canonicalRevision).toBe("v2");
  });

  it("a reconnecting client gets only what changed while it was away", async () => {
    const cfg = config();
    const cp = await start(cfg);
    const { client, state } = connect(cp);
    await client.ready();
    await client.close();
    const [first] = cfg.workloads as [Workload];
    cp.setConfig({ ...cfg, workloads: [first] });
    // A new client over the same store: its initial_resource_versions say what it has.
    const events: string[] = [];
    state.subscribe((e) => events.push(...e.map((x) => `${x.op} ${x.kind}`)));
    const again = new DeltaXdsClient({ address: cp.address, node, state });
    closers.push(() => again.close());
    again.start();
    await expect.poll(() => events).toEqual(["remove workload"]);
    expect(state.workloadCount).toBe(1);
  });

  it("requires the token when configured; signs CSRs for the impersonated identity", async () => {
    const cp = await start(config(), "s3cret");
    const { writeFileSync, mkdtempSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "lcp-"));
    writeFileSync(join(dir, "bad"), "nope");
    writeFileSync(join(dir, "good"), "s3cret");
    const bad = connect(cp, { tokenFile: join(dir, "bad") });
    await expect.poll(() => bad.client.lastError?.code).toBe("ERR_XDS_CLIENT_UNAUTHENTICATED");
    const good = connect(cp, { tokenFile: join(dir, "good") });
    await good.client.ready();

    const ca = new IstioCaClient({ address: cp.address, tokenFile: join(dir, "good") });
    closers.push(async () => ca.close());
    const cert = await ca.fetchCertificate("spiffe://cluster.local/ns/default/sa/app");
    expect(cert.identity).toBe("spiffe://cluster.local/ns/default/sa/app");
    const refused = new IstioCaClient({ address: cp.address, tokenFile: join(dir, "bad") });
    closers.push(async () => refused.close());
    await expect(
      refused.fetchCertificate("spiffe://cluster.local/ns/default/sa/app"),
    ).rejects.toMatchObject({ code: "ERR_XDS_CLIENT_UNAUTHENTICATED" });
  });
});
