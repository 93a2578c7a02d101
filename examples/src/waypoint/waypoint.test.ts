import { execFile } from "node:child_process";
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { promisify } from "node:util";
import { CertificateAuthority } from "@ambientkit/identity";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EchoReply, httpRequest, startHttpEcho, startTcpEcho } from "../apps/echo.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import type { Listener } from "../mesh/net.js";
import { seededRandom } from "../mesh/state.js";
import { workloadYaml } from "../mesh/workload-yaml.js";
import { isListening, scrape } from "../testing.js";
import { Ztunnel } from "../ztunnel/ztunnel.js";
import { Waypoint } from "./waypoint.js";

const run = promisify(execFile);

// This file's own loopback range: pods 127.0.130.x, VIPs 127.0.140.x.
const w = (
  name: string,
  ip: string,
  node: string,
  services: Record<string, Record<number, number>> = {},
  waypoint?: string,
) =>
  workloadYaml({ name, namespace: "shop", ip, node, services, ...(waypoint ? { waypoint } : {}) });
const LOCAL_XDS = `workloads:${w("client", "127.0.130.1", "a")}${w("api-v1", "127.0.130.2", "b", {
  "shop/api.shop.svc.cluster.local": { 8000: 8080 },
  "shop/api-v1.shop.svc.cluster.local": { 8000: 8080 },
})}${w("api-v2", "127.0.130.3", "b", {
  "shop/api.shop.svc.cluster.local": { 8000: 8080 },
  "shop/api-v2.shop.svc.cluster.local": { 8000: 8080 },
})}${w("direct", "127.0.130.4", "b", {}, "/127.0.130.9")}${w("grpc", "127.0.130.5", "b", {
  "shop/grpc.shop.svc.cluster.local": { 50051: 50051 },
})}${w("tcp", "127.0.130.6", "b", { "shop/tcp.shop.svc.cluster.local": { 7000: 7000 } })}${w("wp", "127.0.130.9", "none")}
services:
  - { name: api, namespace: shop, hostname: api.shop.svc.cluster.local, vips: ["/127.0.140.1"], ports: { 8000: 8080 }, waypoint: { destination: /127.0.130.9, hboneMtlsPort: 15008 } }
  - { name: api-v1, namespace: shop, hostname: api-v1.shop.svc.cluster.local, vips: ["/127.0.140.2"], ports: { 8000: 8080 } }
  - { name: api-v2, namespace: shop, hostname: api-v2.shop.svc.cluster.local, vips: ["/127.0.140.3"], ports: { 8000: 8080 } }
  - { name: tcp, namespace: shop, hostname: tcp.shop.svc.cluster.local, vips: ["/127.0.140.6"], ports: { 7000: 7000 }, waypoint: { destination: /127.0.130.9, hboneMtlsPort: 15008 } }
  - { name: grpc, namespace: shop, hostname: grpc.shop.svc.cluster.local, vips: ["/127.0.140.4"], ports: { 50051: 50051 }, waypoint: { destination: /127.0.130.9, hboneMtlsPort: 15008 } }
`;
// A JWT issuer for RequestAuthentication: a P-256 key with an inline JWKS.
const issuerKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const JWKS = JSON.stringify({
  keys: [{ ...issuerKey.publicKey.export({ format: "jwk" }), kid: "k1", alg: "ES256", use: "sig" }],
});
function jwt(claims: Record<string, unknown>, key: KeyObject = issuerKey.privateKey): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const data = `${enc({ alg: "ES256", kid: "k1", typ: "JWT" })}.${enc(claims)}`;
  return `${data}.${sign("sha256", Buffer.from(data), { key, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
}

const ISTIO = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: api-jwt, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  jwtRules:
    - issuer: https://issuer.example
      audiences: [shop]
      jwks: '${JWKS}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-private-needs-jwt, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: DENY
  rules:
    - from: [{ source: { notRequestPrincipals: ["*"] } }]
      to: [{ operation: { paths: ["/private"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-allow-reads, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: ALLOW
  rules:
    - to: [{ operation: { methods: ["GET", "HEAD"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-deny-secret, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/secret"] } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: api, port: 8000 }]
  rules:
    - matches: [{ path: { type: Exact, value: /slow } }]
      timeouts: { request: 300ms }
      backendRefs: [{ name: api-v1, port: 8000 }]
    - matches: [{ method: GET, path: { type: PathPrefix, value: /v2 } }]
      filters:
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-served, value: v2-rule }] }
      backendRefs:
        - name: api-v2
          port: 8000
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: { set: [{ name: x-backend, value: v2 }], remove: [x-drop] }
    - backendRefs:
        - { name: api-v1, port: 8000, weight: 90 }
        - { name: api-v2, port: 8000, weight: 10 }
`;

