import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";
import { createCsr, parseCsr } from "./csr.js";
import { exportPublicKeyDer, generateKeyPair, type KeyAlgorithm } from "./keys.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-csr-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ID = "spiffe://cluster.local/ns/default/sa/app";

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

describe("CSRs", () => {
  it("builds ztunnel's profile: empty subject, one critical URI SAN, P-256 + SHA-256", async () => {
    const key = await generateKeyPair();
    const pem = await createCsr(ID, key);
    const text = openssl(["req", "-noout", "-text", "-verify"], pem);
    expect(text).toMatch(/Subject: ?\n/);
    expect(text).toContain(
      `X509v3 Subject Alternative Name: critical\n                    URI:${ID}\n`,
    );
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text).toContain("NIST CURVE: P-256");
    const parsed = await parseCsr(pem);
    expect(parsed).toMatchObject({ subject: "", hasCommonName: false, uriSans: [ID], dnsSans: [] });
    expect(parsed.key).toEqual({ type: "ECDSA", curve: "P-256" });
    expect(
      Buffer.from(parsed.publicKeyDer).equals(Buffer.from(await exportPublicKeyDer(key))),
    ).toBe(true);
  });

  it("signs with each key type and openssl verifies the self-signature", async () => {
    const sigs: Partial<Record<KeyAlgorithm, string>> = {
      "ec-p384": "ecdsa-with-SHA384",
      "rsa-2048": "sha256WithRSAEncryption",
      ed25519: "ED25519",
    };
    for (const [alg, sig] of Object.entries(sigs)) {
      const pem = await createCsr(ID, await generateKeyPair(alg as KeyAlgorithm));
      const out = execFileSync("openssl", ["req", "-noout", "-text", "-verify"], {
        input: pem,
        encoding: "utf8",
        stdio: ["pipe", "pipe", "pipe"],
      });
      expect(out).toContain(`Signature Algorithm: ${sig}`);
      expect((await parseCsr(pem)).uriSans).toEqual([ID]);
    }
  });

  it("parses CSRs made by `openssl req` (P-256 and RSA) and checks their signatures", async () => {
    const ec = join(dir, "ec.csr");
    openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(dir, "ec.key"),
      "-subj",
      "/",
      "-addext",
      `subjectAltName=critical,URI:${ID}`,
      "-out",
      ec,
    ]);
    const p = await parseCsr(readFileSync(ec, "utf8"));
    expect(p).toMatchObject({ subject: "", uriSans: [ID], key: { type: "ECDSA", curve: "P-256" } });
    const rsa = join(dir, "rsa.csr");
    openssl([
      "req",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(dir, "rsa.key"),
      "-subj",
      "/O=cluster.local/CN=app",
      "-addext",
      "subjectAltName=DNS:app.default.svc",
      "-out",
      rsa,
    ]);
    const r = await parseCsr(readFileSync(rsa, "utf8"));
    expect(r).toMatchObject({
      hasCommonName: true,
      dnsSans: ["app.default.svc"],
      key: { type: "RSA", bits: 2048 },
    });
    expect(r.signatureAlgorithm).toEqual({ name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" });
  });

  it("rejects tampered, truncated, non-CSR and weak-key input with ERR_IDENTITY_CSR", async () => {
    const pem = await createCsr(ID, await generateKeyPair());
    const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
    // flip one bit inside the signed SAN: the signature no longer matches
    const at = Buffer.from(der).indexOf(Buffer.from("spiffe://"));
    const tampered = der.slice();
    tampered[at + 10] = (tampered[at + 10] as number) ^ 0x01;
    await expect(parseCsr(tampered)).rejects.toMatchObject({
      code: "ERR_IDENTITY_CSR",
      message: expect.stringContaining("signature does not verify"),
    });
    await expect(parseCsr(der.slice(0, 40))).rejects.toMatchObject({ code: "ERR_IDENTITY_CSR" });
    await expect(parseCsr("hello")).rejects.toMatchObject({ code: "ERR_IDENTITY_CSR" });
    const weak = join(dir, "weak.csr");
    openssl([
      "req",
      "-new",
      "-newkey",
      "rsa:1024",
      "-nodes",
      "-keyout",
      join(dir, "weak.key"),
      "-subj",
      "/",
      "-out",
      weak,
    ]);
    await expect(parseCsr(readFileSync(weak, "utf8"))).rejects.toMatchObject({
      code: "ERR_IDENTITY_CSR",
      message: expect.stringContaining("1024 bits"),
    });
    await expect(createCsr("spiffe://Bad/x", await generateKeyPair())).rejects.toMatchObject({
      code: "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
    });
  });

  // One rule for CSR keys (istiod parses any NIST curve Go knows and only checks the signature):
  // P-521 is accepted and certified; every refusal names the accepted set, P-521 included.
  it("certifies P-521 CSRs and names P-256, P-384 and P-521 when refusing another curve", async () => {
    const csrFor = (curve: string): string => {
      const out = join(dir, `${curve}.csr`);
      openssl([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        `ec_paramgen_curve:${curve}`,
        "-nodes",
        "-keyout",
        join(dir, `${curve}.key`),
        "-subj",
        "/",
        "-out",
        out,
      ]);
      return readFileSync(out, "utf8");
    };
    const p521 = csrFor("P-521");
    expect((await parseCsr(p521)).key).toEqual({ type: "ECDSA", curve: "P-521" });
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const issued = await ca.sign(p521, { identity: ID });
    const leaf = join(dir, "p521-leaf.pem");
    const root = join(dir, "p521-root.pem");
    execFileSync("sh", ["-c", `cat > ${leaf}`], { input: issued.certChainPem });
    execFileSync("sh", ["-c", `cat > ${root}`], { input: issued.rootCertPem });
    expect(openssl(["verify", "-CAfile", root, leaf])).toContain("OK");
    expect(openssl(["x509", "-in", leaf, "-noout", "-text"])).toContain("NIST CURVE: P-521");
    expect(openssl(["x509", "-in", leaf, "-noout", "-pubkey"])).toBe(
      openssl(["req", "-in", join(dir, "P-521.csr"), "-noout", "-pubkey"]),
    );

    for (const [curve, shown] of [
      ["secp256k1", "secp256k1"],
      ["P-224", "P-224"],
      ["brainpoolP256r1", "brainpoolP256r1"],
    ] as const) {
      const err = await parseCsr(csrFor(curve)).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      expect(err?.code, curve).toBe("ERR_IDENTITY_CSR");
      expect(err?.message, curve).toContain(`unsupported CSR key curve ${shown}`);
      expect(err?.message, curve).toMatch(/P-256 \(ztunnel\), P-384 or P-521/);
    }
    await expect(ca.sign(csrFor("secp256k1"), { identity: ID })).rejects.toMatchObject({
      code: "ERR_IDENTITY_CSR",
      message: expect.stringContaining("P-521"),
    });
  });
});
