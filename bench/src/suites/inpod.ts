// The reference ztunnel in in-pod mode on real pods (network namespaces on a bridge, istio-cni's
// capture rules, pods handed over ZDS by a fake node agent): one connection pod A → pod B through
// A's 15001 → HBONE → B's 15008 vs two pods of the same kind on the same bridge without capture
// (direct over the veths); connection setup (connect to first byte); and 100 pods added over ZDS:
// time until every listener serves, and fds held per pod. Each ztunnel and the servers run in
// processes of their own (a ztunnel shares its CPU with nobody's JS, as on a real node); the client
// is this process. Needs root (namespaces, iptables).
// The pods and the fake node agent are @ambientkit/inpod/testing's, as a user's tests get them;
// examples/ is a private workspace, so the reference ztunnel is loaded from its build output
// (examples/dist) with the narrow types below.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import nodeNet from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import {
  connectInNetns,
  listenInNetns,
  Netns,
  originalDestination,
  runInNetns,
  setMark,
} from "@ambientkit/inpod";
import {
  createPodNetwork,
  FakeNodeAgent,
  missingPrivilege,
  type Pod,
  type TestNetns,
} from "@ambientkit/inpod/testing";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

interface InpodZtunnel {
  close(): Promise<void>;
  readonly ready: boolean;
  readonly inpod: { pods: ReadonlyMap<string, { listeners: number }> } | undefined;
}
interface Api {
  Ztunnel: { start(o: Record<string, unknown>): Promise<InpodZtunnel> };
  WorkloadCertificates: new (ca: CertificateAuthority) => { close(): void };
  parseScenario(local: { file: string; text: string }): { local: unknown };
}

const EXAMPLES = new URL("../../../examples/dist/", import.meta.url);

async function load(): Promise<Api> {
  const ex = async (p: string) =>
    (await import(new URL(p, EXAMPLES).href)) as Record<string, unknown>;
  const [z, c, cfg] = await Promise.all([
    ex("ztunnel/ztunnel.js"),
    ex("mesh/certs.js"),
    ex("mesh/config.js"),
  ]);
  return {
    Ztunnel: z.Ztunnel as Api["Ztunnel"],
    WorkloadCertificates: c.WorkloadCertificates as Api["WorkloadCertificates"],
    parseScenario: cfg.parseScenario as Api["parseScenario"],
  };
}

const localXds = (a: string, b: string) => `
workloads:
  - { uid: b//Pod/bench/client, name: client, namespace: bench, serviceAccount: client, trustDomain: cluster.local, workloadIps: ["${a}"], protocol: HBONE, node: node-a, services: {} }
  - { uid: b//Pod/bench/server, name: server, namespace: bench, serviceAccount: server, trustDomain: cluster.local, workloadIps: ["${b}"], protocol: HBONE, node: node-b, services: {} }
services: []
policies: []
`;

