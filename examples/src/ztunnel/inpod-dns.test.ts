// The reference ztunnel's DNS proxy in in-pod mode, end to end: a pod with istio-cni's DNS capture
// rules asks `dig` (an independent client) for names at some address on port 53; the rules send it
// to 15053 inside the pod, where this ztunnel answers mesh services from its config and forwards
// the rest to an upstream (a stand-in resolver in this process, outside the pod).
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import dgram from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority } from "@ambientkit/identity";
import {
  createPodNetwork,
  FakeNodeAgent,
  type Pod,
  type PodNetwork,
  privileged,
} from "@ambientkit/inpod/testing";
import dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import { workloadYaml } from "../mesh/workload-yaml.js";
import { parsePrometheus } from "../testing.js";
import { inpodSettingsFromEnv } from "./inpod.js";
import { Ztunnel } from "./ztunnel.js";

const CONFIG = `
workloads: []
services:
  - { name: reviews, namespace: test, hostname: reviews.test.svc.cluster.local, vips: ["/10.96.0.77", "/fd00:96::77"], ports: { 9080: 9080 } }
  - { name: ratings, namespace: other, hostname: ratings.other.svc.cluster.local, vips: ["/10.96.0.78"], ports: { 9080: 9080 } }
policies: []
`;

/** `dig` inside the pod's namespace; resolves its stdout, or rejects with its exit and output. */
function dig(pod: Pod, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", pod.ns, "dig", "+time=2", "+tries=1", ...args],
      { timeout: 15_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`dig ${args.join(" ")}: ${err.message} ${stdout} ${stderr}`));
        else resolve(stdout.trim());
      },
    );
  });
}

