// The CA checked by an independent implementation: every chain goes through `openssl verify`,
// every profile detail is read back from `openssl x509 -text`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CertificateAuthority,
  formatDuration,
  MAX_WORKLOAD_CERT_TTL_MS,
  parseDuration,
} from "./ca.js";
import { createCsr } from "./csr.js";
import { IdentityError } from "./errors.js";
import { generateKeyPair } from "./keys.js";
import { decodePemCertificates } from "./pem.js";

const ID = "spiffe://cluster.local/ns/default/sa/app";
let dir: string;
let n = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ambientkit-ca-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(text: string): string {
  const path = join(dir, `f${n++}.pem`);
  writeFileSync(path, text);
  return path;
}

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function text(certPem: string): string {
  return openssl(["x509", "-in", file(certPem), "-noout", "-text"]);
}

/** `openssl verify` of a leaf against roots with untrusted intermediates, optionally at a time. */
function verify(rootPem: string, leafPem: string, intermediatesPem?: string, at?: Date): string {
  const args = ["verify", "-x509_strict", "-CAfile", file(rootPem)];
  if (intermediatesPem) args.push("-untrusted", file(intermediatesPem));
  if (at) args.push("-attime", String(Math.floor(at.getTime() / 1000)));
  args.push(file(leafPem));
  return openssl(args);
}

/** The extension block of `openssl x509 -text`, one "Name: critical?" header per extension. */
function extension(textOut: string, name: string): { critical: boolean; value: string } {
  const lines = textOut.split("\n");
  const i = lines.findIndex((l) => l.trim().startsWith(`${name}:`));
  if (i < 0) throw new Error(`extension ${name} not found in:\n${textOut}`);
  return {
    critical: (lines[i] as string).includes("critical"),
    value: (lines[i + 1] as string).trim(),
  };
}

function countExtensions(textOut: string): number {
  return textOut
    .split("\n")
    .filter((l) => /^\s{12}(X509v3 |Authority|Subject)[^:]*:( critical)?\s*$/.test(l)).length;
}

const fixedNow = new Date("2026-03-01T12:00:00.000Z");
const clock = (): Date => fixedNow;

let ecRoot: CertificateAuthority;
beforeAll(async () => {
  ecRoot = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
    now: clock,
  });
});

describe("self-signed root (istiod defaults)", () => {
  it("is RSA 2048, O=<trust domain>, keyCertSign only, CA:TRUE, 10 years, no SAN", async () => {
    const root = await CertificateAuthority.createRoot({ trustDomain: "example.org", now: clock });
    const t = text(root.caCertPem);
    expect(t).toMatch(/Subject: O ?= ?example\.org\n/);
    expect(t).toMatch(/Issuer: O ?= ?example\.org\n/);
    expect(t).toContain("Public-Key: (2048 bit)");
    expect(t).toContain("Signature Algorithm: sha256WithRSAEncryption");
    expect(extension(t, "X509v3 Key Usage")).toEqual({ critical: true, value: "Certificate Sign" });
    expect(extension(t, "X509v3 Basic Constraints")).toEqual({ critical: true, value: "CA:TRUE" });
    expect(t).not.toContain("Subject Alternative Name");
    expect(t).toContain("Not Before: Mar  1 12:00:00 2026 GMT");
    // 3650 days later
    expect(t).toContain("Not After : Feb 27 12:00:00 2036 GMT");
    expect(verify(root.rootCertPem, root.caCertPem, undefined, fixedNow)).toContain("OK");
    expect(root.trustDomain).toBe("example.org");
    expect(root.keyAlgorithm).toBe("rsa-2048");
  });

  it("ECDSA option signs with ecdsa-with-SHA256 (P-384 with SHA384)", async () => {
    expect(text(ecRoot.caCertPem)).toContain("Signature Algorithm: ecdsa-with-SHA256");
    const p384 = await CertificateAuthority.createRoot({
      trustDomain: "td",
      keyAlgorithm: "ec-p384",
    });
    expect(text(p384.caCertPem)).toContain("Signature Algorithm: ecdsa-with-SHA384");
  });

  it("rejects a bad trust domain with the SPIFFE rule", async () => {
    await expect(
      CertificateAuthority.createRoot({ trustDomain: "Cluster.Local" }),
    ).rejects.toMatchObject({
      code: "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
    });
  });
});

