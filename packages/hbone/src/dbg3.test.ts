import { it } from "vitest";
import tls from "node:tls";
import { dialHbone } from "./client.js";
import { HboneServer } from "./server.js";
import { startTcpServer } from "./testdata/echo.test-util.js";
import { createTestCa, credsOf } from "./testdata/pki.test-util.js";
import { clientTlsOptions, serverTlsOptions } from "./tls.js";
it("tput", { timeout: 60000 }, async () => {
  const ca = createTestCa();
  const client = ca.issue("spiffe://cluster.local/ns/default/sa/client");
  const serverLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
  let got = 0;
  const sink = await startTcpServer((s) => { s.on("data", (c: Buffer) => { got += c.length; }); s.on("end", () => s.end()); });
  const server = new HboneServer({ credentials: credsOf(serverLeaf, ca), readAhead: process.env.RA !== "0" });
  const port = (await server.listen(0)).port;
  const conn = await dialHbone({ address: { host: "127.0.0.1", port }, credentials: credsOf(client, ca), expectedIdentities: [serverLeaf.id] });
  const chunk = Buffer.alloc(64 * 1024, 1);
  const total = 256 * 1024 * 1024;
  const run = async (w: NodeJS.WritableStream & { once: any; write: any; end: any }, wait: () => boolean) => {
    const t0 = process.hrtime.bigint();
    for (let sent = 0; sent < total; sent += chunk.length) { if (!w.write(chunk)) await new Promise((r) => w.once("drain", r)); }
    w.end();
    while (!wait()) await new Promise((r) => setTimeout(r, 2));
    return Number(total) / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6;
  };
  const t = await conn.open({ authority: `127.0.0.1:${sink.port}` });
  t.resume();
  got = 0;
  console.log("hbone MB/s", (await run(t as any, () => got >= total)).toFixed(0));
  // raw tls
  let got2 = 0;
  const ts = tls.createServer(serverTlsOptions(credsOf(serverLeaf, ca)), (s) => { s.on("data", (c: Buffer) => { got2 += c.length; }); });
  await new Promise<void>((r) => ts.listen(0, "127.0.0.1", r));
  const c = tls.connect({ host: "127.0.0.1", port: (ts.address() as any).port, ...clientTlsOptions(credsOf(client, ca), [serverLeaf.id]) });
  await new Promise((r) => c.once("secureConnect", r));
  console.log("raw tls MB/s", (await run(c as any, () => got2 >= total)).toFixed(0));
  c.destroy(); ts.close(); await conn.close(); await server.close(100); await sink.close();
});
