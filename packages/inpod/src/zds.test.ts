// ZdsClient against a fake istio-cni node agent written in Python (testdata/fake_node_agent.py:
// its own SEQPACKET server, protobuf by field number, fds by SCM_RIGHTS). The "pods" are two real
// network namespaces (10.213.0.1 and .2) whose fds travel over the socket.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns, netnsInterfaces } from "./netns.js";
import {
  createNetnsPair,
  eventually,
  type NetnsPair,
  openFds,
  openLifetimeFds,
  privileged,
  run,
} from "./netns.testutil.js";
import { connectInNetns, DEFAULT_INPOD_MARK, getMark, listenInNetns } from "./sockets.js";
import { type InpodWorkload, ZdsClient, type ZdsWorkloadHandler } from "./zds.js";

const AGENT = fileURLToPath(new URL("./testdata/fake_node_agent.py", import.meta.url));
const INFO = { name: "productpage-v1", namespace: "bookinfo", sa: "bookinfo-productpage" };

type Reply = { hello?: string; ack?: string; eof?: boolean; ok?: boolean; listening?: string };

/** The fake node agent: one JSON command per line in, one JSON reply per line out. */
class FakeAgent {
  #proc: ChildProcessWithoutNullStreams;
  #lines: string[] = [];
  #waiters: ((line: string) => void)[] = [];
  #exited: Promise<void>;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const w = this.#waiters.shift();
      if (w) w(line);
      else this.#lines.push(line);
    });
  }

  static async start(path: string): Promise<FakeAgent> {
    const proc = spawn("/usr/bin/python3", [AGENT, path], { stdio: "pipe" });
    let stderr = "";
    proc.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const agent = new FakeAgent(proc);
    const first = await agent.#next().catch((e: Error) => {
      throw new Error(`fake node agent did not start: ${e.message} ${stderr}`);
    });
    expect(first.listening).toBe(path);
    return agent;
  }

  #next(): Promise<Reply> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line) as Reply);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("no reply from the fake node agent in 12 s")),
        12_000,
      );
      this.#waiters.push((l) => {
        clearTimeout(timer);
        resolve(JSON.parse(l) as Reply);
      });
    });
  }

  async send(cmd: Record<string, unknown>): Promise<Reply> {
    this.#proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    return await this.#next();
  }

  /** Sends a request and returns the Ack's error ("" on success). */
  async ack(cmd: Record<string, unknown>): Promise<string> {
    const r = await this.send(cmd);
    if (r.ack === undefined) throw new Error(`expected an Ack, got ${JSON.stringify(r)}`);
    return r.ack;
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode === null) {
      this.#proc.stdin.end(`${JSON.stringify({ op: "quit" })}\n`);
      const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

/** A ztunnel stand-in: starts a real listener on 15008 inside each pod's namespace. */
class ProxyHandler implements ZdsWorkloadHandler {
  events: string[] = [];
  /** Keyed by workload, not uid: a uid whose netns changes has two proxies for a moment. */
  servers = new Map<InpodWorkload, net.Server>();
  failing = new Set<string>();

  async addWorkload(w: InpodWorkload): Promise<void> {
    if (this.failing.has(w.uid)) throw new Error("port 15008 is taken");
    this.events.push(`add ${w.uid} ${w.info.namespace}/${w.info.name} sa=${w.info.serviceAccount}`);
    const server = await listenInNetns(w.netns, { port: 15008, mark: DEFAULT_INPOD_MARK });
    server.on("connection", (s) => s.end("hbone-ish\n"));
    this.servers.set(w, server);
  }

  async removeWorkload(w: InpodWorkload): Promise<void> {
    this.events.push(`remove ${w.uid}`);
    const server = this.servers.get(w);
    this.servers.delete(w);
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

describe.skipIf(!privileged())("ZdsClient with a fake istio-cni node agent", () => {
  let pair: NetnsPair;
  let dir: string;
  let fdsBefore = 0;
  let n = 0;
  const sockPath = () => join(dir, `ztunnel-${++n}.sock`);

  beforeAll(() => {
    openLifetimeFds();
    fdsBefore = openFds();
    pair = createNetnsPair();
    dir = mkdtempSync(join(tmpdir(), "inpod-zds-"));
  });

  afterAll(() => {
    pair?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Agent + started client + accepted connection; always torn down by the caller's finally. */
  async function session(handler = new ProxyHandler()) {
    const path = sockPath();
    const agent = await FakeAgent.start(path);
    const client = new ZdsClient({ path, handler, backoff: { initialMs: 20, maxMs: 200 } }).start();
    const hello = await agent.send({ op: "accept" });
    const done = async () => {
      await client.close();
      await agent.stop();
    };
    return { agent, client, handler, hello, done, path };
  }

  const addA = { op: "add", uid: "pod-a", info: INFO, fds: [] as string[] };

  it("says ZdsHello{version: V1} first, then applies a snapshot of pods into their namespaces", async () => {
    const s = await session();
    try {
      // field 1 (varint) = 1: exactly what ztunnel sends
      expect(s.hello.hello).toBe("0801");
      expect(await s.agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
      expect(
        await s.agent.ack({
          op: "add",
          uid: "pod-b",
          info: { ...INFO, name: "reviews" },
          fds: [pair.pathB],
        }),
      ).toBe("");
      expect(s.client.snapshotReceived).toBe(false);
      expect(await s.agent.ack({ op: "snapshot" })).toBe("");
      await s.client.ready();
      expect(s.client.snapshotReceived).toBe(true);
      expect([...s.client.workloads.keys()].sort()).toEqual(["pod-a", "pod-b"]);
      expect(s.client.workloads.get("pod-a")?.info).toEqual({
        name: "productpage-v1",
        namespace: "bookinfo",
        serviceAccount: "bookinfo-productpage",
      });
      expect(s.handler.events).toEqual([
        "add pod-a bookinfo/productpage-v1 sa=bookinfo-productpage",
        "add pod-b bookinfo/reviews sa=bookinfo-productpage",
      ]);
      // The fd that came over SCM_RIGHTS is pod A's namespace: its 15008 answers on 10.213.0.1
      // from pod B, and the listener carries ztunnel's mark.
      const c = await connectInNetns(pair.pathB, { host: pair.ipA, port: 15008 });
      const got = await new Promise<string>((resolve) => {
        let text = "";
        c.on("data", (d: Buffer) => {
          text += d.toString();
        });
        c.on("end", () => resolve(text));
      });
      c.destroy();
      expect(got).toBe("hbone-ish\n");
      const podA = s.client.workloads.get("pod-a") as InpodWorkload;
      expect(getMark(s.handler.servers.get(podA) as net.Server)).toBe(1337);

      // DelWorkload stops the proxy and releases the namespace
      expect(await s.agent.ack({ op: "del", uid: "pod-a" })).toBe("");
      expect(s.handler.events.at(-1)).toBe("remove pod-a");
      expect([...s.client.workloads.keys()]).toEqual(["pod-b"]);
      const refused = await connectInNetns(pair.pathB, {
        host: pair.ipA,
        port: 15008,
        timeoutMs: 3000,
      }).catch((e: unknown) => e);
      expect((refused as InpodError).message).toMatch(/ECONNREFUSED/);
    } finally {
      await s.done();
    }
  });

  it("retries until the agent is up, reconnects after it drops, and reconciles on SnapshotSent", async () => {
    const path = sockPath();
    const handler = new ProxyHandler();
    const disconnects: string[] = [];
    const failedAt: number[] = [];
    let connects = 0;
    const client = new ZdsClient({
      path,
      handler,
      backoff: { initialMs: 20, maxMs: 200 },
      on: {
        connected: () => connects++,
        disconnected: (e) => {
          disconnects.push(e.code);
          failedAt.push(performance.now());
        },
      },
    }).start();
    let agent: FakeAgent | undefined;
    try {
      // no agent yet: connect fails, with backoff, and says what to check
      expect(await eventually(() => disconnects.length >= 4)).toBe(true);
      expect(disconnects.every((c) => c === "ERR_INPOD_ZDS_CONNECTION")).toBe(true);
      // the delay doubles (20, 40, 80 ms): timers never fire early, so these are lower bounds
      const gaps = failedAt.slice(1, 4).map((t, i) => t - (failedAt[i] as number));
      expect(gaps[0]).toBeGreaterThanOrEqual(19);
      expect(gaps[1]).toBeGreaterThanOrEqual(39);
      expect(gaps[2]).toBeGreaterThanOrEqual(79);
      agent = await FakeAgent.start(path);
      expect((await agent.send({ op: "accept" })).hello).toBe("0801");
      expect(await agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
      expect(await agent.ack({ op: "add", uid: "pod-b", info: INFO, fds: [pair.pathB] })).toBe("");
      expect(await agent.ack({ op: "snapshot" })).toBe("");
      const netnsA = client.workloads.get("pod-a")?.netns;

      // The agent drops the connection (a restart): the client comes back and says hello again.
      expect((await agent.send({ op: "disconnect" })).ok).toBe(true);
      expect((await agent.send({ op: "accept" })).hello).toBe("0801");
      expect(connects).toBe(2);
      expect(client.snapshotReceived).toBe(false);
      // pod A again with the same namespace: nothing restarts; pod B is not in this snapshot
      expect(await agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
      expect(await agent.ack({ op: "keep", uid: "pod-ghost" })).toMatch(
        /^KeepWorkload for unknown uid pod-ghost: this ztunnel has no such workload/,
      );
      expect(await agent.ack({ op: "snapshot" })).toBe("");
      expect([...client.workloads.keys()]).toEqual(["pod-a"]);
      expect(client.workloads.get("pod-a")?.netns).toBe(netnsA);
      expect(handler.events.slice(2)).toEqual(["remove pod-b"]);

      // Third connection: KeepWorkload (no fd) holds pod A through the snapshot.
      await agent.send({ op: "disconnect" });
      await agent.send({ op: "accept" });
      expect(await agent.ack({ op: "keep", uid: "pod-a" })).toBe("");
      expect(await agent.ack({ op: "snapshot" })).toBe("");
      expect([...client.workloads.keys()]).toEqual(["pod-a"]);
      expect(handler.events.slice(3)).toEqual([]);

      // A pod whose sandbox got a new namespace: the new proxy starts, then the old one goes.
      expect(await agent.ack({ ...addA, fds: [pair.pathB] })).toBe("");
      expect(handler.events.slice(3)).toEqual([
        "add pod-a bookinfo/productpage-v1 sa=bookinfo-productpage",
        "remove pod-a",
      ]);
      expect(netnsA?.closed).toBe(true);
    } finally {
      await client.close();
      await agent?.stop();
    }
  });

  it("answers every bad request with an Ack that says what is wrong, and changes nothing", async () => {
    const s = await session();
    try {
      expect(await s.agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
      expect(await s.agent.ack({ op: "snapshot" })).toBe("");
      s.handler.failing.add("pod-fail");
      const cases: [string, Record<string, unknown>, RegExp][] = [
        [
          "AddWorkload without an fd",
          { ...addA, uid: "pod-x" },
          /^AddWorkload for pod-x carries 0 fds; it needs exactly one, the pod's netns/,
        ],
        [
          "AddWorkload with an fd that is not a netns",
          { ...addA, uid: "pod-x", fds: ["/dev/null"] },
          /^AddWorkload for pod-x: fd \d+ is not a network namespace/,
        ],
        [
          "AddWorkload with two fds",
          { ...addA, uid: "pod-x", fds: [pair.pathA, pair.pathB] },
          /^AddWorkload for pod-x carries 2 fds/,
        ],
        [
          "AddWorkload without workload_info",
          { op: "add", uid: "pod-x", info: null, fds: [pair.pathB] },
          /^AddWorkload for pod-x without workload_info/,
        ],
        [
          "AddWorkload the handler refuses",
          { ...addA, uid: "pod-fail", fds: [pair.pathB] },
          /^workload pod-fail \(bookinfo\/productpage-v1\) was not started: port 15008 is taken$/,
        ],
        [
          "DelWorkload for an unknown uid",
          { op: "del", uid: "pod-nope" },
          /^DelWorkload for unknown uid pod-nope: this ztunnel has no such workload; nothing changed$/,
        ],
        [
          "DelWorkload carrying an fd",
          { op: "del", uid: "pod-a", fds: [pair.pathA] },
          /^del request carries 1 fd\(s\); only AddWorkload may carry a netns fd$/,
        ],
        [
          "KeepWorkload after the snapshot",
          { op: "keep", uid: "pod-a" },
          /^KeepWorkload for pod-a after SnapshotSent/,
        ],
        [
          "SnapshotSent twice",
          { op: "snapshot" },
          /^SnapshotSent twice on one connection; nothing changed$/,
        ],
        [
          "garbage bytes",
          { op: "raw", hex: "ffffffffff" },
          /^cannot decode WorkloadRequest \(.+\); is the node agent speaking ZDS V1\?$/,
        ],
        [
          "a request with no known payload",
          { op: "raw", hex: "4801" },
          /^WorkloadRequest without a known payload/,
        ],
        [
          "an oversized datagram",
          { op: "big", size: 2000 },
          /^request larger than 1024 bytes .*was truncated and ignored$/,
        ],
        [
          "an oversized datagram with an fd",
          { op: "big", size: 4000, fds: [pair.pathB] },
          /^request larger than 1024 bytes/,
        ],
      ];
      const netnsA = s.client.workloads.get("pod-a")?.netns;
      const events = [...s.handler.events];
      for (const [name, cmd, expected] of cases) {
        const fds = openFds();
        expect(await s.agent.ack(cmd), name).toMatch(expected);
        expect([...s.client.workloads.keys()], name).toEqual(["pod-a"]);
        expect(s.client.workloads.get("pod-a")?.netns, name).toBe(netnsA);
        expect(s.handler.events, name).toEqual(events);
        expect(s.client.snapshotReceived, name).toBe(true);
        // every fd that came with the bad request was closed
        expect(openFds(), name).toBe(fds);
      }
      // and the connection still serves good requests
      expect(await s.agent.ack({ op: "del", uid: "pod-a" })).toBe("");
      expect(s.client.workloads.size).toBe(0);
    } finally {
      await s.done();
    }
  });

  it("keeps its fd count flat over 50 add/delete cycles", async () => {
    const s = await session();
    try {
      expect(await s.agent.ack({ op: "snapshot" })).toBe("");
      const fds = openFds();
      for (let i = 0; i < 50; i++) {
        expect(await s.agent.ack({ ...addA, uid: `pod-${i}`, fds: [pair.pathB] })).toBe("");
        expect(await s.agent.ack({ op: "del", uid: `pod-${i}` })).toBe("");
      }
      expect(s.client.workloads.size).toBe(0);
      expect(await eventually(() => openFds() === fds)).toBe(true);
    } finally {
      await s.done();
    }
  });

  it("removes a pod whose network was torn down within the check interval; the others keep serving", async () => {
    const doomed = createNetnsPair(); // pod C (its A side); the node's veth to it is deleted
    const path = sockPath();
    const agent = await FakeAgent.start(path);
    const handler = new ProxyHandler();
    const gone: string[] = [];
    const client = new ZdsClient({
      path,
      handler,
      backoff: { initialMs: 20, maxMs: 200 },
      netnsCheckIntervalMs: 100,
      on: { netnsGone: (w, reason) => gone.push(`${w.uid}: ${reason}`) },
    }).start();
    let held: Netns | undefined;
    try {
      await agent.send({ op: "accept" });
      expect(await agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
      const fdsWithA = openFds();
      expect(await agent.ack({ ...addA, uid: "pod-c", fds: [doomed.pathA] })).toBe("");
      expect(await agent.ack({ op: "snapshot" })).toBe("");
      expect(await client.checkNetns()).toEqual([]); // both have a network
      expect(client.connected).toBe(true);
      // The test's own handle on C's namespace (to send it again below), as a /proc path.
      held = Netns.open(doomed.pathA);
      const heldPath = `/proc/${process.pid}/fd/${held.fd}`;
      // CNI DEL: the veth goes, then the runtime deletes the namespace file; our fds keep it.
      const veth = netnsInterfaces(doomed.pathA).find((n) => n !== "lo") as string;
      run("ip", ["-n", doomed.a, "link", "del", veth]);
      doomed.delete();
      expect(await eventually(() => gone.length === 1, 5000)).toBe(true);
      expect(gone[0]).toMatch(
        /^pod-c: its network namespace \(net:\[\d+\]\) has no interface but lo any more: the pod's network was torn down/,
      );
      expect(handler.events.at(-1)).toBe("remove pod-c");
      expect([...client.workloads.keys()]).toEqual(["pod-a"]);
      // pod A still serves (its 15008 from pod B)
      const c = await connectInNetns(pair.pathB, { host: pair.ipA, port: 15008 });
      const got = await new Promise<string>((resolve) => {
        let text = "";
        c.on("data", (d: Buffer) => {
          text += d.toString();
        });
        c.on("end", () => resolve(text));
      });
      c.destroy();
      expect(got).toBe("hbone-ish\n");
      // the same dead namespace sent again: refused, and its fd closed
      expect(await agent.ack({ ...addA, uid: "pod-c", fds: [heldPath] })).toMatch(
        /^AddWorkload for pod-c: its network namespace \(net:\[\d+\]\) has no interface but lo; the pod's network was torn down/,
      );
      held.close();
      held = undefined;
      // C's listener and netns fd are closed: back to the count with pod A alone
      expect(await eventually(() => openFds() === fdsWithA)).toBe(true);
      // a reconnect whose snapshot still keeps C (the agent has not seen it go): ok, nothing kept
      await agent.send({ op: "disconnect" });
      await agent.send({ op: "accept" });
      expect(await agent.ack({ op: "keep", uid: "pod-a" })).toBe("");
      expect(await agent.ack({ op: "keep", uid: "pod-c" })).toBe("");
      expect(await agent.ack({ op: "snapshot" })).toBe("");
      expect([...client.workloads.keys()]).toEqual(["pod-a"]);
      // the node agent catching up: its DelWorkload for C is answered ok, a second one is not
      expect(await agent.ack({ op: "del", uid: "pod-c" })).toBe("");
      expect(await agent.ack({ op: "del", uid: "pod-c" })).toMatch(/unknown uid pod-c/);
      expect(handler.events.filter((e) => e === "remove pod-c")).toHaveLength(1);
    } finally {
      held?.close();
      await client.close();
      await agent.stop();
      doomed.delete();
    }
  });

  it("close() before any snapshot rejects ready() instead of leaving it pending", async () => {
    const client = new ZdsClient({ path: sockPath(), handler: new ProxyHandler() }).start();
    const ready = client.ready();
    await client.close();
    await expect(ready).rejects.toMatchObject({ code: "ERR_INPOD_CLOSED" });
    await expect(client.ready()).rejects.toBeInstanceOf(InpodError);
  });

  it("close() removes every workload, and nothing is left open afterwards", async () => {
    const s = await session();
    expect(await s.agent.ack({ ...addA, fds: [pair.pathA] })).toBe("");
    expect(await s.agent.ack({ op: "snapshot" })).toBe("");
    expect(s.handler.servers.size).toBe(1);
    await s.done();
    expect(s.handler.events.at(-1)).toBe("remove pod-a");
    expect(s.handler.servers.size).toBe(0);
    expect(s.client.workloads.size).toBe(0);
    await s.client.close(); // idempotent
    expect(() => s.client.start()).toThrow(InpodError);
    expect(await eventually(() => openFds() === fdsBefore)).toBe(true);
  });
});
