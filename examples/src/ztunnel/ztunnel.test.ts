import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateAuthority } from "@ambientkit/identity";
import type { LocalConfig } from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTcpEcho } from "../apps/echo.js";
import { HboneError, openTunnel } from "../hbone.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import { ExampleError } from "../mesh/errors.js";
import type { Listener } from "../mesh/net.js";
import { isListening, scrape } from "../testing.js";
import { Ztunnel } from "./ztunnel.js";

/** Runs a command with stdin `input`; resolves stdout/stderr. */
function run(
  cmd: string,
  args: string[],
  opts: { input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end(opts.input ?? "");
  });
}

// This file's own loopback range: pods 127.0.110.x, VIPs 127.0.120.x.
const LOCAL_XDS = `
workloads:
  - uid: c//Pod/test/client
    name: client
    namespace: test
    serviceAccount: client
    trustDomain: cluster.local
    workloadIps: ["127.0.110.1"]
    protocol: HBONE
    node: a
    services: {}
  - uid: c//Pod/test/server
    name: server
    namespace: test
    serviceAccount: server
    trustDomain: cluster.local
    workloadIps: ["127.0.110.2"]
    protocol: HBONE
    node: b
    workloadName: server
    canonicalName: server
    canonicalRevision: v3
    services:
      test/server.test.svc.cluster.local: { 9000: 9100 }
  - uid: c//Pod/test/plain
    name: plain
    namespace: test
    serviceAccount: plain
    trustDomain: cluster.local
    workloadIps: ["127.0.110.3"]
    protocol: TCP
    node: b
    services: {}
  - uid: c//Pod/test/wp
    name: wp
    namespace: test
    serviceAccount: wp
    trustDomain: cluster.local
    workloadIps: ["127.0.110.9"]
    protocol: HBONE
    node: none
    services: {}
services:
  - name: server
    namespace: test
    hostname: server.test.svc.cluster.local
    vips: ["/127.0.120.2"]
    ports: { 9000: 9100 }
  - name: waypointed
    namespace: test
    hostname: waypointed.test.svc.cluster.local
    vips: ["/127.0.120.5"]
    ports: { 8000: 8080 }
    waypoint: { destination: /127.0.110.9, hboneMtlsPort: 15008 }
policies: []
`;

const DENY_CLIENT = `
  - name: deny-client
    namespace: test
    scope: Namespace
    action: Deny
    dryRun: false
    rules:
      - - - principals: [{ Exact: cluster.local/ns/test/sa/client }]
`;

function config(extraPolicies = ""): LocalConfig {
  const text = extraPolicies
    ? LOCAL_XDS.replace("policies: []", `policies:${extraPolicies}`)
    : LOCAL_XDS;
  return parseScenario({ file: "test.yaml", text }).local;
}

/** Connects from the client pod to VIP:port, sends `data`, half-closes and collects the reply. */
function roundTrip(host: string, port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: "127.0.110.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.once("error", reject);
    s.once("end", () => {
      s.end();
      resolve(Buffer.concat(chunks));
    });
    s.once("connect", () => s.end(data));
  });
}

