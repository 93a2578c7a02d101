// `ambientkit hbone dial|serve` end to end: SVIDs from `ambientkit ca`, the built binary in child
// processes (dial pipes real stdin/stdout), a TCP echo behind the gateway.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../testing.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "dist", "bin.js");
let dir: string;
let echo: net.Server;
let echoPort: number;
let serveProc: ChildProcess;
let servePort: number;
const lines: string[] = [];

function files(name: string): string[] {
  return [
    "--cert",
    join(dir, name, "cert-chain.pem"),
    "--key",
    join(dir, name, "key.pem"),
    "--ca",
    join(dir, name, "root-cert.pem"),
  ];
}

function runBin(
  args: string[],
  stdin: Buffer,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile(
      "node",
      [BIN, ...args],
      { encoding: "buffer", timeout: 20_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr: stderr.toString(),
        });
      },
    );
    p.stdin?.end(stdin);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hbone-cli-"));
  expect(
    (
      await runCli([
        "ca",
        "init",
        "--trust-domain",
        "cluster.local",
        "--out",
        join(dir, "ca"),
        "--key-type",
        "ec-p256",
      ])
    ).code,
  ).toBe(0);
  for (const [name, id] of [
    ["client", "spiffe://cluster.local/ns/default/sa/client"],
    ["gw", "spiffe://cluster.local/ns/default/sa/gateway"],
  ] as const) {
    const r = await runCli([
      "ca",
      "issue",
      "--ca",
      join(dir, "ca"),
      "--id",
      id,
      "--out",
      join(dir, name),
    ]);
    expect(r.code, r.stderr).toBe(0);
  }
  echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as net.AddressInfo).port;
  serveProc = spawn(
    "node",
    [BIN, "hbone", "serve", "--listen", "127.0.0.1:0", ...files("gw"), "--output", "json"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  servePort = await new Promise<number>((resolve, reject) => {
    let buf = "";
    serveProc.stdout?.on("data", (c: Buffer) => {
      buf += c.toString();
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const ev = JSON.parse(line) as { event: string; port?: number };
        if (ev.event === "listening" && ev.port) resolve(ev.port);
        nl = buf.indexOf("\n");
      }
    });
    serveProc.once("exit", (code) => reject(new Error(`hbone serve exited with ${code}`)));
  });
}, 60_000);

afterAll(async () => {
  serveProc?.kill("SIGTERM");
  await new Promise<void>((r) => echo?.close(() => r()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("ambientkit hbone", () => {
  it("dial pipes stdin → tunnel → stdout byte-exact through serve, and exits 0", async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const r = await runBin(
      [
        "hbone",
        "dial",
        "--connect",
        `127.0.0.1:${servePort}`,
        "--authority",
        `127.0.0.1:${echoPort}`,
        ...files("client"),
        "--expect-id",
        "spiffe://cluster.local/ns/default/sa/gateway",
        "--header",
        "baggage=k8s.namespace.name=default",
      ],
      data,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    expect(r.stderr).toContain("peer spiffe://cluster.local/ns/default/sa/gateway");
  });

  it("dial exits 1 and prints the status on a non-200", async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await runBin(
      [
        "hbone",
        "dial",
        "--connect",
        `127.0.0.1:${servePort}`,
        "--authority",
        `127.0.0.1:${port}`,
        ...files("client"),
      ],
      Buffer.alloc(0),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("status 503");
  });

  it("dial exits 1 when the server is not the expected identity", async () => {
    const r = await runBin(
      [
        "hbone",
        "dial",
        "--connect",
        `127.0.0.1:${servePort}`,
        "--authority",
        `127.0.0.1:${echoPort}`,
        ...files("client"),
        "--expect-id",
        "spiffe://cluster.local/ns/x/sa/y",
      ],
      Buffer.alloc(0),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ERR_HBONE_PEER_IDENTITY");
  });

  it("exits 2 on bad input", async () => {
    expect(
      (
        await runCli([
          "hbone",
          "dial",
          "--connect",
          "nope",
          "--authority",
          "1.2.3.4:5",
          ...files("client"),
        ])
      ).code,
    ).toBe(2);
    expect(
      (
        await runCli([
          "hbone",
          "dial",
          "--connect",
          "127.0.0.1:1",
          "--authority",
          "bad authority",
          ...files("client"),
        ])
      ).code,
    ).toBe(2);
    expect(
      (
        await runCli([
          "hbone",
          "dial",
          "--connect",
          "127.0.0.1:1",
          "--authority",
          "1.2.3.4:5",
          "--cert",
          join(dir, "missing.pem"),
          "--key",
          "x",
          "--ca",
          "y",
        ])
      ).code,
    ).toBe(2);
    expect((await runCli(["hbone", "serve", "--listen", "127.0.0.1", ...files("gw")])).code).toBe(
      2,
    );
    expect((await runCli(["hbone", "dial"])).code).toBe(2);
  });

  it("rejects an upper-case trust domain or SPIFFE ID instead of lower-casing it (exit 2)", async () => {
    const d = await runCli([
      "hbone",
      "dial",
      "--connect",
      "127.0.0.1:1",
      "--authority",
      "1.2.3.4:5",
      ...files("client"),
      "--expect-id",
      "spiffe://Cluster.Local/ns/default/sa/gateway",
    ]);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain("lowercase");
    const s = await runCli([
      "hbone",
      "serve",
      "--listen",
      "127.0.0.1:0",
      ...files("gw"),
      "--trust-domain",
      "Cluster.Local",
    ]);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain("lowercase");
  });

  it("serve reports each tunnel", async () => {
    await new Promise((r) => setTimeout(r, 100));
    const tunnels = lines
      .map((l) => JSON.parse(l) as { event: string; peer?: string })
      .filter((e) => e.event === "tunnel");
    expect(tunnels.some((t) => t.peer === "spiffe://cluster.local/ns/default/sa/client")).toBe(
      true,
    );
  });

  it("has --help", async () => {
    const r = await runCli(["hbone", "dial", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--expect-id");
  });
});
