// Interop with an independent HTTP/2 + TLS stack: python3-h2 over Python's ssl (Debian python3-h2).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialHbone, openTunnel } from "./client.js";
import type { HboneError } from "./errors.js";
import { RST_CANCEL, RST_ENHANCE_YOUR_CALM } from "./node-error.js";
import { HboneServer } from "./server.js";
import {
  readAll,
  sha256,
  startEcho,
  startTcpServer,
  type TestTcpServer,
  writeAllAndEnd,
} from "./testdata/echo.test.util.js";
import { createTestCa, credsOf, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";

const PY = "/usr/bin/python3";
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "testdata", "h2peer.py");

let ca: TestCa;
let otherCa: TestCa;
let client: TestLeaf;
let serverLeaf: TestLeaf;
let pyLeaf: TestLeaf;
let echo: TestTcpServer;
let server: HboneServer;
let port: number;
let py: ChildProcess;
let pyPort: number;
const pyLines: Record<string, unknown>[] = [];
const clientErrors: HboneError[] = [];

function pyClient(
  leaf: TestLeaf,
  action: string,
  args: string[],
  bundle: TestCa = ca,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      PY,
      [
        SCRIPT,
        "client",
        String(port),
        leaf.certPath,
        leaf.keyPath,
        bundle.certPath,
        action,
        ...args,
      ],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else
          resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>);
      },
    );
  });
}

beforeAll(async () => {
  ca = createTestCa();
  otherCa = createTestCa("other");
  client = ca.issue("spiffe://cluster.local/ns/default/sa/client");
  serverLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/server");
  pyLeaf = ca.issue("spiffe://cluster.local/ns/default/sa/python");
  echo = await startEcho();
  server = new HboneServer({
    credentials: credsOf(serverLeaf, ca),
    rapidReset: { maxResets: 100, windowMs: 1000 },
  });
  server.on("clientError", (e: HboneError) => clientErrors.push(e));
  port = (await server.listen(0)).port;
  py = spawn(PY, [SCRIPT, "server", pyLeaf.certPath, pyLeaf.keyPath, ca.certPath], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  pyPort = await new Promise<number>((resolve, reject) => {
    let buf = "";
    py.stdout?.on("data", (c: Buffer) => {
      buf += c.toString();
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        pyLines.push(line);
        if (typeof line.port === "number") resolve(line.port);
        nl = buf.indexOf("\n");
      }
    });
    py.once("exit", (code) => reject(new Error(`python h2 peer exited with ${code}`)));
  });
});

afterAll(async () => {
  py?.kill();
  await server?.close(500);
  await echo?.close();
  ca?.cleanup();
  otherCa?.cleanup();
});

const toPy = (over: Partial<Parameters<typeof openTunnel>[0]> = {}) =>
  openTunnel({
    address: { host: "127.0.0.1", port: pyPort },
    credentials: credsOf(client, ca),
    expectedIdentities: [pyLeaf.id],
    authority: "10.0.0.1:80",
    ...over,
  });

describe("our client → python-h2 server", () => {
  it("5 MiB byte-exact through the python echo, half-close client first", async () => {
    const t = await toPy();
    expect(t.info.peerIdentity).toBe(pyLeaf.id);
    const data = randomBytes(5 * 1024 * 1024);
    const got = readAll(t);
    await writeAllAndEnd(t, data);
    expect(sha256(await got)).toBe(sha256(data));
  });

  it("half-close server first: we read its END_STREAM and can still send", async () => {
    const t = await toPy({ authority: "banner:1" });
    expect((await readAll(t)).toString()).toBe("banner");
    const before = pyLines.length;
    t.end("late data");
    await waitFor(() => pyLines.slice(before).some((l) => l.banner_received !== undefined));
    expect(
      pyLines.slice(before).find((l) => l.banner_received !== undefined)?.banner_received,
    ).toBe("late data");
  });

  it("reads RST_STREAM(NO_ERROR|CANCEL) as a clean EOF, other codes as a typed reset error", async () => {
    for (const code of [0, 8]) {
      const t = await toPy({ authority: `reset-${code}:1` });
      expect((await readAll(t)).toString()).toBe("y");
    }
    const t = await toPy({ authority: "reset-2:1" });
    const err = (await readAll(t).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_STREAM_RESET");
    expect(err.rstCode).toBe(2);
  });

  it("non-200 is a typed error with the status", async () => {
    const err = (await toPy({ authority: "status-503:1" }).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_STATUS");
    expect(err.status).toBe(503);
  });

  it("refuses the python server when its SAN is not expected", async () => {
    const err = (await toPy({ expectedIdentities: [serverLeaf.id] }).catch(
      (e: unknown) => e,
    )) as HboneError;
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
  });

  it("is refused by the python server with an untrusted client cert", async () => {
    const rogue = otherCa.issue("spiffe://cluster.local/ns/default/sa/client");
    const err = (await toPy({ credentials: { ...credsOf(rogue, otherCa), ca: ca.certPem } }).catch(
      (e: unknown) => e,
    )) as HboneError;
    expect(["ERR_HBONE_TLS", "ERR_HBONE_SESSION"]).toContain(err.code);
  });

  it("multiplexes 20 tunnels on one connection to the python server", async () => {
    const conn = await dialHbone({
      address: { host: "127.0.0.1", port: pyPort },
      credentials: credsOf(client, ca),
      expectedIdentities: [pyLeaf.id],
    });
    const outs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const t = await conn.open({ authority: `10.0.0.${i + 1}:80` });
        const got = readAll(t);
        t.end(`tunnel ${i}`);
        return (await got).toString();
      }),
    );
    expect(outs).toEqual(Array.from({ length: 20 }, (_, i) => `tunnel ${i}`));
    await conn.close();
  });
});

