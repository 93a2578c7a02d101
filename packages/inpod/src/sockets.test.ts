// Real namespaces, real veths, real netfilter: two pods A (10.214.0.10, fd00:214::10) and B (.11)
// of @ambientkit/inpod/testing, without capture rules, created and deleted by this
// file. Nothing here touches the host's own network.
import { randomBytes } from "node:crypto";
import { openSync } from "node:fs";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InpodError } from "./errors.js";
import { Netns, runInNetns } from "./netns.js";
import { openFds, openLifetimeFds, threadNetns } from "./netns.testutil.js";
import {
  connectInNetns,
  DEFAULT_INPOD_MARK,
  getMark,
  getTransparent,
  listenInNetns,
  originalDestination,
  setMark,
} from "./sockets.js";
import { createPodNetwork, eventually, type Pod, type PodNetwork, privileged } from "./testing.js";

const PY = "/usr/bin/python3";

/** Echo server: every accepted socket is kept so a test can inspect it. */
function echo(server: net.Server, accepted: net.Socket[] = []): net.Socket[] {
  server.on("connection", (s) => {
    accepted.push(s);
    s.on("error", () => {});
    s.pipe(s);
  });
  return accepted;
}

async function roundTrip(socket: net.Socket, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return await new Promise<Buffer>((resolve, reject) => {
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= payload.length) resolve(Buffer.concat(chunks));
    });
    socket.once("error", reject);
    socket.write(payload);
  });
}