describe("signing a CSR with the Istio leaf profile", () => {
  it("issues exactly istiod's workload profile for a ztunnel P-256 CSR", async () => {
    const key = await generateKeyPair("ec-p256");
    const csr = await createCsr(ID, key);
    const serial = new Uint8Array(16).fill(0xab);
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
      now: clock,
      randomBytes: (k) => serial.slice(0, k),
    });
    const issued = await ca.sign(csr, { identity: ID });
    const t = text(issued.certificatePem);
    expect(t).toMatch(/Subject: ?\n/);
    expect(extension(t, "X509v3 Subject Alternative Name")).toEqual({
      critical: true,
      value: `URI:${ID}`,
    });
    expect(extension(t, "X509v3 Key Usage")).toEqual({
      critical: true,
      value: "Digital Signature, Key Encipherment",
    });
    expect(extension(t, "X509v3 Extended Key Usage")).toEqual({
      critical: false,
      value: "TLS Web Server Authentication, TLS Web Client Authentication",
    });
    expect(extension(t, "X509v3 Basic Constraints")).toEqual({ critical: true, value: "CA:FALSE" });
    expect(extension(t, "X509v3 Authority Key Identifier").critical).toBe(false);
    expect(countExtensions(t)).toBe(5);
    // 128-bit serial from the injected randomness; high bit set → encoded positive.
    expect(t).toContain(`Serial Number:\n            ${"ab:".repeat(15)}ab\n`);
    expect(t).not.toContain("Negative");
    expect(issued.serialNumber).toBe("ab".repeat(16));
    // notBefore backdated 2 minutes, 24 h default TTL.
    expect(t).toContain("Not Before: Mar  1 11:58:00 2026 GMT");
    expect(t).toContain("Not After : Mar  2 12:00:00 2026 GMT");
    expect(issued.notAfter.getTime() - fixedNow.getTime()).toBe(24 * 3600_000);
    expect(verify(issued.rootCertPem, issued.certificatePem, undefined, fixedNow)).toContain("OK");
    // purpose checks: usable as TLS client and server certificate
    for (const purpose of ["sslclient", "sslserver"]) {
      const out = openssl([
        "verify",
        "-purpose",
        purpose,
        "-attime",
        String(fixedNow.getTime() / 1000),
        "-CAfile",
        file(issued.rootCertPem),
        file(issued.certificatePem),
      ]);
      expect(out).toContain("OK");
    }
    expect(issued.chain).toEqual([issued.certificatePem, issued.rootCertPem]);
  });

  it("takes the SAN from the caller, ignoring the CSR's SANs and subject (CN → dual-use CN)", async () => {
    const key = await generateKeyPair("ec-p256");
    const csrPath = join(dir, "other.csr");
    const keyPath = join(dir, "other.key");
    openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      keyPath,
      "-subj",
      "/CN=evil/O=attacker",
      "-addext",
      "subjectAltName=URI:spiffe://cluster.local/ns/kube-system/sa/admin,DNS:evil.example",
      "-out",
      csrPath,
    ]);
    const issued = await ecRoot.sign(readFileSync(csrPath, "utf8"), { identity: ID });
    const t = text(issued.certificatePem);
    expect(extension(t, "X509v3 Subject Alternative Name").value).toBe(`URI:${ID}`);
    expect(t).not.toContain("admin");
    expect(t).not.toContain("evil");
    expect(t).not.toContain("attacker");
    expect(t).toMatch(new RegExp(`Subject: CN ?= ?${ID.replace(/[/.]/g, "\\$&")}\\n`));
    expect(verify(issued.rootCertPem, issued.certificatePem, undefined, fixedNow)).toContain("OK");
    void key;
  });

  it("signs CSRs made by `openssl req` with P-256 and RSA-2048 keys", async () => {
    for (const newkey of [["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], ["rsa:2048"]]) {
      const csrPath = join(dir, `req${n++}.csr`);
      openssl([
        "req",
        "-new",
        "-newkey",
        ...newkey,
        "-nodes",
        "-keyout",
        join(dir, `req${n++}.key`),
        "-subj",
        "/",
        "-out",
        csrPath,
      ]);
      const issued = await ecRoot.sign(readFileSync(csrPath, "utf8"), { identity: ID });
      expect(verify(issued.rootCertPem, issued.certificatePem, undefined, fixedNow)).toContain(
        "OK",
      );
      const t = text(issued.certificatePem);
      expect(t).toContain(newkey[0] === "ec" ? "NIST CURVE: P-256" : "Public-Key: (2048 bit)");
      // the certified key is the CSR's key
      const csrPub = openssl(["req", "-in", csrPath, "-noout", "-pubkey"]);
      const certPub = openssl(["x509", "-in", file(issued.certificatePem), "-noout", "-pubkey"]);
      expect(certPub).toBe(csrPub);
    }
  });

  it("rejects a CSR whose signature does not verify", async () => {
    const key = await generateKeyPair("ec-p256");
    const csr = await createCsr(ID, key);
    const der = decodePemCertificatesLike(csr);
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0x01; // flip a signature bit
    await expect(ecRoot.sign(der, { identity: ID })).rejects.toMatchObject({
      code: "ERR_IDENTITY_CSR",
    });
  });

  it("TTL: default 24 h for none or ≤ 0, error above 90 days (not a clamp), clamp to the signer", async () => {
    const csr = await createCsr(ID, await generateKeyPair("ec-p256"));
    for (const ttlMs of [0, -5]) {
      const issued = await ecRoot.sign(csr, { identity: ID, ttlMs });
      expect(issued.notAfter.getTime() - fixedNow.getTime()).toBe(24 * 3600_000);
    }
    const week = await ecRoot.sign(csr, { identity: ID, ttlMs: 7 * 24 * 3600_000 });
    expect(week.notAfter.toISOString()).toBe("2026-03-08T12:00:00.000Z");
    const max = await ecRoot.sign(csr, { identity: ID, ttlMs: MAX_WORKLOAD_CERT_TTL_MS });
    expect(max.notAfter.getTime() - fixedNow.getTime()).toBe(MAX_WORKLOAD_CERT_TTL_MS);
    const err = await ecRoot
      .sign(csr, { identity: ID, ttlMs: MAX_WORKLOAD_CERT_TTL_MS + 1000 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect(err.code).toBe("ERR_IDENTITY_CA_TTL");
    expect(err.message).toContain(
      "requested TTL 2160h0m1s is greater than the max allowed TTL 2160h0m0s",
    );
    // an intermediate that lives 1 hour caps a 24 h leaf at its own notAfter
    const shortInter = await ecRoot.createIntermediate({ ttlMs: 3600_000 });
    const clamped = await shortInter.sign(csr, { identity: ID });
    expect(clamped.notAfter.getTime()).toBe(shortInter.notAfter.getTime());
    expect(clamped.notAfter.toISOString()).toBe("2026-03-01T13:00:00.000Z");
  });

  it("refuses to sign once the signing certificate has expired, and refuses root IDs", async () => {
    let now = fixedNow;
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "td",
      keyAlgorithm: "ec-p256",
      ttlMs: 3600_000,
      now: () => now,
    });
    const csr = await createCsr("spiffe://td/ns/a/sa/b", await generateKeyPair());
    now = new Date(fixedNow.getTime() + 2 * 3600_000);
    await expect(ca.sign(csr, { identity: "spiffe://td/ns/a/sa/b" })).rejects.toMatchObject({
      code: "ERR_IDENTITY_CA_SIGN",
      message: expect.stringContaining(
        "signing certificate has expired at 2026-03-01T13:00:00.000Z",
      ),
    });
    await expect(ecRoot.sign(csr, { identity: "spiffe://td" })).rejects.toMatchObject({
      code: "ERR_IDENTITY_CA_SIGN",
    });
    await expect(ecRoot.sign(csr, { identity: "spiffe://TD/x" })).rejects.toBeInstanceOf(
      IdentityError,
    );
  });
});

