import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { CertificateAuthority } from "@ambientkit/identity";
import type { LocalConfig } from "@ambientkit/xds-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTcpEcho } from "../apps/echo.js";
import { encodeProxyV2 } from "../hbone.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import type { Listener } from "../mesh/net.js";
import { scrape } from "../testing.js";
import { Ztunnel } from "./ztunnel.js";

// This file's own loopback range: pods 127.0.150.x. The app listens on 127.0.150.2:9200; ztunnel's
// inbound passthrough on 127.0.150.2:15006 (the real port: nothing else binds this range).
const LOCAL_XDS = `
workloads:
  - uid: c//Pod/test/client
    name: client
    namespace: test
    serviceAccount: client
    trustDomain: cluster.local
    workloadIps: ["127.0.150.1"]
    protocol: HBONE
    node: q
    services: {}
  - uid: c//Pod/test/server
    name: server
    namespace: test
    serviceAccount: server
    trustDomain: cluster.local
    workloadIps: ["127.0.150.2"]
    protocol: HBONE
    node: p
    services: {}
  - uid: c//Pod/test/remote
    name: remote
    namespace: test
    serviceAccount: remote
    trustDomain: cluster.local
    workloadIps: ["127.0.150.3"]
    protocol: HBONE
    node: q
    services: {}
policies: []
`;

const ALLOW_CLIENT = `
  - name: allow-client
    namespace: test
    scope: Namespace
    action: Allow
    dryRun: false
    rules:
      - - - principals: [{ Exact: cluster.local/ns/test/sa/client }]
`;

const STRICT = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict
  namespace: test
spec:
  mtls:
    mode: STRICT