async function close(server: net.Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe.skipIf(!privileged())("sockets inside network namespaces", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;
  let fdsBefore = 0;
  const home = threadNetns();

  beforeAll(() => {
    expect(() => setMark(-1, 1)).toThrow();
    openLifetimeFds();
    fdsBefore = openFds();
    network = createPodNetwork(2, { capture: false });
    [a, b] = network.pods as [Pod, Pod];
  });

  afterAll(() => {
    network?.delete();
  });

  it("echoes bytes exactly between a listener in A and a connector in B (connectInNetns)", async () => {
    const server = await listenInNetns(a.path, { host: "0.0.0.0", port: 0 });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    const client = await connectInNetns(b.path, { host: a.ip, port });
    try {
      expect(client.localAddress).toBe(b.ip);
      const payload = randomBytes(256 * 1024);
      expect((await roundTrip(client, payload)).equals(payload)).toBe(true);
      expect(accepted[0]?.remoteAddress).toBe(b.ip);
      expect(accepted[0]?.localAddress).toBe(a.ip);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await close(server);
    }
    expect(threadNetns()).toBe(home);
  });

  it("v6Only: an IPv6-only listener shares its port with a 0.0.0.0 one, each taking its own family", async () => {
    const v4 = await listenInNetns(a.path, { host: "0.0.0.0", port: 0 });
    const { port } = v4.address() as net.AddressInfo;
    // without v6Only, `::` takes IPv4 too and the port is taken
    await expect(listenInNetns(a.path, { host: "::", port })).rejects.toThrow(/EADDRINUSE/);
    const v6 = await listenInNetns(a.path, { host: "::", port, v6Only: true });
    const from4 = echo(v4);
    const from6 = echo(v6);
    const c4 = await connectInNetns(b.path, { host: a.ip, port });
    const c6 = await connectInNetns(b.path, { host: a.ip6, port });
    try {
      expect((await roundTrip(c4, Buffer.from("four"))).toString()).toBe("four");
      expect((await roundTrip(c6, Buffer.from("six"))).toString()).toBe("six");
      expect(from4.map((s) => s.remoteAddress)).toEqual([b.ip]);
      expect(from6.map((s) => s.remoteAddress)).toEqual([b.ip6]);
    } finally {
      c4.destroy();
      c6.destroy();
      for (const s of [...from4, ...from6]) s.destroy();
      await close(v4);
      await close(v6);
    }
  });

  it("keeps writing after the peer's FIN with allowHalfOpen (a proxy forwards half-close)", async () => {
    // the server half-closes at once, then reads what the client still sends
    const server = await listenInNetns(a.path, {
      host: "0.0.0.0",
      port: 0,
      server: net.createServer({ allowHalfOpen: true }, (s) => {
        const got: Buffer[] = [];
        s.on("data", (d: Buffer) => got.push(d));
        s.on("end", () => s.destroy());
        s.end("bye");
        s.once("close", () => seen.push(Buffer.concat(got).toString()));
      }),
    });
    const seen: string[] = [];
    const { port } = server.address() as net.AddressInfo;
    const client = await connectInNetns(b.path, {
      host: a.ip,
      port,
      allowHalfOpen: true,
      noDelay: true,
    });
    try {
      let reply = "";
      client.on("data", (d: Buffer) => {
        reply += d.toString();
      });
      await new Promise<void>((resolve) => client.once("end", () => resolve()));
      expect(reply).toBe("bye");
      expect(client.writable).toBe(true); // without allowHalfOpen node would have ended it
      await new Promise<void>((resolve) => client.end("after your FIN", () => resolve()));
      await new Promise<void>((resolve) => client.once("close", () => resolve()));
      await eventually(() => seen.length > 0);
      expect(seen).toEqual(["after your FIN"]);
    } finally {
      client.destroy();
      await close(server);
    }
  });

  it("serves a peer that is not ours: python3 in B, via ip netns exec", async () => {
    const server = await listenInNetns(a.path, { port: 0 });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    try {
      const script = `import socket,sys
s=socket.create_connection(("${a.ip}",${port}),timeout=5)
msg=bytes(range(256))*64
s.sendall(msg)
got=b""
while len(got)<len(msg):
    d=s.recv(65536)
    if not d: break
    got+=d
print("echo-ok" if got==msg else "echo-mismatch %d" % len(got))`;
      // async, so the listener in this process keeps serving meanwhile
      const { execFile } = await import("node:child_process");
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          "ip",
          ["netns", "exec", b.ns, PY, "-c", script],
          { timeout: 10_000 },
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        ),
      );
      expect(out.trim()).toBe("echo-ok");
    } finally {
      for (const s of accepted) s.destroy();
      await close(server);
    }
  });

  it("reads the original destination of an iptables REDIRECT (IPv4: 10.214.0.10:80)", async () => {
    const server = await listenInNetns(a.path, { host: "0.0.0.0", port: 0 });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    a.exec("iptables", [
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      "-p",
      "tcp",
      "--dport",
      "80",
      "-j",
      "REDIRECT",
      "--to-ports",
      String(port),
    ]);
    const client = await connectInNetns(b.path, { host: a.ip, port: 80 });
    try {
      const payload = Buffer.from("redirected\n");
      expect((await roundTrip(client, payload)).equals(payload)).toBe(true);
      const conn = accepted[0];
      if (!conn) throw new Error("no connection accepted");
      // the kernel rewrote the destination to the listener's port ...
      expect(conn.localPort).toBe(port);
      // ... and conntrack remembers where the client meant to go
      expect(originalDestination(conn)).toEqual({ address: a.ip, port: 80, family: "IPv4" });
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await close(server);
      a.exec("iptables", ["-t", "nat", "-F", "PREROUTING"]);
    }
  });

  it("reads the original destination of an ip6tables REDIRECT (IPv6: [fd00:213::1]:80)", async () => {
    const server = await listenInNetns(a.path, { host: "::", port: 0 });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    a.exec("ip6tables", [
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      "-p",
      "tcp",
      "--dport",
      "80",
      "-j",
      "REDIRECT",
      "--to-ports",
      String(port),
    ]);
    const client = await connectInNetns(b.path, { host: a.ip6, port: 80 });
    try {
      const payload = Buffer.from("redirected over IPv6\n");
      expect((await roundTrip(client, payload)).equals(payload)).toBe(true);
      const conn = accepted[0];
      if (!conn) throw new Error("no connection accepted");
      expect(originalDestination(conn)).toEqual({ address: a.ip6, port: 80, family: "IPv6" });
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await close(server);
      a.exec("ip6tables", ["-t", "nat", "-F", "PREROUTING"]);
    }
  });

  it("says clearly when a connection was not redirected", async () => {
    const server = await listenInNetns(a.path, { port: 0 });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    const client = await connectInNetns(b.path, { host: a.ip, port });
    try {
      await roundTrip(client, Buffer.from("x"));
      const conn = accepted[0];
      if (!conn) throw new Error("no connection accepted");
      let err: unknown;
      try {
        originalDestination(conn);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InpodError);
      expect((err as InpodError).code).toBe("ERR_INPOD_ORIGINAL_DST");
      expect((err as InpodError).message).toMatch(/not redirected/);
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await close(server);
    }
  });

  it("marks listening and connecting sockets with SO_MARK 1337 (read back by getsockopt)", async () => {
    const server = await listenInNetns(a.path, { port: 0, mark: DEFAULT_INPOD_MARK });
    const accepted = echo(server);
    const { port } = server.address() as net.AddressInfo;
    const client = await connectInNetns(b.path, {
      host: a.ip,
      port,
      mark: DEFAULT_INPOD_MARK,
    });
    try {
      expect(DEFAULT_INPOD_MARK).toBe(1337);
      expect(getMark(server)).toBe(1337);
      expect(getMark(client)).toBe(1337);
      const plain = await connectInNetns(b.path, { host: a.ip, port });
      expect(getMark(plain)).toBe(0);
      setMark(plain, 0x539);
      expect(getMark(plain)).toBe(0x539);
      plain.destroy();
    } finally {
      client.destroy();
      for (const s of accepted) s.destroy();
      await close(server);
    }
  });

  it("binds a foreign address only with IP_TRANSPARENT", async () => {
    // 10.214.0.77 is on no interface of A
    const err = await listenInNetns(a.path, { host: "10.214.0.77", port: 0 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InpodError);
    expect((err as InpodError).code).toBe("ERR_INPOD_SOCKET");
    expect((err as InpodError).message).toMatch(/EADDRNOTAVAIL/);
    const server = await listenInNetns(a.path, {
      host: "10.214.0.77",
      port: 0,
      transparent: true,
    });
    try {
      expect(getTransparent(server)).toBe(true);
      expect((server.address() as net.AddressInfo).address).toBe("10.214.0.77");
    } finally {
      await close(server);
    }
  });

  it("accepts a Netns or a raw netns fd as well as a path, and rejects what is not a netns", async () => {
    const ns = Netns.open(a.path);
    try {
      const s1 = await listenInNetns(ns, { port: 0 });
      const s2 = await listenInNetns(ns.fd, { port: 0 });
      await close(s1);
      await close(s2);
    } finally {
      ns.close();
    }
    const devNull = openSync("/dev/null", "r");
    const e1 = await listenInNetns(devNull, { port: 0 }).catch((e: unknown) => e);
    expect((e1 as InpodError).code).toBe("ERR_INPOD_NETNS");
    expect((e1 as InpodError).message).toMatch(/not a network namespace/);
    expect(() => Netns.fromFd(devNull, { own: true })).toThrow(/not a network namespace/);
    const e2 = await listenInNetns("/run/netns/ak-inpod-missing", { port: 0 }).catch(
      (e: unknown) => e,
    );
    expect((e2 as InpodError).code).toBe("ERR_INPOD_NETNS");
    const e3 = await listenInNetns(a.path, { host: "localhost", port: 0 }).catch((e: unknown) => e);
    expect((e3 as InpodError).message).toMatch(/not an IP literal/);
    expect(threadNetns()).toBe(home);
  });

  it("runs a synchronous body inside a namespace and refuses an async one", () => {
    const ns = Netns.open(a.path);
    try {
      expect(runInNetns(ns.fd, threadNetns)).not.toBe(home);
      expect(threadNetns()).toBe(home);
      expect(() => runInNetns(ns.fd, async () => {})).toThrow(/needs a synchronous function/);
      expect(threadNetns()).toBe(home);
    } finally {
      ns.close();
    }
  });

  it("leaves the main thread in its own namespace: node:net still listens on the host", async () => {
    await close(await listenInNetns(a.path, { port: 0 }));
    expect(threadNetns()).toBe(home);
    const host = net.createServer();
    await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
    const { port } = host.address() as net.AddressInfo;
    // reachable from this (host) namespace, so it was not created inside A
    const c = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => c.once("connect", resolve).once("error", reject));
    c.destroy();
    await close(host);
  });

  it("fails a connect with a clear error and no fd left behind", async () => {
    const err = await connectInNetns(b.path, {
      host: a.ip,
      port: 9,
      timeoutMs: 3000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InpodError);
    expect((err as InpodError).message).toMatch(/ECONNREFUSED/);
  });

  it("leaves no file descriptor open", async () => {
    expect(await eventually(() => openFds() === fdsBefore)).toBe(true);
  });
});