describe("two reference ztunnels", () => {
  let certs: WorkloadCertificates;
  let a: Ztunnel;
  let b: Ztunnel;
  let apps: Listener[];
  beforeAll(async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    apps = [await startTcpEcho("127.0.110.2", 9100), await startTcpEcho("127.0.110.3", 9100)];
    b = await Ztunnel.start({
      node: "b",
      config: config(),
      certificates: certs,
      captureServices: false,
      ports: { metrics: 0 },
    });
    a = await Ztunnel.start({
      node: "a",
      config: config(),
      certificates: certs,
      ports: { admin: 0, metrics: 0, socks5: 0 },
    });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    for (const l of apps ?? []) await l.close();
    certs?.close();
  });

  it("carries bytes exactly over HBONE, service port mapped to the target port", async () => {
    const data = randomBytes(1024 * 1024 + 17);
    const back = await roundTrip("127.0.120.2", 9000, data);
    expect(back.length).toBe(data.length);
    expect(createHash("sha256").update(back).digest("hex")).toBe(
      createHash("sha256").update(data).digest("hex"),
    );
    const inbound = b.log.entries.findLast(
      (e) => e.message === "connection complete" && e.fields.direction === "inbound",
    );
    expect(inbound?.fields).toMatchObject({
      "src.identity": "spiffe://cluster.local/ns/test/sa/client",
      "dst.hbone_addr": "127.0.110.2:9100",
      "dst.service": "server.test.svc.cluster.local",
      bytes_recv: data.length,
      bytes_sent: data.length,
    });
  });

  it("follows ztunnel's outbound decision tree", () => {
    const client = a.state.workloadByIp("127.0.110.1");
    if (!client) throw new Error("no client");
    expect(a.route(client, "127.0.120.5", 8000)).toMatchObject({
      kind: "waypoint",
      authority: "127.0.120.5:8000",
      via: { ip: "127.0.110.9", port: 15008 },
    });
    expect(a.route(client, "127.0.120.2", 9000)).toMatchObject({
      kind: "hbone",
      host: "127.0.110.2",
      port: 15008,
      authority: "127.0.110.2:9100",
    });
    expect(a.route(client, "127.0.110.2", 9100)).toMatchObject({
      kind: "hbone",
      authority: "127.0.110.2:9100",
      identities: ["spiffe://cluster.local/ns/test/sa/server"],
    });
    expect(a.route(client, "127.0.110.3", 9100)).toMatchObject({
      kind: "passthrough",
      host: "127.0.110.3",
      port: 9100,
    });
    expect(a.route(client, "127.0.0.99", 1234)).toMatchObject({
      kind: "passthrough",
      host: "127.0.0.99",
      workload: undefined,
    });
  });

  it("takes the decision tree's other branches: passthrough services, no upstream, weighted waypoints", async () => {
    const extra = `
  - name: external
    namespace: test
    hostname: external.example.com
    vips: ["/127.0.120.7"]
    ports: { 443: 443 }
    loadBalancer: { mode: Passthrough, routingPreferences: [], healthPolicy: OnlyHealthy }
  - name: empty
    namespace: test
    hostname: empty.test.svc.cluster.local
    vips: ["/127.0.120.8"]
    ports: { 80: 8080 }
  - name: weighted
    namespace: test
    hostname: weighted.test.svc.cluster.local
    vips: ["/127.0.120.9"]
    ports: { 80: 8080 }
    weightedWaypoints:
      - { destination: { destination: /127.0.110.9, hboneMtlsPort: 15008 }, weight: 1 }
`;
    const cfg = parseScenario({
      file: "t.yaml",
      text: LOCAL_XDS.replace("policies: []", `${extra.trimEnd()}\npolicies: []`),
    }).local;
    // a node with no local workloads and no capture binds nothing; route() is pure
    const z = await Ztunnel.start({
      node: "nobody",
      config: cfg,
      certificates: certs,
      captureServices: false,
    });
    try {
      const client = z.state.workloadByIp("127.0.110.1");
      if (!client) throw new Error("no client");
      expect(z.route(client, "127.0.120.7", 443)).toMatchObject({
        kind: "passthrough",
        host: "127.0.120.7",
        port: 443,
      });
      expect(z.route(client, "127.0.120.8", 80)).toMatchObject({
        kind: "reject",
        reason: "no healthy upstream for empty.test.svc.cluster.local:80",
      });
      expect(z.route(client, "127.0.120.9", 80)).toMatchObject({
        kind: "waypoint",
        authority: "127.0.120.9:80",
        via: { ip: "127.0.110.9" },
      });
    } finally {
      await z.close();
    }
  });

  it("passes out-of-mesh traffic through as plain TCP via SOCKS5", async () => {
    const [host, port] = (a.addresses.socks5 ?? "").split(":");
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect({ host: host ?? "", port: Number(port), localAddress: "127.0.110.1" });
      const chunks: Buffer[] = [];
      let stage = 0;
      s.on("data", (c: Buffer) => {
        if (stage === 0) {
          expect([...c]).toEqual([5, 0]);
          stage = 1;
          s.write(Buffer.from([5, 1, 0, 1, 127, 0, 110, 3, 0x23, 0x8c])); // 127.0.110.3:9100
        } else if (stage === 1) {
          expect(c[1]).toBe(0);
          stage = 2;
          if (c.length > 10) chunks.push(c.subarray(10));
          s.end("plain bytes");
        } else chunks.push(c);
      });
      s.once("end", () => resolve(Buffer.concat(chunks)));
      s.once("error", reject);
      s.write(Buffer.from([5, 1, 0]));
    });
    expect(reply.toString()).toBe("plain bytes");
    const out = a.log.entries.findLast((e) => e.fields["dst.addr"] === "127.0.110.3:9100");
    expect(out?.fields["dst.hbone_addr"]).toBeUndefined();
  });

  it("serves each pod's own SVID on podIP:15008, TLS 1.3 + ALPN h2 (checked with openssl s_client)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ambientkit-zt-"));
    try {
      const creds = await certs.ensure("spiffe://cluster.local/ns/test/sa/client");
      await writeFile(join(dir, "cert.pem"), String(creds.cert));
      await writeFile(join(dir, "key.pem"), String(creds.key));
      await writeFile(join(dir, "ca.pem"), String(creds.ca));
      const { stdout } = await run(
        "openssl",
        [
          "s_client",
          "-connect",
          "127.0.110.2:15008",
          "-alpn",
          "h2",
          "-cert",
          join(dir, "cert.pem"),
          "-key",
          join(dir, "key.pem"),
          "-CAfile",
          join(dir, "ca.pem"),
          "-verify_return_error",
          "-showcerts",
        ],
        { input: "" },
      );
      expect(stdout).toMatch(/Protocol\s*:\s*TLSv1\.3|New, TLSv1\.3/);
      expect(stdout).toContain("ALPN protocol: h2");
      expect(stdout).toContain("Verify return code: 0 (ok)");
      const leaf =
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0] ?? "";
      await writeFile(join(dir, "leaf.pem"), leaf);
      const san = await run("openssl", [
        "x509",
        "-in",
        join(dir, "leaf.pem"),
        "-noout",
        "-ext",
        "subjectAltName",
      ]);
      expect(san.stdout).toContain("URI:spiffe://cluster.local/ns/test/sa/server");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("runs ztunnel's inbound checks in order: authority → destination → policy → app", async () => {
    const creds = await certs.ensure("spiffe://cluster.local/ns/test/sa/client");
    const status = (authority: string) =>
      openTunnel({
        address: { host: "127.0.110.2", port: 15008 },
        credentials: creds,
        expectedIdentities: ["spiffe://cluster.local/ns/test/sa/server"],
        authority,
        localAddress: "127.0.110.1",
      }).then(
        (t) => {
          t.destroy();
          return 200;
        },
        (e: unknown) => (e instanceof HboneError ? (e.status ?? e.code) : String(e)),
      );
    expect(await status("127.0.110.3:9100")).toBe(400); // another pod's IP: IP mismatch
    expect(await status("server.test.svc.cluster.local:9000")).toBe(400); // hostname: not this pod's IP
    expect(await status("127.0.110.2:15008")).toBe(503); // a ztunnel port (SelfCall)
    expect(await status("127.0.110.2:9999")).toBe(503); // nothing listens there
    expect(await status("127.0.110.2:9100")).toBe(200);
    await b.setConfig(config(DENY_CLIENT));
    try {
      expect(await status("127.0.110.2:9100")).toBe(401);
      expect(await status("127.0.110.3:9100")).toBe(400); // destination is checked before policy
    } finally {
      await b.setConfig(config());
    }
  });

  it("answers SOCKS5 errors as RFC 1928 says", async () => {
    const [host, port] = (a.addresses.socks5 ?? "").split(":");
    const exchange = (greeting: number[], request?: number[]) =>
      new Promise<number[]>((resolve) => {
        const s = net.connect({ host: host ?? "", port: Number(port) });
        const got: number[] = [];
        s.on("data", (c: Buffer) => {
          got.push(...c);
          if (request && got.length === 2) s.write(Buffer.from(request));
        });
        s.once("close", () => resolve(got));
        s.once("error", () => resolve(got));
        s.write(Buffer.from(greeting));
      });
    // only username/password offered: no acceptable method
    expect(await exchange([5, 1, 2])).toEqual([5, 0xff]);
    // BIND is not supported
    expect(
      (await exchange([5, 1, 0], [5, 2, 0, 1, 127, 0, 110, 3, 0x23, 0x8c])).slice(2, 4),
    ).toEqual([5, 7]);
    // an unknown hostname
    const name = [...Buffer.from("nope.test.svc.cluster.local")];
    expect(
      (await exchange([5, 1, 0], [5, 1, 0, 3, name.length, ...name, 0, 80])).slice(2, 4),
    ).toEqual([5, 4]);
    // ztunnel's own ports (here 15008) on loopback are refused (SelfCall)
    expect((await exchange([5, 1, 0], [5, 1, 0, 1, 127, 0, 0, 1, 0x3a, 0xa0])).slice(2, 4)).toEqual(
      [5, 2],
    );
  });

  it("exports Istio TCP metrics with ztunnel's labels", async () => {
    const samples = await scrape(b.addresses.metrics ?? "");
    const recv = samples.find(
      (s) =>
        s.name === "istio_tcp_received_bytes_total" &&
        s.labels.reporter === "destination" &&
        s.labels.destination_workload === "server",
    );
    expect(recv?.value).toBeGreaterThanOrEqual(1024 * 1024);
    expect(recv?.labels).toMatchObject({
      source_principal: "spiffe://cluster.local/ns/test/sa/client",
      destination_principal: "spiffe://cluster.local/ns/test/sa/server",
      destination_canonical_revision: "v3",
      connection_security_policy: "mutual_tls",
    });
    const opened = samples.find(
      (s) => s.name === "istio_tcp_connections_opened_total" && s.labels.reporter === "destination",
    );
    expect(opened?.value).toBeGreaterThan(0);
    const build = samples.find((s) => s.name === "istio_build");
    expect(build?.labels.component).toBe("ztunnel");
  });

  it("round-trips /config_dump?format=local_xds through the LOCAL_XDS parser", async () => {
    const [host, port] = (a.addresses.admin ?? "").split(":");
    const text = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: host ?? "", port: Number(port) }, () =>
        s.end("GET /config_dump?format=local_xds HTTP/1.0\r\n\r\n"),
      );
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      s.once("end", () => resolve(Buffer.concat(chunks).toString()));
      s.once("error", reject);
    });
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    const parsed = parseLocalXds(body);
    expect(parsed.ok).toBe(true);
    expect(parsed.value).toEqual(a.state.config);
  });

  it("closes open connections and refuses new ones when a policy change denies them", async () => {
    const s = net.connect({
      host: "127.0.120.2",
      port: 9000,
      localAddress: "127.0.110.1",
      allowHalfOpen: true,
    });
    await new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("error", reject);
    });
    s.write("ping");
    await new Promise<void>((resolve) => s.once("data", () => resolve()));
    expect(b.inboundConnections).toBe(1);
    // the app sees its connection end (EOF, or a reset)
    const closed = new Promise<void>((resolve) => {
      s.once("end", () => resolve());
      s.once("close", () => resolve());
    });
    s.on("error", () => {});
    await b.setConfig(config(DENY_CLIENT));
    await closed;
    s.destroy();
    expect(b.inboundConnections).toBe(0);
    expect(b.log.entries.some((e) => e.message === "connection closed due to policy change")).toBe(
      true,
    );
    // a new connection: the source ztunnel gets 401 and closes the app's connection without data
    const reply = await roundTrip("127.0.120.2", 9000, Buffer.from("again")).catch(() =>
      Buffer.alloc(0),
    );
    expect(reply.length).toBe(0);
    const denied = b.log.entries.findLast((e) =>
      String(e.fields.error ?? "").includes("policy rejection"),
    );
    expect(denied?.fields.error).toContain("explicitly denied by: test/deny-client");
    await b.setConfig(config());
    expect((await roundTrip("127.0.120.2", 9000, Buffer.from("back"))).toString()).toBe("back");
  });

  it("fails startup with ERR_EXAMPLES_LISTEN when a port is taken, leaving nothing behind", async () => {
    const err = await Ztunnel.start({
      node: "b",
      config: config(),
      certificates: certs,
      captureServices: false,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExampleError);
    expect((err as ExampleError).code).toBe("ERR_EXAMPLES_LISTEN");
    expect((err as ExampleError).message).toContain("127.0.110.2:15008");
    // the running node b is unaffected
    expect((await roundTrip("127.0.120.2", 9000, Buffer.from("still"))).toString()).toBe("still");
  });

  it("leaves nothing listening after close()", async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const c2 = new WorkloadCertificates(ca);
    const cfg = LOCAL_XDS.replaceAll("127.0.110.", "127.0.111.").replaceAll(
      "127.0.120.",
      "127.0.121.",
    );
    const z = await Ztunnel.start({
      node: "b",
      config: parseScenario({ file: "t.yaml", text: cfg }).local,
      certificates: c2,
      ports: { admin: 0, metrics: 0, readiness: 0, socks5: 0 },
    });
    const addrs = Object.values(z.addresses).map((x) => x.split(":"));
    expect(await isListening("127.0.111.2", 15008)).toBe(true);
    expect(await isListening("127.0.121.2", 9000)).toBe(true);
    await z.close();
    c2.close();
    expect(await isListening("127.0.111.2", 15008)).toBe(false);
    expect(await isListening("127.0.121.2", 9000)).toBe(false);
    for (const [h, p] of addrs) expect(await isListening(h ?? "", Number(p))).toBe(false);
  });
});
