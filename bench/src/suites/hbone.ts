// HBONE: single-tunnel throughput vs a raw node TLS 1.3 socket on loopback; stream-open latency on
// a warm pooled connection vs a plain HTTP/2 GET round trip; RSS per idle tunnel with 1,000 open.
// Certificates come from @ambientkit/identity's CA (ECDSA P-256 SVIDs, as ztunnel uses).
import http2 from "node:http2";
import net from "node:net";
import type { Writable } from "node:stream";
import tls from "node:tls";
import {
  clientTlsOptions,
  HBONE_DEFAULTS,
  type HboneCredentials,
  HbonePool,
  HboneServer,
  type HboneStream,
  serverTlsOptions,
} from "@ambientkit/hbone";
import { CertificateAuthority } from "@ambientkit/identity";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

interface Fixture {
  client: HboneCredentials;
  server: HboneCredentials;
  serverId: string;
}

async function fixture(): Promise<Fixture> {
  const ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const c = await ca.issue("spiffe://cluster.local/ns/bench/sa/client");
  const s = await ca.issue("spiffe://cluster.local/ns/bench/sa/server");
  return {
    client: { cert: c.certChainPem, key: c.privateKeyPem, ca: c.rootCertPem },
    server: { cert: s.certChainPem, key: s.privateKeyPem, ca: s.rootCertPem },
    serverId: s.identity,
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

/** Writes `total` bytes in 64 KiB chunks with backpressure; resolves when `done()` says the sink has them. */
async function pump(w: Writable, total: number, received: () => number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!w.write(chunk)) await new Promise((r) => w.once("drain", r));
  }
  while (received() < total) await new Promise((r) => setImmediate(r));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return total / s / 1e6;
}

/**
 * The ceiling node:http2 itself puts on one CONNECT stream: a bare http2 secure server and client
 * with HBONE's TLS options, windows and frame size, and no ambientkit code on the data path.
 */
async function bareHttp2(fx: Fixture, total: number): Promise<number> {
  const settings = {
    enablePush: false,
    initialWindowSize: HBONE_DEFAULTS.streamWindowSize,
    maxFrameSize: HBONE_DEFAULTS.maxFrameSize,
  };
  let got = 0;
  const server = http2.createSecureServer({
    ...serverTlsOptions(fx.server),
    settings,
    maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
  });
  server.on("session", (s) => s.setLocalWindowSize(HBONE_DEFAULTS.connectionWindowSize));
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200 });
    stream.on("data", (c: Buffer) => {
      got += c.length;
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ...clientTlsOptions(fx.client, [fx.serverId]),
    settings,
    maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
  });
  session.on("connect", () => session.setLocalWindowSize(HBONE_DEFAULTS.connectionWindowSize));
  const stream = session.request({ ":method": "CONNECT", ":authority": "127.0.0.1:9" });
  await new Promise((r) => stream.once("response", r));
  const mbps = await pump(stream, total, () => got);
  stream.close();
  session.close();
  await new Promise<void>((r) => server.close(() => r()));
  return mbps;
}

