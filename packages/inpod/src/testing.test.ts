// @ambientkit/inpod/testing itself: pods that reach each other, capture rules that redirect as
// istio-cni's do, a fake node agent whose netns fds the ZdsClient takes, and nothing left behind.
import { randomUUID } from "node:crypto";
import type dgram from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns } from "./netns.js";
import {
  connectInNetns,
  DEFAULT_INPOD_MARK,
  listenInNetns,
  originalDestination,
  type SocketAddress,
} from "./sockets.js";
import {
  createPodNetwork,
  FakeNodeAgent,
  INPOD,
  missingPrivilege,
  NO_PRIVILEGE_ENV,
  type Pod,
  type PodNetwork,
  privileged,
  run,
} from "./testing.js";
import { bindUdpInNetns } from "./udp.js";
import { type InpodWorkload, ZdsClient } from "./zds.js";

/** `ip netns` names that carry `tag`. */
const namespacesOf = (tag: string) =>
  run("ip", ["netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.includes(tag));

/** Who a listener in `listen.pod` sees connecting when `from` dials `to`, and where it was going. */
async function firstAccepted(
  listen: { pod: Pod; host: string; port: number },
  from: Pod,
  to: { host: string; port: number },
): Promise<{ remote: string; original: SocketAddress | undefined }> {
  const server = await listenInNetns(listen.pod.path, {
    host: listen.host,
    port: listen.port,
    v6Only: listen.host === "::",
  });
  try {
    const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
    const client = await connectInNetns(from.path, { ...to, timeoutMs: 3000 });
    const s = await accepted;
    const original = listen.port === to.port ? undefined : originalDestination(s);
    const got = { remote: s.remoteAddress ?? "", original };
    s.destroy();
    client.destroy();
    return got;
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe("privileged()", () => {
  it("is false on an explicit opt-out; otherwise true here, or a thrown reason", () => {
    const before = process.env[NO_PRIVILEGE_ENV];
    process.env[NO_PRIVILEGE_ENV] = "1";
    try {
      expect(privileged()).toBe(false);
    } finally {
      if (before === undefined) delete process.env[NO_PRIVILEGE_ENV];
      else process.env[NO_PRIVILEGE_ENV] = before;
    }
    const reason = missingPrivilege();
    if (before === "1") return;
    if (reason === undefined) expect(privileged()).toBe(true);
    else expect(() => privileged()).toThrow(InpodError);
  });
});

describe.skipIf(!privileged())("@ambientkit/inpod/testing", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;
  let dir: string;

  beforeAll(() => {
    network = createPodNetwork(1); // a: captured
    a = network.pods[0] as Pod;
    b = network.addPod(false);
    dir = mkdtempSync(join(tmpdir(), "inpod-testing-"));
  });

  afterAll(() => {
    network?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("gives each pod its addresses, one veth and the capture rules it asked for", () => {
    expect([a.ip, a.ip6, b.ip, b.ip6]).toEqual([
      "10.214.0.10",
      "fd00:214::10",
      "10.214.0.11",
      "fd00:214::11",
    ]);
    expect(a.path).toBe(`/run/netns/${a.ns}`);
    expect([a.captured, b.captured]).toEqual([true, false]);
    expect(a.exec("iptables-save", ["-t", "nat"])).toContain(`--to-ports ${INPOD.outbound}`);
    expect(a.exec("ip6tables-save", ["-t", "nat"])).toContain(
      `--to-ports ${INPOD.inboundPlaintext}`,
    );
    expect(b.exec("iptables-save", ["-t", "nat"])).not.toContain("ISTIO");
  });

  it("two pods without capture talk directly over the bridge, IPv4 and IPv6", async () => {
    const c = network.addPod(false);
    expect(
      await firstAccepted({ pod: b, host: "0.0.0.0", port: 9000 }, c, { host: b.ip, port: 9000 }),
    ).toEqual({ remote: c.ip, original: undefined });
    expect(
      await firstAccepted({ pod: b, host: "::", port: 9000 }, c, { host: b.ip6, port: 9000 }),
    ).toEqual({ remote: c.ip6, original: undefined });
  });

  it("the capture rules redirect a captured pod's outbound TCP to 15001 and inbound to 15006", async () => {
    for (const [host, aIp, bIp, family] of [
      ["0.0.0.0", a.ip, b.ip, "IPv4"],
      ["::", a.ip6, b.ip6, "IPv6"],
    ] as const) {
      // outbound: the app in A dials B:8080, 15001 in A takes it
      expect(
        await firstAccepted({ pod: a, host, port: INPOD.outbound }, a, { host: bIp, port: 8080 }),
      ).toEqual({ remote: aIp, original: { address: bIp, port: 8080, family } });
      // inbound: B dials A:8080, 15006 in A takes it
      expect(
        await firstAccepted({ pod: a, host, port: INPOD.inboundPlaintext }, b, {
          host: aIp,
          port: 8080,
        }),
      ).toEqual({ remote: bIp, original: { address: aIp, port: 8080, family } });
    }
  });

  it("the fake node agent hands a pod's netns fd that the ZdsClient takes, and acks every request", async () => {
    const path = join(dir, "ztunnel.sock");
    const agent = await FakeNodeAgent.start(path);
    const servers = new Map<InpodWorkload, net.Server>();
    const client = new ZdsClient({
      path,
      handler: {
        async addWorkload(w) {
          // ztunnel's 15008 in the pod, marked as ztunnel marks its sockets
          const server = await listenInNetns(w.netns, { port: 15008, mark: DEFAULT_INPOD_MARK });
          server.on("connection", (s) => s.end(w.info.name));
          servers.set(w, server);
        },
        async removeWorkload(w) {
          servers.get(w)?.close();
        },
      },
      backoff: { initialMs: 20, maxMs: 200 },
    }).start();
    const podNetns = Netns.open(a.path);
    const uid = randomUUID(); // a Kubernetes pod UID, as the ZdsClient requires
    try {
      expect(await agent.accept()).toBe("0801"); // ZdsHello{version: V1}
      const info = { name: "web", namespace: "shop", serviceAccount: "web" };
      expect(await agent.add(uid, info, a)).toBe("");
      expect(await agent.snapshotSent()).toBe("");
      await client.ready();
      const w = client.workloads.get(uid);
      expect(w?.info).toEqual(info);
      expect(w?.netns.id).toEqual(podNetns.id); // the very namespace of pod A
      // 15008 in pod A answers from pod B: HBONE's port passes the capture rules
      const s = await connectInNetns(b.path, { host: a.ip, port: 15008 });
      let text = "";
      for await (const chunk of s) text += chunk;
      expect(text).toBe("web");
      const nope = randomUUID();
      expect(await agent.del(nope)).toMatch(new RegExp(`^DelWorkload for unknown uid ${nope}`));
      expect(await agent.sendRaw(Buffer.from([0xff]))).toMatch(/^cannot decode WorkloadRequest/);
      expect(await agent.del(uid)).toBe("");
      expect(client.workloads.size).toBe(0);
      await agent.disconnect();
      expect(await agent.accept()).toBe("0801"); // the client came back
      expect(await agent.keep(uid)).toMatch(new RegExp(`^KeepWorkload for unknown uid ${uid}`));
    } finally {
      podNetns.close();
      await client.close();
      await agent.stop();
    }
    expect(servers.size).toBe(1);
    await expect(agent.snapshotSent()).rejects.toMatchObject({ code: "ERR_INPOD_TESTING" });
  });

  it("with `mark`, the capture rules let a socket with that mark pass and redirect one with the default mark", async () => {
    expect(network.mark).toBe(DEFAULT_INPOD_MARK);
    expect(() => createPodNetwork(0, { mark: 0x111 })).toThrow(/not 0x111 \(the connmark\)/);
    expect(() => createPodNetwork(0, { mark: 0x1000 })).toThrow(/mark 4096: expected 1 to 0xfff/);
    const other = createPodNetwork(1, { mark: 0x640 });
    const servers: net.Server[] = [];
    try {
      const p = other.pods[0] as Pod;
      const target = other.addPod(false);
      expect(other.mark).toBe(0x640);
      const nat = p.exec("iptables-save", ["-t", "nat"]);
      expect(nat).toContain("! --mark 0x640/0xfff");
      expect(nat).not.toContain("0x539");
      const capture = await listenInNetns(p.path, { host: "0.0.0.0", port: INPOD.outbound });
      const app = await listenInNetns(target.path, { host: "0.0.0.0", port: 9000 });
      servers.push(capture, app);
      /** Where a connection from p to the target's 9000 with `mark` lands. */
      const landsOn = async (mark: number): Promise<string> => {
        const landed = new Promise<string>((resolve) => {
          const at = (where: string) => (s: net.Socket) => {
            s.destroy();
            resolve(where);
          };
          capture.once("connection", at("15001"));
          app.once("connection", at("app"));
        });
        const c = await connectInNetns(p.path, {
          host: target.ip,
          port: 9000,
          mark,
          timeoutMs: 3000,
        });
        c.on("error", () => {});
        const where = await landed;
        c.destroy();
        capture.removeAllListeners("connection");
        app.removeAllListeners("connection");
        return where;
      };
      expect(await landsOn(0x640)).toBe("app");
      expect(await landsOn(DEFAULT_INPOD_MARK)).toBe("15001");
    } finally {
      for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
      other.delete();
    }
  });

  it("DNS capture (opt-in) redirects the pod's UDP and TCP 53 to 15053 on loopback, not ztunnel's marked sockets", async () => {
    const sockets: dgram.Socket[] = [];
    const servers: net.Server[] = [];
    const udp = async (ns: string, host: string, port: number, mark?: number) => {
      const s = await bindUdpInNetns(ns, { host, port, v6Only: true, ...(mark ? { mark } : {}) });
      sockets.push(s);
      return s;
    };
    try {
      const dnsPod = network.addPod({ dnsCapture: true });
      expect([dnsPod.dnsCaptured, a.dnsCaptured, b.dnsCaptured]).toEqual([true, false, false]);
      expect(dnsPod.exec("iptables-save", ["-t", "nat"])).toContain(
        `--dport 53 -j REDIRECT --to-ports ${INPOD.dns}`,
      );
      expect(dnsPod.exec("ip6tables-save", ["-t", "raw"])).toContain("CT --zone 1");
      expect(a.exec("iptables-save", [])).not.toContain("--dport 53");
      for (const [any, local, pod, upstream] of [
        ["0.0.0.0", "127.0.0.1", dnsPod, b.ip],
        ["::", "::1", dnsPod, b.ip6],
      ] as const) {
        // B's real DNS server, and the pods' 15053 where REDIRECT sends local traffic: loopback
        const server = await udp(b.path, any, 53);
        const proxy = await udp(pod.path, local, INPOD.dns);
        const plainProxy = await udp(a.path, local, INPOD.dns);
        /** Where a datagram to B:53 from `from` (with `mark`) lands, and who answers it. */
        const query = async (from: Pod, mark?: number) => {
          const app = await udp(from.path, any, 0, mark);
          const landed = new Promise<string>((resolve) => {
            for (const [where, s] of [
              ["server", server],
              ["proxy", proxy],
              ["proxy", plainProxy],
            ] as const) {
              s.removeAllListeners("message");
              s.once("message", (m, r) => {
                resolve(where);
                s.send(`${where}:${m}`, r.port, r.address);
              });
            }
          });
          const answer = new Promise<string>((resolve) =>
            app.once("message", (m, r) => resolve(`${m} from ${r.address}:${r.port}`)),
          );
          app.send("q", 53, upstream);
          return `${await landed}; ${await answer}`;
        };
        // conntrack un-NATs the answer: the app sees it come from the address it asked
        expect(await query(pod)).toBe(`proxy; proxy:q from ${upstream}:53`);
        expect(await query(a)).toBe(`server; server:q from ${upstream}:53`);
        expect(await query(pod, DEFAULT_INPOD_MARK)).toBe(`server; server:q from ${upstream}:53`);
        // TCP 53 too, to 15053 rather than 15001; REDIRECT keeps the original destination
        const family = local === "::1" ? "IPv6" : "IPv4";
        expect(
          await firstAccepted({ pod, host: local, port: INPOD.dns }, pod, {
            host: upstream,
            port: 53,
          }),
        ).toEqual({
          remote: any === "::" ? pod.ip6 : pod.ip,
          original: { address: upstream, port: 53, family },
        });
        // a pod without DNS capture: TCP 53 is plain outbound, to 15001
        expect(
          await firstAccepted({ pod: a, host: any, port: INPOD.outbound }, a, {
            host: upstream,
            port: 53,
          }),
        ).toMatchObject({ original: { address: upstream, port: 53 } });
        for (const x of sockets.splice(0)) await new Promise<void>((r) => x.close(() => r()));
        for (const x of servers.splice(0)) await new Promise<void>((r) => x.close(() => r()));
      }
    } finally {
      for (const x of sockets) await new Promise<void>((r) => x.close(() => r()));
      for (const x of servers) await new Promise<void>((r) => x.close(() => r()));
    }
  });

  it("the next network deletes the namespaces of a process that is gone", () => {
    // a pid that was just in use and is not any more
    const dead = Number(run("sh", ["-c", "echo $$"]).trim());
    const orphan = `ak-pod-${dead}-0a0b0c-br`;
    const mine = `ak-pod-${process.pid}-0a0b0c-p0`; // this process: alive, left alone
    run("ip", ["netns", "add", orphan]);
    run("ip", ["netns", "add", mine]);
    try {
      createPodNetwork(0).delete();
      expect(namespacesOf("-0a0b0c-")).toEqual([mine]);
    } finally {
      for (const ns of namespacesOf("-0a0b0c-")) run("ip", ["netns", "delete", ns]);
    }
  });

  it("delete() leaves no namespace behind, removed pods and bare namespaces included", () => {
    const other = createPodNetwork(2);
    try {
      const bare = other.addNamespace();
      expect(run("ip", ["-n", bare.ns, "link", "show"])).toContain("lo");
      const [p0] = other.pods as [Pod, Pod];
      other.removePod(p0); // CNI DEL
      expect(namespacesOf(other.tag).sort()).toEqual(
        [other.bridge, (other.pods[1] as Pod).ns, bare.ns].sort(),
      );
      expect(namespacesOf(other.tag)).not.toContain(network.bridge);
    } finally {
      other.delete();
    }
    expect(namespacesOf(other.tag)).toEqual([]);
    other.delete(); // idempotent
    expect(namespacesOf(network.tag).length).toBeGreaterThan(0); // a different tag, untouched
  });
});
