// The reference ztunnel in in-pod mode, end to end on real pods: two network namespaces on a bridge
// with istio-cni's capture rules, each served by its own ztunnel ("node-a" for pod A, "node-b" for
// pod B) that learns its pod from a fake istio-cni node agent over ZDS. Unmodified clients (curl,
// a python3 socket) in pod A reach pod B's servers through A's 15001 → HBONE (mTLS, SPIFFE IDs
// checked) → B's 15008 → the app, which sees pod A's address, over IPv4 and over IPv6.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import {
  connectInNetns,
  DEFAULT_INPOD_MARK,
  listenInNetns,
  Netns,
  runInNetns,
} from "@ambientkit/inpod";
import {
  createPodNetwork,
  eventually,
  FakeNodeAgent,
  type Pod,
  type PodNetwork,
  privileged,
} from "@ambientkit/inpod/testing";
import { LocalControlPlane } from "@ambientkit/xds";
import type { LocalConfig } from "@ambientkit/xds-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpRequest } from "../apps/echo.js";
import { WorkloadCertificates } from "../mesh/certs.js";
import { parseScenario } from "../mesh/config.js";
import { parsePrometheus } from "../testing.js";
import { inpodSettingsFromEnv } from "./inpod.js";
import { Ztunnel } from "./ztunnel.js";

const A_IP = "10.214.0.10";
const B_IP = "10.214.0.11";
const A_IP6 = "fd00:214::10";
const B_IP6 = "fd00:214::11";

