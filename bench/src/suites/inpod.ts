// The reference ztunnel in in-pod mode on real pods (network namespaces on a bridge, istio-cni's
// capture rules, pods handed over ZDS by a fake node agent): one connection pod A → pod B through
// A's 15001 → HBONE → B's 15008 vs two pods of the same kind on the same bridge without capture
// (direct over the veths); connection setup (connect to first byte); and 100 pods added over ZDS:
// time until every listener serves, and fds held per pod. Node B (ztunnel b and the apps) runs in
// a child process, as real nodes are separate processes. Needs root (namespaces, iptables).
// examples/ is a private workspace, so it is loaded from its build output (examples/dist) with the
// narrow types below; @ambientkit/inpod the same way (bench does not depend on it).
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import type net from "node:net";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

interface Pod {
  ns: string;
  path: string;
  ip: string;
}
interface PodNetwork {
  pods: Pod[];
  delete(): void;
}
interface Agent {
  path: string;
  accept(): Promise<string>;
  ack(cmd: Record<string, unknown>): Promise<string>;
  add(
    uid: string,
    info: { name: string; namespace: string; sa: string },
    pod: Pod,
  ): Promise<string>;
  stop(): Promise<void>;
}
interface InpodZtunnel {
  close(): Promise<void>;
  readonly ready: boolean;
  readonly inpod: { pods: ReadonlyMap<string, { listeners: number }> } | undefined;
}
interface Api {
  Ztunnel: { start(o: Record<string, unknown>): Promise<InpodZtunnel> };
  WorkloadCertificates: new (ca: CertificateAuthority) => { close(): void };
  parseScenario(local: { file: string; text: string }): { local: unknown };
  createPodNetwork(count: number, o?: { capture?: boolean }): PodNetwork;
  installCapture(ns: string): void;
  FakeNodeAgent: { start(path: string): Promise<Agent> };
  run(cmd: string, args: string[]): string;
  connectInNetns(
    netns: string,
    o: { host: string; port: number; noDelay?: boolean; timeoutMs?: number },
  ): Promise<net.Socket>;
}

const EXAMPLES = new URL("../../../examples/dist/", import.meta.url);

async function load(): Promise<Api> {
  const ex = async (p: string) =>
    (await import(new URL(p, EXAMPLES).href)) as Record<string, unknown>;
  const [z, c, cfg, h, inpod] = await Promise.all([
    ex("ztunnel/ztunnel.js"),
    ex("mesh/certs.js"),
    ex("mesh/config.js"),
    ex("ztunnel/inpod-harness.testutil.js"),
    import("@ambientkit/inpod" as string) as Promise<Record<string, unknown>>,
  ]);
  return {
    Ztunnel: z.Ztunnel as Api["Ztunnel"],
    WorkloadCertificates: c.WorkloadCertificates as Api["WorkloadCertificates"],
    parseScenario: cfg.parseScenario as Api["parseScenario"],
    createPodNetwork: h.createPodNetwork as Api["createPodNetwork"],
    installCapture: h.installCapture as Api["installCapture"],
    FakeNodeAgent: h.FakeNodeAgent as Api["FakeNodeAgent"],
    run: h.run as Api["run"],
    connectInNetns: inpod.connectInNetns as Api["connectInNetns"],
  };
}

const localXds = (a: string, b: string) => `
workloads:
  - { uid: b//Pod/bench/client, name: client, namespace: bench, serviceAccount: client, trustDomain: cluster.local, workloadIps: ["${a}"], protocol: HBONE, node: node-a, services: {} }
  - { uid: b//Pod/bench/server, name: server, namespace: bench, serviceAccount: server, trustDomain: cluster.local, workloadIps: ["${b}"], protocol: HBONE, node: node-b, services: {} }
services: []
policies: []
`;