// The other processes of the bench, one role each, as on a real node where ztunnel does not share
// a process with the apps: `ztunnel` (one in-pod ztunnel with its own fake node agent and one pod)
// and `apps` (the servers of pods B and D: a sink on 9100 that counts bytes and reports once it has
// `expect`, and a greeter on 9101 that sends one byte and closes). The direct path and the mesh path
// use the same client (this process) and the same servers (`apps`).
const CHILD = `
const net = await import("node:net");
const { CertificateAuthority } = await import("@ambientkit/identity");
const { listenInNetns } = await import("@ambientkit/inpod");
const env = JSON.parse(process.env.AMBIENTKIT_INPOD_BENCH);
const load = (p) => import(new URL(p, env.examples).href);
let close;
if (env.role === "ztunnel") {
  const [{ Ztunnel }, { WorkloadCertificates }, { parseScenario }, { FakeNodeAgent }] = await Promise.all([
    load("ztunnel/ztunnel.js"), load("mesh/certs.js"), load("mesh/config.js"), import("@ambientkit/inpod/testing"),
  ]);
  const ca = await CertificateAuthority.fromPem(env.cacerts);
  const certs = new WorkloadCertificates(ca);
  const config = parseScenario({ file: "bench.yaml", text: env.localXds }).local;
  const agent = await FakeNodeAgent.start(env.uds);
  const z = await Ztunnel.start({ node: env.node, config, certificates: certs, captureServices: false, inpod: { uds: env.uds, backoff: { initialMs: 20, maxMs: 200 } } });
  await agent.accept();
  const refused = await agent.add(env.uid, env.info, env.pod);
  if (refused) throw new Error("AddWorkload refused: " + refused);
  await agent.snapshotSent();
  close = async () => {
    await z.close();
    await agent.stop();
    certs.close();
  };
} else {
  let sunk = 0;
  let want = Infinity;
  const servers = [];
  for (const path of env.pods) {
    servers.push(await listenInNetns(path, { port: 9100, server: net.createServer((s) => {
      s.on("error", () => {});
      s.on("data", (c) => {
        sunk += c.length;
        if (sunk >= want) { want = Infinity; process.send({ got: sunk }); }
      });
    }) }));
    servers.push(await listenInNetns(path, { port: 9101, server: net.createServer((s) => { s.on("error", () => {}); s.end("x"); }) }));
  }
  process.on("message", (m) => {
    if (m.expect !== undefined) { sunk = 0; want = m.expect; }
  });
  close = async () => { for (const s of servers) s.close(); };
}
process.on("message", async (m) => {
  if (m.cpu) {
    const u = process.cpuUsage();
    process.send({ cpuUs: u.user + u.system });
  }
  if (m.close) {
    await close();
    process.disconnect();
  }
});
// the parent gone (killed mid-run): do not linger with listeners in its pods
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
`;

