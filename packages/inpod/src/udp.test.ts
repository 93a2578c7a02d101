// bindUdpInNetns with real pods of @ambientkit/inpod/testing (A and B, no capture rules): the
// socket lives in the pod's namespace, carries its mark, and fails cleanly.
import type dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns } from "./netns.js";
import { openFds, openLifetimeFds } from "./netns.testutil.js";
import { DEFAULT_INPOD_MARK, getMark } from "./sockets.js";
import { createPodNetwork, eventually, type Pod, type PodNetwork, privileged } from "./testing.js";
import { bindUdpInNetns } from "./udp.js";

/** The fd libuv holds for a dgram socket (node:dgram does not expose it). */
function dgramFd(s: dgram.Socket): number {
  for (const sym of Object.getOwnPropertySymbols(s)) {
    const fd = (s as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[sym]
      ?.handle?.fd;
    if (typeof fd === "number" && fd >= 0) return fd;
  }
  throw new Error("no fd on this dgram socket");
}

/** Echoes every datagram back, prefixed with "re:". */
function respond(s: dgram.Socket): void {
  s.on("message", (msg, rinfo) =>
    s.send(Buffer.concat([Buffer.from("re:"), msg]), rinfo.port, rinfo.address),
  );
}

/** Sends `text` from `from` to host:port and returns the first answer and who sent it. */
async function ask(
  from: dgram.Socket,
  host: string,
  port: number,
  text: string,
): Promise<{ text: string; address: string; port: number }> {
  const answer = new Promise<{ text: string; address: string; port: number }>((resolve) =>
    from.once("message", (m, r) =>
      resolve({ text: m.toString(), address: r.address, port: r.port }),
    ),
  );
  from.send(text, port, host);
  return await answer;
}

const close = (s: dgram.Socket) => new Promise<void>((r) => s.close(() => r()));

/** Whether /proc/net/udp or udp6 text lists a socket bound to local port `port`. */
const listsPort = (table: string, port: number) =>
  table
    .split("\n")
    .slice(1)
    .some((l) =>
      l
        .trim()
        .split(/\s+/)[1]
        ?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, "0")}`),
    );

describe.skipIf(!privileged())("bindUdpInNetns", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;
  let fdsBefore = 0;
  const open: dgram.Socket[] = [];
  const bind = async (...args: Parameters<typeof bindUdpInNetns>) => {
    const s = await bindUdpInNetns(...args);
    open.push(s);
    return s;
  };

  beforeAll(() => {
    openLifetimeFds();
    fdsBefore = openFds();
    network = createPodNetwork(2, { capture: false });
    [a, b] = network.pods as [Pod, Pod];
  });

  afterAll(async () => {
    for (const s of open.splice(0)) await close(s).catch(() => {});
    network?.delete();
  });

  it("binds in the pod's namespace: reachable at the pod's IP from another pod, listed there and not here", async () => {
    const responder = await bind(b.path, { host: "0.0.0.0", port: 0 });
    respond(responder);
    const { port, family, address } = responder.address();
    expect(port).toBeGreaterThan(0);
    expect([family, address]).toEqual(["IPv4", "0.0.0.0"]);
    const client = await bind(a.path, { host: "0.0.0.0", port: 0 });
    expect(await ask(client, b.ip, port, "hello")).toEqual({
      text: "re:hello",
      address: b.ip,
      port,
    });
    // the responder saw A's address: the datagram crossed the bridge from A's namespace
    const seen = new Promise<string>((r) => responder.once("message", (_m, ri) => r(ri.address)));
    client.send("again", port, b.ip);
    expect(await seen).toBe(a.ip);
    expect(listsPort(b.exec("cat", ["/proc/net/udp"]), port)).toBe(true);
    expect(listsPort(readFileSync("/proc/self/net/udp", "utf8"), port)).toBe(false);
  });

  it("accepts a path, a Netns and a raw netns fd", async () => {
    const ns = Netns.open(b.path);
    try {
      const viaNetns = await bind(ns, { host: b.ip, port: 0 });
      const viaFd = await bind(ns.fd, { host: b.ip, port: 0 });
      const client = await bind(a.path, { host: a.ip, port: 0 });
      for (const s of [viaNetns, viaFd]) {
        respond(s);
        const { port } = s.address();
        expect(await ask(client, b.ip, port, "x")).toEqual({ text: "re:x", address: b.ip, port });
      }
    } finally {
      ns.close();
    }
  });

  it("sets SO_MARK when asked, and only then", async () => {
    const marked = await bind(b.path, { host: "0.0.0.0", port: 0, mark: DEFAULT_INPOD_MARK });
    const plain = await bind(b.path, { host: "0.0.0.0", port: 0 });
    expect(getMark(dgramFd(marked))).toBe(DEFAULT_INPOD_MARK);
    expect(getMark(dgramFd(plain))).toBe(0);
  });

  it("IPv6: the pod's fd00:214:: address, ::1, and :: with and without v6Only", async () => {
    const responder = await bind(b.path, { host: b.ip6, port: 0 });
    respond(responder);
    expect(responder.address()).toMatchObject({ family: "IPv6", address: b.ip6 });
    const client = await bind(a.path, { host: "::", port: 0, v6Only: true });
    const { port } = responder.address();
    expect(await ask(client, b.ip6, port, "six")).toEqual({ text: "re:six", address: b.ip6, port });
    const loop = await bind(b.path, { host: "::1", port: 0 });
    expect(loop.address()).toMatchObject({ family: "IPv6", address: "::1" });
    // `::` without v6Only takes IPv4 too (seen as ::ffff:), with v6Only it does not
    const dual = await bind(b.path, { host: "::", port: 0 });
    respond(dual);
    const v4client = await bind(a.path, { host: "0.0.0.0", port: 0 });
    const dualPort = dual.address().port;
    expect(await ask(v4client, b.ip, dualPort, "4")).toMatchObject({ text: "re:4", address: b.ip });
    const only6 = await bind(b.path, { host: "::", port: 0, v6Only: true });
    // the same port on 0.0.0.0 is free next to a v6-only `::`, taken next to a dual-stack one
    const v4beside = await bind(b.path, { host: "0.0.0.0", port: only6.address().port });
    expect(v4beside.address().port).toBe(only6.address().port);
    await expect(bindUdpInNetns(b.path, { host: "0.0.0.0", port: dualPort })).rejects.toMatchObject(
      {
        code: "ERR_INPOD_SOCKET",
        message: expect.stringMatching(/EADDRINUSE/),
      },
    );
  });

  it("fails with InpodError on bad input and a taken port, leaking no fd", async () => {
    const taken = await bind(b.path, { host: "0.0.0.0", port: 0 });
    const port = taken.address().port;
    const closedNs = Netns.open(b.path);
    closedNs.close();
    const fds = openFds();
    const cases: [Parameters<typeof bindUdpInNetns>, string, RegExp][] = [
      [
        [b.path, { host: "0.0.0.0", port }],
        "ERR_INPOD_SOCKET",
        /bind\(udp 0\.0\.0\.0:\d+\) failed with EADDRINUSE: is the port taken/,
      ],
      [
        [b.path, { host: "localhost", port: 53 }],
        "ERR_INPOD_SOCKET",
        /"localhost" is not an IP literal/,
      ],
      [
        [b.path, { host: "0.0.0.0", port: 65536 }],
        "ERR_INPOD_SOCKET",
        /UDP port 65536 is out of range/,
      ],
      [[b.path, { host: "0.0.0.0", port: -1 }], "ERR_INPOD_SOCKET", /out of range/],
      [[b.path, { host: "0.0.0.0", port: 1.5 }], "ERR_INPOD_SOCKET", /out of range/],
      // an address the namespace does not have
      [[b.path, { host: a.ip, port: 0 }], "ERR_INPOD_SOCKET", /EADDRNOTAVAIL/],
      [
        [b.path, { host: "0.0.0.0", port: 0, mark: -1 }],
        "ERR_INPOD_SOCKET",
        /not a 32-bit unsigned integer/,
      ],
      [[closedNs, { host: "0.0.0.0", port: 0 }], "ERR_INPOD_NETNS", /closed/],
      [
        ["/run/netns/ak-no-such-pod", { host: "0.0.0.0", port: 0 }],
        "ERR_INPOD_NETNS",
        /cannot open/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const err = await bindUdpInNetns(...args).catch((e: unknown) => e);
      expect(err, message.source).toBeInstanceOf(InpodError);
      expect(err).toMatchObject({ code, message: expect.stringMatching(message) });
      expect(openFds(), message.source).toBe(fds);
    }
  });

  it("closing every socket brings the fd count back", async () => {
    expect(open.length).toBeGreaterThan(0);
    for (const s of open.splice(0)) await close(s);
    network.delete();
    expect(await eventually(() => openFds() === fdsBefore)).toBe(true);
  });
});
