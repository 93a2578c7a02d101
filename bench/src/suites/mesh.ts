// The whole data path of the reference mesh (examples/): app → ztunnel (VIP capture) → HBONE →
// ztunnel → app, against a raw node TLS 1.3 socket with the same certificates; and the latency a
// request gains through the two ztunnels and through ztunnels + waypoint, vs going direct.
// The client node (app + ztunnel a, and the raw TLS peer) runs in the suite's own process (the
// runner starts one per suite), the destination node in a child of it. examples/ is a private workspace (no package exports), so it is loaded from its build output
// (examples/dist, built by `tsc -b`) with the narrow types below.
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import type { Writable } from "node:stream";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { clientTlsOptions, serverTlsOptions } from "@ambientkit/hbone";
import { CertificateAuthority } from "@ambientkit/identity";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

interface Closeable {
  close(): Promise<void>;
}
interface ExamplesApi {
  Ztunnel: { start(o: Record<string, unknown>): Promise<Closeable> };
  WorkloadCertificates: new (
    ca: CertificateAuthority,
  ) => {
    close(): void;
    current(id: string): unknown;
    ensure(id: string): Promise<{ cert: string; key: string; ca: string }>;
  };
  parseScenario(
    local: { file: string; text: string },
    istio?: { file: string; text: string },
  ): { local: unknown };
}

const EXAMPLES = new URL("../../../examples/dist/", import.meta.url);

async function loadExamples(): Promise<ExamplesApi> {
  const load = async (p: string) =>
    (await import(new URL(p, EXAMPLES).href)) as Record<string, unknown>;
  const [z, c, cfg] = await Promise.all([
    load("ztunnel/ztunnel.js"),
    load("mesh/certs.js"),
    load("mesh/config.js"),
  ]);
  return {
    Ztunnel: z.Ztunnel as ExamplesApi["Ztunnel"],
    WorkloadCertificates: c.WorkloadCertificates as ExamplesApi["WorkloadCertificates"],
    parseScenario: cfg.parseScenario as ExamplesApi["parseScenario"],
  };
}

// Loopback range of this suite: pods 127.0.150.x, VIPs 127.0.160.x.
const pod = (name: string, ip: string, node: string, services = "{}", extra = "") => `
  - { uid: b//Pod/bench/${name}, name: ${name}, namespace: bench, serviceAccount: ${name}, trustDomain: cluster.local, workloadIps: ["${ip}"], protocol: HBONE, node: ${node}, services: ${services}${extra} }`;
const LOCAL_XDS = `workloads:${pod("client", "127.0.150.1", "a")}${pod(
  "server",
  "127.0.150.2",
  "b",
  '{ "bench/sink.bench.svc.cluster.local": { 9000: 9100 }, "bench/web.bench.svc.cluster.local": { 8000: 8080 }, "bench/webwp.bench.svc.cluster.local": { 8000: 8080 } }',
)}${pod("wp", "127.0.150.9", "none")}
services:
  - { name: sink, namespace: bench, hostname: sink.bench.svc.cluster.local, vips: ["/127.0.160.1"], ports: { 9000: 9100 } }
  - { name: web, namespace: bench, hostname: web.bench.svc.cluster.local, vips: ["/127.0.160.2"], ports: { 8000: 8080 } }
  - { name: webwp, namespace: bench, hostname: webwp.bench.svc.cluster.local, vips: ["/127.0.160.3"], ports: { 8000: 8080 }, waypoint: { destination: /127.0.150.9, hboneMtlsPort: 15008 } }
`;

async function listen(server: net.Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((r) => server.listen(port, host, r));
  return (server.address() as net.AddressInfo).port;
}

async function pump(w: Writable, total: number, received: () => number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!w.write(chunk)) await new Promise((r) => w.once("drain", r));
  }
  while (received() < total) await new Promise((r) => setImmediate(r));
  return total / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