describe("every CA key type signs leaves openssl accepts", () => {
  it("P-384, Ed25519 and RSA-3072 signers; UTCTime before 2050, GeneralizedTime after", async () => {
    const expected: Record<string, string> = {
      "ec-p384": "ecdsa-with-SHA384",
      ed25519: "ED25519",
      "rsa-3072": "sha256WithRSAEncryption",
    };
    for (const [alg, sig] of Object.entries(expected)) {
      const ca = await CertificateAuthority.createRoot({
        trustDomain: "td",
        keyAlgorithm: alg as "ec-p384" | "ed25519" | "rsa-3072",
        now: clock,
      });
      const issued = await ca.issue("spiffe://td/ns/a/sa/b");
      expect(text(issued.certificatePem)).toContain(`Signature Algorithm: ${sig}`);
      expect(verify(issued.rootCertPem, issued.certificatePem, undefined, fixedNow), alg).toContain(
        "OK",
      );
    }
    const y2049 = new Date("2049-12-31T12:00:00Z");
    const late = await CertificateAuthority.createRoot({
      trustDomain: "td",
      keyAlgorithm: "ec-p256",
      now: () => y2049,
    });
    const issued = await late.issue("spiffe://td/ns/a/sa/b", { ttlMs: 2 * 24 * 3600_000 });
    const t = text(issued.certificatePem);
    expect(t).toContain("Not Before: Dec 31 11:58:00 2049 GMT");
    expect(t).toContain("Not After : Jan  2 12:00:00 2050 GMT");
    const asn1 = openssl(["asn1parse", "-in", file(issued.certificatePem)]);
    expect(asn1).toMatch(/UTCTIME\s+:491231115800Z/);
    expect(asn1).toMatch(/GENERALIZEDTIME\s+:20500102120000Z/);
    expect(verify(issued.rootCertPem, issued.certificatePem, undefined, y2049)).toContain("OK");
  });
});

