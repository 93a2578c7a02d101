// A client that leaves while the waypoint is still dialling the destination pod: the dial must be
// abandoned (CONNECT cancelled) and the request recorded as DC, never left holding an upstream
// tunnel that nothing would close. Real sockets on loopback; the pod's HBONE endpoint answers the
// CONNECT only when the test says so. This file's own loopback range: 127.0.171.x, VIP 127.0.181.1.
import { CertificateAuthority } from "@ambientkit/identity";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startHttpEcho } from "../apps/echo.js";
import { HboneServer, type HboneStream, openTunnel } from "../hbone.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import type { Listener } from "../mesh/net.js";
import { workloadYaml } from "../mesh/workload-yaml.js";
import { parsePrometheus } from "../testing.js";
import { Waypoint } from "./waypoint.js";

const w = (name: string, ip: string, services: Record<string, Record<number, number>> = {}) =>
  workloadYaml({ name, namespace: "pen", ip, node: "n", services });
const LOCAL_XDS = `workloads:${w("client", "127.0.171.1")}${w("web", "127.0.171.2", {
  "pen/web.pen.svc.cluster.local": { 8000: 8080 },
})}${w("wp", "127.0.171.9")}
services:
  - { name: web, namespace: pen, hostname: web.pen.svc.cluster.local, vips: ["/127.0.181.1"], ports: { 8000: 8080 }, waypoint: { destination: /127.0.171.9, hboneMtlsPort: 15008 } }
`;
const ISTIO = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: pen }
spec:
  ports: [{ name: http, port: 8000, targetPort: 8080 }]
`;

describe("the waypoint when the client leaves during the upstream dial", () => {
  let certs: WorkloadCertificates;
  let wp: Waypoint;
  let app: Listener;
  let pod: HboneServer;
  /** CONNECTs the pod has received, and what became of each. */
  const connects: { answer(): void; cancelled: Promise<void> }[] = [];
  let arrived: () => void = () => {};
  let open = 0;

  beforeAll(async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    const config = parseScenario(
      { file: "p.yaml", text: LOCAL_XDS },
      { file: "i.yaml", text: ISTIO },
    );
    app = await startHttpEcho({
      host: "127.0.171.2",
      port: 8080,
      app: "web",
      version: "v1",
      pod: "web",
    });
    // the pod's HBONE endpoint: holds each CONNECT until the test answers it
    pod = new HboneServer({
      credentials: await certs.ensure("spiffe://cluster.local/ns/pen/sa/web"),
      handler: async (req) => {
        let answer: () => void = () => {};
        const answered = new Promise<void>((r) => {
          answer = r;
        });
        const cancelled = new Promise<void>((r) => {
          if (req.signal?.aborted) r();
          else req.signal?.addEventListener("abort", () => r(), { once: true });
        });
        connects.push({ answer, cancelled });
        arrived();
        await answered;
        return { action: "connect", host: "127.0.171.2", port: 8080 };
      },
      hooks: {
        onConnect: () => {
          open++;
        },
        onClose: () => {
          open--;
        },
      },
    });
    await pod.listen(15008, "127.0.171.2");
    wp = await Waypoint.start({ namespace: "pen", name: "wp", config, certificates: certs });
  });
  afterAll(async () => {
    for (const c of connects) c.answer();
    await wp?.close();
    await pod?.close(0);
    await app?.close();
    certs?.close();
  });

  it("cancels the CONNECT, opens no upstream tunnel and records DC", async () => {
    const reached = new Promise<void>((r) => {
      arrived = r;
    });
    const client: HboneStream = await openTunnel({
      address: { host: wp.ip, port: 15008 },
      credentials: await certs.ensure("spiffe://cluster.local/ns/pen/sa/client"),
      expectedIdentities: ["spiffe://cluster.local/ns/pen/sa/wp"],
      localAddress: "127.0.171.1",
      authority: "127.0.181.1:8000",
    });
    client.on("error", () => {});
    client.write(`POST /upload HTTP/1.1\r\nhost: web\r\ncontent-length: 1048576\r\n\r\n`);
    client.write(Buffer.alloc(64 * 1024, 1));
    await reached; // the waypoint is dialling the pod
    client.destroy(); // the client leaves (RST_STREAM CANCEL)
    const pending = connects[0];
    expect(pending).toBeDefined();
    // the waypoint gives up the dial: the pod sees its CONNECT cancelled
    await pending?.cancelled;
    pending?.answer();
    await vi.waitFor(async () => {
      const dc = parsePrometheus(await wp.registry.metrics()).filter(
        (s) =>
          s.name === "istio_requests_total" &&
          s.labels.response_code === "0" &&
          s.labels.response_flags === "DC",
      );
      expect(dc.reduce((n, s) => n + s.value, 0)).toBe(1);
    });
    expect(open).toBe(0);
  });
});
