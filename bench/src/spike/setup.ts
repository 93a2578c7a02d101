/**
 * Shared setup of the issue #12 spike bench (suites/hbone-spike.ts): the three transports it
 * compares, each with the certificates, TLS options, windows and frame size the hbone bench uses,
 * both ends in this process on 127.0.0.1, and a timed transfer that also reads process.cpuUsage.
 *
 * `bareHttp2` is the same setup as `bareHttp2` in suites/hbone.ts (settings, connection window,
 * maxSessionMemory, a CONNECT stream, 64 KiB writes), repeated here so that suite stays untouched;
 * it adds an echo mode.
 */
import http2 from "node:http2";
import type net from "node:net";
import type { Duplex, Writable } from "node:stream";
import tls from "node:tls";
import {
  clientTlsOptions,
  HBONE_DEFAULTS,
  type HboneCredentials,
  serverTlsOptions,
} from "@ambientkit/hbone";
import { CertificateAuthority } from "@ambientkit/identity";
import { FramePumpConnection, type PumpOptions, type PumpStream } from "./frame-pump.js";

export interface Fixture {
  client: HboneCredentials;
  server: HboneCredentials;
  serverId: string;
}

/** ECDSA P-256 SVIDs from @ambientkit/identity's CA, as in suites/hbone.ts. */
export async function fixture(): Promise<Fixture> {
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

export interface Transfer {
  /** Payload MB/s (10^6 bytes) the client sent and the far end (or, for echo, the client) got. */
  mbps: number;
  /** CPU seconds (user + system, the whole process: both ends) per GiB of payload sent. */
  cpuSecPerGiB: number;
}

export type Mode = "bulk" | "echo";

/**
 * Writes `total` bytes in 64 KiB chunks with backpressure (as suites/hbone.ts `pump`) and waits
 * for `arrived` — resolved by the receiving end when it has counted `total` bytes.
 */
export async function timedSend(
  w: Writable,
  total: number,
  arrived: Promise<void>,
  timeoutMs = 60_000,
): Promise<Transfer> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_r, reject) => {
    timer = setTimeout(
      () => reject(new Error(`transfer stalled after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const send = (async () => {
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!w.write(chunk)) await new Promise((r) => w.once("drain", r));
    }
  })();
  try {
    await Promise.race([Promise.all([send, arrived]), stalled]);
  } finally {
    clearTimeout(timer);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return {
    mbps: total / s / 1e6,
    cpuSecPerGiB: (cpu.user + cpu.system) / 1e6 / (total / 2 ** 30),
  };
}

/** A counter that resolves `done` once `total` bytes went through `add`. */
export function counter(total: number): { add: (n: number) => void; done: Promise<void> } {
  let got = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  return {
    add: (n) => {
      got += n;
      if (got >= total) resolve();
    },
    done,
  };
}

async function listen(server: net.Server | tls.Server | http2.Http2SecureServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

function close(server: net.Server | tls.Server | http2.Http2SecureServer): Promise<void> {
  return new Promise<void>((r) => server.close(() => r()));
}

/** Sink or echo: how a server end treats a connection's or stream's bytes. */
function serve(s: Duplex, mode: Mode, count: (n: number) => void): void {
  s.on("error", () => {});
  if (mode === "echo") s.pipe(s);
  else s.on("data", (c: Buffer) => count(c.length));
}

/** (a) a raw TLS 1.3 socket: the same TLS options and certificates, no HTTP/2. */
export async function rawTls(fx: Fixture, total: number, mode: Mode): Promise<Transfer> {
  const got = counter(total);
  const server = tls.createServer(serverTlsOptions(fx.server), (s) => serve(s, mode, got.add));
  const port = await listen(server);
  const c = tls.connect({ host: "127.0.0.1", port, ...clientTlsOptions(fx.client, [fx.serverId]) });
  await new Promise((r) => c.once("secureConnect", r));
  if (mode === "echo") c.on("data", (b: Buffer) => got.add(b.length));
  try {
    return await timedSend(c, total, got.done);
  } finally {
    c.destroy();
    await close(server);
  }
}

/** (b) a bare node:http2 CONNECT stream with HBONE's settings (suites/hbone.ts `bareHttp2`). */
export async function bareHttp2(fx: Fixture, total: number, mode: Mode): Promise<Transfer> {
  const settings = {
    enablePush: false,
    initialWindowSize: HBONE_DEFAULTS.streamWindowSize,
    maxFrameSize: HBONE_DEFAULTS.maxFrameSize,
  };
  const got = counter(total);
  const server = http2.createSecureServer({
    ...serverTlsOptions(fx.server),
    settings,
    maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
  });
  server.on("session", (s) => s.setLocalWindowSize(HBONE_DEFAULTS.connectionWindowSize));
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200 });
    serve(stream, mode, got.add);
  });
  const port = await listen(server);
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ...clientTlsOptions(fx.client, [fx.serverId]),
    settings,
    maxSessionMemory: HBONE_DEFAULTS.maxSessionMemoryMb,
  });
  session.on("error", () => {});
  session.on("connect", () => session.setLocalWindowSize(HBONE_DEFAULTS.connectionWindowSize));
  const stream = session.request({ ":method": "CONNECT", ":authority": "127.0.0.1:9" });
  stream.on("error", () => {});
  await new Promise((r) => stream.once("response", r));
  if (mode === "echo") stream.on("data", (b: Buffer) => got.add(b.length));
  try {
    return await timedSend(stream, total, got.done);
  } finally {
    stream.destroy();
    session.destroy();
    await close(server);
  }
}

/** (c) the spike's frame pump over node:tls, same TLS options, windows and frame size. */
export async function framePump(
  fx: Fixture,
  total: number,
  mode: Mode,
  opts: PumpOptions = {},
): Promise<Transfer> {
  const got = counter(total);
  const server = tls.createServer(serverTlsOptions(fx.server), (socket) => {
    const conn = new FramePumpConnection(socket, "server", opts);
    conn.onStream = (stream) => {
      stream.on("error", () => {});
      stream.respond(200);
      serve(stream, mode, got.add);
    };
  });
  const port = await listen(server);
  const socket = tls.connect({
    host: "127.0.0.1",
    port,
    ...clientTlsOptions(fx.client, [fx.serverId]),
  });
  await new Promise((r) => socket.once("secureConnect", r));
  if (socket.alpnProtocol !== "h2") throw new Error(`ALPN ${String(socket.alpnProtocol)}, not h2`);
  const conn = new FramePumpConnection(socket, "client", opts);
  const stream: PumpStream = conn.connect("127.0.0.1:9");
  stream.on("error", () => {});
  await new Promise((r) => stream.once("response", r));
  if (mode === "echo") stream.on("data", (b: Buffer) => got.add(b.length));
  try {
    const r = await timedSend(stream, total, got.done);
    if (process.env.SPIKE_DEBUG) console.error(conn.stats, conn.sentFrames, conn.receivedFrames);
    return r;
  } finally {
    stream.destroy();
    socket.destroy();
    await close(server);
  }
}