describe("intermediates and chain order", () => {
  it("orders the response leaf, intermediates (nearest first), root last; openssl verifies it", async () => {
    const i1 = await ecRoot.createIntermediate({ commonName: "Intermediate 1" });
    const i2 = await i1.createIntermediate({
      commonName: "Intermediate 2",
      keyAlgorithm: "rsa-2048",
    });
    const issued = await i2.issue(ID);
    expect(issued.chain).toHaveLength(4);
    expect(issued.chain[1]).toBe(i2.caCertPem);
    expect(issued.chain[2]).toBe(i1.caCertPem);
    expect(issued.chain[3]).toBe(ecRoot.rootCertPem);
    expect(issued.certChainPem).toBe(issued.chain.slice(0, 3).join(""));
    const intermediates = issued.chain.slice(1, 3).join("");
    expect(verify(issued.rootCertPem, issued.certificatePem, intermediates, fixedNow)).toContain(
      "OK",
    );
    // without the intermediates openssl must fail: the chain really goes through them
    expect(() => verify(issued.rootCertPem, issued.certificatePem, undefined, fixedNow)).toThrow();
    // -partial_chain: the nearest intermediate alone is enough as a trust anchor
    const partial = openssl([
      "verify",
      "-partial_chain",
      "-attime",
      String(fixedNow.getTime() / 1000),
      "-CAfile",
      file(i2.caCertPem),
      file(issued.certificatePem),
    ]);
    expect(partial).toContain("OK");
    const t = text(i2.caCertPem);
    expect(extension(t, "X509v3 Basic Constraints")).toEqual({ critical: true, value: "CA:TRUE" });
    expect(extension(t, "X509v3 Key Usage")).toEqual({ critical: true, value: "Certificate Sign" });
    expect(t).toMatch(/Subject: O ?= ?cluster\.local, CN ?= ?Intermediate 2/);
    expect(t).toContain("Signature Algorithm: ecdsa-with-SHA256"); // signed by i1's P-256 key
    // cacerts cert-chain.pem = signing cert, intermediates, root
    expect((await i2.toCacerts())["cert-chain.pem"]).toBe(
      i2.caCertPem + i1.caCertPem + ecRoot.rootCertPem,
    );
  });

  it("writes the issuer name byte-for-byte as the signer's subject", async () => {
    const inter = await ecRoot.createIntermediate({ commonName: "Intermediate ü" });
    const issued = await inter.issue(ID);
    const leafIssuer = tbsField(decodePemCertificates(issued.certificatePem)[0] as Uint8Array, 3);
    const caSubject = tbsField(decodePemCertificates(inter.caCertPem)[0] as Uint8Array, 5);
    expect(Buffer.from(leafIssuer).toString("hex")).toBe(Buffer.from(caSubject).toString("hex"));
  });

  it("keeps an openssl root's BMPString, PrintableString and multi-valued RDN subject as is", async () => {
    const d = mkdtempSync(join(dir, "bmp-"));
    const cfg = join(d, "root.cfg");
    writeFileSync(
      cfg,
      "[req]\ndistinguished_name=dn\nstring_mask=pkix\nutf8=yes\nprompt=no\nx509_extensions=ext\n" +
        "[dn]\nC=DE\n1.O=Istio\n2.OU=mesh\nCN=Wurzel-CA \u00fc\n" +
        "[ext]\nbasicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\n",
    );
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        .concat([
          "-keyout",
          join(d, "k.pem"),
          "-out",
          join(d, "c.pem"),
          "-days",
          "30",
          "-config",
          cfg,
        ])
        .concat(["-subj", "/C=DE/O=Istio+OU=mesh/CN=Wurzel-CA \u00fc", "-multivalue-rdn"]),
    );
    const caCertPem = readFileSync(join(d, "c.pem"), "utf8");
    const ca = await CertificateAuthority.fromPem({
      caCertPem,
      caKeyPem: readFileSync(join(d, "k.pem"), "utf8"),
      rootCertPem: caCertPem,
    });
    const caSubject = tbsField(decodePemCertificates(caCertPem)[0] as Uint8Array, 5);
    // the subject really has a BMPString, PrintableStrings and a two-element RDN (a SET)
    const dump = openssl(["asn1parse", "-in", join(d, "c.pem")]);
    expect(dump).toMatch(/BMPSTRING/);
    expect(dump).toMatch(/PRINTABLESTRING +:mesh/);
    expect(dump).toMatch(/SET[^\n]*\n[^\n]*SEQUENCE[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*SEQUENCE/);
    const issued = await ca.issue(ID);
    const leafIssuer = tbsField(decodePemCertificates(issued.certificatePem)[0] as Uint8Array, 3);
    expect(Buffer.from(leafIssuer).toString("hex")).toBe(Buffer.from(caSubject).toString("hex"));
    expect(verify(caCertPem, issued.certificatePem)).toContain("OK");
  });
});

