// Issue #21: the reference mesh survives misbehaving clients. One regression test per defect, with
// real sockets on loopback: FIN and RST at each stage, slow clients, aborted uploads; afterwards the
// process's fds, the ztunnels' open tunnels and the opened − closed connection metrics must return.
// This file's own loopback range: pods 127.0.170.x, VIPs 127.0.180.x.
import { readdirSync } from "node:fs";
import net from "node:net";
import { CertificateAuthority } from "@ambientkit/identity";
import type { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { httpRequest, startHttpEcho, startTcpEcho } from "./apps/echo.js";
import { dialHbone } from "./hbone.js";
import { WorkloadCertificates } from "./mesh/certs.js";
import { parseScenario } from "./mesh/config.js";
import type { Listener } from "./mesh/net.js";
import { workloadYaml } from "./mesh/workload-yaml.js";
import { parsePrometheus } from "./testing.js";
import { Waypoint } from "./waypoint/waypoint.js";
import { Ztunnel } from "./ztunnel/ztunnel.js";

const w = (
  name: string,
  ip: string,
  node: string,
  services: Record<string, Record<number, number>> = {},
) => workloadYaml({ name, namespace: "zoo", ip, node, services });
const WP = "waypoint: { destination: /127.0.170.9, hboneMtlsPort: 15008 }";
const LOCAL_XDS = `workloads:${w("client", "127.0.170.1", "a")}${w("web", "127.0.170.2", "b", {
  "zoo/web.zoo.svc.cluster.local": { 8000: 8080 },
  "zoo/plain.zoo.svc.cluster.local": { 8001: 8080 },
})}${w("tcp", "127.0.170.3", "b", { "zoo/tcp.zoo.svc.cluster.local": { 7000: 7000 } })}${w("wp", "127.0.170.9", "none")}
services:
  - { name: web, namespace: zoo, hostname: web.zoo.svc.cluster.local, vips: ["/127.0.180.1"], ports: { 8000: 8080 }, ${WP} }
  - { name: plain, namespace: zoo, hostname: plain.zoo.svc.cluster.local, vips: ["/127.0.180.2"], ports: { 8001: 8080 }, ${WP} }
  - { name: tcp, namespace: zoo, hostname: tcp.zoo.svc.cluster.local, vips: ["/127.0.180.3"], ports: { 7000: 7000 } }
`;
// web:8000 is declared HTTP (port name), plain:8001 is not declared (the waypoint detects it);
// both carry an HTTP-only DENY, which a TCP connection would match as a whole.
const ISTIO = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: zoo }
spec:
  ports: [{ name: http-web, port: 8000, targetPort: 8080 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: zoo }
spec:
  targetRefs: [{ kind: Service, group: "", name: web }, { kind: Service, group: "", name: plain }]
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin"] } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: zoo }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 8000 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /upload } }]
      timeouts: { request: 400ms }
      backendRefs: [{ name: web, port: 8000 }]
`;

const fds = (): number => readdirSync("/proc/self/fd").length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opened − closed TCP connections in a registry (what "open connections" means in the metrics). */
async function openConnections(registry: Registry): Promise<number> {
  const samples = parsePrometheus(await registry.metrics());
  const sum = (name: string) =>
    samples.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
  return sum("istio_tcp_connections_opened_total") - sum("istio_tcp_connections_closed_total");
}

describe("the reference mesh with misbehaving clients (#21)", () => {
  const config = parseScenario(
    { file: "m.yaml", text: LOCAL_XDS },
    { file: "i.yaml", text: ISTIO },
  );
  let certs: WorkloadCertificates;
  let a: Ztunnel;
  let b: Ztunnel;
  let wp: Waypoint;
  let apps: Listener[];
  let socks: { host: string; port: number };

  beforeAll(async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    apps = [
      await startHttpEcho({
        host: "127.0.170.2",
        port: 8080,
        app: "web",
        version: "v1",
        pod: "web",
      }),
      await startTcpEcho("127.0.170.3", 7000),
    ];
    b = await Ztunnel.start({
      node: "b",
      config: config.local,
      certificates: certs,
      captureServices: false,
    });
    wp = await Waypoint.start({ namespace: "zoo", name: "wp", config, certificates: certs });
    a = await Ztunnel.start({
      node: "a",
      config: config.local,
      certificates: certs,
      captureServices: false,
      ports: { socks5: 0, readiness: 0 },
      defaultSource: "zoo/client",
      socks5HandshakeTimeoutMs: 500,
      maxDownstreamConnections: 60,
    });
    const [host, port] = (a.addresses.socks5 ?? "").split(":");
    socks = { host: host ?? "", port: Number(port) };
  });
  afterAll(async () => {
    await a?.close();
    await wp?.close();
    await b?.close();
    for (const l of apps ?? []) await l.close();
    certs?.close();
  });

  /** Connects to SOCKS5 and (unless `stop` says otherwise) asks for `host:port`. */
  function socks5(
    host: string,
    port: number,
    stop?: "before-greeting" | "before-request",
  ): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ ...socks, allowHalfOpen: true });
      s.once("error", reject);
      s.once("connect", () => {
        if (stop === "before-greeting") return resolve(s);
        s.write(Buffer.from([5, 1, 0]));
        if (stop === "before-request") return resolve(s);
        const ip = host.split(".").map(Number);
        const req = Buffer.from([5, 1, 0, 1, ...ip, port >> 8, port & 0xff]);
        s.write(req);
        let got = Buffer.alloc(0);
        const onData = (c: Buffer) => {
          got = Buffer.concat([got, c]);
          if (got.length < 12) return;
          s.removeListener("data", onData);
          s.pause();
          if (got[3] !== 0) reject(new Error(`SOCKS5 reply ${got[3]}`));
          else {
            if (got.length > 12) s.unshift(got.subarray(12));
            resolve(s);
          }
        };
        s.on("data", onData);
      });
    });
  }

  /** Waits until every fd, tunnel and open-connection count is back where it was. */
  async function expectReleased(fdBase: number): Promise<void> {
    await vi.waitFor(
      async () => {
        expect(b.inboundConnections).toBe(0);
        expect(a.downstreamConnections).toBe(0);
        expect(await openConnections(a.registry)).toBe(0);
        expect(await openConnections(b.registry)).toBe(0);
        expect(await openConnections(wp.registry)).toBe(0);
        expect(fds()).toBeLessThanOrEqual(fdBase + 10);
      },
      { timeout: 8000, interval: 100 },
    );
  }

  const warm = async () => {
    // pooled HBONE connections (a→b, a→wp, wp→b) exist before the baseline is taken
    const s = await socks5("127.0.180.3", 7000);
    s.end("x");
    s.resume();
    await new Promise((r) => s.once("close", r));
    const r = await slowHttp(
      "127.0.180.1",
      8000,
      "GET /warm HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
      0,
    );
    expect(r).toMatch(/^HTTP\/1.1 200/);
  };

  /** Sends `request` through SOCKS5 (after `delayMs`, one byte first, if given); resolves with the reply. */
  async function slowHttp(
    host: string,
    port: number,
    request: string,
    delayMs: number,
  ): Promise<string> {
    const s = await socks5(host, port);
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.resume();
    const done = new Promise<string>((resolve) => {
      s.once("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
      s.once("end", () => s.end());
    });
    if (delayMs === 0) s.write(request);
    else {
      await sleep(delayMs);
      s.write(request.slice(0, 1));
      await sleep(delayMs);
      s.write(request.slice(1));
    }
    return done;
  }

  it("#1 releases SOCKS5 clients that leave (FIN, FIN then RST) or stall before the request is complete", async () => {
    await warm();
    const base = fds();
    for (const stage of ["before-greeting", "before-request"] as const) {
      // FIN: the server must close its half too (no CLOSE_WAIT)
      const closed = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = await socks5("127.0.180.3", 7000, stage);
          s.end();
          s.resume();
          return new Promise<boolean>((r) => s.once("close", () => r(true)));
        }),
      );
      expect(closed.every(Boolean)).toBe(true);
      // FIN then RST
      for (let i = 0; i < 20; i++) {
        const s = await socks5("127.0.180.3", 7000, stage);
        s.end();
        await sleep(5);
        s.resetAndDestroy();
      }
    }
    // silent clients: released by the handshake timeout (500 ms here)
    const idle = await Promise.all(
      Array.from({ length: 10 }, () => socks5("127.0.180.3", 7000, "before-greeting")),
    );
    await Promise.all(
      idle.map(
        (s) =>
          new Promise((r) => {
            s.resume();
            s.once("end", () => s.end());
            s.once("close", r);
          }),
      ),
    );
    await expectReleased(base);
  });

  it("#2 releases both sides when a client resets right after CONNECT or aborts an upload (L4 and via the waypoint)", async () => {
    await warm();
    const base = fds();
    // RST right after the SOCKS5 CONNECT on an L4 service
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ ...socks });
      await new Promise((r) => s.once("connect", r));
      s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 180, 3, 7000 >> 8, 7000 & 0xff]));
      await sleep(i % 2 === 0 ? 0 : 20);
      s.resetAndDestroy();
    }
    // an L4 upload (never reading the echo) reset midway
    for (let i = 0; i < 5; i++) {
      const s = await socks5("127.0.180.3", 7000);
      s.write(Buffer.alloc(1024 * 1024, 1));
      await sleep(50);
      s.resetAndDestroy();
    }
    // uploads through the waypoint aborted with FIN or RST after 1 MiB of a 10 MiB body
    for (const how of ["fin", "rst"] as const) {
      for (let i = 0; i < 5; i++) {
        const s = await socks5("127.0.180.1", 8000);
        s.on("error", () => {});
        s.resume();
        s.write(`POST /echo HTTP/1.1\r\nhost: web\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`);
        s.write(Buffer.alloc(1024 * 1024, 2));
        await sleep(50);
        if (how === "fin") s.end();
        else s.resetAndDestroy();
      }
    }
    await expectReleased(base);
  });

  it("#3 serves a slow HTTP client through the waypoint (never a TCP denial), declared or detected", async () => {
    const req = "GET /slow HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n";
    // declared http-web: the first byte 600 ms after the tunnel opened
    expect(await slowHttp("127.0.180.1", 8000, req, 600)).toMatch(/^HTTP\/1.1 200/);
    // undeclared port: detected from the first bytes however late they come
    expect(await slowHttp("127.0.180.2", 8001, req, 600)).toMatch(/^HTTP\/1.1 200/);
    // the HTTP-only DENY still applies to the request it names
    expect(await slowHttp("127.0.180.1", 8000, req.replace("/slow", "/admin"), 0)).toMatch(
      /^HTTP\/1.1 403/,
    );
  });

  it("#4 starts the route timeout once the whole request body has arrived", async () => {
    const s = await socks5("127.0.180.1", 8000);
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => s.once("end", r));
    s.resume();
    const body = 4 * 1024 * 1024;
    s.write(
      `POST /upload HTTP/1.1\r\nhost: web\r\nconnection: close\r\ncontent-length: ${body}\r\n\r\n`,
    );
    // the upload takes longer than the 400 ms route timeout
    for (let sent = 0; sent < body; sent += 512 * 1024) {
      s.write(Buffer.alloc(512 * 1024, 3));
      await sleep(100);
    }
    await ended;
    s.end();
    expect(Buffer.concat(chunks).toString("latin1")).toMatch(/^HTTP\/1.1 200/);
  });

  it("#5 logs connection-level HBONE ends with their reason and stream count", async () => {
    await warm();
    // the waypoint's pooled connection to b is told to go away: b drains its server
    const before = wp.log.entries.length;
    await b.drainInbound();
    await vi.waitFor(
      () => {
        const e = wp.log.entries
          .slice(before)
          .find(
            (x) => String(x.message).startsWith("HBONE connection") && x.fields.role === "client",
          );
        expect(e?.fields.reason).toBe("goaway");
        expect(typeof e?.fields.streams).toBe("number");
      },
      { timeout: 5000 },
    );
    const samples = parsePrometheus(await wp.registry.metrics());
    expect(
      samples.some(
        (x) => x.name === "ambientkit_hbone_connection_ends_total" && x.labels.reason === "goaway",
      ),
    ).toBe(true);
    // and traffic still flows over a fresh connection
    await warm();
  });

  it("#6 readiness reflects the ability to serve: 503 at the connection cap, 200 again after", async () => {
    const ready = () =>
      httpRequest({
        host: "127.0.0.1",
        port: Number((a.addresses.readiness ?? "").split(":")[1]),
        path: "/healthz/ready",
      });
    expect((await ready()).status).toBe(200);
    const held = await Promise.all(Array.from({ length: 60 }, () => socks5("127.0.180.3", 7000)));
    expect((await ready()).status).toBe(503);
    for (const s of held) s.destroy();
    await vi.waitFor(async () => expect((await ready()).status).toBe(200), { timeout: 3000 });
  });

  it("#7 bounds what one tunnel can make the waypoint buffer: 1 MiB stream windows", async () => {
    const conn = await dialHbone({
      address: { host: wp.ip, port: 15008 },
      credentials: await certs.ensure("spiffe://cluster.local/ns/zoo/sa/client"),
      expectedIdentities: ["spiffe://cluster.local/ns/zoo/sa/wp"],
      localAddress: "127.0.170.1",
    });
    try {
      expect(conn.session.remoteSettings.initialWindowSize).toBe(1024 * 1024);
    } finally {
      conn.destroy();
    }
  });
});