// Node B: ztunnel b (in-pod, its own fake node agent) and the apps in pod B and in the uncaptured
// pod D: a sink on 9100 (counts bytes, reports when it has `expect`) and a greeter on 9101 (one
// byte, then close).
const CHILD = `
const net = await import("node:net");
const { CertificateAuthority } = await import("@ambientkit/identity");
const { listenInNetns } = await import("@ambientkit/inpod");
const env = JSON.parse(process.env.AMBIENTKIT_INPOD_BENCH);
const load = (p) => import(new URL(p, env.examples).href);
const [{ Ztunnel }, { WorkloadCertificates }, { parseScenario }, { FakeNodeAgent }] = await Promise.all([
  load("ztunnel/ztunnel.js"), load("mesh/certs.js"), load("mesh/config.js"), load("ztunnel/inpod-harness.testutil.js"),
]);
const ca = await CertificateAuthority.fromPem(env.cacerts);
const certs = new WorkloadCertificates(ca);
const config = parseScenario({ file: "bench.yaml", text: env.localXds }).local;
const agent = await FakeNodeAgent.start(env.uds);
const z = await Ztunnel.start({ node: "node-b", config, certificates: certs, captureServices: false, inpod: { uds: env.uds, backoff: { initialMs: 20, maxMs: 200 } } });
await agent.accept();
if (await agent.add(env.uid, { name: "server", namespace: "bench", sa: "server" }, env.podB)) throw new Error("AddWorkload refused");
await agent.ack({ op: "snapshot" });
let sunk = 0;
let want = Infinity;
const servers = [];
for (const path of [env.podB.path, env.podD.path]) {
  servers.push(await listenInNetns(path, { port: 9100, server: net.createServer((s) => {
    s.on("error", () => {});
    s.on("data", (c) => {
      sunk += c.length;
      if (sunk >= want) { want = Infinity; process.send({ got: sunk }); }
    });
  }) }));
  servers.push(await listenInNetns(path, { port: 9101, server: net.createServer((s) => { s.on("error", () => {}); s.end("x"); }) }));
}
process.on("message", async (m) => {
  if (m.expect !== undefined) { sunk = 0; want = m.expect; }
  if (m.close) {
    for (const s of servers) s.close();
    await z.close();
    await agent.stop();
    certs.close();
    process.disconnect();
  }
});
// the parent gone (killed mid-run): do not linger with listeners in its pods
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
`;

async function pump(w: Writable, total: number, done: () => boolean): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!w.write(chunk)) await new Promise((r) => w.once("drain", r));
  }
  while (!done()) await new Promise((r) => setImmediate(r));
  return total / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

const median = (xs: number[]): number => percentile(xs, 50);

/** ms from connect() to the greeter's first byte, `n` times in a row (after 20 warm-up). */
async function setupTimes(api: Api, from: Pod, to: Pod, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t0 = process.hrtime.bigint();
    const s = await api.connectInNetns(from.path, { host: to.ip, port: 9101, timeoutMs: 5000 });
    await new Promise<void>((resolve, reject) => {
      s.once("data", () => resolve());
      s.once("error", reject);
      s.once("end", () => resolve());
    });
    if (i >= 20) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.destroy();
  }
  return out;
}

