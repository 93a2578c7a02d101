// End to end with istio-cni's in-pod capture rules installed in pod A (10.214.0.10): a minimal
// passthrough "ztunnel" inside A built only from this package's primitives captures the pod's
// outbound traffic on 15001 and its inbound traffic on 15006, finds where each connection was
// going (SO_ORIGINAL_DST), and forwards it with mark 1337 so the rules let its own sockets pass;
// inbound, it connects to the app from the client's own address (IP_TRANSPARENT). The apps are
// separate python3 processes inside the namespaces.
import { execFile } from "node:child_process";
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFds, openLifetimeFds } from "./netns.testutil.js";
import {
  connectInNetns,
  DEFAULT_INPOD_MARK,
  getMark,
  listenInNetns,
  originalDestination,
  type SocketAddress,
} from "./sockets.js";
import {
  createPodNetwork,
  eventually,
  INPOD,
  type Pod,
  type PodNetwork,
  privileged,
} from "./testing.js";

interface Captured {
  readonly via: "outbound" | "inbound";
  readonly from: string;
  readonly to: SocketAddress;
}

/** A passthrough proxy inside `podPath`: the capture half of an in-pod ztunnel, without HBONE. */
async function startPassthrough(podPath: string) {
  const captured: Captured[] = [];
  const sockets = new Set<net.Socket>();
  const forward = (via: Captured["via"]) => (down: net.Socket) => {
    sockets.add(down);
    down.on("error", () => down.destroy());
    const to = originalDestination(down);
    const from = down.remoteAddress ?? "";
    captured.push({ via, from, to });
    connectInNetns(podPath, {
      host: to.address,
      port: to.port,
      mark: DEFAULT_INPOD_MARK,
      // inbound: the app sees the real client, as with ztunnel
      ...(via === "inbound" ? { localAddress: from, transparent: true } : {}),
    }).then(
      (up) => {
        sockets.add(up);
        up.on("error", () => down.destroy());
        down.on("close", () => up.destroy());
        up.on("close", () => down.destroy());
        down.pipe(up).pipe(down);
      },
      () => down.destroy(),
    );
  };
  const opts = { host: "0.0.0.0", mark: DEFAULT_INPOD_MARK, transparent: true };
  const outbound = await listenInNetns(podPath, { ...opts, port: INPOD.outbound });
  const inbound = await listenInNetns(podPath, { ...opts, port: INPOD.inboundPlaintext });
  outbound.on("connection", forward("outbound"));
  inbound.on("connection", forward("inbound"));
  return {
    captured,
    outbound,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(
        [outbound, inbound].map((l) => new Promise<void>((r) => l.close(() => r()))),
      );
    },
  };
}

/** An app that answers "<name> saw <peer address>" and closes. */
async function greeter(nsPath: string, name: string): Promise<net.Server> {
  const server = await listenInNetns(nsPath, { host: "0.0.0.0", port: 8080 });
  server.on("connection", (s) => {
    s.on("error", () => {});
    s.end(`${name} saw ${s.remoteAddress}`);
  });
  return server;
}

/** A python3 client run inside namespace `ns`: connects, prints what it read until EOF. */
function pythonClient(ns: string, host: string, port: number): Promise<string> {
  const script = `import socket
s=socket.create_connection(("${host}",${port}),timeout=5)
got=b""
while True:
    d=s.recv(4096)
    if not d: break
    got+=d
print(got.decode())`;
  return new Promise((resolve, reject) =>
    execFile(
      "ip",
      ["netns", "exec", ns, "/usr/bin/python3", "-c", script],
      { timeout: 10_000 },
      (err, out, stderr) =>
        err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(out.trim()),
    ),
  );
}

describe.skipIf(!privileged())("capture inside a pod with istio-cni's in-pod rules", () => {
  let network: PodNetwork;
  let a: Pod;
  let b: Pod;
  let fdsBefore = 0;

  beforeAll(() => {
    openLifetimeFds();
    fdsBefore = openFds();
    network = createPodNetwork(0);
    a = network.addPod(); // with istio-cni's capture rules
    b = network.addPod(false);
  });

  afterAll(() => {
    network?.delete();
  });

  it("captures the pod's outbound connection on 15001 and forwards it with mark 1337 (not recaptured)", async () => {
    const ztunnel = await startPassthrough(a.path);
    const peer = await greeter(b.path, "B");
    try {
      expect(getMark(ztunnel.outbound)).toBe(1337);
      expect(await pythonClient(a.ns, b.ip, 8080)).toBe(`B saw ${a.ip}`);
      // exactly one capture: the forwarded, marked connection passed the rules untouched
      expect(ztunnel.captured).toEqual([
        { via: "outbound", from: a.ip, to: { address: b.ip, port: 8080, family: "IPv4" } },
      ]);
    } finally {
      await new Promise<void>((r) => peer.close(() => r()));
      await ztunnel.close();
    }
  });

  it("captures inbound plaintext on 15006 and reaches the app from the client's own address (IP_TRANSPARENT)", async () => {
    const ztunnel = await startPassthrough(a.path);
    const app = await greeter(a.path, "A");
    try {
      expect(await pythonClient(b.ns, a.ip, 8080)).toBe(`A saw ${b.ip}`);
      expect(ztunnel.captured).toEqual([
        { via: "inbound", from: b.ip, to: { address: a.ip, port: 8080, family: "IPv4" } },
      ]);
    } finally {
      await new Promise<void>((r) => app.close(() => r()));
      await ztunnel.close();
    }
  });

  it("leaves no file descriptor open", async () => {
    expect(await eventually(() => openFds() === fdsBefore)).toBe(true);
  });
});