describe("plug-in CA (cacerts) consistency checks", () => {
  /** A cacerts directory the way istio/tools/certs makes it, with the openssl CLI. */
  function opensslCacerts(): {
    caCertPem: string;
    caKeyPem: string;
    rootCertPem: string;
    certChainPem: string;
  } {
    const d = mkdtempSync(join(dir, "certs-"));
    const rootCfg = join(d, "root.cfg");
    writeFileSync(
      rootCfg,
      "[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=ext\n[dn]\nO=Istio\nCN=Root CA\n" +
        "[ext]\nbasicConstraints=critical,CA:true\nkeyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign\nsubjectKeyIdentifier=hash\n",
    );
    openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "3650",
      "-config",
      rootCfg,
      "-keyout",
      join(d, "root-key.pem"),
      "-out",
      join(d, "root-cert.pem"),
    ]);
    const intCfg = join(d, "int.cfg");
    writeFileSync(
      intCfg,
      "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nO=Istio\nCN=Intermediate CA\nL=cluster1\n" +
        "[ext]\nbasicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign\nsubjectAltName=DNS:istiod.istio-system.svc\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-config",
      intCfg,
      "-keyout",
      join(d, "ca-key.pem"),
      "-out",
      join(d, "ca.csr"),
    ]);
    openssl([
      "x509",
      "-req",
      "-days",
      "730",
      "-in",
      join(d, "ca.csr"),
      "-CA",
      join(d, "root-cert.pem"),
      "-CAkey",
      join(d, "root-key.pem"),
      "-CAcreateserial",
      "-extfile",
      intCfg,
      "-extensions",
      "ext",
      "-out",
      join(d, "ca-cert.pem"),
    ]);
    const read = (f: string): string => readFileSync(join(d, f), "utf8");
    return {
      caCertPem: read("ca-cert.pem"),
      caKeyPem: read("ca-key.pem"),
      rootCertPem: read("root-cert.pem"),
      certChainPem: read("ca-cert.pem") + read("root-cert.pem"),
    };
  }

  it("loads an openssl-made cacerts bundle and issues chains openssl verifies", async () => {
    const files = opensslCacerts();
    const ca = await CertificateAuthority.fromPem(files);
    expect(ca.trustDomain).toBe("Istio");
    const issued = await ca.issue(ID);
    expect(issued.chain).toEqual([
      issued.certificatePem,
      files.caCertPem.replace(/\r\n/g, "\n"),
      ca.rootCertPem,
    ]);
    expect(verify(files.rootCertPem, issued.certificatePem, files.caCertPem)).toContain("OK");
    const t = text(issued.certificatePem);
    expect(t).toMatch(/Issuer: O ?= ?Istio, CN ?= ?Intermediate CA, L ?= ?cluster1/);
    expect(extension(t, "X509v3 Authority Key Identifier").value).toBe(
      extension(text(files.caCertPem), "X509v3 Subject Key Identifier").value,
    );
  });

  it("rejects a key that is not the signing cert's, a chain to another root, a non-CA and an expired CA", async () => {
    const files = opensslCacerts();
    const other = await CertificateAuthority.createRoot({
      trustDomain: "x",
      keyAlgorithm: "ec-p256",
    });
    const otherFiles = await other.toCacerts();
    const cases: [string, Parameters<typeof CertificateAuthority.fromPem>[0], RegExp][] = [
      ["wrong key", { ...files, caKeyPem: otherFiles["ca-key.pem"] }, /does not match the key/],
      [
        "wrong root",
        { ...files, rootCertPem: otherFiles["root-cert.pem"], certChainPem: files.caCertPem },
        /cannot verify the cert/,
      ],
      ["garbage key", { ...files, caKeyPem: "nope" }, /failed to parse private key PEM/],
      [
        "garbage cert",
        { ...files, caCertPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" },
        /ca-cert\.pem/,
      ],
    ];
    for (const [name, input, message] of cases) {
      const err = await CertificateAuthority.fromPem(input).catch((e) => e);
      expect(err, name).toBeInstanceOf(IdentityError);
      expect(err.code, name).toBe("ERR_IDENTITY_CA_CONFIG");
      expect(err.message, name).toMatch(message);
    }
    // a leaf (CA:FALSE) as the signing cert
    const leaf = await ecRoot.issue(ID);
    const notCa = await CertificateAuthority.fromPem(
      {
        caCertPem: leaf.certificatePem,
        caKeyPem: leaf.privateKeyPem,
        rootCertPem: leaf.rootCertPem,
      },
      { now: clock },
    ).catch((e) => e);
    expect(notCa.message).toContain("certificate is not authorized to sign other certificates");
    // expired at load time
    const later = new Date(Date.now() + 800 * 24 * 3600_000);
    const expired = await CertificateAuthority.fromPem(files, { now: () => later }).catch((e) => e);
    expect(expired.message).toMatch(/expired at/);
  });

  it("keeps a multi-root bundle as ONE last chain element (root rotation)", async () => {
    const oldRoot = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const files = await ecRoot.toCacerts();
    const ca = await CertificateAuthority.fromPem({
      caCertPem: files["ca-cert.pem"],
      caKeyPem: files["ca-key.pem"],
      rootCertPem: oldRoot.rootCertPem + files["root-cert.pem"],
    });
    const issued = await ca.issue(ID);
    expect(issued.chain).toHaveLength(2);
    expect(issued.chain[1]).toBe(oldRoot.rootCertPem + files["root-cert.pem"]);
    expect(verify(issued.rootCertPem, issued.certificatePem)).toContain("OK");
    // cert-chain.pem is the path of this CA only: the signing root, not the other root
    expect(ca.certChainPem).toBe(files["ca-cert.pem"]);
  });

  it("round-trips its own cacerts files, including legacy PKCS#1 / SEC1 keys", async () => {
    const inter = await ecRoot.createIntermediate({ commonName: "I" });
    const files = await inter.toCacerts();
    const reloaded = await CertificateAuthority.fromPem(
      {
        caCertPem: files["ca-cert.pem"],
        caKeyPem: files["ca-key.pem"],
        rootCertPem: files["root-cert.pem"],
        certChainPem: files["cert-chain.pem"],
      },
      { now: clock },
    );
    expect(reloaded.certChainPem).toBe(inter.certChainPem);
    const sec1 = openssl(["ec", "-in", file(files["ca-key.pem"])]);
    expect(sec1).toContain("BEGIN EC PRIVATE KEY");
    const again = await CertificateAuthority.fromPem(
      { caCertPem: files["ca-cert.pem"], caKeyPem: sec1, rootCertPem: files["root-cert.pem"] },
      { now: clock },
    );
    const issued = await again.issue(ID);
    expect(
      verify(issued.rootCertPem, issued.certificatePem, files["ca-cert.pem"], fixedNow),
    ).toContain("OK");
  });
});

