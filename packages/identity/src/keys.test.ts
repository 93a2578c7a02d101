import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  KEY_ALGORITHMS,
  keyAlgorithmOf,
  samePublicKey,
} from "./keys.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

const opensslName: Record<string, RegExp> = {
  "ec-p256": /Private-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/,
  "ec-p384": /Private-Key: \(384 bit\)[\s\S]*NIST CURVE: P-384/,
  "rsa-2048": /Private-Key: \(2048 bit, 2 primes\)/,
  "rsa-3072": /Private-Key: \(3072 bit, 2 primes\)/,
  "rsa-4096": /Private-Key: \(4096 bit, 2 primes\)/,
  ed25519: /ED25519 Private-Key/,
};

describe("keys", () => {
  it("generates every algorithm as PKCS#8 PEM that openssl reads and that round-trips", async () => {
    for (const alg of KEY_ALGORITHMS) {
      const pair = await generateKeyPair(alg);
      expect(keyAlgorithmOf(pair.privateKey)).toBe(alg);
      const pem = await exportPrivateKeyPem(pair);
      expect(pem.startsWith("-----BEGIN PRIVATE KEY-----\n")).toBe(true);
      expect(openssl(["pkey", "-noout", "-text"], pem)).toMatch(opensslName[alg] as RegExp);
      // openssl derives the same public key from our private key
      expect(openssl(["pkey", "-pubout"], pem)).toBe(await exportPublicKeyPem(pair));
      const back = await importPrivateKeyPem(pem);
      expect(back.algorithm).toBe(alg);
      expect(await samePublicKey(back.publicKey, pair.publicKey)).toBe(true);
    }
  }, 30_000);

  it("defaults to ECDSA P-256 (ztunnel)", async () => {
    expect((await generateKeyPair()).algorithm).toBe("ec-p256");
  });

  it("imports keys made by openssl, including SEC 1 and PKCS#1 as Go's istiod writes them", async () => {
    const sec1 = openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
    expect(sec1).toContain("BEGIN EC PRIVATE KEY");
    const fromSec1 = await importPrivateKeyPem(sec1);
    expect(fromSec1.algorithm).toBe("ec-p256");
    expect(openssl(["ec", "-pubout"], sec1)).toBe(await exportPublicKeyPem(fromSec1));
    const rsaPath = join(dir, "rsa.key");
    openssl(["genrsa", "-traditional", "-out", rsaPath, "2048"]);
    const pkcs1 = readFileSync(rsaPath, "utf8");
    expect(pkcs1).toContain("BEGIN RSA PRIVATE KEY");
    const fromPkcs1 = await importPrivateKeyPem(pkcs1);
    expect(fromPkcs1.algorithm).toBe("rsa-2048");
    expect(openssl(["rsa", "-pubout"], pkcs1)).toBe(await exportPublicKeyPem(fromPkcs1));
    const ed = openssl(["genpkey", "-algorithm", "ed25519"]);
    expect((await importPrivateKeyPem(ed)).algorithm).toBe("ed25519");
  });

  it("rejects unsupported or malformed keys with ERR_IDENTITY_KEY / ERR_IDENTITY_PEM", async () => {
    const k256 = openssl([
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:secp256k1",
    ]);
    await expect(importPrivateKeyPem(k256)).rejects.toMatchObject({
      code: "ERR_IDENTITY_KEY",
      message: expect.stringContaining("secp256k1"),
    });
    const small = join(dir, "small.key");
    openssl(["genrsa", "-out", small, "1024"]);
    await expect(importPrivateKeyPem(readFileSync(small, "utf8"))).rejects.toMatchObject({
      code: "ERR_IDENTITY_KEY",
      message: expect.stringContaining("1024"),
    });
    const encPath = join(dir, "enc.key");
    writeFileSync(join(dir, "pass"), "secret");
    openssl([
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-aes256",
      "-pass",
      `file:${join(dir, "pass")}`,
      "-out",
      encPath,
    ]);
    await expect(importPrivateKeyPem(readFileSync(encPath, "utf8"))).rejects.toMatchObject({
      code: "ERR_IDENTITY_PEM",
    });
    await expect(
      importPrivateKeyPem("-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n"),
    ).rejects.toMatchObject({ code: "ERR_IDENTITY_KEY" });
    const nonExtractable = await generateKeyPair("ec-p256", { extractable: false });
    await expect(exportPrivateKeyPem(nonExtractable)).rejects.toMatchObject({
      code: "ERR_IDENTITY_KEY",
    });
  });
});
