// The Istio CA client against an independent CA: python-grpcio speaking IstioCertificateService by
// field number, signing our CSR with the openssl CLI.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificateManager, decodePemCertificates, parseCertificate } from "@ambientkit/identity";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { IstioCaClient } from "./ca-client.js";
import { ControlPlane, opensslRoot } from "./testing.testutil.js";

const dir = mkdtempSync(join(tmpdir(), "xds-ca-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const id = "spiffe://cluster.local/ns/default/sa/app";

beforeAll(() => {
  for (const name of ["mesh-root", "other-root"]) opensslRoot(dir, name);
});

const planes: ControlPlane[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

async function ca(
  opts: { root?: string; identity?: string; wrongChain?: boolean; token?: string } = {},
): Promise<ControlPlane> {
  const cp = await ControlPlane.start(opts.token !== undefined ? ["--token", opts.token] : []);
  planes.push(cp);
  const root = opts.root ?? "mesh-root";
  cp.send({
    cmd: "ca",
    ca: {
      cert: join(dir, `${root}.pem`),
      key: join(dir, `${root}.key`),
      identity: opts.identity ?? id,
      wrongChain: opts.wrongChain ?? false,
    },
  });
  await cp.next((e) => e.event === "ack" && e.cmd === "ca");
  return cp;
}

describe("IstioCaClient", () => {
  it("sends a P-256 CSR with the TTL, ImpersonatedIdentity, clusterid and token, and verifies the chain", async () => {
    const cp = await ca({ token: "t0k" });
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "t0k\n");
    const client = new IstioCaClient({
      address: `http://127.0.0.1:${cp.port}`,
      tokenFile,
      clusterId: "cluster-7",
      ttlSeconds: 2 * 86_400,
      trustedRoots: readFileSync(join(dir, "mesh-root.pem"), "utf8"),
    });
    const cert = await client.fetchCertificate(id);
    const csr = await cp.next((e) => e.event === "csr");
    expect(csr).toMatchObject({
      authorization: "Bearer t0k",
      ttl: 172_800,
      clusterid: "cluster-7",
      metadata: { ImpersonatedIdentity: id },
    });
    expect(cert.identity).toBe(id);
    expect(cert.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(cert.rootCertPem).toBe(readFileSync(join(dir, "mesh-root.pem"), "utf8"));
    const leaf = parseCertificate(decodePemCertificates(cert.certChainPem)[0] as Uint8Array);
    expect(cert.notAfter.getTime()).toBe(leaf.notAfter.getTime());
    // The key in the certificate is the one we hold: openssl agrees, independently.
    writeFileSync(join(dir, "leaf.pem"), cert.certChainPem);
    writeFileSync(join(dir, "leaf.key"), cert.privateKeyPem);
    const pubFromCert = execFileSync("openssl", ["x509", "-in", "leaf.pem", "-noout", "-pubkey"], {
      cwd: dir,
      encoding: "utf8",
    });
    const pubFromKey = execFileSync("openssl", ["pkey", "-in", "leaf.key", "-pubout"], {
      cwd: dir,
      encoding: "utf8",
    });
    expect(pubFromCert).toBe(pubFromKey);
    expect(
      execFileSync("openssl", ["verify", "-CAfile", "mesh-root.pem", "leaf.pem"], {
        cwd: dir,
        encoding: "utf8",
      }),
    ).toMatch(/OK/);
  });

  it("plugs into CertificateManager: the first certificate comes from the CA, refresh at half-life", async () => {
    const cp = await ca();
    const client = new IstioCaClient({ address: `http://127.0.0.1:${cp.port}` });
    const manager = new CertificateManager({ fetch: () => client.fetchCertificate(id) });
    try {
      const cert = await manager.ready();
      const life = cert.notAfter.getTime() - cert.notBefore.getTime();
      expect(manager.refreshAt(cert).getTime()).toBe(
        cert.notBefore.getTime() + Math.floor(life / 2),
      );
      expect(manager.pending).toBe(true);
    } finally {
      manager.close();
    }
  });

  it("refuses what it cannot trust, with ERR_XDS_CLIENT_CA and nothing returned", async () => {
    // A chain with no leaf (the root alone).
    let cp = await ca({ wrongChain: true });
    await expect(
      new IstioCaClient({ address: `http://127.0.0.1:${cp.port}` }).fetchCertificate(id),
    ).rejects.toMatchObject({
      code: "ERR_XDS_CLIENT_CA",
      message: expect.stringMatching(/leaf first and the root last/),
    });
    // Issued for another identity than asked (a CA ignoring ImpersonatedIdentity).
    cp = await ca({ identity: "spiffe://cluster.local/ns/other/sa/x" });
    await expect(
      new IstioCaClient({
        address: `http://127.0.0.1:${cp.port}`,
        impersonate: false,
      }).fetchCertificate(id),
    ).rejects.toMatchObject({
      code: "ERR_XDS_CLIENT_CA",
      message: expect.stringMatching(/did not find expected SAN/),
    });
    // Signed by a root we do not trust.
    cp = await ca({ root: "other-root" });
    await expect(
      new IstioCaClient({
        address: `http://127.0.0.1:${cp.port}`,
        trustedRoots: readFileSync(join(dir, "mesh-root.pem"), "utf8"),
      }).fetchCertificate(id),
    ).rejects.toMatchObject({
      code: "ERR_XDS_CLIENT_CA",
      message: expect.stringMatching(/trusted mesh roots/),
    });
  });

  it("a refused or missing token is a clear typed error", async () => {
    const cp = await ca({ token: "right" });
    const tokenFile = join(dir, "wrong-token");
    writeFileSync(tokenFile, "wrong");
    await expect(
      new IstioCaClient({ address: `http://127.0.0.1:${cp.port}`, tokenFile }).fetchCertificate(id),
    ).rejects.toMatchObject({
      code: "ERR_XDS_CLIENT_UNAUTHENTICATED",
    });
    await expect(
      new IstioCaClient({
        address: `http://127.0.0.1:${cp.port}`,
        tokenFile: join(dir, "absent"),
      }).fetchCertificate(id),
    ).rejects.toMatchObject({ code: "ERR_XDS_CLIENT_TOKEN" });
    await expect(
      new IstioCaClient({ address: `http://127.0.0.1:${cp.port}` }).fetchCertificate(
        "not-a-spiffe-id",
      ),
    ).rejects.toThrow();
  });

  it("rejects bad configuration at construction", () => {
    expect(() => new IstioCaClient({ address: "istiod" })).toThrow(
      expect.objectContaining({ code: "ERR_XDS_CLIENT_CONFIG" }),
    );
    expect(() => new IstioCaClient({ address: "https://istiod:15012" })).toThrow(/rootCert/);
    expect(() => new IstioCaClient({ address: "http://127.0.0.1:1", ttlSeconds: -1 })).toThrow(
      /ttlSeconds/,
    );
  });
});
