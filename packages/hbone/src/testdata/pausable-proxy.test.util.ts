// Test-only TCP relay that can freeze traffic (to starve PINGs) without closing sockets.
import net from "node:net";

export interface PausableProxy {
  port: number;
  freeze(): void;
  close(): Promise<void>;
}

export async function startPausableProxy(targetPort: number): Promise<PausableProxy> {
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.once("close", () => sockets.delete(s));
    }
    down.on("data", (c: Buffer) => {
      if (!frozen) up.write(c);
    });
    up.on("data", (c: Buffer) => {
      if (!frozen) down.write(c);
    });
    down.once("close", () => up.destroy());
    up.once("close", () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