/** `n` sequential GETs on one keep-alive connection from the client pod's IP; per-request ms. */
async function latencies(host: string, port: number, n: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host, port, path: "/", agent, localAddress: "127.0.150.1" }, (res) => {
        res.resume();
        res.once("end", () => resolve());
      });
      req.once("error", reject);
    });
    if (i >= 20) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  agent.destroy();
  return out;
}

// The destination "node" (ztunnel b, the waypoint, the apps) runs in a child process, as real nodes
// are separate processes; the parent is the client node (app + ztunnel a).
const CHILD = `
const { CertificateAuthority } = await import("@ambientkit/identity");
const net = await import("node:net");
const env = JSON.parse(process.env.AMBIENTKIT_MESH_BENCH);
const load = (p) => import(new URL(p, env.examples).href);
const [{ Ztunnel }, { Waypoint }, { WorkloadCertificates }, { parseScenario }, { startHttpEcho }] = await Promise.all([
  load("ztunnel/ztunnel.js"), load("waypoint/waypoint.js"), load("mesh/certs.js"), load("mesh/config.js"), load("apps/echo.js"),
]);
const ca = await CertificateAuthority.fromPem(env.cacerts);
const certs = new WorkloadCertificates(ca);
const mesh = parseScenario({ file: "bench.yaml", text: env.localXds });
let sunk = 0;
let want = Infinity;
const sink = net.createServer((s) => s.on("data", (c) => {
  sunk += c.length;
  if (sunk >= want) { want = Infinity; process.send({ got: sunk }); }
}));
await new Promise((r) => sink.listen(9100, "127.0.150.2", r));
const open = [
  await startHttpEcho({ host: "127.0.150.2", port: 8080, app: "web", version: "v1", pod: "server" }),
  await Ztunnel.start({ node: "b", config: mesh.local, certificates: certs, captureServices: false }),
  await Waypoint.start({ namespace: "bench", name: "wp", config: mesh, certificates: certs }),
];
process.on("message", async (m) => {
  if (m.expect !== undefined) { sunk = 0; want = m.expect; }
  if (m.close) {
    for (const o of open.reverse()) await o.close();
    certs.close();
    sink.close();
    process.disconnect();
  }
});
process.send({ ready: true });
`;

