// `ambientkit xds watch` against the python-grpcio control plane of @ambientkit/xds's tests (an
// independent gRPC server speaking delta ADS by field number), driven over its stdin/stdout.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "../testing.js";

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, "..", "..", "dist", "bin.js");
const SCRIPT = join(here, "..", "..", "..", "xds", "src", "testdata", "control_plane.py");
const ADDRESS = "type.googleapis.com/istio.workload.Address";
const AUTHZ = "type.googleapis.com/istio.security.Authorization";

type Ev = Record<string, unknown>;

/** Spawns a process and lets the test wait for stdout lines matching a predicate. */
class Lines {
  readonly lines: string[] = [];
  readonly #waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = [];
  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      this.lines.push(line);
      for (const w of [...this.#waiters])
        if (w.match(line)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(line);
        }
    });
  }
  next(match: (l: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no matching line; got ${this.lines.join("\n")}`)),
        timeoutMs,
      );
      this.#waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  }
  event(match: (e: Ev) => boolean): Promise<Ev> {
    return this.next((l) => match(JSON.parse(l) as Ev)).then((l) => JSON.parse(l) as Ev);
  }
}

const procs: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const p of procs.splice(0))
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

async function controlPlane(): Promise<{ cp: Lines; port: number; push: (cmd: Ev) => void }> {
  const proc = spawn("/usr/bin/python3", [SCRIPT], { stdio: "pipe" });
  procs.push(proc);
  const cp = new Lines(proc);
  const port = (await cp.event((e) => e.event === "listening")).port as number;
  return {
    cp,
    port,
    push: (cmd) => proc.stdin.write(`${JSON.stringify({ cmd: "push", ...cmd })}\n`),
  };
}

const workload = (n: number) => ({
  name: `Kubernetes//Pod/default/app-${n}`,
  version: "v1",
  workload: {
    uid: `Kubernetes//Pod/default/app-${n}`,
    name: `app-${n}`,
    namespace: "default",
    addresses: [`10.0.0.${n}`],
    protocol: "HBONE",
  },
});

describe("ambientkit xds watch", () => {
  it("--once prints the initial state as JSON lines and exits 0", async () => {
    const { cp, port, push } = await controlPlane();
    const run = runCli([
      "xds",
      "watch",
      "--address",
      `http://127.0.0.1:${port}`,
      "--once",
      "-o",
      "json",
      "--pod-name",
      "zt-1",
    ]);
    await cp.event((e) => e.event === "request" && e.typeUrl === AUTHZ);
    const req = await cp.event((e) => e.event === "request" && e.typeUrl === ADDRESS);
    expect(req.nodeId).toBe("ztunnel~127.0.0.1~zt-1.istio-system~istio-system.svc.cluster.local");
    push({ typeUrl: ADDRESS, nonce: "1", resources: [workload(1), workload(2)] });
    push({
      typeUrl: AUTHZ,
      nonce: "2",
      resources: [
        {
          name: "default/p",
          version: "1",
          authorization: { name: "p", namespace: "default", action: "DENY" },
        },
      ],
    });
    const r = await run;
    expect(r.code).toBe(0);
    const out = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Ev);
    expect(out.map((o) => `${o.kind} ${o.key}`)).toEqual([
      "workload Kubernetes//Pod/default/app-1",
      "workload Kubernetes//Pod/default/app-2",
      "policy default/p",
    ]);
    expect(out[0]?.value).toMatchObject({
      name: "app-1",
      workloadIps: ["10.0.0.1"],
      protocol: "HBONE",
    });
    expect(out[2]?.value).toMatchObject({ action: "Deny" });
  });

  it("follows changes (YAML) until SIGTERM, and reports a rejected push on stderr", async () => {
    const { cp, port, push } = await controlPlane();
    const watcher = spawn(
      process.execPath,
      [BIN, "xds", "watch", "--address", `http://127.0.0.1:${port}`, "--type", "address"],
      { stdio: "pipe" },
    );
    procs.push(watcher);
    let stderr = "";
    watcher.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const out = new Lines(watcher);
    await cp.event((e) => e.event === "request" && e.typeUrl === ADDRESS);
    expect(cp.lines.some((l) => (JSON.parse(l) as Ev).typeUrl === AUTHZ)).toBe(false);
    push({ typeUrl: ADDRESS, nonce: "1", resources: [workload(1)] });
    await out.next((l) => l === "key: Kubernetes//Pod/default/app-1");
    push({ typeUrl: ADDRESS, nonce: "2", resources: [{ name: "junk", version: "2", hex: "ff" }] });
    await cp.event((e) => e.event === "request" && e.nonce === "2");
    push({
      typeUrl: ADDRESS,
      nonce: "3",
      resources: [],
      removed: ["Kubernetes//Pod/default/app-1"],
    });
    await out.next((l) => l === "op: remove");
    const exited = new Promise<number | null>((r) => watcher.once("exit", (code) => r(code)));
    watcher.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out.lines.filter((l) => l === "---")).toHaveLength(2);
    expect(stderr).toMatch(/rejected \(NACK\) type.googleapis.com\/istio.workload.Address nonce 2/);
  });

  it("--once against a control plane that never answers exits 1 with the reason", async () => {
    const r = await runCli([
      "xds",
      "watch",
      "--address",
      "http://127.0.0.1:1",
      "--once",
      "--timeout",
      "1",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /no complete state from http:\/\/127.0.0.1:1 within 1 s: .*ERR_XDS_CLIENT_STREAM/,
    );
  });

  it("usage errors exit 2", async () => {
    expect(
      (await runCli(["xds", "watch", "--address", "http://127.0.0.1:1", "--type", "cluster"])).code,
    ).toBe(2);
    const r = await runCli(["xds", "watch", "--address", "istiod:15012", "--once"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/https:\/\//);
    expect((await runCli(["xds", "watch"])).code).toBe(2);
  });
});