const LOCAL_XDS = `
workloads:
  - uid: Kubernetes//Pod/test/client
    name: client
    namespace: test
    serviceAccount: client
    trustDomain: cluster.local
    workloadIps: ["${A_IP}", "${A_IP6}"]
    protocol: HBONE
    node: node-a
    services: {}
  - uid: Kubernetes//Pod/test/server
    name: server
    namespace: test
    serviceAccount: server
    trustDomain: cluster.local
    workloadIps: ["${B_IP}", "${B_IP6}"]
    protocol: HBONE
    node: node-b
    services: {}
services: []
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
  return parseScenario({ file: "inpod.yaml", text }).local;
}

/** Runs `cmd` inside namespace `ns` without blocking the event loop the ztunnels run on. */
function inNs(ns: string, cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", ns, cmd, ...args],
      { timeout: 15_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} in ${ns} failed: ${err.message} ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** The established HBONE connections (to port 15008) inside namespace `ns`, as `ss -tnoe` lists them. */
function hboneSockets(ns: string): Promise<string> {
  return inNs(ns, "ss", ["-Htnoe", "state", "established", "dport", "= :15008"]);
}

const INFO_A = { name: "client", namespace: "test", serviceAccount: "client" };
const INFO_B = { name: "server", namespace: "test", serviceAccount: "server" };

describe.skipIf(!privileged())("reference ztunnel, in-pod mode (ZDS, real pods)", () => {
  let pods: PodNetwork;
  let dir: string;
  let ca: CertificateAuthority;
  let certs: WorkloadCertificates;
  let agentA: FakeNodeAgent;
  let agentB: FakeNodeAgent;
  let zA: Ztunnel;
  let zB: Ztunnel;
  let httpServer: http.Server;
  let echoServer: net.Server;
  const seenByApp: string[] = [];
  const uidA = randomUUID();
  const uidB = randomUUID();
  let readyBeforeSnapshot = true;
  let helloA = "";

  const start = (node: string, uds: string) =>
    Ztunnel.start({
      node,
      config: config(),
      certificates: certs,
      captureServices: false,
      connectTimeoutMs: 5000,
      ports: { admin: 0 },
      inpod: { uds, backoff: { initialMs: 20, maxMs: 200 }, netnsCheckIntervalMs: 200 },
    });

  beforeAll(async () => {
    pods = createPodNetwork(2);
    pods.addPod(false); // pod C: outside the mesh (no capture rules, no ztunnel)
    dir = mkdtempSync(join(tmpdir(), "ztunnel-inpod-"));
    ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    certs = new WorkloadCertificates(ca);
    agentA = await FakeNodeAgent.start(join(dir, "a.sock"));
    agentB = await FakeNodeAgent.start(join(dir, "b.sock"));
    zA = await start("node-a", agentA.path);
    zB = await start("node-b", agentB.path);
    const [a, b] = pods.pods;
    if (!a || !b) throw new Error("two pods expected");
    helloA = await agentA.accept();
    expect(await agentA.add(uidA, INFO_A, a)).toBe("");
    readyBeforeSnapshot = zA.ready;
    expect(await agentA.snapshotSent()).toBe("");
    await agentB.accept();
    expect(await agentB.add(uidB, INFO_B, b)).toBe("");
    expect(await agentB.snapshotSent()).toBe("");
    // pod B's apps: an HTTP echo (8080) and a TCP echo (9000), both noting who called; on `::`
    // (both families), so an IPv4 caller shows as ::ffff:, noted without it
    const caller = (a: string | undefined) => (a ?? "").replace(/^::ffff:/, "");
    httpServer = http.createServer((req, res) => {
      seenByApp.push(caller(req.socket.remoteAddress));
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => res.end(Buffer.concat(chunks)));
    });
    await listenInNetns(b.path, { host: "::", port: 8080, server: httpServer });
    echoServer = net.createServer({ allowHalfOpen: true }, (s) => {
      seenByApp.push(caller(s.remoteAddress));
      s.on("error", () => {});
      s.pipe(s);
    });
    await listenInNetns(b.path, { host: "::", port: 9000, server: echoServer });
  });

  afterAll(async () => {
    await zA?.close();
    await zB?.close();
    await agentA?.stop();
    await agentB?.stop();
    httpServer?.closeAllConnections();
    await new Promise<void>((r) => (httpServer ? httpServer.close(() => r()) : r()));
    await new Promise<void>((r) => (echoServer ? echoServer.close(() => r()) : r()));
    certs?.close();
    pods?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const podA = () => pods.pods[0] as Pod;
  const podB = () => pods.pods[1] as Pod;

  /** curl in pod A (or `from`) posts `body` to pod B's HTTP echo (at `host`); resolves with what came back. */
  async function curlEcho(body: Buffer, host = B_IP, from: Pod = podA()): Promise<Buffer> {
    const f = join(dir, `body-${randomUUID()}`);
    const out = `${f}.out`;
    writeFileSync(f, body);
    await inNs(from.ns, "curl", [
      "-sS",
      "--fail",
      "--max-time",
      "10",
      "-H",
      "Expect:",
      "--data-binary",
      `@${f}`,
      "-o",
      out,
      ...(host.includes(":")
        ? ["-6", "-g", `http://[${host}]:8080/echo`]
        : [`http://${host}:8080/echo`]),
    ]);
    return readFileSync(out);
  }

  it("listens in each pod only after ZDS added it; readiness waits for the snapshot", async () => {
    expect(helloA).toBe("0801"); // ZdsHello{version: V1}
    expect(readyBeforeSnapshot).toBe(false);
    expect(zA.ready).toBe(true);
    expect(zB.ready).toBe(true);
    // the pods have IPv6 addresses: each port on 0.0.0.0 and on :: (IPv6 only)
    expect(zA.inpod?.pods.get(uidA)).toMatchObject({
      identity: "spiffe://cluster.local/ns/test/sa/client",
      listeners: 6,
      addresses: [
        "0.0.0.0:15001",
        "[::]:15001",
        "0.0.0.0:15006",
        "[::]:15006",
        "0.0.0.0:15008",
        "[::]:15008",
      ],
    });
    expect(zB.inpod?.pods.get(uidB)?.identity).toBe("spiffe://cluster.local/ns/test/sa/server");
  });

  it("curl in pod A reaches pod B's server through both ztunnels, byte-exact both ways", async () => {
    const body = randomBytes(512 * 1024);
    seenByApp.length = 0;
    const back = await curlEcho(body);
    expect(back.equals(body)).toBe(true);
    // the server saw pod A, not a ztunnel address (ENABLE_ORIG_SRC)
    expect(seenByApp).toEqual([A_IP]);
    // A's pooled HBONE connection to B:15008 left from inside pod A, with ztunnel's mark
    const hbone = await hboneSockets(podA().ns);
    expect(hbone).toContain(`${B_IP}:15008`);
    expect(hbone).toContain("fwmark:0x539");

    const complete = (z: Ztunnel) =>
      z.log.find(
        (e) =>
          e.message === "connection complete" &&
          e.fields["src.workload"] === "client" &&
          e.fields["dst.workload"] === "server",
      );
    expect(await eventually(() => complete(zA).length > 0 && complete(zB).length > 0)).toBe(true);
    const src = complete(zA)[0]?.fields ?? {};
    const dst = complete(zB)[0]?.fields ?? {};
    expect(src).toMatchObject({
      "src.addr": expect.stringContaining(A_IP),
      "dst.identity": "spiffe://cluster.local/ns/test/sa/server",
      "dst.hbone_addr": `${B_IP}:8080`,
    });
    expect(dst).toMatchObject({
      "src.identity": "spiffe://cluster.local/ns/test/sa/client",
      "dst.identity": "spiffe://cluster.local/ns/test/sa/server",
    });
    for (const [z, reporter] of [
      [zA, "source"],
      [zB, "destination"],
    ] as const) {
      const opened = parsePrometheus(await z.registry.metrics()).filter(
        (s) =>
          s.name === "istio_tcp_connections_opened_total" &&
          s.labels.reporter === reporter &&
          s.labels.source_workload === "client" &&
          s.labels.destination_workload === "server" &&
          s.labels.connection_security_policy === "mutual_tls",
      );
      expect(opened.reduce((n, s) => n + s.value, 0)).toBeGreaterThanOrEqual(1);
    }
  });

  it("plaintext from a pod outside the mesh is captured on B's 15006 and reaches the app as itself", async () => {
    const podC = pods.pods[2] as NonNullable<PodNetwork["pods"][0]>;
    seenByApp.length = 0;
    const out = await inNs(podC.ns, "curl", [
      "-sS",
      "--fail",
      "--max-time",
      "10",
      "--data-binary",
      "plain",
      `http://${B_IP}:8080/`,
    ]);
    expect(out).toBe("plain");
    expect(seenByApp).toEqual([podC.ip]);
    const logged = () =>
      zB.log.find(
        (e) =>
          e.message === "connection complete" &&
          String(e.fields["src.addr"] ?? "").startsWith(`${podC.ip}:`) &&
          e.fields["dst.workload"] === "server",
      );
    expect(await eventually(() => logged().length > 0)).toBe(true);
    expect(logged()[0]?.fields["src.identity"]).toBeUndefined(); // plaintext: no peer identity
  });

  it("a python3 client in pod A: raw TCP both ways, its half-close forwarded end to end", async () => {
    const body = randomBytes(256 * 1024);
    const f = join(dir, "raw-in");
    writeFileSync(f, body);
    const out = `${f}.out`;
    // send everything, shut down writing (FIN), read until the echo's own FIN
    const client = [
      "import socket, sys",
      `s = socket.create_connection(("${B_IP}", 9000), timeout=10)`,
      "s.sendall(open(sys.argv[1], 'rb').read())",
      "s.shutdown(socket.SHUT_WR)",
      "out = open(sys.argv[2], 'wb')",
      "while True:",
      "    b = s.recv(65536)",
      "    if not b: break",
      "    out.write(b)",
    ].join("\n");
    await inNs(podA().ns, "/usr/bin/python3", ["-c", client, f, out]);
    expect(readFileSync(out).equals(body)).toBe(true);
  });

  it("an AuthorizationPolicy denying A → B stops it at B's inbound", async () => {
    await zB.setConfig(config(DENY_CLIENT));
    try {
      await expect(curlEcho(Buffer.from("denied?"))).rejects.toThrow(/curl/);
      const denied = zB.log.find(
        (e) =>
          String(e.fields.error ?? "").includes("policy rejection") &&
          e.fields["src.identity"] === "spiffe://cluster.local/ns/test/sa/client",
      );
      expect(denied.length).toBeGreaterThan(0);
    } finally {
      await zB.setConfig(config());
    }
    expect((await curlEcho(Buffer.from("allowed again"))).toString()).toBe("allowed again");
  });

  it("IPv6: curl -6 in pod A reaches pod B's IPv6 address through both ztunnels, byte-exact; B's app sees A's IPv6 address", async () => {
    const body = randomBytes(256 * 1024);
    seenByApp.length = 0;
    const back = await curlEcho(body, B_IP6);
    expect(back.equals(body)).toBe(true);
    expect(seenByApp).toEqual([A_IP6]);
    // A's HBONE connection to B's IPv6 15008 left from inside pod A, with ztunnel's mark
    const hbone = await hboneSockets(podA().ns);
    expect(hbone).toContain(`[${B_IP6}]:15008`);
    expect(hbone).toContain("fwmark:0x539");
    const complete = () =>
      zB.log.find(
        (e) =>
          e.message === "connection complete" &&
          String(e.fields["src.addr"] ?? "").includes(A_IP6) &&
          e.fields["dst.workload"] === "server",
      );
    expect(await eventually(() => complete().length > 0)).toBe(true);
    expect(complete()[0]?.fields["src.identity"]).toBe("spiffe://cluster.local/ns/test/sa/client");
  });

  it("admin /config_dump lists the in-pod workloads (ztunnel's workloadState) and the ZDS connection", async () => {
    const [host, port] = (zA.addresses.admin ?? "").split(":");
    const res = await httpRequest({ host: host ?? "", port: Number(port), path: "/config_dump" });
    expect(res.status).toBe(200);
    const dump = JSON.parse(res.body.toString()) as {
      workloadState: Record<string, Record<string, unknown>>;
      zds: Record<string, unknown>;
    };
    const netns = zA.inpod?.zds.workloads.get(uidA)?.netns;
    expect(dump.workloadState).toEqual({
      [uidA]: {
        state: "Up",
        info: { name: "client", namespace: "test", serviceAccount: "client" },
        netnsId: { inode: netns?.id.ino, dev: netns?.id.dev },
        identity: "spiffe://cluster.local/ns/test/sa/client",
        listeners: zA.inpod?.pods.get(uidA)?.addresses,
        connectionCount: expect.any(Number),
      },
    });
    expect(dump.zds).toEqual({
      uds: agentA.path,
      connected: true,
      snapshotReceived: true,
      ready: true,
    });
    // a pod whose proxy is still starting is Pending (ztunnel's state), then Up; here pod C's
    // namespace handed to the manager directly, as the ZdsClient would
    const inpod = zA.inpod;
    if (!inpod) throw new Error("in-pod mode expected");
    const podC = pods.pods[2] as NonNullable<PodNetwork["pods"][0]>;
    const w = {
      uid: randomUUID(),
      info: { name: "starting", namespace: "test", serviceAccount: "starting" },
      netns: Netns.open(podC.path),
    };
    try {
      const adding = inpod.addWorkload(w);
      expect(inpod.workloadState()[w.uid]).toMatchObject({ state: "Pending", listeners: [] });
      await adding;
      expect(inpod.workloadState()[w.uid]).toMatchObject({ state: "Up", connectionCount: 0 });
      expect(inpod.workloadState()[w.uid]?.listeners).toHaveLength(6);
      await inpod.removeWorkload(w);
      expect(inpod.workloadState()[w.uid]).toBeUndefined();
    } finally {
      await inpod.removeWorkload(w);
      w.netns.close();
    }
  });

  it("a pod whose network is torn down (veth deleted, netns deleted) is removed within the check interval; the others keep serving", async () => {
    const podD = pods.addPod(); // on node A, next to pod A
    const uidD = randomUUID();
    // what this process's fds name (socket:[inode], a netns file…)
    const openTargets = () => {
      const out = new Set<string>();
      for (const fd of readdirSync("/proc/self/fd")) {
        try {
          out.add(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          // closed meanwhile
        }
      }
      return out;
    };
    const before = openTargets();
    expect(
      await agentA.add(uidD, { name: "doomed", namespace: "test", serviceAccount: "doomed" }, podD),
    ).toBe("");
    expect(zA.inpod?.pods.get(uidD)?.listeners).toBe(6);
    const netns = zA.inpod?.zds.workloads.get(uidD)?.netns;
    if (!netns) throw new Error("pod D not served");
    // the fds pod D brought: its netns and its six listening sockets (the LISTEN sockets of pod D's
    // namespace, by inode: another fd this process opened meanwhile is not one of them)
    const listening = runInNetns(netns.fd, () =>
      ["tcp", "tcp6"].flatMap((f) =>
        readFileSync(`/proc/thread-self/net/${f}`, "utf8")
          .split("\n")
          .slice(1)
          .map((l) => l.trim().split(/\s+/))
          .filter((c) => c[3] === "0A") // TCP_LISTEN
          .map((c) => `socket:[${c[9]}]`),
      ),
    );
    const podFds = [...openTargets()].filter(
      (t) => !before.has(t) && (t === podD.path || listening.includes(t)),
    );
    expect(podFds).toHaveLength(7);
    const target = () => {
      try {
        return readlinkSync(`/proc/self/fd/${netns.fd}`);
      } catch {
        return "closed";
      }
    };
    const link = target();
    expect(link).toBe(podD.path); // the fd istio-cni sent: the pod's netns file
    // CNI DEL: the pod's veth goes; then the runtime deletes the namespace (our fd keeps it)
    pods.removePod(podD);
    expect(await eventually(() => !zA.inpod?.pods.has(uidD), 5000)).toBe(true);
    expect(zA.inpod?.zds.workloads.has(uidD)).toBe(false);
    const why = zA.log.find((e) => e.message === "in-pod: pod removed, its network is gone");
    expect(why[0]?.fields).toMatchObject({
      uid: uidD,
      workload: "test/doomed",
      reason: expect.stringMatching(/no interface but lo any more/),
    });
    expect(netns.closed).toBe(true);
    expect(target()).not.toMatch(new RegExp(`^${podD.path}`)); // closed (or the number reused)
    // its netns fd and its six listeners are closed
    expect(await eventually(() => podFds.every((t) => !openTargets().has(t)))).toBe(true);
    // pod A keeps serving, and the node agent's late DelWorkload is answered ok
    expect((await curlEcho(Buffer.from("A still here"))).toString()).toBe("A still here");
    expect(await agentA.del(uidD)).toBe("");
  });

  it("bad ZDS input gets an Ack error, and the pods already served keep serving", async () => {
    const info = { name: "other", namespace: "test", serviceAccount: "other" };
    const uid = randomUUID();
    expect(await agentB.add(uid, info, [])).toMatch(/exactly one/);
    expect(await agentB.add(uid, info, "/etc/hostname")).toMatch(/not a network namespace/);
    expect(await agentB.del(uid)).toMatch(/unknown uid/);
    // a tag whose varint never ends
    expect(await agentB.sendRaw(Buffer.from("ffffffff", "hex"))).toBe(
      "cannot decode WorkloadRequest (premature EOF); is the node agent speaking ZDS V1?",
    );
    expect(await agentB.sendOversized(4096)).toMatch(/larger than/);
    expect(await agentB.keep(uidB)).toMatch(/after SnapshotSent/);
    // a second AddWorkload of B's 15008 in the same namespace: already served, a no-op
    expect(await agentB.add(uidB, INFO_B, podB())).toBe("");
    expect(zB.inpod?.pods.size).toBe(1);
    expect(zB.ready).toBe(true);
    expect((await curlEcho(Buffer.from("still here"))).toString()).toBe("still here");
  });

  it("a pod whose listeners cannot start (its 15008 taken) is pending, as in ztunnel: not ready, retried, and served once the port is free", async () => {
    const podQ = pods.addPod();
    const blocker = await listenInNetns(podQ.path, { host: "0.0.0.0", port: 15008 });
    const agentQ = await FakeNodeAgent.start(join(dir, "q.sock"));
    const zQ = await start("node-q", agentQ.path);
    const uidQ = randomUUID();
    const pendingMetric = async () =>
      parsePrometheus(await zQ.registry.metrics()).find(
        (m) => m.name === "workload_manager_inpod_pending_proxy_count",
      )?.value;
    try {
      await agentQ.accept();
      expect(await agentQ.add(uidQ, { ...INFO_A, name: "q" }, podQ)).toMatch(
        new RegExp(
          `^workload ${uidQ} \\(test/q\\) was not started: in-pod listeners for test/q: .*EADDRINUSE.*; it is retried$`,
        ),
      );
      expect(await agentQ.snapshotSent()).toBe("");
      expect(zQ.inpod?.zds.pending.has(uidQ)).toBe(true);
      expect(zQ.ready).toBe(false); // ztunnel's readiness: a snapshot and nothing pending
      expect(await pendingMetric()).toBe(1);
      expect(zQ.inpod?.workloadState()[uidQ]?.state).toBe("Pending");
      await new Promise<void>((r) => blocker.close(() => r()));
      expect(await eventually(() => zQ.inpod?.pods.get(uidQ)?.listeners === 6)).toBe(true);
      expect(zQ.ready).toBe(true);
      expect(await pendingMetric()).toBe(0);
      expect(zQ.log.find((e) => e.message === "in-pod: pending pod started on retry")).toHaveLength(
        1,
      );
    } finally {
      blocker.close();
      await zQ.close();
      await agentQ.stop();
    }
  });

  it("a CA that never answers for pod X holds neither X's AddWorkload nor the requests after it; X's HBONE fails naming the certificate, pod Y serves", async () => {
    const podX = pods.addPod();
    const podY = pods.addPod();
    const stuck = "spiffe://cluster.local/ns/test/sa/stuck";
    const asked: string[] = [];
    const certsX = new WorkloadCertificates((identity) => {
      asked.push(identity);
      return identity === stuck ? new Promise(() => {}) : ca.issue(identity);
    });
    const workload = (name: string, ip: string) => `
  - uid: Kubernetes//Pod/test/${name}
    name: ${name}
    namespace: test
    serviceAccount: ${name}
    trustDomain: cluster.local
    workloadIps: ["${ip}"]
    protocol: HBONE
    node: node-x
    services: {}`;
    const text = LOCAL_XDS.replace(
      "\nservices: []",
      `${workload("stuck", podX.ip)}${workload("free", podY.ip)}\nservices: []`,
    );
    const agentX = await FakeNodeAgent.start(join(dir, "x.sock"));
    const zX = await Ztunnel.start({
      node: "node-x",
      config: parseScenario({ file: "inpod-x.yaml", text }).local,
      certificates: certsX,
      captureServices: false,
      connectTimeoutMs: 1000, // the bound on waiting for a certificate
      ports: { admin: 0 },
      inpod: { uds: agentX.path, backoff: { initialMs: 20, maxMs: 200 } },
    });
    const uidX = randomUUID();
    const uidY = randomUUID();
    try {
      await agentX.accept();
      expect(
        await agentX.add(uidX, { ...INFO_A, name: "stuck", serviceAccount: "stuck" }, podX),
      ).toBe("");
      expect(asked).toEqual([stuck]); // asked for, never answered
      expect(zX.inpod?.pods.get(uidX)?.listeners).toBe(6);
      expect(
        await agentX.add(uidY, { ...INFO_A, name: "free", serviceAccount: "free" }, podY),
      ).toBe("");
      expect(await agentX.snapshotSent()).toBe("");
      expect(zX.ready).toBe(true);
      // pod Y: through its ztunnel to B over HBONE, with its own certificate
      seenByApp.length = 0;
      expect((await curlEcho(Buffer.from("from Y"), B_IP, podY)).toString()).toBe("from Y");
      expect(seenByApp).toEqual([podY.ip]);
      // pod X: its connection waits for the certificate, then fails with a reason naming it
      await expect(curlEcho(Buffer.from("from X"), B_IP, podX)).rejects.toThrow(/curl/);
      expect(
        zX.log.find((e) => e.message === `in-pod: no certificate for ${stuck} within 1000 ms`),
      ).toHaveLength(1);
      const refused = zX.log.find(
        (e) =>
          e.message === "connection complete" &&
          e.fields["src.workload"] === "stuck" &&
          e.fields.error === `no certificate for ${stuck}`,
      );
      expect(refused).toHaveLength(1);
      // X's 15008 cannot serve TLS without the certificate: after the same wait the connection is
      // closed (dialled from pod Y with the mark, so that Y's own rules let it pass)
      const raw = await connectInNetns(podY.path, {
        host: podX.ip,
        port: 15008,
        mark: 1337,
        timeoutMs: 5000,
      });
      const outcome = await new Promise<string>((resolve) => {
        const t = tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ["h2"] });
        t.once("secureConnect", () => resolve("handshake"));
        t.once("error", () => resolve("closed"));
        t.once("close", () => resolve("closed"));
      });
      expect(outcome).toBe("closed");
      expect(
        zX.log.find((e) => e.message === `in-pod: no certificate for ${stuck} within 1000 ms`),
      ).toHaveLength(2);
      // DelWorkload of Y, then of X, answered; their listeners are gone
      expect(await agentX.del(uidY)).toBe("");
      expect(zX.inpod?.pods.has(uidY)).toBe(false);
      expect(await agentX.del(uidX)).toBe("");
      expect(zX.inpod?.pods.size).toBe(0);
    } finally {
      await zX.close();
      await agentX.stop();
      certsX.close();
    }
  });

  it("DelWorkload closes the pod's listeners and its open connections", async () => {
    // an app connection from pod A (captured by A's rules) held open across the delete
    const held = await connectInNetns(podA().path, { host: B_IP, port: 9000 });
    const closed = new Promise<void>((r) => held.once("close", () => r()));
    held.on("error", () => {});
    held.write("ping");
    const first = await new Promise<string>((r) =>
      held.once("data", (d: Buffer) => r(d.toString())),
    );
    expect(first).toBe("ping");
    expect(zB.inpod?.pods.get(uidB)?.connections).toBeGreaterThan(0);
    // ztunnel's in-pod metrics on B's scrape
    const inpodMetrics = async (): Promise<Record<string, number>> =>
      Object.fromEntries(
        parsePrometheus(await zB.registry.metrics())
          .filter((m) => m.name.startsWith("workload_manager_inpod_"))
          .map((m) => [m.name.slice("workload_manager_inpod_".length), m.value]),
      );
    const before = await inpodMetrics();
    expect(before).toMatchObject({ active_proxy_count: 1, pending_proxy_count: 0 });
    expect(before.proxies_started_total).toBeGreaterThanOrEqual(1);

    expect(await agentB.del(uidB)).toBe("");
    expect(zB.inpod?.pods.size).toBe(0);
    expect(await inpodMetrics()).toEqual({
      ...before,
      active_proxy_count: 0,
      proxies_stopped_total: (before.proxies_stopped_total ?? Number.NaN) + 1,
    });
    await closed;
    // nothing listens on B's 15001, 15006 or 15008 any more, IPv4 or IPv6 (dialled from inside
    // pod B with the mark: neither redirected by B's rules nor captured by A's)
    for (const host of ["127.0.0.1", B_IP, B_IP6])
      for (const port of [15001, 15006, 15008])
        await expect(
          connectInNetns(podB().path, { host, port, mark: DEFAULT_INPOD_MARK, timeoutMs: 3000 }),
          `${host} ${port}`,
        ).rejects.toThrow(/ECONNREFUSED/);
    await expect(curlEcho(Buffer.from("gone"))).rejects.toThrow(/curl/);
  });

  it("a pod re-added after a ztunnel restart is served again; a reconnect reconciles", async () => {
    await zB.close();
    zB = await start("node-b", agentB.path);
    expect(zB.ready).toBe(false);
    await agentB.accept();
    expect(await agentB.add(uidB, INFO_B, podB())).toBe("");
    expect(await agentB.snapshotSent()).toBe("");
    expect(zB.ready).toBe(true);
    expect((await curlEcho(Buffer.from("back"))).toString()).toBe("back");

    // the node agent reconnects and its snapshot no longer names B: B is dropped
    await agentB.disconnect();
    await agentB.accept();
    expect(await agentB.snapshotSent()).toBe("");
    expect(zB.inpod?.pods.size).toBe(0);
  });

  it("main.js with PROXY_MODE=shared: not ready before the snapshot, then serves pod B; SIGTERM exits 0", async () => {
    // node B as a process: config and certificates from a control plane sharing zA's CA
    await zB.close();
    const MAIN = join(
      dirname(fileURLToPath(import.meta.url)),
      "..",
      "..",
      "dist",
      "ztunnel",
      "main.js",
    );
    const cp = await LocalControlPlane.start(config(), { ca });
    let proc: ChildProcess | undefined;
    try {
      proc = spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env.PATH ?? "",
          NODE_NAME: "node-b",
          AMBIENTKIT_EPHEMERAL_PORTS: "true",
          XDS_ADDRESS: cp.address,
          INSTANCE_IP: "10.214.0.250",
          POD_NAME: "ztunnel-b",
          POD_NAMESPACE: "istio-system",
          PROXY_MODE: "shared",
          INPOD_UDS: agentB.path,
          PACKET_MARK: "1337",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      proc.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      const p = proc;
      const first = await new Promise<Record<string, string>>((resolve, reject) => {
        createInterface({ input: p.stdout as NodeJS.ReadableStream }).once("line", (l) =>
          resolve(JSON.parse(l) as Record<string, string>),
        );
        p.once("exit", (code) => reject(new Error(`main.js exited ${code}: ${stderr}`)));
      });
      const readiness = first.readiness ?? "";
      const ready = async () =>
        (
          await httpRequest({
            host: "127.0.0.1",
            port: Number(readiness.slice(readiness.lastIndexOf(":") + 1)),
            path: "/healthz/ready",
          })
        ).status;
      await agentB.accept();
      expect(await agentB.add(uidB, INFO_B, podB())).toBe("");
      expect(await ready()).toBe(503); // config is there, the node agent's snapshot is not
      expect(await agentB.snapshotSent()).toBe("");
      expect(await ready()).toBe(200);
      seenByApp.length = 0;
      const body = randomBytes(64 * 1024);
      expect((await curlEcho(body)).equals(body)).toBe(true);
      expect(seenByApp).toEqual([A_IP]);
      const exited = new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
      p.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await cp.close();
    }
  });

  it("reads ztunnel's in-pod settings from the environment", () => {
    expect(inpodSettingsFromEnv({})).toBeUndefined();
    expect(inpodSettingsFromEnv({ PROXY_MODE: "dedicated" })).toBeUndefined();
    expect(
      inpodSettingsFromEnv({
        PROXY_MODE: "shared",
        INPOD_UDS: "/tmp/z.sock",
        PACKET_MARK: "0x539",
        ENABLE_ORIG_SRC: "false",
      }),
    ).toEqual({ uds: "/tmp/z.sock", mark: 1337, originalSource: false });
    expect(() => inpodSettingsFromEnv({ PROXY_MODE: "shared", PACKET_MARK: "lots" })).toThrow(
      /PACKET_MARK=lots/,
    );
    expect(() => inpodSettingsFromEnv({ PROXY_MODE: "sidecar" })).toThrow(/PROXY_MODE=sidecar/);
    expect(() => inpodSettingsFromEnv({ PROXY_MODE: "shared", ENABLE_ORIG_SRC: "no" })).toThrow(
      /ENABLE_ORIG_SRC=no: expected true or false/,
    );
    expect(inpodSettingsFromEnv({ PROXY_MODE: "shared", ENABLE_ORIG_SRC: "true" })).toEqual({});
  });
});