describe("durations", () => {
  it("parses and formats like Go", () => {
    expect(parseDuration("24h")).toBe(86_400_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("90d")).toBe(MAX_WORKLOAD_CERT_TTL_MS);
    expect(parseDuration("1500")).toBe(1500);
    expect(() => parseDuration("1 day")).toThrow(IdentityError);
    expect(() => parseDuration("")).toThrow(IdentityError);
    expect(formatDuration(MAX_WORKLOAD_CERT_TTL_MS)).toBe("2160h0m0s");
    expect(formatDuration(90_500)).toBe("0h1m30.5s");
  });
});

// ---- tiny DER helpers for byte-level assertions ----

function decodePemCertificatesLike(csrPem: string): Uint8Array {
  const b64 = csrPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

/** Raw bytes of the n-th element of TBSCertificate (0 = [0] version, 1 serial, 2 sigAlg, 3 issuer, 4 validity, 5 subject). */
function tbsField(der: Uint8Array, index: number): Uint8Array {
  const hdr = (at: number): { start: number; end: number } => {
    let len = der[at + 1] as number;
    let start = at + 2;
    if (len & 0x80) {
      const k = len & 0x7f;
      len = 0;
      for (let i = 0; i < k; i++) len = (len << 8) | (der[start + i] as number);
      start += k;
    }
    return { start, end: start + len };
  };
  const cert = hdr(0);
  const tbs = hdr(cert.start);
  let at = tbs.start;
  for (let i = 0; i < index; i++) at = hdr(at).end;
  return der.subarray(at, hdr(at).end);
}
