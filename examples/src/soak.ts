// `npm run soak` (issue #21): a reference mesh (two ztunnels, a waypoint, an HTTP and a TCP echo
// app) in a child process, and from this process, through its SOCKS5 entry on loopback:
//   1. 1,000 well-behaved clients (HTTP via the waypoint, TCP echo direct) — p99 before the storm;
//   2. ≥ 10,000 misbehaving clients (FIN before the greeting, FIN then RST after it, RST right after
//      CONNECT, uploads aborted with FIN or RST mid-body through the waypoint, idle forever before
//      the greeting or after CONNECT) coming and going while another 1,000 good clients run;
//   3. the mesh process's fds and open-connection count (opened − closed over all three proxies)
//      must return to the idle baseline (+10 fds, 0 open) within the configured timeouts;
//   4. 200 × 10 MiB uploads through the waypoint: peak RSS, per-connection, and RSS 60 s later.
// Prints the figures and exits 1 if a good client failed or something did not return. Not part of
// `npm test`; takes a few minutes. Options: --misbehaving N (default 10,000), --good N (1,000).
import { fork } from "node:child_process";
import { mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import net from "node:net";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import type { Registry } from "prom-client";
import { startHttpEcho, startTcpEcho } from "./apps/echo.js";
import { WorkloadCertificates } from "./mesh/certs.js";
import { parseScenario } from "./mesh/config.js";
import { mallocStats } from "./mesh/heap-shrinker.js";
import { workloadYaml } from "./mesh/workload-yaml.js";
import { parsePrometheus } from "./testing.js";
import { Waypoint } from "./waypoint/waypoint.js";
import { Ztunnel } from "./ztunnel/ztunnel.js";

// The soak's own loopback range: pods 127.0.190.x, VIPs 127.0.200.x.
const HTTP_VIP = "127.0.200.1";
const TCP_VIP = "127.0.200.3";
/** Timeouts the soak configures (short, so that it finishes in minutes; defaults in docs). */
const HANDSHAKE_TIMEOUT_MS = 2_000;
const IDLE_TIMEOUT_MS = 5_000;
const MiB = 1024 * 1024;
/** Misbehaving clients at once (they come and go; a 2-core machine runs all three processes). */
const STORM_CONCURRENCY = 200;

const w = (
  name: string,
  ip: string,
  node: string,
  services: Record<string, Record<number, number>> = {},
) => workloadYaml({ name, namespace: "soak", ip, node, services });
const LOCAL_XDS = `workloads:${w("client", "127.0.190.1", "a")}${w("web", "127.0.190.2", "b", {
  "soak/web.soak.svc.cluster.local": { 8000: 8080 },
})}${w("tcp", "127.0.190.3", "b", { "soak/tcp.soak.svc.cluster.local": { 7000: 7000 } })}${w("wp", "127.0.190.9", "none")}
services:
  - { name: web, namespace: soak, hostname: web.soak.svc.cluster.local, vips: ["/${HTTP_VIP}"], ports: { 8000: 8080 }, waypoint: { destination: /127.0.190.9, hboneMtlsPort: 15008 } }
  - { name: tcp, namespace: soak, hostname: tcp.soak.svc.cluster.local, vips: ["/${TCP_VIP}"], ports: { 7000: 7000 } }
`;
const ISTIO = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: soak }
spec:
  ports: [{ name: http, port: 8000, targetPort: 8080 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: soak }
spec:
  targetRefs: [{ kind: Service, group: "", name: web }]
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin"] } }]
`;

interface Stats {
  fds: number;
  rssMiB: number;
  /** V8 heap and off-heap (Buffers) in MiB, for reading the RSS figures. */
  heapMiB: number;
  externalMiB: number;
  /** glibc's heap: bytes in use and free-but-held (undefined off glibc). */
  mallocInUseMiB: number | undefined;
  mallocFreeMiB: number | undefined;
  /** The waypoint's heap shrinks and idle GCs so far. */
  shrinks: number;
  gcs: number;
  open: number;
  downstream: number;
  inbound: number;
}

type ToMesh = { type: "stats"; id: number; gc?: boolean };
type FromMesh =
  | { type: "ready"; socks: string; readiness: string }
  | { type: "stats"; id: number; stats: Stats };

// ---------- the mesh (child process) ----------

async function openConnections(registry: Registry): Promise<number> {
  const samples = parsePrometheus(await registry.metrics());
  const sum = (name: string): number =>
    samples.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
  return sum("istio_tcp_connections_opened_total") - sum("istio_tcp_connections_closed_total");
}

async function runMesh(): Promise<void> {
  const config = parseScenario(
    { file: "soak-mesh.yaml", text: LOCAL_XDS },
    { file: "soak-istio.yaml", text: ISTIO },
  );
  const ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const certs = new WorkloadCertificates(ca);
  await startHttpEcho({ host: "127.0.190.2", port: 8080, app: "web", version: "v1", pod: "web" });
  await startTcpEcho("127.0.190.3", 7000);
  const timeouts = {
    socks5HandshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
  };
  const b = await Ztunnel.start({
    node: "b",
    config: config.local,
    certificates: certs,
    captureServices: false,
    ...timeouts,
  });
  const wp = await Waypoint.start({
    namespace: "soak",
    name: "wp",
    config,
    certificates: certs,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
  });
  const a = await Ztunnel.start({
    node: "a",
    config: config.local,
    certificates: certs,
    captureServices: false,
    ports: { socks5: 0, readiness: 0 },
    defaultSource: "soak/client",
    ...timeouts,
  });
  const send = (m: FromMesh): void => {
    process.send?.(m);
  };
  process.on("message", (m: ToMesh) => {
    if (m.type !== "stats") return;
    void (async () => {
      if (m.gc) (globalThis as { gc?: () => void }).gc?.();
      const open =
        (await openConnections(a.registry)) +
        (await openConnections(b.registry)) +
        (await openConnections(wp.registry));
      const mem = process.memoryUsage();
      const malloc = mallocStats();
      send({
        type: "stats",
        id: m.id,
        stats: {
          fds: readdirSync("/proc/self/fd").length,
          rssMiB: mem.rss / MiB,
          heapMiB: mem.heapTotal / MiB,
          externalMiB: mem.external / MiB,
          mallocInUseMiB: malloc && malloc.inUseBytes / MiB,
          mallocFreeMiB: malloc && malloc.freeBytes / MiB,
          shrinks: wp.heapShrinker?.shrinkCount ?? 0,
          gcs: wp.heapShrinker?.gcCount ?? 0,
          open,
          downstream: a.downstreamConnections,
          inbound: b.inboundConnections,
        },
      });
    })();
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready", socks: a.addresses.socks5 ?? "", readiness: a.addresses.readiness ?? "" });
}

// ---------- the clients (this process) ----------

let socksAddr = { host: "", port: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function connectSocks(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ ...socksAddr, allowHalfOpen: true });
    s.once("error", reject);
    s.once("connect", () => {
      s.removeListener("error", reject);
      s.on("error", () => {});
      resolve(s);
    });
  });
}

/** Greeting + CONNECT to ip:port; resolves once the success reply arrived. */
async function socks5(ip: string, port: number): Promise<net.Socket> {
  const s = await connectSocks();
  const [o1, o2, o3, o4] = ip.split(".").map(Number);
  s.write(
    Buffer.from([5, 1, 0, 5, 1, 0, 1, o1 ?? 0, o2 ?? 0, o3 ?? 0, o4 ?? 0, port >> 8, port & 0xff]),
  );
  await new Promise<void>((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length < 12) return;
      s.removeListener("data", onData);
      s.removeListener("close", onClose);
      s.pause();
      if (got[3] !== 0) reject(new Error(`SOCKS5 reply ${got[3]}`));
      else {
        if (got.length > 12) s.unshift(got.subarray(12));
        resolve();
      }
    };
    const onClose = (): void => reject(new Error("SOCKS5 closed"));
    s.on("data", onData);
    s.once("close", onClose);
  });
  return s;
}

/** Reads until the peer ends, then ends our side; resolves with everything read. */
function readToEnd(s: net.Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("timed out"));
    }, timeoutMs);
    s.on("data", (c: Buffer) => chunks.push(c));
    s.once("end", () => {
      clearTimeout(t);
      s.end();
      resolve(Buffer.concat(chunks));
    });
    s.once("close", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    });
    s.resume();
  });
}

/** One well-behaved client: HTTP through the waypoint or 1 KiB TCP echo; resolves its latency. */
async function goodClient(i: number): Promise<number> {
  const t0 = performance.now();
  if (i % 2 === 0) {
    const s = await socks5(HTTP_VIP, 8000);
    s.write(`GET /good/${i} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n`);
    const r = (await readToEnd(s, 10_000)).toString("latin1");
    if (!r.startsWith("HTTP/1.1 200")) throw new Error(`HTTP: ${r.slice(0, 40)}`);
  } else {
    const s = await socks5(TCP_VIP, 7000);
    const data = Buffer.alloc(1024, i & 0xff);
    s.end(data);
    const r = await readToEnd(s, 10_000);
    if (!r.equals(data)) throw new Error(`TCP echo: ${r.length} bytes`);
  }
  return performance.now() - t0;
}

const KINDS = [
  "fin-before-greeting",
  "fin-rst-after-greeting",
  "rst-after-connect",
  "abort-upload-fin",
  "abort-upload-rst",
  "idle-before-greeting",
  "idle-after-connect",
] as const;

/** One misbehaving client; resolves once it has done its harm and released its own socket. */
async function badClient(i: number): Promise<void> {
  const kind = KINDS[i % KINDS.length] ?? "fin-before-greeting";
  const s = await connectSocks();
  const closed = new Promise<void>((r) => s.once("close", () => r()));
  s.on("data", () => {});
  s.once("end", () => s.end());
  switch (kind) {
    case "fin-before-greeting":
      s.end();
      break;
    case "fin-rst-after-greeting":
      s.write(Buffer.from([5, 1, 0]));
      s.end();
      await sleep(5);
      s.resetAndDestroy();
      break;
    case "rst-after-connect": {
      s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 200, 3, 7000 >> 8, 7000 & 0xff]));
      await sleep(i % 3);
      s.resetAndDestroy();
      break;
    }
    case "abort-upload-fin":
    case "abort-upload-rst": {
      s.destroy();
      const u = await socks5(HTTP_VIP, 8000).catch(() => undefined);
      if (!u) return;
      const uclosed = new Promise<void>((r) => u.once("close", () => r()));
      u.on("data", () => {});
      u.once("end", () => u.end());
      u.resume();
      u.write(`POST /upload HTTP/1.1\r\nhost: web\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`);
      u.write(Buffer.alloc(64 * 1024, 7));
      await sleep(20);
      if (kind === "abort-upload-fin") u.end();
      else u.resetAndDestroy();
      await Promise.race([uclosed, sleep(IDLE_TIMEOUT_MS * 3)]);
      u.destroy();
      return;
    }
    case "idle-before-greeting":
      // says nothing; the handshake timeout must release it
      break;
    case "idle-after-connect": {
      s.destroy();
      const u = await socks5(TCP_VIP, 7000).catch(() => undefined);
      if (!u) return;
      const uclosed = new Promise<void>((r) => u.once("close", () => r()));
      u.once("end", () => u.end());
      u.resume();
      // never sends; the idle timeout must release it
      await Promise.race([uclosed, sleep(IDLE_TIMEOUT_MS * 3)]);
      u.destroy();
      return;
    }
  }
  await Promise.race([closed, sleep(HANDSHAKE_TIMEOUT_MS * 3)]);
  s.destroy();
}

/** Runs `n` jobs with at most `concurrency` at once. */
async function pool<T>(
  n: number,
  concurrency: number,
  job: (i: number) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const out: PromiseSettledResult<T>[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        try {
          out[i] = { status: "fulfilled", value: await job(i) };
        } catch (e) {
          out[i] = { status: "rejected", reason: e };
        }
      }
    }),
  );
  return out;
}

function p99(ms: number[]): number {
  const s = [...ms].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? Number.NaN;
}

function argNum(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

/** Whole MiB ("12"), or "n/a" (malloc figures off glibc). */
const mib = (v: number | undefined): string => (v === undefined ? "n/a" : v.toFixed(0));

/**
 * 200 × 10 MiB uploads through the waypoint: peak RSS and per connection (peak − before, over the
 * 200 concurrent tunnels: every hop of one upload together — SOCKS5 socket, both ztunnels, the
 * waypoint's two HBONE legs, the app), and RSS 60 s later against idle.
 */
async function memoryPhase(
  idle: Stats,
  stats: (gc?: boolean) => Promise<Stats>,
  say: (line: string) => void,
): Promise<boolean> {
  const base = await stats();
  let peak = base;
  const mem = setInterval(() => {
    void stats().then((s) => {
      if (s.rssMiB > peak.rssMiB) peak = s;
    });
  }, 100);
  const body = Buffer.alloc(1024 * 1024, 9);
  const t0 = performance.now();
  const uploads = await pool(200, 200, async (i) => {
    const s = await socks5(HTTP_VIP, 8000);
    s.write(
      `POST /bulk/${i} HTTP/1.1\r\nhost: web\r\nconnection: close\r\ncontent-length: ${10 * body.length}\r\n\r\n`,
    );
    const reply = readToEnd(s, 120_000);
    for (let k = 0; k < 10; k++) {
      if (!s.write(body)) await new Promise((r) => s.once("drain", r));
    }
    const r = (await reply).toString("latin1");
    if (!r.startsWith("HTTP/1.1 200")) throw new Error(r.slice(0, 40));
  });
  clearInterval(mem);
  const secs = (performance.now() - t0) / 1000;
  const okUploads = uploads.filter((r) => r.status === "fulfilled").length;
  // per connection against idle (an upper bound: it includes what an earlier phase left live) and
  // against the RSS just before (a lower bound: the uploads reuse heap an earlier phase freed)
  say(
    `200 × 10 MiB through the waypoint: ${okUploads}/200 ok in ${secs.toFixed(1)} s; RSS idle ${idle.rssMiB.toFixed(0)} MiB, just before ${base.rssMiB.toFixed(0)} MiB, peak ${peak.rssMiB.toFixed(0)} MiB (malloc in use ${mib(peak.mallocInUseMiB)}, Buffers ${peak.externalMiB.toFixed(0)}); peak per connection ${((peak.rssMiB - idle.rssMiB) / 200).toFixed(2)} MiB over idle (${(Math.max(0, peak.rssMiB - base.rssMiB) / 200).toFixed(2)} over just before)`,
  );
  const ok = okUploads === 200;
  await sleep(60_000);
  const later = await stats(process.env.SOAK_GC === "1");
  say(
    `60 s later: RSS ${later.rssMiB.toFixed(0)} MiB = ${(later.rssMiB / idle.rssMiB).toFixed(2)}× idle (${idle.rssMiB.toFixed(0)} MiB; V8 heap ${later.heapMiB.toFixed(0)} vs ${idle.heapMiB.toFixed(0)}, Buffers ${later.externalMiB.toFixed(0)} vs ${idle.externalMiB.toFixed(0)}, malloc in use ${mib(later.mallocInUseMiB)} vs ${mib(idle.mallocInUseMiB)}, free held ${mib(later.mallocFreeMiB)}; heap shrinks ${later.shrinks}, idle GCs ${later.gcs}); ${later.fds} fds, open connections ${later.open}`,
  );
  return ok && later.rssMiB <= 1.5 * idle.rssMiB;
}

/** Extra environment of the mesh process (SOAK_MALLOC=1: glibc tunables; for experiments). */
function mallocEnv(): Record<string, string> {
  return process.env.SOAK_MALLOC === "1"
    ? { MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "131072", MALLOC_ARENA_MAX: "1" }
    : {};
}

async function runSoak(): Promise<number> {
  const goodN = argNum("--good", 1_000);
  const badN = argNum("--misbehaving", 10_000);
  const child = fork(fileURLToPath(import.meta.url), ["--mesh"], {
    stdio: "inherit",
    env: { ...process.env, ...mallocEnv() },
    ...(process.env.SOAK_GC === "1" ? { execArgv: ["--expose-gc"] } : {}),
  });
  let nextId = 0;
  const waiting = new Map<number, (s: Stats) => void>();
  const ready = new Promise<{ socks: string }>((resolve) => {
    child.on("message", (m: FromMesh) => {
      if (m.type === "ready") resolve(m);
      else waiting.get(m.id)?.(m.stats);
    });
  });
  const stats = (gc = false): Promise<Stats> =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, (s) => {
        waiting.delete(id);
        resolve(s);
      });
      child.send({ type: "stats", id, gc } satisfies ToMesh);
    });
  const { socks } = await ready;
  const [h, p] = socks.split(":");
  socksAddr = { host: h ?? "127.0.0.1", port: Number(p) };
  const out: string[] = [];
  const say = (line: string): void => {
    out.push(line);
    console.log(line);
  };
  let failed = false;
  try {
    await sleep(1_000);
    // warm the pools so the idle baseline has its pooled HBONE connections
    await pool(20, 10, goodClient);
    await sleep(1_000);
    const idle = await stats();
    say(
      `idle: ${idle.fds} fds, RSS ${idle.rssMiB.toFixed(0)} MiB; machine load average ${loadavg()[0]?.toFixed(1)} (1 min, ${cpus().length} cores)`,
    );

    if (process.argv.includes("--memory-only")) {
      await memoryPhase(idle, stats, say).then((ok) => {
        if (!ok) failed = true;
      });
      return failed ? 1 : 0;
    }
    // the same pattern as during the storm: 5 at a time, 50 ms apart
    const before = await pool(goodN, 5, async (i) => {
      const ms = await goodClient(i);
      await sleep(50);
      return ms;
    });
    const okBefore = before.filter((r) => r.status === "fulfilled").map((r) => r.value);
    say(
      `before the storm: ${okBefore.length}/${goodN} good clients ok, p99 ${p99(okBefore).toFixed(1)} ms`,
    );

    // the storm: misbehaving clients come and go while good clients keep working
    const t0 = performance.now();
    let stormOver = false;
    let peak: Stats = await stats();
    const sampler = setInterval(() => {
      void stats().then((s) => {
        if (s.fds > peak.fds) peak = s;
      });
    }, 500);
    // the misbehaving clients run in their own process, so that their event loop does not
    // delay the good clients' (this process) and inflate the latencies measured here
    const stormer = fork(fileURLToPath(import.meta.url), ["--storm", String(badN), socks], {
      stdio: "inherit",
    });
    const storm = new Promise<void>((resolve) => stormer.once("exit", () => resolve())).finally(
      () => {
        stormOver = true;
      },
    );
    const good: number[] = [];
    let goodFailed = 0;
    const errors = new Map<string, number>();
    // good clients spread over the whole storm (at least goodN of them), a few at a time
    let nextGood = 0;
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        while (!stormOver || nextGood < goodN) {
          const i = nextGood++;
          try {
            good.push(await goodClient(i));
          } catch (e) {
            goodFailed++;
            const k = (e as Error).message;
            errors.set(k, (errors.get(k) ?? 0) + 1);
          }
          if (!stormOver) await sleep(50);
        }
      }),
    );
    const goodDoneAt = performance.now() - t0;
    await storm;
    clearInterval(sampler);
    const stormMs = performance.now() - t0;
    say(
      `storm: ${badN} misbehaving clients (${KINDS.join(", ")}) in ${(stormMs / 1000).toFixed(1)} s; peak ${peak.fds} fds, ${peak.downstream} downstream`,
    );
    say(
      `during the storm: ${good.length}/${good.length + goodFailed} good clients ok (the last finished at ${(goodDoneAt / 1000).toFixed(1)} s), p99 ${p99(good).toFixed(1)} ms (${(p99(good) / p99(okBefore)).toFixed(2)}× before)`,
    );
    for (const [k, n] of errors) say(`  good client error ×${n}: ${k}`);
    if (goodFailed > 0 || okBefore.length < goodN) failed = true;

    // afterwards: back to the baseline within the configured timeouts
    const deadline = Date.now() + IDLE_TIMEOUT_MS + HANDSHAKE_TIMEOUT_MS + 15_000;
    let after = await stats();
    const settledAt = performance.now();
    while (Date.now() < deadline && (after.open !== 0 || after.fds > idle.fds + 10)) {
      await sleep(250);
      after = await stats();
    }
    say(
      `after: ${after.fds} fds (idle ${idle.fds}, +${after.fds - idle.fds}), open connections ${after.open}, downstream ${after.downstream}, inbound tunnels ${after.inbound}; settled ${((performance.now() - settledAt) / 1000).toFixed(1)} s after the storm`,
    );
    if (after.open !== 0 || after.fds > idle.fds + 10) failed = true;

    if (!(await memoryPhase(idle, stats, say))) failed = true;
  } finally {
    child.disconnect();
  }
  say(`machine load average at the end: ${loadavg()[0]?.toFixed(1)} (1 min)`);
  say(failed ? "soak: FAILED" : "soak: ok");
  if (!process.argv.includes("--memory-only")) writeResults(out);
  return failed ? 1 : 0;
}

/**
 * The run's report for docs/benchmarks.md: `npm run bench` appends every file of bench/results
 * (written atomically: a temp file, then a rename).
 */
function writeResults(lines: readonly string[]): void {
  const file = join(
    dirname(fileURLToPath(import.meta.url)),
    "..",
    "..",
    "bench",
    "results",
    "soak.md",
  );
  mkdirSync(dirname(file), { recursive: true });
  const text = [
    "### soak (npm run soak)",
    "",
    "Target: good clients 100 % ok and p99 during the storm ≤ 3× before it; fds within +10 of idle and 0 open connections afterwards; RSS within 1.5× idle 60 s after 200 × 10 MiB through the waypoint (issue #21)",
    "",
    `Measured by \`npm run soak\` on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}:`,
    "",
    "```",
    ...lines,
    "```",
    "",
  ].join("\n");
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

if (process.argv.includes("--mesh")) {
  await runMesh();
} else if (process.argv.includes("--storm")) {
  const i = process.argv.indexOf("--storm");
  const [h, p] = (process.argv[i + 2] ?? "").split(":");
  socksAddr = { host: h ?? "127.0.0.1", port: Number(p) };
  await pool(Number(process.argv[i + 1]), STORM_CONCURRENCY, badClient);
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runSoak();
}
