import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";
import { loadCaDirectory, writeCaDirectory, writeWorkloadFiles } from "./ca-files.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-cafiles-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("cacerts directory", () => {
  it("writes the four files atomically (key 0600) and loads them back with the checks", async () => {
    const root = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const inter = await root.createIntermediate({ commonName: "istiod" });
    const out = join(dir, "cacerts");
    const written = await writeCaDirectory(out, inter);
    expect(readdirSync(out).sort()).toEqual([
      "ca-cert.pem",
      "ca-key.pem",
      "cert-chain.pem",
      "root-cert.pem",
    ]);
    expect(written).toHaveLength(4);
    expect(statSync(join(out, "ca-key.pem")).mode & 0o777).toBe(0o600);
    const loaded = await loadCaDirectory(out);
    expect(loaded.caCertPem).toBe(inter.caCertPem);
    expect(loaded.trustDomain).toBe("cluster.local");
    const issued = await loaded.issue("spiffe://cluster.local/ns/a/sa/b");
    const wl = join(dir, "workload");
    await writeWorkloadFiles(wl, issued);
    expect(statSync(join(wl, "key.pem")).mode & 0o777).toBe(0o600);
    const ok = execFileSync(
      "openssl",
      [
        "verify",
        "-CAfile",
        join(wl, "root-cert.pem"),
        "-untrusted",
        join(wl, "cert-chain.pem"),
        join(wl, "cert-chain.pem"),
      ],
      { encoding: "utf8" },
    );
    expect(ok).toContain("OK");
  });

  it("names the missing or inconsistent file", async () => {
    const empty = join(dir, "empty");
    await expect(loadCaDirectory(empty)).rejects.toMatchObject({
      code: "ERR_IDENTITY_CA_CONFIG",
      message: expect.stringContaining("ca-cert.pem"),
    });
    const a = await CertificateAuthority.createRoot({ trustDomain: "a", keyAlgorithm: "ec-p256" });
    const b = await CertificateAuthority.createRoot({ trustDomain: "b", keyAlgorithm: "ec-p256" });
    const mixed = join(dir, "mixed");
    await writeCaDirectory(mixed, a);
    writeFileSync(join(mixed, "ca-key.pem"), (await b.toCacerts())["ca-key.pem"]);
    await expect(loadCaDirectory(mixed)).rejects.toMatchObject({
      message: expect.stringContaining("the cert does not match the key"),
    });
  });
});