describe.skipIf(!privileged())("reference ztunnel, in-pod mode: DNS proxy (15053)", () => {
  let pods: PodNetwork;
  let dir: string;
  let certs: WorkloadCertificates;
  let agent: FakeNodeAgent;
  let z: Ztunnel;
  let upstream: dgram.Socket;
  const forwarded: string[] = [];
  const uid = randomUUID();
  // some address on the pod's own subnet, port 53: the capture rules take it before it leaves
  const resolverIp = "10.214.0.99";
  const resolverIp6 = "fd00:214::99";

  beforeAll(async () => {
    pods = createPodNetwork(1, { dnsCapture: true });
    dir = mkdtempSync(join(tmpdir(), "ztunnel-inpod-dns-"));
    // the upstream resolver: answers every A question with 192.0.2.53 and notes the name
    upstream = dgram.createSocket("udp4");
    upstream.on("message", (msg, rinfo) => {
      const q = dnsPacket.decode(msg);
      const name = q.questions?.[0]?.name ?? "";
      forwarded.push(name);
      const reply = dnsPacket.encode({
        type: "response",
        id: q.id ?? 0,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: q.questions ?? [],
        answers: [{ type: "A", name, ttl: 60, class: "IN", data: "192.0.2.53" }],
      });
      upstream.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => upstream.bind(0, "127.0.0.1", () => r()));
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    agent = await FakeNodeAgent.start(join(dir, "z.sock"));
    // the settings as ztunnel's environment gives them
    const settings = inpodSettingsFromEnv({
      PROXY_MODE: "shared",
      INPOD_UDS: agent.path,
      ISTIO_META_DNS_CAPTURE: "true",
    });
    expect(settings?.dns).toEqual({});
    z = await Ztunnel.start({
      node: "node-d",
      config: parseScenario({ file: "inpod-dns.yaml", text: CONFIG }).local,
      certificates: certs,
      captureServices: false,
      ports: { admin: 0 },
      inpod: {
        ...settings,
        backoff: { initialMs: 20, maxMs: 200 },
        dns: { upstreams: [`127.0.0.1:${upstream.address().port}`] },
      },
    });
    await agent.accept();
    const info = { name: "productpage", namespace: "test", serviceAccount: "productpage" };
    expect(await agent.add(uid, info, pods.pods[0] as Pod)).toBe("");
    expect(await agent.snapshotSent()).toBe("");
  });

  afterAll(async () => {
    await z?.close();
    await agent?.stop();
    certs?.close();
    upstream?.close();
    pods?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const pod = (): Pod => pods.pods[0] as Pod;

  it("listens on 127.0.0.1:15053 and [::1]:15053, UDP and TCP, inside the pod", () => {
    const bound = z.inpod?.pods.get(uid)?.addresses ?? [];
    for (const at of ["127.0.0.1:15053", "[::1]:15053"])
      expect(bound).toEqual(expect.arrayContaining([at, `${at}/udp`]));
  });

  it("answers a mesh service's VIPs for its FQDN and its short names, over UDP and TCP", async () => {
    const before = forwarded.length;
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "reviews.test.svc.cluster.local"])).toBe(
      "10.96.0.77",
    );
    expect(
      await dig(pod(), [`@${resolverIp}`, "+short", "AAAA", "reviews.test.svc.cluster.local"]),
    ).toBe("fd00:96::77");
    // short names are expanded for the pod's namespace (test), as ztunnel does
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "reviews"])).toBe("10.96.0.77");
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "ratings.other"])).toBe("10.96.0.78");
    // TCP port 53 is captured too
    expect(await dig(pod(), [`@${resolverIp}`, "+tcp", "+short", "reviews.test.svc"])).toBe(
      "10.96.0.77",
    );
    // over IPv6 (to [::1]:15053 inside the pod)
    expect(await dig(pod(), [`@${resolverIp6}`, "+short", "reviews.test.svc.cluster.local"])).toBe(
      "10.96.0.77",
    );
    // authoritative, TTL 30, as ztunnel
    const full = await dig(pod(), [
      `@${resolverIp}`,
      "+noall",
      "+answer",
      "+comments",
      "reviews.test.svc.cluster.local",
    ]);
    expect(full).toMatch(/flags: qr aa rd ra/);
    expect(full).toMatch(/^reviews\.test\.svc\.cluster\.local\.\s+30\s+IN\s+A\s+10\.96\.0\.77$/m);
    // none of these went upstream
    expect(forwarded.length).toBe(before);
  });

  it("forwards names the mesh does not know to the upstream, from outside the pod", async () => {
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "example.org"])).toBe("192.0.2.53");
    expect(forwarded.at(-1)).toBe("example.org");
    // a service name of a namespace that has no such service is not the mesh's either
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "ratings"])).toBe("192.0.2.53");
    expect(forwarded.at(-1)).toBe("ratings");
  });

  it("counts them in ztunnel's istio_dns_* metrics on the ztunnel's scrape", async () => {
    const samples = parsePrometheus(await z.registry.metrics());
    const sum = (name: string, labels: Record<string, string> = {}) =>
      samples
        .filter(
          (m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v),
        )
        .reduce((n, m) => n + m.value, 0);
    // the tests above: 9 questions (one over TCP, one AAAA), 2 of them sent upstream
    expect(sum("istio_dns_requests_total")).toBe(9);
    expect(sum("istio_dns_requests_total", { request_protocol: "tcp" })).toBe(1);
    expect(sum("istio_dns_requests_total", { request_query_type: "aaaa" })).toBe(1);
    expect(sum("istio_dns_upstream_requests_total")).toBe(2);
    expect(sum("istio_dns_upstream_failures_total")).toBe(0);
  });

  it("names the pod by its workload once xDS knows it: the client is looked up per query", async () => {
    const before = parsePrometheus(await z.registry.metrics());
    expect(
      before.some(
        (m) =>
          m.name === "istio_dns_requests_total" && m.labels.source_canonical_service === "unknown",
      ),
    ).toBe(true);
    const pushed = CONFIG.replace(
      "workloads: []",
      `workloads:${workloadYaml({ name: "productpage", namespace: "test", ip: pod().ip, node: "node-d" })}`,
    );
    await z.setConfig(parseScenario({ file: "inpod-dns.yaml", text: pushed }).local);
    expect(await dig(pod(), [`@${resolverIp}`, "+short", "reviews"])).toBe("10.96.0.77");
    const after = parsePrometheus(await z.registry.metrics());
    expect(
      after.find(
        (m) =>
          m.name === "istio_dns_requests_total" &&
          m.labels.source_canonical_service === "productpage",
      )?.value,
    ).toBe(1);
  });

  it("DelWorkload closes the DNS sockets with the pod's other listeners", async () => {
    expect(await agent.del(uid)).toBe("");
    expect(z.inpod?.pods.size).toBe(0);
    await expect(dig(pod(), [`@${resolverIp}`, "+short", "reviews"])).rejects.toThrow(/dig/);
  });
});
