import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { it } from "vitest";
import { startEcho } from "./testdata/echo.test-util.js";
import { createTestCa } from "./testdata/pki.test-util.js";
it("dbg2", { timeout: 60000 }, async () => {
  const ca = createTestCa();
  const leaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
  const echo = await startEcho();
  const plain = process.env.PLAIN === "1";
  const srv = plain ? http2.createServer({ settings: { initialWindowSize: 4 << 20 } }) : http2.createSecureServer({ key: leaf.keyPem, cert: leaf.certPem, settings: { initialWindowSize: 4 << 20 } });
  srv.on("stream", (stream) => {
    const up = net.connect(echo.port, "127.0.0.1", () => {
      stream.respond({ ":status": 200 });
      if (process.env.PIPE === "1") { stream.pipe(up); up.pipe(stream); }
      else { stream.on("data", (c) => { if (!up.write(c)) stream.pause(); }); up.on("drain", () => stream.resume()); stream.on("end", () => up.end()); up.on("data", (c) => { if (!stream.write(c)) up.pause(); }); stream.on("drain", () => up.resume()); up.on("end", () => stream.end()); }
    });
  });
  srv.on("session", (s) => { s.on("connect", () => {}); try { s.setLocalWindowSize(16 << 20); } catch (e) { console.log("slw", e); } });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  const c = http2.connect(`${plain ? "http" : "https"}://127.0.0.1:${port}`, { rejectUnauthorized: false, settings: { initialWindowSize: 4 << 20 } } as any);
  c.on("connect", () => c.setLocalWindowSize(16 << 20));
  const body = randomBytes(1 << 20);
  const N = Number(process.env.N ?? 20);
  let done = 0;
  const iv = setInterval(() => console.log("progress", done, (c.socket as any).bytesRead), 2000);
  await Promise.all(Array.from({ length: N }, () => new Promise<void>((resolve, reject) => {
    const req = c.request({ ":method": "CONNECT", ":authority": "a:1" });
    let n = 0;
    req.on("response", () => { req.end(body); });
    req.on("data", (d) => { n += d.length; });
    req.on("end", () => { done++; resolve(); });
    req.on("error", reject);
  })));
  clearInterval(iv);
  console.log("done", N);
  c.close(); srv.close(); await echo.close(); ca.cleanup();
});