async function throughput(fx: Fixture): Promise<MeasureRow[]> {
  const total = 256 * 1024 * 1024;
  let sunk = 0;
  const sink = net.createServer((s) => {
    s.on("data", (c: Buffer) => {
      sunk += c.length;
    });
  });
  const sinkPort = await listen(sink);
  const results: Record<string, number[]> = {
    hbone: [],
    hboneNoReadAhead: [],
    hboneTerm: [],
    tls: [],
    tlsProxy: [],
    bareH2: [],
  };
  let termGot = 0;
  const servers = {
    hbone: new HboneServer({ credentials: fx.server }),
    hboneNoReadAhead: new HboneServer({ credentials: fx.server, readAhead: false }),
    hboneTerm: new HboneServer({
      credentials: fx.server,
      handler: () => ({
        action: "accept",
        onTunnel: (t: HboneStream) =>
          t.on("data", (c: Buffer) => {
            termGot += c.length;
          }),
      }),
    }),
  };
  const ports = {
    hbone: (await servers.hbone.listen(0)).port,
    hboneNoReadAhead: (await servers.hboneNoReadAhead.listen(0)).port,
    hboneTerm: (await servers.hboneTerm.listen(0)).port,
  };
  // a TLS-terminating proxy piping to the same TCP sink: the apples-to-apples peer of a tunnel
  const tlsProxy = tls.createServer(serverTlsOptions(fx.server), (s) => {
    const up = net.connect(sinkPort, "127.0.0.1");
    s.pipe(up);
  });
  const tlsProxyPort = await listen(tlsProxy);
  let tlsGot = 0;
  const rawServer = tls.createServer(serverTlsOptions(fx.server), (s) => {
    s.on("data", (c: Buffer) => {
      tlsGot += c.length;
    });
  });
  const rawPort = await listen(rawServer);
  const pool = new HbonePool();
  for (let round = 0; round < 3; round++) {
    for (const kind of ["hbone", "hboneNoReadAhead", "hboneTerm"] as const) {
      const t = await pool.open({
        address: { host: "127.0.0.1", port: ports[kind] },
        credentials: fx.client,
        expectedIdentities: [fx.serverId],
        authority: `127.0.0.1:${sinkPort}`,
      });
      t.resume();
      sunk = 0;
      termGot = 0;
      results[kind]?.push(await pump(t, total, () => (kind === "hboneTerm" ? termGot : sunk)));
      t.destroy();
    }
    const p = tls.connect({
      host: "127.0.0.1",
      port: tlsProxyPort,
      ...clientTlsOptions(fx.client, [fx.serverId]),
    });
    await new Promise((r) => p.once("secureConnect", r));
    sunk = 0;
    results.tlsProxy?.push(await pump(p, total, () => sunk));
    p.destroy();
    const c = tls.connect({
      host: "127.0.0.1",
      port: rawPort,
      ...clientTlsOptions(fx.client, [fx.serverId]),
    });
    await new Promise((r) => c.once("secureConnect", r));
    tlsGot = 0;
    results.tls?.push(await pump(c, total, () => tlsGot));
    c.destroy();
    results.bareH2?.push(await bareHttp2(fx, total));
  }
  await pool.close();
  await servers.hbone.close(100);
  await servers.hboneNoReadAhead.close(100);
  await servers.hboneTerm.close(100);
  await new Promise<void>((r) => tlsProxy.close(() => r()));
  await new Promise<void>((r) => rawServer.close(() => r()));
  await new Promise<void>((r) => sink.close(() => r()));
  const median = (xs: number[] = []): number =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const h = median(results.hbone);
  const hn = median(results.hboneNoReadAhead);
  const ht = median(results.hboneTerm);
  const t = median(results.tls);
  const tp = median(results.tlsProxy);
  const b = median(results.bareH2);
  return [
    {
      name: "ambientkit HBONE tunnel, terminated in-process (no upstream hop)",
      value: Math.round(ht),
      unit: "MB/s",
    },
    {
      name: "raw node TLS 1.3 socket, same suites and certs (peer)",
      value: Math.round(t),
      unit: "MB/s",
      peer: true,
    },
    { name: "ratio HBONE tunnel / raw TLS socket", value: Number((ht / t).toFixed(2)), unit: "×" },
    {
      name: "bare node:http2 CONNECT stream, same TLS, windows and frame size, no ambientkit (peer)",
      value: Math.round(b),
      unit: "MB/s",
      peer: true,
    },
    {
      name: "ratio bare node:http2 stream / raw TLS socket (the ceiling node:http2 sets)",
      value: Number((b / t).toFixed(2)),
      unit: "×",
    },
    {
      name: "ratio HBONE tunnel / bare node:http2 stream",
      value: Number((ht / b).toFixed(2)),
      unit: "×",
    },
    {
      name: "ambientkit HBONE tunnel → server → TCP sink (read-ahead on, default)",
      value: Math.round(h),
      unit: "MB/s",
    },
    {
      name: "ambientkit HBONE tunnel → server → TCP sink (read-ahead off)",
      value: Math.round(hn),
      unit: "MB/s",
    },
    {
      name: "node TLS 1.3 proxy → TCP sink (peer)",
      value: Math.round(tp),
      unit: "MB/s",
      peer: true,
    },
    {
      name: "ratio HBONE → sink (read-ahead on) / TLS proxy → sink",
      value: Number((h / tp).toFixed(2)),
      unit: "×",
    },
    {
      name: "ratio HBONE → sink (read-ahead off) / TLS proxy → sink",
      value: Number((hn / tp).toFixed(2)),
      unit: "×",
    },
  ];
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function openTimes(fx: Fixture, readAhead: boolean, N: number): Promise<number[]> {
  const server = new HboneServer({
    credentials: fx.server,
    readAhead,
    handler: () => ({ action: "accept", onTunnel: (t: HboneStream) => t.end() }),
  });
  const port = (await server.listen(0)).port;
  const pool = new HbonePool();
  const req = {
    address: { host: "127.0.0.1", port },
    credentials: fx.client,
    expectedIdentities: [fx.serverId],
    authority: "10.0.0.1:80",
    traceparent: false as const,
  };
  const out: number[] = [];
  for (let i = 0; i < N + 200; i++) {
    const t0 = process.hrtime.bigint();
    const t = await pool.open(req);
    const dt = Number(process.hrtime.bigint() - t0) / 1e3;
    if (i >= 200) out.push(dt);
    t.resume();
    t.end();
    await new Promise((r) => t.once("close", r));
  }
  await pool.close();
  await server.close(100);
  return out;
}

async function openLatency(fx: Fixture): Promise<MeasureRow[]> {
  const N = 2000;
  const hb = await openTimes(fx, true, N);
  const hbNoRa = await openTimes(fx, false, N);
  // plain HTTP/2 GET round trip on a warm TLS session
  const h2s = http2.createSecureServer({ ...serverTlsOptions(fx.server) });
  h2s.on("stream", (s) => s.respond({ ":status": 200 }, { endStream: true }));
  const h2port = await listen(h2s as unknown as net.Server);
  const client = http2.connect(`https://127.0.0.1:${h2port}`, {
    ...clientTlsOptions(fx.client, [fx.serverId]),
  });
  await new Promise((r) => client.once("remoteSettings", r));
  const get: number[] = [];
  for (let i = 0; i < N + 200; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const r = client.request({ ":path": "/" });
      r.once("response", () => {
        r.resume();
        r.once("end", () => resolve());
      });
      r.once("error", reject);
      r.end();
    });
    const dt = Number(process.hrtime.bigint() - t0) / 1e3;
    if (i >= 200) get.push(dt);
  }
  client.close();
  await new Promise<void>((r) => h2s.close(() => r()));
  return [
    {
      name: "ambientkit HBONE stream open (CONNECT → 200), warm pooled connection, p50",
      value: Math.round(percentile(hb, 50)),
      unit: "µs",
    },
    {
      name: "ambientkit HBONE stream open, p99",
      value: Math.round(percentile(hb, 99)),
      unit: "µs",
    },
    {
      name: "ambientkit HBONE stream open, server read-ahead off, p50",
      value: Math.round(percentile(hbNoRa, 50)),
      unit: "µs",
    },
    {
      name: "ambientkit HBONE stream open, server read-ahead off, p99",
      value: Math.round(percentile(hbNoRa, 99)),
      unit: "µs",
    },
    {
      name: "plain node:http2 GET round trip, warm TLS session, p50 (peer)",
      value: Math.round(percentile(get, 50)),
      unit: "µs",
      peer: true,
    },
    {
      name: "plain node:http2 GET round trip, p99 (peer)",
      value: Math.round(percentile(get, 99)),
      unit: "µs",
      peer: true,
    },
  ];
}