`;

const POD = "127.0.150.2";
const APP_PORT = 9200;

function config(opts: { policies?: string; istio?: string } = {}): LocalConfig {
  const text = opts.policies
    ? LOCAL_XDS.replace("policies: []", `policies:${opts.policies}`)
    : LOCAL_XDS;
  const local = parseScenario(
    { file: "passthrough.yaml", text },
    opts.istio !== undefined ? { file: "istio.yaml", text: opts.istio } : undefined,
  ).local;
  if (opts.istio === undefined) return local;
  // istiod attaches the converted STRICT policy (a WorkloadSelector DENY notPrincipals: [presence])
  // to every workload a STRICT PeerAuthentication selects
  const strict = "istio-system/istio_converted_static_strict";
  expect(local.policies.map((p) => `${p.namespace}/${p.name}`)).toContain(strict);
  return {
    ...local,
    workloads: local.workloads.map((w) =>
      w.namespace === "test"
        ? { ...w, authorizationPolicies: [...w.authorizationPolicies, strict] }
        : w,
    ),
  };
}

interface Attempt {
  reply: Buffer;
  /** The peer closed the connection without us half-closing first. */
  closedByPeer: boolean;
}

/**
 * Connects from the client pod IP to POD:15006, writes `first` (then `data`, half-closing after it
 * unless `end` is false) and collects everything until the socket closes.
 */
function attempt(first: Buffer, data = Buffer.alloc(0), end = true): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: POD, port: 15006, localAddress: "127.0.150.1" });
    const chunks: Buffer[] = [];
    let ended = false;
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("the passthrough connection was left open"));
    }, 5000);
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", () => {});
    s.once("close", () => {
      clearTimeout(t);
      resolve({ reply: Buffer.concat(chunks), closedByPeer: !ended });
    });
    s.once("connect", () => {
      s.write(first);
      if (end) {
        ended = true;
        s.end(data);
      } else if (data.length > 0) s.write(data);
    });
  });
}

function proxyHeader(dstIp: string, dstPort: number): Buffer {
  return encodeProxyV2({
    source: { address: "127.0.150.1", port: 40000 },
    destination: { address: dstIp, port: dstPort },
  });
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("inbound plaintext passthrough (15006)", () => {
  let certs: WorkloadCertificates;
  let z: Ztunnel;
  let app: Listener;
  let appConnections = 0;
  beforeAll(async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    app = await startTcpEcho(POD, APP_PORT);
    app.server.on("connection", () => {
      appConnections++;
    });
    z = await Ztunnel.start({
      node: "p",
      config: config(),
      certificates: certs,
      captureServices: false,
      connectTimeoutMs: 2000,
      ports: { passthrough: 15006, metrics: 0 },
    });
  });
  afterAll(async () => {
    await z?.close();
    await app?.close();
    certs?.close();
  });

  it("with no policy, carries plaintext byte-exact to the app, with no source principal", async () => {
    const data = randomBytes(256 * 1024 + 3);
    const before = appConnections;
    const { reply } = await attempt(proxyHeader(POD, APP_PORT), data);
    expect(reply.length).toBe(data.length);
    expect(sha(reply)).toBe(sha(data));
    expect(appConnections).toBe(before + 1);
    const entry = z.log.entries.findLast(
      (e) => e.message === "connection complete" && e.fields.direction === "inbound",
    );
    expect(entry?.fields).toMatchObject({
      "src.addr": "127.0.150.1:40000",
      "dst.addr": `${POD}:${APP_PORT}`,
      "dst.workload": "server",
      bytes_recv: data.length,
      bytes_sent: data.length,
    });
    expect(entry?.fields).not.toHaveProperty("src.identity");
    const samples = await scrape(z.addresses.metrics ?? "");
    const opened = samples.find(
      (s) =>
        s.name === "istio_tcp_connections_opened_total" &&
        s.labels.reporter === "destination" &&
        s.labels.destination_workload === "server",
    );
    expect(opened?.value).toBeGreaterThanOrEqual(1);
    expect(opened?.labels).toMatchObject({
      connection_security_policy: "unknown",
      source_principal: "unknown",
    });
    expect(z.inboundConnections).toBe(0);
  });

  it("denies plaintext under STRICT PeerAuthentication or an ALLOW that needs a principal", async () => {
    for (const cfg of [config({ istio: STRICT }), config({ policies: ALLOW_CLIENT })]) {
      await z.setConfig(cfg);
      const before = appConnections;
      const r = await attempt(proxyHeader(POD, APP_PORT), Buffer.from("hello"), false);
      expect(r).toMatchObject({ closedByPeer: true, reply: Buffer.alloc(0) });
      expect(appConnections).toBe(before);
      const entry = z.log.entries.at(-1);
      expect(String(entry?.fields.error)).toMatch(/policy rejection/);
      expect(z.inboundConnections).toBe(0);
    }
    await z.setConfig(config());
    const { reply } = await attempt(proxyHeader(POD, APP_PORT), Buffer.from("again"));
    expect(reply.toString()).toBe("again");
  });

  it("closes an open passthrough connection when a new config denies plaintext", async () => {
    await z.setConfig(config());
    const s = net.connect({ host: POD, port: 15006, localAddress: "127.0.150.1" });
    s.on("error", () => {});
    const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
    const echoed = new Promise<string>((resolve) =>
      s.once("data", (c: Buffer) => resolve(c.toString())),
    );
    s.write(Buffer.concat([proxyHeader(POD, APP_PORT), Buffer.from("ping")]));
    expect(await echoed).toBe("ping");
    expect(z.inboundConnections).toBe(1);
    await z.setConfig(config({ istio: STRICT }));
    await closed;
    expect(z.inboundConnections).toBe(0);
    await z.setConfig(config());
  });

  it("refuses an original destination that is not a local workload or is a ztunnel port", async () => {
    const before = appConnections;
    for (const [ip, port, why] of [
      ["127.0.150.3", APP_PORT, "not a local workload"],
      ["127.0.150.77", APP_PORT, "not a local workload"],
      [POD, 15008, "is a ztunnel port"],
      [POD, 15006, "is a ztunnel port"],
    ] as const) {
      const r = await attempt(proxyHeader(ip, port), Buffer.from("x"), false);
      expect(r).toMatchObject({ closedByPeer: true, reply: Buffer.alloc(0) });
      const entry = z.log.entries.at(-1);
      expect(entry?.message).toBe("connection failed");
      expect(String(entry?.fields.error)).toContain(why);
    }
    expect(appConnections).toBe(before);
  });

  it("closes a connection that starts with garbage or ends inside the header, leaving nothing open", async () => {
    const before = appConnections;
    const garbage = await attempt(
      Buffer.from("GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
      undefined,
      false,
    );
    expect(garbage).toMatchObject({ closedByPeer: true, reply: Buffer.alloc(0) });
    expect(String(z.log.entries.at(-1)?.fields.error)).toMatch(/PROXY v2 signature/);
    // a truncated header then EOF: ztunnel closes its side too (no half-open socket)
    const truncated = await attempt(proxyHeader(POD, APP_PORT).subarray(0, 20));
    expect(truncated.reply.length).toBe(0);
    expect(appConnections).toBe(before);
    expect(z.inboundConnections).toBe(0);
  });
});