describe("python-h2 client → our server", () => {
  it("negotiates TLS 1.3, ALPN h2, an AES-GCM suite and our SPIFFE SAN; 5 MiB byte-exact", async () => {
    const r = await pyClient(client, "echo", [`127.0.0.1:${echo.port}`, String(5 * 1024 * 1024)]);
    expect(r.tls_version).toBe("TLSv1.3");
    expect(r.alpn).toBe("h2");
    expect(["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"]).toContain(r.cipher);
    expect(r.peer_sans).toEqual([serverLeaf.id]);
    expect(r.status).toBe(200);
    expect(r.recv_bytes).toBe(5 * 1024 * 1024);
    expect(r.recv_sha256).toBe(r.sent_sha256);
  });

  it("half-close upstream first: python reads END_STREAM, then its late bytes reach the upstream", async () => {
    let received = "";
    let ended!: () => void;
    const done = new Promise<void>((r) => {
      ended = r;
    });
    const up = await startTcpServer((s) => {
      s.end("banner");
      s.on("data", (c: Buffer) => {
        received += c.toString();
      });
      s.on("end", () => ended());
    });
    try {
      const r = await pyClient(client, "peer-first", [`127.0.0.1:${up.port}`]);
      expect(r.status).toBe(200);
      expect(r.received_before_late).toBe(6);
      await done;
      expect(received).toBe("late");
    } finally {
      await up.close();
    }
  });

  it("answers 400 to non-CONNECT and bad authorities, 503 when the upstream refuses", async () => {
    expect((await pyClient(client, "status", ["GET", "example.com"])).status).toBe(400);
    expect((await pyClient(client, "status", ["CONNECT", "no-port"])).status).toBe(400);
    expect((await pyClient(client, "status", ["CONNECT", "[fd00::1:80"])).status).toBe(400);
    expect((await pyClient(client, "status", ["CONNECT", "127.0.0.1:1"])).status).toBe(503);
  });

  it("rejects an untrusted client certificate and a foreign trust domain", async () => {
    const rogue = otherCa.issue("spiffe://cluster.local/ns/default/sa/client");
    const r1 = await pyClient(rogue, "status", ["CONNECT", `127.0.0.1:${echo.port}`]);
    expect(r1.status).toBeUndefined();
    // TLS 1.3: the client finishes its handshake before the server checks the certificate, so
    // python sees the refusal as an alert, an error or EOF
    expect(r1.tls_error ?? r1.error ?? r1.eof).toBeDefined();
    await waitFor(() =>
      clientErrors.some((e) => e.message.includes("client certificate rejected")),
    );
    const foreign = ca.issue("spiffe://evil.example/ns/default/sa/client");
    const before = clientErrors.length;
    const r2 = await pyClient(foreign, "status", ["CONNECT", `127.0.0.1:${echo.port}`]);
    expect(r2.status).toBeUndefined();
    expect(r2.tls_error ?? r2.error ?? r2.eof).toBeDefined();
    expect(clientErrors.slice(before).some((e) => e.code === "ERR_HBONE_PEER_IDENTITY")).toBe(true);
  });

  it("survives a rapid-reset flood (HEADERS+RST_STREAM pairs) and keeps serving", async () => {
    const r = await pyClient(client, "rapid-reset", [`127.0.0.1:${echo.port}`, "3000"]);
    expect(r.goaway === RST_ENHANCE_YOUR_CALM || r.closed === true).toBe(true);
    expect(RST_CANCEL).toBe(8);
    const ok = await pyClient(client, "echo", [`127.0.0.1:${echo.port}`, "1000"]);
    expect(ok.recv_sha256).toBe(ok.sent_sha256);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
