// ZdsClient against @ambientkit/inpod/testing's fake istio-cni node agent (fake-node-agent.py, in
// Python: its own SEQPACKET server, protobuf by field number, fds by SCM_RIGHTS). The "pods" are
// two real pods of the harness (10.214.0.10 and .11) whose netns fds travel over the socket.
import { mkdtempSync, rmSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns, netnsInterfaces } from "./netns.js";
import { openFds, openLifetimeFds } from "./netns.testutil.js";
import { connectInNetns, DEFAULT_INPOD_MARK, getMark, listenInNetns } from "./sockets.js";
import {
  createPodNetwork,
  eventually,
  FakeNodeAgent,
  type Pod,
  type PodNetwork,
  privileged,
} from "./testing.js";
import {
  type InpodWorkload,
  ZdsClient,
  type ZdsClientOptions,
  type ZdsWorkloadHandler,
} from "./zds.js";

/** A pod UID (a UUID, as Kubernetes makes them) that reads as `name` in its last group. */
function pod(name: string): string {
  return `00000000-0000-4000-8000-${Buffer.from(name).toString("hex").padStart(12, "0").slice(-12)}`;
}

const INFO = {
  name: "productpage-v1",
  namespace: "bookinfo",
  serviceAccount: "bookinfo-productpage",
};

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

/** Everything a connection sends until it ends, as text; then the socket is destroyed. */
function readAll(c: net.Socket): Promise<string> {
  return new Promise<string>((resolve) => {
    let text = "";
    c.on("data", (d: Buffer) => {
      text += d.toString();
    });
    c.on("end", () => {
      c.destroy();
      resolve(text);
    });
  });
}

describe("ZdsClient options", () => {
  const handler = { addWorkload: () => {}, removeWorkload: () => {} };
  it("refuses a netns check interval that is no number of ms ≥ 0, and a path no UNIX address holds", () => {
    for (const netnsCheckIntervalMs of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
      expect(() => new ZdsClient({ path: "/tmp/x.sock", handler, netnsCheckIntervalMs })).toThrow(
        expect.objectContaining({
          code: "ERR_INPOD_ZDS_CONNECTION",
          message: expect.stringMatching(/netnsCheckIntervalMs must be a number of ms ≥ 0/),
        }),
      );
    }
    expect(() => new ZdsClient({ path: `/tmp/${"x".repeat(120)}`, handler })).toThrow(
      expect.objectContaining({ code: "ERR_INPOD_ZDS_CONNECTION" }),
    );
    // 0 turns the check off; nothing is started before start()
    expect(new ZdsClient({ path: "/tmp/x.sock", handler, netnsCheckIntervalMs: 0 }).connected).toBe(
      false,
    );
  });
});

