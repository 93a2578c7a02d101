// The reference ztunnel fed by a control plane over gRPC (the local control plane of @ambientkit/xds;
// the xDS client itself is tested against python-grpcio there): certificates from the CA service,
// pushes that add and remove local workloads, and a policy push that closes a live connection.
import { CertificateAuthority } from "@ambientkit/identity";
import { LocalControlPlane } from "@ambientkit/xds";
import type { LocalConfig } from "@ambientkit/xds-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTcpEcho } from "../apps/echo.js";
import { HboneError, openTunnel } from "../hbone.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import type { Listener } from "../mesh/net.js";
import { isListening } from "../testing.js";
import { controlPlaneSettingsFromEnv, ZtunnelControlPlane } from "./control-plane.js";
import { Ztunnel } from "./ztunnel.js";

// This file's own loopback range: pods 127.0.130.x.
const workload = (name: string, ip: string, node: string): string => `
  - uid: c//Pod/cp/${name}
    name: ${name}
    namespace: cp
    serviceAccount: ${name}
    trustDomain: cluster.local
    workloadIps: ["${ip}"]
    protocol: HBONE
    node: ${node}
    services: {}`;
const DENY_CLIENT = `
  - name: deny-client
    namespace: cp
    scope: Namespace
    action: Deny
    dryRun: false
    rules:
      - - - principals: [{ Exact: cluster.local/ns/cp/sa/client }]`;

function config(opts: { server2?: boolean; server?: boolean; deny?: boolean } = {}): LocalConfig {
  const text = `workloads:${workload("client", "127.0.130.1", "a")}${opts.server === false ? "" : workload("server", "127.0.130.2", "b")}${opts.server2 ? workload("server2", "127.0.130.3", "b") : ""}
services: []
policies:${opts.deny ? DENY_CLIENT : " []"}
`;
  return parseScenario({ file: "cp.yaml", text }).local;
}

describe("reference ztunnel on a control plane", () => {
  let ca: CertificateAuthority;
  let cp: LocalControlPlane;
  let plane: ZtunnelControlPlane;
  let z: Ztunnel;
  let clientCerts: WorkloadCertificates;
  let serverCerts: WorkloadCertificates;
  const apps: Listener[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    cp = await LocalControlPlane.start(config(), { ca });
    for (const host of ["127.0.130.2", "127.0.130.3"]) apps.push(await startTcpEcho(host, 9100));
    plane = new ZtunnelControlPlane({
      xdsAddress: cp.address,
      caAddress: cp.address,
      instanceIp: "127.0.130.250",
      podName: "ztunnel-b",
      podNamespace: "istio-system",
      nodeName: "b",
    });
    const first = await plane.start(10_000);
    const source = plane.certificateSource;
    if (source === undefined) throw new Error("expected a CA client");
    serverCerts = new WorkloadCertificates(source);
    z = await Ztunnel.start({
      node: "b",
      config: first,
      certificates: serverCerts,
      log: (l) => logs.push(l),
    });
    plane.attach(z);
    plane.registerMetrics(z.registry);
    clientCerts = new WorkloadCertificates(ca);
  });
  afterAll(async () => {
    await plane?.close();
    await z?.close();
    await cp?.close();
    for (const a of apps) await a.close();
    serverCerts?.close();
    clientCerts?.close();
  });

  const tunnel = async (ip: string, sa: string) =>
    openTunnel({
      address: { host: ip, port: 15008 },
      credentials: await clientCerts.ensure("spiffe://cluster.local/ns/cp/sa/client"),
      expectedIdentities: [`spiffe://cluster.local/ns/cp/sa/${sa}`],
      authority: `${ip}:9100`,
      localAddress: "127.0.130.1",
    });

  async function push(c: LocalConfig): Promise<void> {
    cp.setConfig(c);
    // The push is applied when the state changed and the ztunnel took the new config.
    const before = JSON.stringify(z.state.config);
    await expect
      .poll(() => JSON.stringify(z.state.config) !== before, { timeout: 5000 })
      .toBe(true);
    await plane.settled();
  }

  it("serves the local workloads from the first push, with a certificate from the CA service", async () => {
    expect(z.localWorkloads.map((w) => w.name)).toEqual(["server"]);
    const t = await tunnel("127.0.130.2", "server");
    t.end("ping");
    const chunks: Buffer[] = [];
    for await (const c of t) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("ping");
    expect(serverCerts.identities()).toEqual(["spiffe://cluster.local/ns/cp/sa/server"]);
    expect(serverCerts.certificate("spiffe://cluster.local/ns/cp/sa/server")?.rootCertPem).toBe(
      ca.rootCertPem,
    );
  });

  it("a push that adds a local workload opens its listener; one that removes it closes it", async () => {
    expect(await isListening("127.0.130.3", 15008)).toBe(false);
    await push(config({ server2: true }));
    expect(await isListening("127.0.130.3", 15008)).toBe(true);
    (await tunnel("127.0.130.3", "server2")).destroy();
    await push(config({ server2: false }));
    expect(await isListening("127.0.130.3", 15008)).toBe(false);
  });

  it("a policy push closes a live connection the new policy denies, and refuses new ones", async () => {
    const t = await tunnel("127.0.130.2", "server");
    const closed = new Promise<void>((resolve) => {
      t.once("close", () => resolve());
      t.on("error", () => {});
      t.resume();
    });
    await push(config({ deny: true }));
    await closed;
    expect(logs.some((l) => l.includes("connection closed due to policy change"))).toBe(true);
    await expect(tunnel("127.0.130.2", "server")).rejects.toSatisfy(
      (e: unknown) => e instanceof HboneError && e.status === 401,
    );
    await push(config());
    (await tunnel("127.0.130.2", "server")).destroy();
  });

  it("counts xDS messages on the ztunnel's metrics, as ztunnel names them", async () => {
    const text = await z.registry.metrics();
    expect(text).toMatch(
      /istio_xds_message_total\{url="type.googleapis.com\/istio.workload.Address"\} [1-9]/,
    );
    expect(text).toMatch(
      /istio_xds_message_bytes_total\{url="type.googleapis.com\/istio.security.Authorization"\} \d+/,
    );
    expect(text).toContain("# TYPE istio_xds_connection_terminations_total counter");
  });

  it("reads ztunnel's settings from the environment", () => {
    expect(controlPlaneSettingsFromEnv({})).toBeUndefined();
    expect(() => controlPlaneSettingsFromEnv({ XDS_ADDRESS: "http://127.0.0.1:1" })).toThrow(
      /INSTANCE_IP/,
    );
    expect(
      controlPlaneSettingsFromEnv({
        XDS_ADDRESS: "https://istiod.istio-system.svc:15012",
        CA_ADDRESS: "https://istiod.istio-system.svc:15012",
        INSTANCE_IP: "10.0.0.9",
        POD_NAME: "ztunnel-x",
        POD_NAMESPACE: "istio-system",
        CLUSTER_ID: "c1",
        SECRET_TTL: "12h",
        XDS_ON_DEMAND: "true",
      }),
    ).toMatchObject({
      clusterId: "c1",
      secretTtlSeconds: 43_200,
      onDemand: true,
      caAddress: "https://istiod.istio-system.svc:15012",
    });
    expect(() =>
      controlPlaneSettingsFromEnv({
        XDS_ADDRESS: "x",
        INSTANCE_IP: "1",
        POD_NAME: "p",
        POD_NAMESPACE: "n",
        XDS_ROOT_CA: "/no/such/root.pem",
      }),
    ).toThrow(/XDS_ROOT_CA=\/no\/such\/root.pem/);
  });
});