async function measureMesh(): Promise<MeasureRow[]> {
  const ex = await loadExamples();
  const ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  const files = await ca.toCacerts();
  const cacerts = {
    caCertPem: files["ca-cert.pem"],
    caKeyPem: files["ca-key.pem"],
    rootCertPem: files["root-cert.pem"],
    certChainPem: files["cert-chain.pem"],
  };
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD], {
    cwd: fileURLToPath(new URL("../../", import.meta.url)),
    env: {
      ...process.env,
      AMBIENTKIT_MESH_BENCH: JSON.stringify({
        examples: EXAMPLES.href,
        cacerts,
        localXds: LOCAL_XDS,
      }),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = (key: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const onMsg = (m: Record<string, unknown>): void => {
        if (key in m) {
          child.off("message", onMsg);
          child.off("exit", onExit);
          resolve(m);
        }
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`mesh bench child exited (${code})`));
      child.on("message", onMsg);
      child.once("exit", onExit);
    });
  await next("ready");
  const certs = new ex.WorkloadCertificates(ca);
  const config = ex.parseScenario({ file: "bench.yaml", text: LOCAL_XDS }).local;
  let zA: Closeable | undefined;
  try {
    zA = await ex.Ztunnel.start({ node: "a", config, certificates: certs });
    // throughput: through the mesh vs a raw TLS 1.3 socket with the same SVIDs
    const client = await certs.ensure("spiffe://cluster.local/ns/bench/sa/client");
    const server = await certs.ensure("spiffe://cluster.local/ns/bench/sa/server");
    let tlsGot = 0;
    const raw = tls.createServer(serverTlsOptions(server), (s) => {
      s.on("data", (c: Buffer) => {
        tlsGot += c.length;
      });
    });
    const rawPort = await listen(raw, "127.0.0.1");
    const total = 128 * 1024 * 1024;
    const meshR: number[] = [];
    const tlsR: number[] = [];
    // Rounds alternate mesh and raw TLS; the ratio is the median of each round's pair, so drift
    // in this VM's speed between rounds does not land on one side only. The first two rounds
    // warm up both paths (JIT, TCP buffer autotuning) and are not counted.
    const WARMUP = 2;
    for (let round = 0; round < WARMUP + 7; round++) {
      const s = net.connect({
        host: "127.0.160.1",
        port: 9000,
        localAddress: "127.0.150.1",
        noDelay: true,
      });
      await new Promise((r) => s.once("connect", r));
      child.send({ expect: total });
      let done = false;
      const got = next("got").then(() => {
        done = true;
      });
      meshR.push(await pump(s, total, () => (done ? total : 0)));
      await got;
      s.destroy();
      const c = tls.connect({
        host: "127.0.0.1",
        port: rawPort,
        ...clientTlsOptions(client, ["spiffe://cluster.local/ns/bench/sa/server"]),
      });
      await new Promise((r) => c.once("secureConnect", r));
      tlsGot = 0;
      tlsR.push(await pump(c, total, () => tlsGot));
      c.destroy();
    }
    await new Promise<void>((r) => raw.close(() => r()));
    const median = (xs: number[]): number =>
      [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    meshR.splice(0, WARMUP);
    tlsR.splice(0, WARMUP);
    const m = median(meshR);
    const t = median(tlsR);
    const ratio = median(meshR.map((x, i) => x / (tlsR[i] ?? x)));

    // latency per request on a keep-alive connection
    const n = 400;
    const direct = await latencies("127.0.150.2", 8080, n);
    const viaZ = await latencies("127.0.160.2", 8000, n);
    const viaW = await latencies("127.0.160.3", 8000, n);
    const row = (name: string, xs: number[], peer = false): MeasureRow[] => [
      { name: `${name} p50`, value: Number(percentile(xs, 50).toFixed(3)), unit: "ms", peer },
      { name: `${name} p99`, value: Number(percentile(xs, 99).toFixed(3)), unit: "ms", peer },
    ];
    const added = (xs: number[], p: number): number =>
      Number((percentile(xs, p) - percentile(direct, p)).toFixed(3));
    return [
      {
        name: "app → ztunnel → HBONE → ztunnel → app (two processes, one connection, 128 MiB)",
        value: Math.round(m),
        unit: "MB/s",
      },
      {
        name: "raw node TLS 1.3 socket, same SVIDs, one process (peer)",
        value: Math.round(t),
        unit: "MB/s",
        peer: true,
      },
      {
        name: "ratio mesh path / raw TLS socket (median of 7 alternating rounds, after 2 warm-up)",
        value: Number(ratio.toFixed(2)),
        unit: "×",
      },
      ...row("HTTP GET direct to the app (peer)", direct, true),
      ...row("HTTP GET via two ztunnels", viaZ),
      ...row("HTTP GET via ztunnels + waypoint", viaW),
      { name: "added by two ztunnels, p50", value: added(viaZ, 50), unit: "ms" },
      { name: "added by two ztunnels, p99", value: added(viaZ, 99), unit: "ms" },
      { name: "added by ztunnels + waypoint, p50", value: added(viaW, 50), unit: "ms" },
      { name: "added by ztunnels + waypoint, p99", value: added(viaW, 99), unit: "ms" },
    ];
  } finally {
    await zA?.close();
    certs.close();
    child.send({ close: true });
    await new Promise((r) => child.once("exit", r));
  }
}

const suite: BenchSuite = {
  package: "examples",
  async groups(): Promise<BenchGroup[]> {
    return [
      {
        name: "mesh/data-path",
        target:
          "throughput app → ztunnel → HBONE → ztunnel → app ≥ 0.5× a raw node TLS 1.3 socket; added latency p50/p99 vs direct",
        cases: [],
        measure: measureMesh,
      },
    ];
  },
};
export default suite;