interface Child {
  send(m: Record<string, unknown>): void;
  next(key: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Starts one bench process (`CHILD`). AMBIENTKIT_INPOD_BENCH_NODE_ARGS adds Node flags to each, to
 * profile them: e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` or `--perf-basic-prof` (for `perf`).
 */
function startChild(env: Record<string, unknown>): Child {
  const flags = (process.env.AMBIENTKIT_INPOD_BENCH_NODE_ARGS ?? "").split(" ").filter((f) => f);
  const child = spawn(process.execPath, [...flags, "--input-type=module", "-e", CHILD], {
    cwd: fileURLToPath(new URL("../../", import.meta.url)),
    env: {
      ...process.env,
      AMBIENTKIT_INPOD_BENCH: JSON.stringify({ examples: EXAMPLES.href, ...env }),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise((r) => child.once("exit", r));
  return {
    send: (m) => child.send(m),
    next: (key) =>
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
          child.off("message", onMsg);
          reject(new Error(`in-pod bench child exited (${code})`));
        };
        child.on("message", onMsg);
        child.once("exit", onExit);
      }),
    close: async () => {
      if (child.connected) child.send({ close: true });
      await exited;
    },
  };
}

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
async function setupTimes(from: Pod, to: Pod, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t0 = process.hrtime.bigint();
    const s = await connectInNetns(from.path, { host: to.ip, port: 9101, timeoutMs: 5000 });
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

/**
 * The floors any ztunnel meets on this machine: the mesh path's two extra hops (the client's pod →
 * a relay in that pod → across the bridge → a relay in the server's pod → the app), each relay a
 * process of its own:
 * - `copy`: socat, a C program (64 KiB buffers) copying bytes; no TLS, no HTTP/2;
 * - `tls`: the same socat relays with what every ztunnel must do between them: mutual TLS 1.3
 *   (OpenSSL, the same TLS_AES_256_GCM_SHA384 as ours, P-256 certificates both sides verify);
 * - `node-tls`: that TLS relay written in Node (node:net + node:tls, `pipe` both ways), still no
 *   HTTP/2: how much of a ztunnel's cost is Node's TLS and streams before HBONE adds anything.
 * undefined when socat (Debian: socat) or, for TLS, the openssl CLI is not installed.
 */
function startRelays(
  from: Pod,
  to: Pod,
  kind: "copy" | "tls" | "node-tls",
): { port: number; stop(): void; cpuMs(): number[] } | undefined {
  if (spawnSync("socat", ["-V"]).status !== 0) return undefined;
  if (kind !== "copy" && spawnSync("openssl", ["version"]).status !== 0) return undefined;
  const ports: Record<typeof kind, [number, number]> = {
    copy: [15001, 15008],
    tls: [16001, 16008],
    "node-tls": [17001, 17008],
  };
  const [listenA, listenB] = ports[kind];
  const dir = kind === "copy" ? undefined : makeCerts(to.ip);
  const file = (name: string): string => join(dir ?? "", name);
  const spawnIn = (pod: Pod, argv: string[], env?: Record<string, string>): ChildProcess => {
    const p = spawn("ip", ["netns", "exec", pod.ns, ...argv], {
      stdio: "ignore",
      ...(env ? { env: { ...process.env, ...env } } : {}),
    });
    p.on("error", () => {});
    return p;
  };
  let procs: ChildProcess[];
  if (kind === "node-tls") {
    const relay = (pod: Pod, config: Record<string, unknown>): ChildProcess =>
      spawnIn(pod, [process.execPath, "-e", NODE_TLS_RELAY], {
        AK_RELAY: JSON.stringify({
          cert: file(`${config.side}.crt`),
          key: file(`${config.side}.key`),
          ca: file("ca.pem"),
          ...config,
        }),
      });
    procs = [
      relay(to, { side: "server", bind: to.ip, listen: listenB, host: to.ip, port: 9100 }),
      relay(from, { side: "client", bind: from.ip, listen: listenA, host: to.ip, port: listenB }),
    ];
  } else {
    const tlsOpts = (side: "client" | "server"): string =>
      kind === "tls"
        ? `,cert=${file(`${side}.crt`)},key=${file(`${side}.key`)},cafile=${file("ca.pem")},verify=1`
        : "";
    const socat = (pod: Pod, listen: string, target: string): ChildProcess =>
      spawnIn(pod, ["socat", "-b", "65536", listen, target]);
    procs = [
      socat(
        to,
        `${kind === "tls" ? "OPENSSL-LISTEN" : "TCP-LISTEN"}:${listenB},bind=${to.ip},reuseaddr,fork,nodelay${tlsOpts("server")}`,
        `TCP:${to.ip}:9100,nodelay`,
      ),
      socat(
        from,
        `TCP-LISTEN:${listenA},bind=${from.ip},reuseaddr,fork,nodelay`,
        `${kind === "tls" ? "OPENSSL" : "TCP"}:${to.ip}:${listenB},nodelay${tlsOpts("client")}`,
      ),
    ];
  }
  return {
    port: listenA,
    // [relay in the client's pod, relay in the server's pod]: each process and its reaped
    // children (socat forks one per connection); `ip netns exec` execs it, so the pid is its own
    cpuMs: () => [procs[1], procs[0]].map((p) => processTreeCpuMs(p?.pid)),
    stop: () => {
      for (const p of procs) p.kill("SIGTERM");
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

const FLOOR_LABELS = {
  floor: {
    label: "floor (socat)",
    what: "pod C → relay in C → relay in D → pod D, the mesh's two extra hops with socat (C): bytes copied, no TLS, no HTTP/2",
  },
  tlsFloor: {
    label: "TLS floor (socat + OpenSSL)",
    what: "the same two socat relays with mutual TLS 1.3 between them (OpenSSL, AES-256-GCM), no HTTP/2",
  },
  nodeTlsFloor: {
    label: "Node TLS floor (node:net + node:tls)",
    what: "that TLS relay written in Node (pipe both ways), no HTTP/2, no ambientkit",
  },
} as const;

/** The Node TLS relay of the `node-tls` floor (plain node:net + node:tls, no ambientkit). */
const NODE_TLS_RELAY = `
const net = require("node:net");
const tls = require("node:tls");
const fs = require("node:fs");
const c = JSON.parse(process.env.AK_RELAY);
const opts = { cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key), ca: fs.readFileSync(c.ca), minVersion: "TLSv1.3" };
const pipe = (a, b) => {
  a.setNoDelay(true);
  b.setNoDelay(true);
  a.on("error", () => b.destroy());
  b.on("error", () => a.destroy());
  a.pipe(b);
  b.pipe(a);
};
if (c.side === "client")
  net.createServer((s) => pipe(s, tls.connect({ host: c.host, port: c.port, ...opts }))).listen(c.listen, c.bind);
else
  tls.createServer({ ...opts, requestCert: true, rejectUnauthorized: true }, (s) => pipe(s, net.connect(c.port, c.host))).listen(c.listen, c.bind);
`;

/** A CA and a server and a client certificate (P-256, SAN IP `ip`) by the openssl CLI, in a new dir. */
function makeCerts(ip: string): string {
  const d = mkdtempSync(join(tmpdir(), "ak-inpod-bench-tls-"));
  const openssl = (...args: string[]): void => {
    const r = spawnSync("openssl", args, { cwd: d, stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench-ca");
  for (const name of ["server", "client"]) {
    writeFileSync(join(d, `${name}.ext`), `subjectAltName=IP:${ip}\n`);
    openssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-out",
      `${name}.crt`,
      "-extfile",
      `${name}.ext`,
    );
  }
  return d;
}

/** utime + stime + cutime + cstime of a process, ms (0 when it is gone). */
function processTreeCpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the command's closing paren: state is field 3, utime field 14 … cstime 17
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU time the whole machine spent (every process and the kernel's softirqs), in ms: /proc/stat. */
function machineCpuMs(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal …: busy = all but idle and iowait
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f.reduce((a, b, i) => (i === 3 || i === 4 ? a : a + b), 0);
  return (busy * 1000) / CLOCK_TICKS;
}
// USER_HZ: 100 on every Linux architecture Node runs on
const CLOCK_TICKS = 100;

async function measureInpod(): Promise<MeasureRow[]> {
  const why = missingPrivilege();
  if (why !== undefined) throw new Error(`the in-pod bench cannot run: ${why}`);
  const api = await load();
  // A and B in the mesh (capture rules), C and D on the same bridge without
  const net = createPodNetwork(0);
  const [a, b, c, d] = [net.addPod(), net.addPod(), net.addPod(false), net.addPod(false)];
  const closers: (() => Promise<void> | void)[] = [];
  try {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const files = await ca.toCacerts();
    const tag = randomBytes(3).toString("hex");
    const cacerts = {
      caCertPem: files["ca-cert.pem"],
      caKeyPem: files["ca-key.pem"],
      rootCertPem: files["root-cert.pem"],
      certChainPem: files["cert-chain.pem"],
    };
    const ztunnel = (node: string, pod: Pod, sa: string, side: string): Child => {
      const z = startChild({
        role: "ztunnel",
        node,
        cacerts,
        localXds: localXds(a.ip, b.ip),
        uds: `/tmp/ak-inpod-bench-${tag}-${side}.sock`,
        uid: randomUUID(),
        info: { name: sa, namespace: "bench", serviceAccount: sa },
        pod,
      });
      closers.push(() => z.close());
      return z;
    };
    const apps = startChild({ role: "apps", pods: [b.path, d.path] });
    closers.push(() => apps.close());
    const zB = ztunnel("node-b", b, "server", "b");
    const zA = ztunnel("node-a", a, "client", "a");
    await Promise.all([apps.next("ready"), zB.next("ready"), zA.next("ready")]);
    // C → relay in C → relay in D → D's app: the same hops as the mesh, nothing but copying
    const relays = startRelays(c, d, "copy");
    if (relays) closers.push(() => relays.stop());
    else process.stderr.write("inpod bench: socat is not installed, the relay floor is skipped\n");
    // the same with mutual TLS between the relays: what the TLS hop alone costs, in C
    const tlsRelays = relays ? startRelays(c, d, "tls") : undefined;
    if (tlsRelays) closers.push(() => tlsRelays.stop());
    else if (relays)
      process.stderr.write("inpod bench: no openssl CLI, the TLS relay floor is skipped\n");
    // and that TLS relay in Node: node:tls and streams, no HTTP/2
    const nodeTlsRelays = tlsRelays ? startRelays(c, d, "node-tls") : undefined;
    if (nodeTlsRelays) closers.push(() => nodeTlsRelays.stop());

    const certs = new api.WorkloadCertificates(ca);
    closers.push(() => certs.close());
    const config = api.parseScenario({ file: "bench.yaml", text: localXds(a.ip, b.ip) }).local;
    const opts = { config, certificates: certs, captureServices: false };

    // throughput on one connection: alternating rounds, the ratio is the median of each round's
    // pair; the first two rounds warm up both paths and are not counted
    const total = 128 * 1024 * 1024;
    const meshR: number[] = [];
    const directR: number[] = [];
    // the floors that could start, each with its rounds and the CPU of its two relays (C, D)
    const floors = (
      [
        ["floor", relays],
        ["tlsFloor", tlsRelays],
        ["nodeTlsFloor", nodeTlsRelays],
      ] as const
    ).flatMap(([key, set]) =>
      set ? [{ key, set, rounds: [] as number[], relayCpu: [0, 0], machineMs: 0 }] : [],
    );
    // machine CPU (all processes + kernel) over each path's counted rounds, ms
    const machine = { mesh: 0, direct: 0 };
    const WARMUP = 2;
    // CPU time of each process over the counted rounds (user + system): what a MiB costs where,
    // a figure the machine's load moves far less than MB/s
    const procs = { client: undefined, "ztunnel A": zA, "ztunnel B": zB, servers: apps };
    const cpuNow = async (): Promise<number[]> =>
      Promise.all(
        Object.values(procs).map(async (p) => {
          if (!p) {
            const u = process.cpuUsage();
            return u.user + u.system;
          }
          p.send({ cpu: true });
          return Number((await p.next("cpuUs")).cpuUs);
        }),
      );
    const cpu = { mesh: [0, 0, 0, 0], direct: [0, 0, 0, 0] };
    type Floor = (typeof floors)[number];
    const oneRound = async (
      from: Pod,
      to: Pod,
      counted: boolean,
      path: "mesh" | "direct" | Floor,
    ): Promise<number> => {
      const floor = typeof path === "string" ? undefined : path;
      const s = await connectInNetns(from.path, {
        host: floor ? from.ip : to.ip,
        port: floor ? floor.set.port : 9100,
        noDelay: true,
        timeoutMs: 5000,
      });
      const tally = counted && typeof path === "string" ? cpu[path] : undefined;
      const before = tally ? await cpuNow() : [];
      const r0 = floor?.set.cpuMs() ?? [];
      const m0 = machineCpuMs();
      apps.send({ expect: total });
      let done = false;
      const got = apps.next("got").then(() => {
        done = true;
      });
      const mbps = await pump(s, total, () => done);
      await got;
      const machineMs = machineCpuMs() - m0;
      if (counted) {
        if (floor) floor.machineMs += machineMs;
        else machine[path as "mesh" | "direct"] += machineMs;
      }
      if (counted && floor) {
        // socat's child for this connection is reaped once the connection closes
        s.destroy();
        await new Promise((r) => setTimeout(r, 50));
        for (const [i, t] of floor.set.cpuMs().entries())
          floor.relayCpu[i] = (floor.relayCpu[i] ?? 0) + t - (r0[i] ?? 0);
      }
      if (tally) {
        const after = await cpuNow();
        for (const [i, t] of after.entries()) tally[i] = (tally[i] ?? 0) + t - (before[i] ?? 0);
      }
      s.destroy();
      return mbps;
    };
    for (let round = 0; round < WARMUP + 5; round++) {
      const counted = round >= WARMUP;
      meshR.push(await oneRound(a, b, counted, "mesh"));
      directR.push(await oneRound(c, d, counted, "direct"));
      for (const f of floors) f.rounds.push(await oneRound(c, d, counted, f));
    }
    meshR.splice(0, WARMUP);
    directR.splice(0, WARMUP);
    for (const f of floors) f.rounds.splice(0, WARMUP);
    const vsDirect = (xs: number[]): number => median(xs.map((x, i) => x / (directR[i] ?? x)));
    const countedMiB = (5 * total) / (1024 * 1024);
    const cpuRows = (path: "mesh" | "direct", label: string): MeasureRow[] =>
      Object.keys(procs).flatMap((name, i) => {
        const us = cpu[path][i] ?? 0;
        if (path === "direct" && name.startsWith("ztunnel")) return [];
        return [
          {
            name: `CPU per MiB, ${label}: ${name}`,
            value: Number((us / 1000 / countedMiB).toFixed(2)),
            unit: "ms",
            ...(path === "direct" ? { peer: true } : {}),
          },
        ];
      });
    const ratio = median(meshR.map((x, i) => x / (directR[i] ?? x)));

    // connection setup: connect → first byte of the app, pooled HBONE connection warm
    const n = 300;
    const setupBefore = await cpuNow();
    const viaZ = await setupTimes(a, b, n);
    const setupAfter = await cpuNow();
    const direct = await setupTimes(c, d, n);
    // CPU per connection of each ztunnel over the mesh setups (warm-up included: n + 20)
    const setupCpu = (i: number, name: string): MeasureRow => ({
      name: `CPU per connection setup, ${name}`,
      value: Number((((setupAfter[i] ?? 0) - (setupBefore[i] ?? 0)) / (n + 20)).toFixed(0)),
      unit: "µs",
    });

    // 100 pods over ZDS to a third ztunnel: until every pod's three listeners serve; fds per pod
    const agentN = await FakeNodeAgent.start(`/tmp/ak-inpod-bench-${tag}-n.sock`);
    closers.push(() => agentN.stop());
    const zN = await api.Ztunnel.start({
      ...opts,
      node: "node-n",
      inpod: { uds: agentN.path, backoff: { initialMs: 20, maxMs: 200 } },
    });
    closers.push(() => zN.close());
    await agentN.accept();
    const PODS = 100;
    // bare namespaces (lo only): the listeners need no network, and 100 veths would slow setup
    const pods: TestNetns[] = [];
    for (let i = 0; i < PODS; i++) pods.push(net.addNamespace());
    // lo up, so that every listener can be dialled below (outside the timed part)
    for (const p of pods) spawnSync("ip", ["-n", p.ns, "link", "set", "lo", "up"]);
    const fds = (): number => readdirSync("/proc/self/fd").length;
    const fdsBefore = fds();
    const t0 = process.hrtime.bigint();
    for (const [i, p] of pods.entries()) {
      const err = await agentN.add(
        randomUUID(),
        { name: `p${i}`, namespace: "bench", serviceAccount: "bench" },
        p,
      );
      if (err) throw new Error(`AddWorkload refused: ${err}`);
    }
    await agentN.snapshotSent();
    const addMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const served = [...(zN.inpod?.pods.values() ?? [])].filter((p) => p.listeners === 3).length;
    if (served !== PODS || !zN.ready) throw new Error(`only ${served} of ${PODS} pods serve`);
    const perPod = (fds() - fdsBefore) / PODS;
    // and they do: each pod's 15001, 15006 and 15008 accepts a connection
    for (const p of pods)
      for (const port of [15001, 15006, 15008]) {
        const probe = await connectInNetns(p.path, { host: "127.0.0.1", port, timeoutMs: 5000 });
        probe.destroy();
      }

    const row = (name: string, xs: number[], peer = false): MeasureRow[] => [
      { name: `${name} p50`, value: Number(percentile(xs, 50).toFixed(3)), unit: "ms", peer },
      { name: `${name} p99`, value: Number(percentile(xs, 99).toFixed(3)), unit: "ms", peer },
    ];
    return [
      {
        name: "pod A → 15001 → HBONE → 15008 → pod B (two in-pod ztunnels, each its own process, one connection, 128 MiB)",
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
      ...floors.flatMap((f) => {
        const { label, what } = FLOOR_LABELS[f.key];
        return [
          {
            name: `${label}: ${what} (peer)`,
            value: Math.round(median(f.rounds)),
            unit: "MB/s",
            peer: true,
          },
          {
            name: `ratio ${label} / direct`,
            value: Number(vsDirect(f.rounds).toFixed(2)),
            unit: "×",
            peer: true,
          },
        ];
      }),
      // a machine with few cores runs the client, the servers and both relays on the same cores:
      // throughput follows the CPU a MiB costs the whole machine
      ...[
        { label: "in-pod mesh", ms: machine.mesh, peer: false },
        { label: "direct", ms: machine.direct, peer: true },
        ...floors.map((f) => ({ label: FLOOR_LABELS[f.key].label, ms: f.machineMs, peer: true })),
      ].map(({ label, ms, peer }) => ({
        name: `machine CPU per MiB (every process + kernel, /proc/stat), ${label}${peer ? " (peer)" : ""}`,
        value: Number((ms / countedMiB).toFixed(2)),
        unit: "ms",
        ...(peer ? { peer: true } : {}),
      })),
      ...floors.flatMap((f) =>
        ["relay in C (where ztunnel A is)", "relay in D (where ztunnel B is)"].map((who, i) => ({
          name: `CPU per MiB, ${FLOOR_LABELS[f.key].label}: ${who} (peer)`,
          value: Number(((f.relayCpu[i] ?? 0) / countedMiB).toFixed(2)),
          unit: "ms",
          peer: true,
        })),
      ),
      { name: "cores on this machine", value: availableParallelism(), unit: "cores" },
      ...cpuRows("mesh", "in-pod mesh"),
      ...cpuRows("direct", "direct (peer)"),
      ...row("connection setup (connect → first byte) via both in-pod ztunnels", viaZ),
      ...row("connection setup (connect → first byte) direct (peer)", direct, true),
      setupCpu(1, "ztunnel A"),
      setupCpu(2, "ztunnel B"),
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
    net.delete();
  }
}

/** µs per call of `fn`, over `n` calls after `n / 10` warm-up. */
function usPerCall(n: number, fn: () => void): number {
  for (let i = 0; i < n / 10; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

/** µs per sequential async call of `fn`, over `n` calls after `n / 10` warm-up. */
async function usPerAsyncCall(n: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < n / 10; i++) await fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

const closeServer = (s: nodeNet.Server): Promise<void> => new Promise((r) => s.close(() => r()));

/**
 * The capture primitives alone, each against what Node does in its own namespace: a socket
 * connected from inside a pod (and accepted there), a listener opened inside a pod, the setns pair
 * every such socket costs, SO_ORIGINAL_DST of a redirected connection and SO_MARK.
 */
async function measurePrimitives(): Promise<MeasureRow[]> {
  const why = missingPrivilege();
  if (why !== undefined) throw new Error(`the in-pod bench cannot run: ${why}`);
  const net = createPodNetwork(0);
  const pod = net.addPod(); // with istio-cni's capture rules: its outbound TCP goes to 15001
  const ns = Netns.open(pod.path);
  const servers: nodeNet.Server[] = [];
  try {
    const accepted: nodeNet.Socket[] = [];
    const onConn = (s: nodeNet.Socket): void => {
      s.on("error", () => {});
      accepted.push(s);
      s.destroy();
    };
    // a listener inside the pod (its inbound port 15006 is where capture sends plaintext)
    const inPod = await listenInNetns(ns, {
      host: pod.ip,
      port: 9200,
      server: nodeNet.createServer(onConn),
    });
    servers.push(inPod);
    const local = nodeNet.createServer(onConn);
    await new Promise<void>((r) => local.listen(0, "127.0.0.1", r));
    servers.push(local);
    const localPort = (local.address() as nodeNet.AddressInfo).port;
    const connectClose = async (connect: () => Promise<nodeNet.Socket>): Promise<void> => {
      const s = await connect();
      s.destroy();
    };
    const N = 400;
    const connectPod = await usPerAsyncCall(N, () =>
      connectClose(() => connectInNetns(ns, { host: pod.ip, port: 9200, mark: 0x539 })),
    );
    const connectLocal = await usPerAsyncCall(N, () =>
      connectClose(
        () =>
          new Promise<nodeNet.Socket>((resolve, reject) => {
            const s = nodeNet.connect(localPort, "127.0.0.1", () => resolve(s));
            s.once("error", reject);
          }),
      ),
    );
    const listenPod = await usPerAsyncCall(200, async () => {
      await closeServer(await listenInNetns(ns, { host: pod.ip, port: 0 }));
    });
    const listenLocal = await usPerAsyncCall(200, async () => {
      const s = nodeNet.createServer();
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
      await closeServer(s);
    });
    const setnsPair = usPerCall(20_000, () => runInNetns(ns.fd, () => undefined));
    // a connection the pod's rules redirected to 15001: its original destination, read back
    const outbound = await listenInNetns(ns, {
      port: 15001,
      server: nodeNet.createServer((s) => s.on("error", () => {})),
    });
    servers.push(outbound);
    const redirected = new Promise<nodeNet.Socket>((r) => outbound.once("connection", r));
    const client = await connectInNetns(ns, { host: "10.214.0.250", port: 80 });
    const conn = await redirected;
    const dst = originalDestination(conn);
    if (dst.address !== "10.214.0.250" || dst.port !== 80)
      throw new Error(`SO_ORIGINAL_DST read ${dst.address}:${dst.port}`);
    const origDst = usPerCall(20_000, () => originalDestination(conn));
    const mark = usPerCall(20_000, () => setMark(conn, 0x539));
    // alternating: Node skips the syscall when the value does not change
    let flip = false;
    const noDelay = usPerCall(20_000, () => {
      flip = !flip;
      conn.setNoDelay(flip);
    });
    client.destroy();
    conn.destroy();
    const us = (name: string, value: number, peer = false): MeasureRow => ({
      name,
      value: Number(value.toFixed(2)),
      unit: "µs",
      ...(peer ? { peer: true } : {}),
    });
    return [
      us("connectInNetns inside a pod (+ SO_MARK) → accepted there, per connection", connectPod),
      us(
        "net.connect in Node's own namespace → accepted, per connection (peer)",
        connectLocal,
        true,
      ),
      us("listenInNetns inside a pod, then close, per listener", listenPod),
      us("net.Server listen in Node's own namespace, then close (peer)", listenLocal, true),
      us("setns into a pod and back (runInNetns, empty), per call", setnsPair),
      us("originalDestination (SO_ORIGINAL_DST) of a redirected connection, per call", origDst),
      us("setMark (SO_MARK), per call", mark),
      us("socket.setNoDelay (a setsockopt through libuv) (peer)", noDelay, true),
    ];
  } finally {
    for (const s of servers) await closeServer(s).catch(() => {});
    ns.close();
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
      {
        name: "inpod/primitives",
        target:
          "the capture primitives alone (no target in the issue): a socket connected or listening inside a pod vs Node's own, setns, SO_ORIGINAL_DST, SO_MARK",
        cases: [],
        measure: measurePrimitives,
      },
    ];
  },
};
export default suite;