describe.skipIf(!privileged())(
  "reference ztunnel, in-pod mode: PACKET_MARK and ENABLE_ORIG_SRC from the environment, on real pods",
  () => {
    // a mark other than 1337, with capture rules installed for it (as istio-cni does when told)
    const MARK = "0x640";
    let pods: PodNetwork;
    let dir: string;
    let certs: WorkloadCertificates;
    let agentA: FakeNodeAgent;
    let agentB: FakeNodeAgent;
    let zA: Ztunnel;
    let zB: Ztunnel;
    let app: http.Server;
    const seenByApp: string[] = [];
    const uidA = randomUUID();
    const uidB = randomUUID();

    /** A ztunnel whose in-pod settings are read from ztunnel's environment variables. */
    const start = async (node: string, uds: string, env: NodeJS.ProcessEnv) => {
      const settings = inpodSettingsFromEnv({ PROXY_MODE: "shared", INPOD_UDS: uds, ...env });
      if (!settings) throw new Error("in-pod settings expected");
      return await Ztunnel.start({
        node,
        config: config(),
        certificates: certs,
        captureServices: false,
        connectTimeoutMs: 5000,
        ports: { admin: 0 },
        inpod: { ...settings, backoff: { initialMs: 20, maxMs: 200 } },
      });
    };
    const podA = () => pods.pods[0] as Pod;
    const podB = () => pods.pods[1] as Pod;
    const serveB = async (env: NodeJS.ProcessEnv) => {
      zB = await start("node-b", agentB.path, env);
      await agentB.accept();
      expect(await agentB.add(uidB, INFO_B, podB())).toBe("");
      expect(await agentB.snapshotSent()).toBe("");
    };
    /** curl in pod A posts `body` to pod B's app at `host`; what came back. */
    const curl = (body: string, host = B_IP) =>
      inNs(podA().ns, "curl", [
        "-sS",
        "--fail",
        "--max-time",
        "10",
        "--data-binary",
        body,
        ...(host.includes(":") ? ["-6", "-g", `http://[${host}]:8080/`] : [`http://${host}:8080/`]),
      ]);

    beforeAll(async () => {
      pods = createPodNetwork(2, { mark: Number(MARK) });
      dir = mkdtempSync(join(tmpdir(), "ztunnel-inpod-mark-"));
      const ca = await CertificateAuthority.createRoot({
        trustDomain: "cluster.local",
        keyAlgorithm: "ec-p256",
      });
      certs = new WorkloadCertificates(ca);
      agentA = await FakeNodeAgent.start(join(dir, "a.sock"));
      agentB = await FakeNodeAgent.start(join(dir, "b.sock"));
      zA = await start("node-a", agentA.path, { PACKET_MARK: MARK });
      await agentA.accept();
      expect(await agentA.add(uidA, INFO_A, podA())).toBe("");
      expect(await agentA.snapshotSent()).toBe("");
      await serveB({ PACKET_MARK: MARK });
      app = http.createServer((req, res) => {
        seenByApp.push((req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""));
        req.pipe(res);
      });
      await listenInNetns(podB().path, { host: "::", port: 8080, server: app });
    });

    afterAll(async () => {
      await zA?.close();
      await zB?.close();
      await agentA?.stop();
      await agentB?.stop();
      app?.closeAllConnections();
      await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
      certs?.close();
      pods?.delete();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("PACKET_MARK=0x640: A → B flows through both ztunnels, and A's HBONE connection carries 0x640, not 1337", async () => {
      expect(pods.mark).toBe(0x640);
      seenByApp.length = 0;
      expect(await curl("marked")).toBe("marked");
      expect(seenByApp).toEqual([A_IP]);
      // a ztunnel that kept 1337 would have its HBONE dial redirected by A's rules (back to 15001)
      const hbone = await hboneSockets(podA().ns);
      expect(hbone).toContain(`${B_IP}:15008`);
      expect(hbone).toContain("fwmark:0x640");
      expect(hbone).not.toContain("fwmark:0x539");
    });

    it("ENABLE_ORIG_SRC=false: B's app sees pod B's own address (the ztunnel dials it from inside pod B), not A's; IPv4 and IPv6", async () => {
      await zB.close();
      await serveB({ PACKET_MARK: MARK, ENABLE_ORIG_SRC: "false" });
      seenByApp.length = 0;
      expect(await curl("from B itself")).toBe("from B itself");
      expect(await curl("from B itself, v6", B_IP6)).toBe("from B itself, v6");
      expect(seenByApp).toEqual([B_IP, B_IP6]);
    });
  },
);