describe.skipIf(!privileged())("ZdsClient with a fake istio-cni node agent", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;
  let dir: string;
  let fdsBefore = 0;
  let n = 0;
  const sockPath = () => join(dir, `ztunnel-${++n}.sock`);

  beforeAll(() => {
    openLifetimeFds();
    fdsBefore = openFds();
    network = createPodNetwork(2, { capture: false });
    [a, b] = network.pods as [Pod, Pod];
    dir = mkdtempSync(join(tmpdir(), "inpod-zds-"));
  });

  afterAll(() => {
    network?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Agent + started client + accepted connection; always torn down by the caller's finally. */
  async function session(handler = new ProxyHandler(), on: ZdsClientOptions["on"] = {}) {
    const path = sockPath();
    const agent = await FakeNodeAgent.start(path);
    const client = new ZdsClient({
      path,
      handler,
      backoff: { initialMs: 20, maxMs: 200 },
      on,
    }).start();
    const hello = await agent.accept();
    const done = async () => {
      await client.close();
      await agent.stop();
    };
    return { agent, client, handler, hello, done, path };
  }

  it("says ZdsHello{version: V1} first, then applies a snapshot of pods into their namespaces", async () => {
    const s = await session();
    try {
      // field 1 (varint) = 1: exactly what ztunnel sends
      expect(s.hello).toBe("0801");
      expect(await s.agent.add(pod("a"), INFO, a)).toBe("");
      expect(await s.agent.add(pod("b"), { ...INFO, name: "reviews" }, b)).toBe("");
      expect(s.client.snapshotReceived).toBe(false);
      expect(await s.agent.snapshotSent()).toBe("");
      await s.client.ready();
      expect(s.client.snapshotReceived).toBe(true);
      expect([...s.client.workloads.keys()].sort()).toEqual([pod("a"), pod("b")]);
      expect(s.client.workloads.get(pod("a"))?.info).toEqual({
        name: "productpage-v1",
        namespace: "bookinfo",
        serviceAccount: "bookinfo-productpage",
      });
      expect(s.handler.events).toEqual([
        `add ${pod("a")} bookinfo/productpage-v1 sa=bookinfo-productpage`,
        `add ${pod("b")} bookinfo/reviews sa=bookinfo-productpage`,
      ]);
      // The fd that came over SCM_RIGHTS is pod A's namespace: its 15008 answers on 10.213.0.1
      // from pod B, and the listener carries ztunnel's mark.
      expect(await readAll(await connectInNetns(b.path, { host: a.ip, port: 15008 }))).toBe(
        "hbone-ish\n",
      );
      const podA = s.client.workloads.get(pod("a")) as InpodWorkload;
      expect(getMark(s.handler.servers.get(podA) as net.Server)).toBe(1337);

      // DelWorkload stops the proxy and releases the namespace
      expect(await s.agent.del(pod("a"))).toBe("");
      expect(s.handler.events.at(-1)).toBe(`remove ${pod("a")}`);
      expect([...s.client.workloads.keys()]).toEqual([pod("b")]);
      const refused = await connectInNetns(b.path, {
        host: a.ip,
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
    const retries: (number | undefined)[] = [];
    let connects = 0;
    const client = new ZdsClient({
      path,
      handler,
      backoff: { initialMs: 20, maxMs: 200 },
      on: {
        connected: () => connects++,
        disconnected: (e, retryInMs) => {
          disconnects.push(e.code);
          failedAt.push(performance.now());
          retries.push(retryInMs);
        },
      },
    }).start();
    let agent: FakeNodeAgent | undefined;
    try {
      // no agent yet: connect fails, with backoff, and says what to check
      expect(await eventually(() => disconnects.length >= 6)).toBe(true);
      // the delay doubles from initialMs and stops at maxMs
      expect(retries.slice(0, 6)).toEqual([20, 40, 80, 160, 200, 200]);
      expect(disconnects.every((c) => c === "ERR_INPOD_ZDS_CONNECTION")).toBe(true);
      // and the attempts really wait that long: timers never fire early, so these are lower bounds
      const gaps = failedAt.slice(1, 4).map((t, i) => t - (failedAt[i] as number));
      expect(gaps[0]).toBeGreaterThanOrEqual(19);
      expect(gaps[1]).toBeGreaterThanOrEqual(39);
      expect(gaps[2]).toBeGreaterThanOrEqual(79);
      agent = await FakeNodeAgent.start(path);
      expect(await agent.accept()).toBe("0801");
      expect(await agent.add(pod("a"), INFO, a)).toBe("");
      expect(await agent.add(pod("b"), INFO, b)).toBe("");
      expect(await agent.snapshotSent()).toBe("");
      const netnsA = client.workloads.get(pod("a"))?.netns;

      // The agent drops the connection (a restart): the client comes back and says hello again.
      await agent.disconnect();
      expect(await agent.accept()).toBe("0801");
      expect(connects).toBe(2);
      // a connection that came up resets the backoff: the drop is retried after initialMs
      expect(retries.at(-1)).toBe(20);
      expect(client.snapshotReceived).toBe(false);
      // pod A again with the same namespace: nothing restarts; pod B is not in this snapshot
      expect(await agent.add(pod("a"), INFO, a)).toBe("");
      expect(await agent.keep(pod("ghost"))).toMatch(
        new RegExp(
          `^KeepWorkload for unknown uid ${pod("ghost")}: this ztunnel has no such workload`,
        ),
      );
      expect(await agent.snapshotSent()).toBe("");
      expect([...client.workloads.keys()]).toEqual([pod("a")]);
      expect(client.workloads.get(pod("a"))?.netns).toBe(netnsA);
      expect(handler.events.slice(2)).toEqual([`remove ${pod("b")}`]);

      // Third connection: KeepWorkload (no fd) holds pod A through the snapshot.
      await agent.disconnect();
      await agent.accept();
      expect(await agent.keep(pod("a"))).toBe("");
      expect(await agent.snapshotSent()).toBe("");
      expect([...client.workloads.keys()]).toEqual([pod("a")]);
      expect(handler.events.slice(3)).toEqual([]);

      // A pod whose sandbox got a new namespace: the new proxy starts, then the old one goes.
      expect(await agent.add(pod("a"), INFO, b)).toBe("");
      expect(handler.events.slice(3)).toEqual([
        `add ${pod("a")} bookinfo/productpage-v1 sa=bookinfo-productpage`,
        `remove ${pod("a")}`,
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
      expect(await s.agent.add(pod("a"), INFO, a)).toBe("");
      expect(await s.agent.snapshotSent()).toBe("");
      const cases: [string, (agent: FakeNodeAgent) => Promise<string>, RegExp][] = [
        [
          "AddWorkload without an fd",
          (g) => g.add(pod("x"), INFO, []),
          new RegExp(
            `^AddWorkload for ${pod("x")} carries 0 fds; it needs exactly one, the pod's netns`,
          ),
        ],
        [
          "AddWorkload with an fd that is not a netns",
          (g) => g.add(pod("x"), INFO, "/dev/null"),
          new RegExp(String.raw`^AddWorkload for ${pod("x")}: fd \d+ is not a network namespace`),
        ],
        [
          "AddWorkload with two fds",
          (g) => g.add(pod("x"), INFO, [a, b]),
          new RegExp(`^AddWorkload for ${pod("x")} carries 2 fds`),
        ],
        [
          "AddWorkload without workload_info",
          (g) => g.add(pod("x"), null, b),
          new RegExp(`^AddWorkload for ${pod("x")} without workload_info`),
        ],
        [
          "DelWorkload for an unknown uid",
          (g) => g.del(pod("nope")),
          new RegExp(
            `^DelWorkload for unknown uid ${pod("nope")}: this ztunnel has no such workload; nothing changed$`,
          ),
        ],
        [
          "DelWorkload carrying an fd",
          (g) => g.del(pod("a"), [a]),
          /^del request carries 1 fd\(s\); only AddWorkload may carry a netns fd$/,
        ],
        [
          "KeepWorkload after the snapshot",
          (g) => g.keep(pod("a")),
          new RegExp(`^KeepWorkload for ${pod("a")} after SnapshotSent`),
        ],
        [
          "SnapshotSent twice",
          (g) => g.snapshotSent(),
          /^SnapshotSent twice on one connection; nothing changed$/,
        ],
        [
          "AddWorkload whose uid is not a pod UID",
          (g) => g.add("productpage-v1", INFO, b),
          /^AddWorkload: uid "productpage-v1" is not a Kubernetes pod UID \(a UUID such as [0-9a-f-]{36}\); check what the node agent sends; nothing changed$/,
        ],
        [
          "KeepWorkload whose uid is not a pod UID",
          (g) => g.keep(`${pod("a")}x`),
          /^keep request: uid "[0-9a-f-]{36}x" is not a Kubernetes pod UID/,
        ],
        [
          "DelWorkload whose uid is not a pod UID (a long one, cut short in the error)",
          (g) => g.del("z".repeat(300)),
          /^del request: uid "z{64}…" is not a Kubernetes pod UID/,
        ],
        [
          // on SOCK_SEQPACKET it reads as 0 bytes, as the agent's close does: it is not a close
          "an empty datagram",
          (g) => g.sendRaw(Buffer.alloc(0)),
          /^WorkloadRequest without a known payload/,
        ],
        [
          "garbage bytes",
          (g) => g.sendRaw(Buffer.from("ffffffffff", "hex")),
          /^cannot decode WorkloadRequest \(.+\); is the node agent speaking ZDS V1\?$/,
        ],
        [
          "a request with no known payload",
          (g) => g.sendRaw(Buffer.from("4801", "hex")),
          /^WorkloadRequest without a known payload/,
        ],
        [
          "an oversized datagram",
          (g) => g.sendOversized(2000),
          /^request larger than 1024 bytes .*was truncated and ignored$/,
        ],
        [
          "an oversized datagram with an fd",
          (g) => g.sendOversized(4000, [b]),
          /^request larger than 1024 bytes/,
        ],
      ];
      const netnsA = s.client.workloads.get(pod("a"))?.netns;
      const events = [...s.handler.events];
      for (const [name, request, expected] of cases) {
        const fds = openFds();
        expect(await request(s.agent), name).toMatch(expected);
        expect([...s.client.workloads.keys()], name).toEqual([pod("a")]);
        expect(s.client.workloads.get(pod("a"))?.netns, name).toBe(netnsA);
        expect(s.handler.events, name).toEqual(events);
        expect(s.client.snapshotReceived, name).toBe(true);
        // every fd that came with the bad request was closed
        expect(openFds(), name).toBe(fds);
      }
      // and the connection still serves good requests
      expect(await s.agent.del(pod("a"))).toBe("");
      expect(s.client.workloads.size).toBe(0);
    } finally {
      await s.done();
    }
  });

  it("keeps a workload the handler fails to start pending (as ztunnel): acked with the error, retried with backoff until it starts; a Del or a new connection lets it go", async () => {
    const retried: string[] = [];
    const s = await session(new ProxyHandler(), {
      retried: (w, error) => retried.push(`${w.uid} ${error || "ok"}`),
    });
    try {
      const fds = openFds();
      s.handler.failing.add(pod("fail"));
      expect(await s.agent.add(pod("fail"), INFO, b)).toBe(
        `workload ${pod("fail")} (bookinfo/productpage-v1) was not started: port 15008 is taken; it is retried`,
      );
      expect([...s.client.pending.keys()]).toEqual([pod("fail")]);
      expect(s.client.workloads.size).toBe(0);
      expect(openFds()).toBe(fds + 1); // its netns, held for the retries
      // still failing: retried, and still pending
      expect(await eventually(() => retried.length >= 2)).toBe(true);
      expect(retried[0]).toBe(`${pod("fail")} port 15008 is taken`);
      expect(s.client.pending.size).toBe(1);
      // the cause goes away: the next retry starts it, with the namespace that came with the Add
      s.handler.failing.delete(pod("fail"));
      expect(await eventually(() => s.client.workloads.has(pod("fail")))).toBe(true);
      expect(retried.at(-1)).toBe(`${pod("fail")} ok`);
      expect(s.client.pending.size).toBe(0);
      expect(s.handler.events).toEqual([
        `add ${pod("fail")} bookinfo/productpage-v1 sa=bookinfo-productpage`,
      ]);
      expect(
        await readAll(await connectInNetns(a.path, { host: b.ip, port: 15008, timeoutMs: 3000 })),
      ).toBe("hbone-ish\n");
      // the snapshot counted it (the Add named it): SnapshotSent keeps it
      expect(await s.agent.snapshotSent()).toBe("");
      expect([...s.client.workloads.keys()]).toEqual([pod("fail")]);
      expect(await s.agent.del(pod("fail"))).toBe("");
      expect(openFds()).toBe(fds);

      // a Del while pending: nothing was started, the netns is let go
      s.handler.failing.add(pod("p2"));
      expect(await s.agent.add(pod("p2"), INFO, a)).toMatch(/was not started.*; it is retried$/);
      expect(openFds()).toBe(fds + 1);
      expect(await s.agent.del(pod("p2"))).toBe("");
      expect(s.client.pending.size).toBe(0);
      expect(openFds()).toBe(fds);

      // a new connection (a node agent restart) drops what is pending: its snapshot sends it again
      expect(await s.agent.add(pod("p2"), INFO, a)).toMatch(/; it is retried$/);
      expect(s.client.pending.size).toBe(1);
      await s.agent.disconnect();
      await s.agent.accept();
      expect(s.client.pending.size).toBe(0);
      expect(await eventually(() => openFds() === fds)).toBe(true);
      expect(s.client.workloads.size).toBe(0);
      expect(s.handler.events.filter((e) => e.startsWith("add"))).toHaveLength(1);
    } finally {
      await s.done();
    }
  });

  it("does not keep pending an Add that fails after its connection ended (the next snapshot resends it)", async () => {
    let started = false;
    let fail: (e: Error) => void = () => {};
    const handler: ZdsWorkloadHandler = {
      addWorkload: () =>
        new Promise<void>((_resolve, reject) => {
          started = true;
          fail = reject;
        }),
      removeWorkload: () => {},
    };
    const fds = openFds();
    const s = await session(handler as ProxyHandler);
    try {
      const acked = s.agent.add(pod("slow"), INFO, a).catch(() => "no ack");
      expect(await eventually(() => started)).toBe(true);
      await s.agent.stop(); // the node agent goes away while the proxy is starting
      expect(await eventually(() => !s.client.connected)).toBe(true);
      fail(new Error("port 15008 is taken"));
      expect(await acked).toBe("no ack");
      await eventually(() => s.client.pending.size > 0, 300); // give a wrong pending a chance
      expect(s.client.pending.size).toBe(0);
      expect(s.client.workloads.size).toBe(0);
    } finally {
      await s.done();
    }
    expect(openFds()).toBe(fds);
  });

  it("a pending workload whose network is torn down is let go and remembered, as a running one", async () => {
    const doomed = network.addPod(false);
    const path = sockPath();
    const agent = await FakeNodeAgent.start(path);
    const handler = new ProxyHandler();
    handler.failing.add(pod("p"));
    const gone: string[] = [];
    const client = new ZdsClient({
      path,
      handler,
      backoff: { initialMs: 20, maxMs: 200 },
      netnsCheckIntervalMs: 0,
      on: { netnsGone: (w, reason) => gone.push(`${w.uid}: ${reason}`) },
    }).start();
    try {
      await agent.accept();
      expect(await agent.add(pod("p"), INFO, doomed)).toMatch(/; it is retried$/);
      expect(await client.checkNetns()).toEqual([]); // it has a network: stays pending
      expect(client.pending.size).toBe(1);
      network.removePod(doomed); // CNI DEL
      expect(await client.checkNetns()).toEqual([pod("p")]);
      expect(gone[0]).toMatch(
        /has no interface but lo any more.*\(it was pending, never started\)$/,
      );
      expect(client.pending.size).toBe(0);
      // the node agent's late DelWorkload for it is acked ok, as for a running pod removed so
      expect(await agent.del(pod("p"))).toBe("");
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it("keeps its fd count flat over 50 add/delete cycles", async () => {
    const s = await session();
    try {
      expect(await s.agent.snapshotSent()).toBe("");
      const fds = openFds();
      for (let i = 0; i < 50; i++) {
        expect(await s.agent.add(pod(String(i)), INFO, b)).toBe("");
        expect(await s.agent.del(pod(String(i)))).toBe("");
      }
      expect(s.client.workloads.size).toBe(0);
      expect(await eventually(() => openFds() === fds)).toBe(true);
    } finally {
      await s.done();
    }
  });

  it("removes a pod whose network was torn down within the check interval; the others keep serving", async () => {
    const doomed = network.addPod(false); // pod C; CNI DEL takes its network below
    const path = sockPath();
    const agent = await FakeNodeAgent.start(path);
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
      await agent.accept();
      expect(await agent.add(pod("a"), INFO, a)).toBe("");
      const fdsWithA = openFds();
      expect(await agent.add(pod("c"), INFO, doomed)).toBe("");
      expect(await agent.snapshotSent()).toBe("");
      expect(await client.checkNetns()).toEqual([]); // both have a network
      expect(client.connected).toBe(true);
      // The test's own handle on C's namespace (to send it again below), as a /proc path.
      held = Netns.open(doomed.path);
      const heldPath = `/proc/${process.pid}/fd/${held.fd}`;
      // CNI DEL: the veth goes, then the runtime deletes the namespace file; our fds keep it.
      expect(netnsInterfaces(doomed.path).filter((n) => n !== "lo")).toEqual([doomed.dev]);
      network.removePod(doomed);
      expect(await eventually(() => gone.length === 1, 5000)).toBe(true);
      expect(gone[0]).toMatch(
        new RegExp(
          String.raw`^${pod("c")}: its network namespace \(net:\[\d+\]\) has no interface but lo any more: the pod's network was torn down`,
        ),
      );
      expect(handler.events.at(-1)).toBe(`remove ${pod("c")}`);
      expect([...client.workloads.keys()]).toEqual([pod("a")]);
      // pod A still serves (its 15008 from pod B)
      expect(await readAll(await connectInNetns(b.path, { host: a.ip, port: 15008 }))).toBe(
        "hbone-ish\n",
      );
      // the same dead namespace sent again: refused, and its fd closed
      expect(await agent.add(pod("c"), INFO, heldPath)).toMatch(
        new RegExp(
          String.raw`^AddWorkload for ${pod("c")}: its network namespace \(net:\[\d+\]\) has no interface but lo; the pod's network was torn down`,
        ),
      );
      held.close();
      held = undefined;
      // C's listener and netns fd are closed: back to the count with pod A alone
      expect(await eventually(() => openFds() === fdsWithA)).toBe(true);
      // a reconnect whose snapshot still keeps C (the agent has not seen it go): ok, nothing kept
      await agent.disconnect();
      await agent.accept();
      expect(await agent.keep(pod("a"))).toBe("");
      expect(await agent.keep(pod("c"))).toBe("");
      expect(await agent.snapshotSent()).toBe("");
      expect([...client.workloads.keys()]).toEqual([pod("a")]);
      // the node agent catching up: its DelWorkload for C is answered ok, a second one is not
      expect(await agent.del(pod("c"))).toBe("");
      expect(await agent.del(pod("c"))).toMatch(new RegExp(`unknown uid ${pod("c")}`));
      expect(handler.events.filter((e) => e === `remove ${pod("c")}`)).toHaveLength(1);
    } finally {
      held?.close();
      await client.close();
      await agent.stop();
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
    expect(await s.agent.add(pod("a"), INFO, a)).toBe("");
    expect(await s.agent.snapshotSent()).toBe("");
    expect(s.handler.servers.size).toBe(1);
    await s.done();
    expect(s.handler.events.at(-1)).toBe(`remove ${pod("a")}`);
    expect(s.handler.servers.size).toBe(0);
    expect(s.client.workloads.size).toBe(0);
    await s.client.close(); // idempotent
    expect(() => s.client.start()).toThrow(InpodError);
    expect(await eventually(() => openFds() === fdsBefore)).toBe(true);
  });
});