async function idleRss(fx: Fixture): Promise<MeasureRow[]> {
  const held: HboneStream[] = [];
  const server = new HboneServer({
    credentials: fx.server,
    maxConcurrentStreams: 200,
    handler: () => ({ action: "accept", onTunnel: (t: HboneStream) => held.push(t) }),
  });
  const port = (await server.listen(0)).port;
  const pool = new HbonePool();
  const req = {
    address: { host: "127.0.0.1", port },
    credentials: fx.client,
    expectedIdentities: [fx.serverId],
    authority: "10.0.0.1:80",
  };
  // warm up: connections dialled, code paths hot
  const warm = await Promise.all(Array.from({ length: 200 }, () => pool.open(req)));
  for (const t of warm) t.destroy();
  await new Promise((r) => setTimeout(r, 200));
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().rss;
  const N = 1000;
  const tunnels: HboneStream[] = [];
  for (let i = 0; i < N; i += 100)
    tunnels.push(...(await Promise.all(Array.from({ length: 100 }, () => pool.open(req)))));
  await new Promise((r) => setTimeout(r, 200));
  (globalThis as { gc?: () => void }).gc?.();
  const after = process.memoryUsage().rss;
  for (const t of tunnels) t.destroy();
  await pool.close();
  await server.close(100);
  return [
    {
      name: "RSS growth per idle tunnel, 1,000 open (client + server side in one process)",
      value: Math.round((after - before) / N / 102.4) / 10,
      unit: "KiB",
    },
  ];
}

const suite: BenchSuite = {
  package: "hbone",
  async groups(): Promise<BenchGroup[]> {
    const fx = await fixture();
    return [
      {
        name: "hbone/throughput",
        target: "single tunnel ≥ 0.90× a raw node TLS 1.3 socket on loopback",
        cases: [],
        measure: () => throughput(fx),
      },
      {
        name: "hbone/stream-open",
        target:
          "stream open on a warm pooled connection, p50/p99, vs a plain HTTP/2 GET round trip",
        cases: [],
        measure: () => openLatency(fx),
      },
      {
        name: "hbone/idle-rss",
        target: "≤ 16 KiB RSS per idle tunnel with 1,000 open",
        cases: [],
        measure: () => idleRss(fx),
      },
    ];
  },
};

export default suite;