const CLIENT = "127.0.130.1";

/** A gRPC-shaped h2c server: echoes the body, sends grpc-status in trailers. */
async function startGrpcEcho(host: string, port: number): Promise<Listener> {
  const srv = http2.createServer();
  srv.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "x-path": String(headers[":path"]) },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": "0", "grpc-message": "ok" }),
      );
      stream.end(Buffer.concat(chunks));
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((r) => srv.listen(port, host, r));
  return {
    server: srv as never,
    host,
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        srv.close(() => r());
      }),
  };
}
const get = (path: string, extra: Partial<Parameters<typeof httpRequest>[0]> = {}) =>
  httpRequest({ host: "127.0.140.1", port: 8000, path, localAddress: CLIENT, ...extra });

describe("the reference waypoint", () => {
  const config = parseScenario(
    { file: "w.yaml", text: LOCAL_XDS },
    { file: "istio.yaml", text: ISTIO },
  );
  let certs: WorkloadCertificates;
  let a: Ztunnel;
  let b: Ztunnel;
  let wp: Waypoint;
  let apps: Listener[];
  beforeAll(async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    apps = [
      await startHttpEcho({
        host: "127.0.130.2",
        port: 8080,
        app: "api",
        version: "v1",
        pod: "api-v1",
      }),
      await startHttpEcho({
        host: "127.0.130.3",
        port: 8080,
        app: "api",
        version: "v2",
        pod: "api-v2",
      }),
      await startHttpEcho({
        host: "127.0.130.4",
        port: 8080,
        app: "direct",
        version: "v1",
        pod: "direct",
      }),
      await startGrpcEcho("127.0.130.5", 50051),
      await startTcpEcho("127.0.130.6", 7000),
    ];
    b = await Ztunnel.start({
      node: "b",
      config: config.local,
      certificates: certs,
      captureServices: false,
    });
    wp = await Waypoint.start({
      namespace: "shop",
      name: "wp",
      config,
      certificates: certs,
      metricsPort: 0,
      random: seededRandom(42),
    });
    a = await Ztunnel.start({
      node: "a",
      config: config.local,
      certificates: certs,
      ports: { socks5: 0 },
    });
  });
  afterAll(async () => {
    await a?.close();
    await wp?.close();
    await b?.close();
    for (const l of apps ?? []) await l.close();
    certs?.close();
  });

  it("re-originates HBONE to the pod with :authority podIP:targetPort, as the waypoint identity", async () => {
    const r = await get("/hello");
    expect(r.status).toBe(200);
    // ztunnel b logs the tunnel when it closes, which may be just after the client has the reply
    const inbound = await vi.waitFor(
      () => {
        const e = b.log.entries.findLast(
          (x) => x.message === "connection complete" && x.fields["src.identity"] !== undefined,
        );
        if (e === undefined) throw new Error("no inbound connection logged yet");
        return e;
      },
      { timeout: 2000 },
    );
    expect(inbound.fields["src.identity"]).toBe("spiffe://cluster.local/ns/shop/sa/wp");
    expect(["127.0.130.2:8080", "127.0.130.3:8080"]).toContain(inbound.fields["dst.hbone_addr"]);
    expect((JSON.parse(r.body) as EchoReply).remoteAddress).toBe("127.0.130.9");
  });

  it("answers 403 and logs the deciding policy", async () => {
    const denied = await get("/secret");
    expect(denied.status).toBe(403);
    expect(wp.log.entries.findLast((e) => e.fields.path === "/secret")?.fields.policy).toBe(
      "shop/api-deny-secret",
    );
    const post = await get("/hello", { method: "POST" });
    expect(post.status).toBe(403);
    expect(wp.log.entries.findLast((e) => e.fields.method === "POST")?.fields.policy).toBe(
      "implicit:no-allow-match",
    );
  });

  it("splits 90/10 by weight (200 requests, within ±8 points)", async () => {
    const n = 200;
    let v1 = 0;
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => get("/split")));
      for (const r of batch) if ((JSON.parse(r.body) as EchoReply).version === "v1") v1++;
    }
    expect(Math.abs((100 * v1) / n - 90)).toBeLessThanOrEqual(8);
  });

  it("routes on method and path, with request and response header modifiers", async () => {
    const r = await get("/v2/items", { headers: { "x-drop": "1", "x-keep": "1" } });
    const reply = JSON.parse(r.body) as EchoReply;
    expect(reply.version).toBe("v2");
    expect(reply.headers["x-backend"]).toBe("v2");
    expect(reply.headers["x-drop"]).toBeUndefined();
    expect(reply.headers["x-keep"]).toBe("1");
    expect(r.headers["x-served"]).toBe("v2-rule");
    const head = await get("/v2/items", { method: "HEAD" });
    expect(head.headers["x-served"]).toBeUndefined();
  });

  it("enforces the route timeout with 504", async () => {
    const r = await get("/slow?delay=3000");
    expect(r.status).toBe(504);
    expect((await get("/slow?delay=0")).status).toBe(200);
  });

  it("serves workload-addressed traffic (pod IP over SOCKS5) for a workload that uses it", async () => {
    // Node has no transparent capture of pod IPs: curl goes through node a's SOCKS5 listener.
    const { stdout } = await run("curl", [
      "-sS",
      "--max-time",
      "10",
      "--socks5",
      a.addresses.socks5 ?? "",
      "http://127.0.130.4:8080/direct",
    ]);
    expect((JSON.parse(stdout) as EchoReply).pod).toBe("direct");
    expect(wp.log.entries.findLast((e) => e.fields.path === "/direct")?.fields.upstream).toBe(
      "127.0.130.4:8080",
    );
  });

  it("proxies HTTP/2 end to end with trailers (a gRPC-shaped call)", async () => {
    const session = http2.connect("http://127.0.140.4:50051", {
      createConnection: () =>
        net.connect({ host: "127.0.140.4", port: 50051, localAddress: CLIENT }),
    });
    try {
      const req = session.request({
        ":method": "POST",
        ":path": "/echo.Echo/Say",
        "content-type": "application/grpc",
        te: "trailers",
      });
      const payload = Buffer.from([0, 0, 0, 0, 5, 104, 101, 108, 108, 111]);
      req.end(payload);
      const result = await new Promise<{
        headers: http2.IncomingHttpHeaders;
        body: Buffer;
        trailers: http2.IncomingHttpHeaders;
      }>((resolve, reject) => {
        let headers: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        req.on("response", (h) => {
          headers = h;
        });
        req.on("trailers", (t) => {
          trailers = t;
        });
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve({ headers, body: Buffer.concat(chunks), trailers }));
        req.on("error", reject);
      });
      expect(result.headers[":status"]).toBe(200);
      expect(result.headers["x-path"]).toBe("/echo.Echo/Say");
      expect(result.body.equals(payload)).toBe(true);
      expect(result.trailers["grpc-status"]).toBe("0");
    } finally {
      session.close();
    }
    expect(
      wp.log.entries.findLast((e) => e.fields.path === "/echo.Echo/Say")?.fields.protocol,
    ).toBe("HTTP/2");
  });

  it("carries non-HTTP (L4) traffic through the waypoint byte-exact, also when the client speaks after the sniff timeout", async () => {
    const data = Buffer.concat([Buffer.from([0, 1, 2, 0xff]), randomBytes(200_000)]);
    const roundTrip = (delayMs: number) =>
      new Promise<Buffer>((resolve, reject) => {
        const s = net.connect({
          host: "127.0.140.6",
          port: 7000,
          localAddress: CLIENT,
          allowHalfOpen: true,
        });
        const chunks: Buffer[] = [];
        s.on("data", (c: Buffer) => chunks.push(c));
        s.once("end", () => {
          s.end();
          resolve(Buffer.concat(chunks));
        });
        s.once("error", reject);
        s.once("connect", () => setTimeout(() => s.end(data), delayMs));
      });
    expect((await roundTrip(0)).equals(data)).toBe(true);
    // past the sniff timeout (300 ms): the waypoint must not lose bytes that arrive later
    expect((await roundTrip(400)).equals(data)).toBe(true);
    const samples = await scrape(wp.metricsAddress ?? "");
    const tcp = samples.find(
      (x) =>
        x.name === "istio_tcp_received_bytes_total" &&
        x.labels.reporter === "waypoint" &&
        x.labels.destination_workload === "tcp",
    );
    expect(tcp?.value).toBe(2 * data.length);
    expect(tcp?.labels.source_principal).toBe("spiffe://cluster.local/ns/shop/sa/client");
  });

  it("records L7 metrics with reporter=waypoint", async () => {
    const samples = await scrape(wp.metricsAddress ?? "");
    const reqs = samples.filter(
      (s) => s.name === "istio_requests_total" && s.labels.reporter === "waypoint",
    );
    const byCode = (code: string) =>
      reqs.filter((s) => s.labels.response_code === code).reduce((n, s) => n + s.value, 0);
    expect(byCode("200")).toBeGreaterThanOrEqual(200);
    expect(byCode("403")).toBe(2);
    expect(byCode("504")).toBe(1);
    const v1 = reqs.find(
      (s) => s.labels.destination_workload === "api-v1" && s.labels.response_code === "200",
    );
    expect(v1?.labels).toMatchObject({
      source_workload: "client",
      source_principal: "spiffe://cluster.local/ns/shop/sa/client",
      destination_service: "api.shop.svc.cluster.local",
      destination_principal: "spiffe://cluster.local/ns/shop/sa/api-v1",
    });
    expect(
      samples.some(
        (s) =>
          s.name === "istio_request_duration_milliseconds_bucket" &&
          s.labels.reporter === "waypoint",
      ),
    ).toBe(true);
  });

  it("answers 503 (UF) when the destination ztunnel refuses the waypoint (L4 policy, 401)", async () => {
    const denyWaypoint = parseScenario(
      {
        file: "w.yaml",
        text: `${LOCAL_XDS}policies:
  - name: deny-waypoint
    namespace: shop
    scope: Namespace
    action: Deny
    dryRun: false
    rules:
      - - - principals: [{ Exact: cluster.local/ns/shop/sa/wp }]
`,
      },
      { file: "istio.yaml", text: ISTIO },
    );
    await b.setConfig(denyWaypoint.local);
    try {
      const r = await get("/hello");
      expect(r.status).toBe(503);
      expect(
        wp.log.entries.findLast((e) => e.message === "upstream connect failed")?.fields.error,
      ).toBe("CONNECT answered 401");
    } finally {
      await b.setConfig(config.local);
    }
    expect((await get("/hello")).status).toBe(200);
  });

  it("validates JWTs from a RequestAuthentication and feeds request principals to the policy", async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = { iss: "https://issuer.example", sub: "alice", aud: "shop", exp: now + 600 };
    const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    const anonymous = await get("/private");
    expect(anonymous.status).toBe(403);
    expect(wp.log.entries.findLast((e) => e.fields.path === "/private")?.fields.policy).toBe(
      "shop/api-private-needs-jwt",
    );
    expect((await get("/private", bearer(jwt(good)))).status).toBe(200);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const forged = await get("/private", bearer(jwt(good, other)));
    expect([forged.status, forged.body.trim()]).toEqual([401, "Jwt verification fails"]);
    const expired = await get("/private", bearer(jwt({ ...good, exp: now - 10 })));
    expect([expired.status, expired.body.trim()]).toEqual([401, "Jwt is expired"]);
    const aud = await get("/private", bearer(jwt({ ...good, aud: "elsewhere" })));
    expect([aud.status, aud.body.trim()]).toEqual([401, "Audiences in Jwt are not allowed"]);
    const iss = await get("/hello", bearer(jwt({ ...good, iss: "https://evil.example" })));
    expect([iss.status, iss.body.trim()]).toEqual([401, "Jwt issuer is not configured"]);
  });

  it("releases free heap to the OS as Envoy's shrink_heap: on by default, counted in its metrics", async () => {
    const shrinker = wp.heapShrinker;
    expect(shrinker?.available).toBe(true);
    expect(shrinker?.intervalMs).toBe(10_000);
    expect(shrinker?.maxUnfreedMemoryBytes).toBe(100 * 1024 * 1024);
    const count = async (): Promise<number | undefined> =>
      (await scrape(wp.metricsAddress ?? "")).find(
        (s) => s.name === "envoy_overload_envoy_overload_actions_shrink_heap_shrink_count",
      )?.value;
    const n = (await count()) ?? Number.NaN;
    expect(n).toBe(shrinker?.shrinkCount);
    // a shrink that released memory is counted and logged; one that did not, neither
    const logged = wp.log.entries.filter((e) => e.message === "heap shrunk").length;
    const r = shrinker?.shrinkIfUnfreed();
    expect(await count()).toBe(n + (r ? 1 : 0));
    expect(wp.log.entries.filter((e) => e.message === "heap shrunk").length).toBe(
      logged + (r ? 1 : 0),
    );
  });

  it("leaves nothing listening after close()", async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const c2 = new WorkloadCertificates(ca);
    const cfg = parseScenario(
      {
        file: "w.yaml",
        text: LOCAL_XDS.replaceAll("127.0.130.", "127.0.131.").replaceAll(
          "127.0.140.",
          "127.0.141.",
        ),
      },
      { file: "istio.yaml", text: ISTIO },
    );
    const w = await Waypoint.start({
      namespace: "shop",
      name: "wp",
      config: cfg,
      certificates: c2,
      metricsPort: 0,
      shrinkHeap: false,
    });
    expect(w.heapShrinker).toBeUndefined();
    const [h, p] = (w.metricsAddress ?? "").split(":");
    expect(await isListening("127.0.131.9", 15008)).toBe(true);
    await w.close();
    c2.close();
    expect(await isListening("127.0.131.9", 15008)).toBe(false);
    expect(await isListening(h ?? "", Number(p))).toBe(false);
  });
});
