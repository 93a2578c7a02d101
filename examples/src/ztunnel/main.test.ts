// The reference ztunnel as a process (dist/ztunnel/main.js), configured by the environment as
// ztunnel is: from a control plane (XDS_ADDRESS) or a LOCAL_XDS file.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import { LocalControlPlane } from "@ambientkit/xds";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { httpRequest } from "../apps/echo.js";
import { parseScenario } from "../mesh/config.js";

const MAIN = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "dist",
  "ztunnel",
  "main.js",
);
const dir = mkdtempSync(join(tmpdir(), "ztunnel-main-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// This file's own loopback range: 127.0.131.x.
const LOCAL_XDS = `workloads:
  - uid: c//Pod/m/server
    name: server
    namespace: m
    serviceAccount: server
    trustDomain: cluster.local
    workloadIps: ["127.0.131.2"]
    protocol: HBONE
    node: b
    services: {}
services: []
policies: []
`;

const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0))
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

function start(env: Record<string, string>): {
  proc: ChildProcess;
  first: Promise<Record<string, string>>;
  stderr: () => string;
} {
  const proc = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      NODE_NAME: "b",
      AMBIENTKIT_EPHEMERAL_PORTS: "true",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  procs.push(proc);
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const first = new Promise<Record<string, string>>((resolve, reject) => {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once("line", (l) =>
      resolve(JSON.parse(l) as Record<string, string>),
    );
    proc.once("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return { proc, first, stderr: () => err };
}

const get = (address: string, path: string) => {
  const i = address.lastIndexOf(":");
  return httpRequest({ host: address.slice(0, i), port: Number(address.slice(i + 1)), path });
};

/** A local istiod stand-in serving LOCAL_XDS over xDS, with its own CA service. */
async function startControlPlane(): Promise<LocalControlPlane> {
  const ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  return LocalControlPlane.start(parseScenario({ file: "m.yaml", text: LOCAL_XDS }).local, { ca });
}

describe("ztunnel/main.js", () => {
  it("joins a control plane from XDS_ADDRESS: ready after the first push, config_dump from xDS, SIGTERM exits 0", async () => {
    const cp = await startControlPlane();
    try {
      const z = start({
        XDS_ADDRESS: cp.address,
        INSTANCE_IP: "127.0.131.250",
        POD_NAME: "ztunnel-b",
        POD_NAMESPACE: "istio-system",
      });
      const addrs = await z.first;
      expect((await get(addrs.readiness ?? "", "/healthz/ready")).status).toBe(200);
      const dump = JSON.parse((await get(addrs.admin ?? "", "/config_dump")).body) as {
        workloads: { name: string }[];
        certificates: { identity: string; state: string }[];
      };
      expect(dump.workloads.map((w) => w.name)).toEqual(["server"]);
      // The certificate came from the control plane's CA service (CA_ADDRESS defaults to XDS_ADDRESS).
      await expect
        .poll(
          async () =>
            (JSON.parse((await get(addrs.admin ?? "", "/config_dump")).body) as typeof dump)
              .certificates,
        )
        .toEqual([
          {
            identity: "spiffe://cluster.local/ns/m/sa/server",
            state: "Available",
            certChain: expect.any(Array),
            caCert: expect.any(Array),
          },
        ]);
      const metrics = (await get(addrs.metrics ?? "", "/metrics")).body;
      expect(metrics).toMatch(
        /istio_xds_message_total\{url="type.googleapis.com\/istio.workload.Address"\} 1/,
      );
      const exited = new Promise<number | null>((r) => z.proc.once("exit", (c) => r(c)));
      z.proc.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      await cp.close();
    }
  });

  it("runs from LOCAL_XDS_PATH; a broken file exits 2 naming file and line", async () => {
    const good = join(dir, "good.yaml");
    writeFileSync(good, LOCAL_XDS);
    const z = start({ LOCAL_XDS_PATH: good });
    const addrs = await z.first;
    expect((await get(addrs.readiness ?? "", "/healthz/ready")).status).toBe(200);
    z.proc.kill("SIGTERM");

    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, LOCAL_XDS.replace("protocol: HBONE", "protocol: HBONE\n    bogus: 1"));
    const b = start({ LOCAL_XDS_PATH: bad });
    await expect(b.first).rejects.toThrow(/exited 2/);
    expect(b.stderr()).toMatch(/bad\.yaml:\d+: /);
    const n = start({});
    await expect(n.first).rejects.toThrow(/exited 2.*set XDS_ADDRESS .* or LOCAL_XDS_PATH/s);
    const flag = start({ LOCAL_XDS_PATH: good, SHRINK_HEAP: "0" });
    await expect(flag.first).rejects.toThrow(/exited 2.*SHRINK_HEAP=0: expected true or false/s);
  });

  it("a start that fails after the control plane connected closes it and exits 1 (no hang)", async () => {
    const cp = await startControlPlane();
    try {
      // the in-pod manager refuses this path only once the first config is in, inside the start
      const z = start({
        XDS_ADDRESS: cp.address,
        INSTANCE_IP: "127.0.131.251",
        POD_NAME: "ztunnel-c",
        POD_NAMESPACE: "istio-system",
        PROXY_MODE: "shared",
        INPOD_UDS: `/run/${"x".repeat(120)}.sock`,
      });
      await expect(z.first).rejects.toThrow(/exited 1.*cannot start: INPOD_UDS path is longer/s);
    } finally {
      await cp.close();
    }
  }, 30_000);
});