async function measureInpod(): Promise<MeasureRow[]> {
  if (process.getuid?.() !== 0)
    throw new Error("the in-pod bench needs root: network namespaces, veth and iptables");
  const api = await load();
  const net = api.createPodNetwork(4, { capture: false });
  const [a, b, c, d] = net.pods as [Pod, Pod, Pod, Pod];
  const bare: string[] = [];
  const closers: (() => Promise<void> | void)[] = [];
  try {
    api.installCapture(a.ns);
    api.installCapture(b.ns);
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const files = await ca.toCacerts();
    const tag = randomBytes(3).toString("hex");
    const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD], {
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      env: {
        ...process.env,
        AMBIENTKIT_INPOD_BENCH: JSON.stringify({
          examples: EXAMPLES.href,
          cacerts: {
            caCertPem: files["ca-cert.pem"],
            caKeyPem: files["ca-key.pem"],
            rootCertPem: files["root-cert.pem"],
            certChainPem: files["cert-chain.pem"],
          },
          localXds: localXds(a.ip, b.ip),
          uds: `/tmp/ak-inpod-bench-${tag}-b.sock`,
          uid: randomUUID(),
          podB: b,
          podD: d,
        }),
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const exited = new Promise((r) => child.once("exit", r));
    closers.push(async () => {
      if (child.connected) child.send({ close: true });
      await exited;
    });
    const next = (key: string): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`in-pod bench child: no ${key}`)), 60_000);
        const onMsg = (m: Record<string, unknown>): void => {
          if (key in m) {
            clearTimeout(timer);
            child.off("message", onMsg);
            child.off("exit", onExit);
            resolve(m);
          }
        };
        const onExit = (code: number | null): void => {
          clearTimeout(timer);
          reject(new Error(`in-pod bench child exited (${code})`));
        };
        child.on("message", onMsg);
        child.once("exit", onExit);
      });
    await next("ready");

    const certs = new api.WorkloadCertificates(ca);
    closers.push(() => certs.close());
    const config = api.parseScenario({ file: "bench.yaml", text: localXds(a.ip, b.ip) }).local;
    const agentA = await api.FakeNodeAgent.start(`/tmp/ak-inpod-bench-${tag}-a.sock`);
    closers.push(() => agentA.stop());
    const opts = { config, certificates: certs, captureServices: false };
    const zA = await api.Ztunnel.start({
      ...opts,
      node: "node-a",
      inpod: { uds: agentA.path, backoff: { initialMs: 20, maxMs: 200 } },
    });
    closers.push(() => zA.close());
    await agentA.accept();
    if (await agentA.add(randomUUID(), { name: "client", namespace: "bench", sa: "client" }, a))
      throw new Error("AddWorkload of pod A refused");
    await agentA.ack({ op: "snapshot" });

    // throughput on one connection: alternating rounds, the ratio is the median of each round's
    // pair; the first two rounds warm up both paths and are not counted
    const total = 128 * 1024 * 1024;
    const meshR: number[] = [];
    const directR: number[] = [];
    const WARMUP = 2;
    const oneRound = async (from: Pod, to: Pod): Promise<number> => {
      const s = await api.connectInNetns(from.path, { host: to.ip, port: 9100, noDelay: true });
      child.send({ expect: total });
      let done = false;
      const got = next("got").then(() => {
        done = true;
      });
      const mbps = await pump(s, total, () => done);
      await got;
      s.destroy();
      return mbps;
    };
    for (let round = 0; round < WARMUP + 5; round++) {
      meshR.push(await oneRound(a, b));
      directR.push(await oneRound(c, d));
    }
    meshR.splice(0, WARMUP);
    directR.splice(0, WARMUP);
    const ratio = median(meshR.map((x, i) => x / (directR[i] ?? x)));

    // connection setup: connect → first byte of the app, pooled HBONE connection warm
    const n = 300;
    const viaZ = await setupTimes(api, a, b, n);
    const direct = await setupTimes(api, c, d, n);

    // 100 pods over ZDS to a third ztunnel: until every pod's three listeners serve; fds per pod
    const agentN = await api.FakeNodeAgent.start(`/tmp/ak-inpod-bench-${tag}-n.sock`);
    closers.push(() => agentN.stop());
    const zN = await api.Ztunnel.start({
      ...opts,
      node: "node-n",
      inpod: { uds: agentN.path, backoff: { initialMs: 20, maxMs: 200 } },
    });
    closers.push(() => zN.close());
    await agentN.accept();
    const PODS = 100;
    const pods: Pod[] = [];
    for (let i = 0; i < PODS; i++) {
      const ns = `ak-zt-${tag}-z${i}`;
      api.run("ip", ["netns", "add", ns]);
      bare.push(ns);
      pods.push({ ns, path: `/run/netns/${ns}`, ip: "" });
    }
    const fds = (): number => readdirSync("/proc/self/fd").length;
    const fdsBefore = fds();
    const t0 = process.hrtime.bigint();
    for (const [i, p] of pods.entries()) {
      const err = await agentN.add(
        randomUUID(),
        { name: `p${i}`, namespace: "bench", sa: "bench" },
        p,
      );
      if (err) throw new Error(`AddWorkload refused: ${err}`);
    }
    await agentN.ack({ op: "snapshot" });
    const addMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const served = [...(zN.inpod?.pods.values() ?? [])].filter((p) => p.listeners === 3).length;
    if (served !== PODS || !zN.ready) throw new Error(`only ${served} of ${PODS} pods serve`);
    const perPod = (fds() - fdsBefore) / PODS;

    const row = (name: string, xs: number[], peer = false): MeasureRow[] => [
      { name: `${name} p50`, value: Number(percentile(xs, 50).toFixed(3)), unit: "ms", peer },
      { name: `${name} p99`, value: Number(percentile(xs, 99).toFixed(3)), unit: "ms", peer },
    ];
    return [
      {
        name: "pod A → 15001 → HBONE → 15008 → pod B (two in-pod ztunnels, two processes, one connection, 128 MiB)",
        value: Math.round(median(meshR)),
        unit: "MB/s",
      },
      {
        name: "pod C → pod D directly over the veths, same bridge (peer)",
        value: Math.round(median(directR)),
        unit: "MB/s",
        peer: true,
      },
      {
        name: "ratio in-pod mesh / direct (median of 5 alternating rounds, after 2 warm-up)",
        value: Number(ratio.toFixed(2)),
        unit: "×",
      },
      ...row("connection setup (connect → first byte) via both in-pod ztunnels", viaZ),
      ...row("connection setup (connect → first byte) direct (peer)", direct, true),
      {
        name: `${PODS} pods added over ZDS (AddWorkload each + SnapshotSent) until all ${PODS * 3} listeners serve`,
        value: Math.round(addMs),
        unit: "ms",
      },
      { name: "per pod", value: Number((addMs / PODS).toFixed(2)), unit: "ms" },
      {
        name: "fds held per in-pod workload (netns + 3 listeners)",
        value: Number(perPod.toFixed(2)),
        unit: "fds",
      },
    ];
  } finally {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch {
        // tearing down anyway
      }
    }
    for (const ns of bare) {
      try {
        api.run("ip", ["netns", "delete", ns]);
      } catch {
        // already gone
      }
    }
    net.delete();
  }
}

const suite: BenchSuite = {
  package: "examples",
  async groups(): Promise<BenchGroup[]> {
    return [
      {
        name: "inpod/data-path",
        target:
          "pod A → pod B through both in-pod ztunnels ≥ 0.6× the same kind of pods direct over the veth (one connection); connection setup p50; 100 pods over ZDS: time until all listeners serve, fds per pod",
        cases: [],
        measure: measureInpod,
      },
    ];
  },
};
export default suite;
