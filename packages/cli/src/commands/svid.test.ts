import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runCli } from "../testing.js";
import type { SvidVerifyJsonReport } from "./svid.js";

// Certificates for these tests are made by the openssl CLI, an implementation independent of ours.
const dir = mkdtempSync(join(tmpdir(), "ambientkit-svid-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): Buffer {
  return execFileSync("openssl", args, { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
}

function issueLeaf(name: string, ext: string[], caName = "root"): void {
  writeFileSync(join(dir, `${name}.cnf`), `[v3]\n${ext.join("\n")}\n`);
  openssl(
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-subj",
    "/O=cluster.local",
    "-out",
    `${name}.csr`,
  );
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${caName}.pem`,
    "-CAkey",
    `${caName}.key`,
    "-days",
    "1",
    "-extfile",
    `${name}.cnf`,
    "-extensions",
    "v3",
    "-out",
    `${name}.pem`,
  );
}

const LEAF_EXT = [
  "basicConstraints=critical,CA:false",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth,clientAuth",
  "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/sleep",
];

function makeRoot(name: string, td: string): void {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-subj",
    `/O=${td}`,
    "-days",
    "10",
    "-addext",
    "basicConstraints=critical,CA:true",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    `${name}.pem`,
  );
}

function b64Der(pemFile: string): string {
  return openssl("x509", "-in", pemFile, "-outform", "DER").toString("base64");
}

beforeAll(() => {
  makeRoot("root", "cluster.local");
  makeRoot("other-root", "other.example");
  issueLeaf("leaf", LEAF_EXT);
  issueLeaf("bad-leaf", [
    ...LEAF_EXT.slice(0, 1),
    "keyUsage=critical,digitalSignature,keyCertSign",
    ...LEAF_EXT.slice(2),
  ]);
  const rootB64 = b64Der("root.pem");
  const entry = (b64: string) => ({ keys: [{ kty: "EC", use: "x509-svid", x5c: [b64] }] });
  writeFileSync(
    join(dir, "bundle.json"),
    JSON.stringify({ spiffe_sequence: 3, ...entry(rootB64) }),
  );
  writeFileSync(
    join(dir, "map.json"),
    JSON.stringify({
      trust_domains: {
        "cluster.local": entry(rootB64),
        "other.example": entry(b64Der("other-root.pem")),
      },
    }),
  );
  writeFileSync(
    join(dir, "map-other.json"),
    JSON.stringify({ trust_domains: { "other.example": entry(rootB64) } }),
  );
  const dup = `{"trust_domains":{"cluster.local":${JSON.stringify(entry(rootB64))},"cluster.local":{"keys":[]}}}`;
  writeFileSync(join(dir, "map-dup.json"), dup);
  writeFileSync(join(dir, "garbage.pem"), "this is not a certificate\n");
  writeFileSync(
    join(dir, "bad-der.pem"),
    "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
  );
  // openssl itself accepts the good chain (independent check of the fixture).
  openssl("verify", "-CAfile", "root.pem", "leaf.pem");
});

const run = (...args: string[]) => runCli(["svid", "verify", ...args], { cwd: dir });

describe("ambientkit svid verify", () => {
  test.each(["root.pem", "bundle.json", "map.json"])(
    "accepts the leaf against %s and prints the SPIFFE ID",
    async (bundle) => {
      const r = await run("--bundle", bundle, "leaf.pem");
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("spiffe://cluster.local/ns/default/sa/sleep\n");
    },
  );

  test("--output json on success", async () => {
    const r = await run("--bundle", "map.json", "--output", "json", "leaf.pem");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as SvidVerifyJsonReport;
    expect(out).toMatchObject({
      valid: true,
      spiffeId: "spiffe://cluster.local/ns/default/sa/sleep",
      trustDomain: "cluster.local",
      bundle: { kind: "bundle-map", trustDomains: ["cluster.local", "other.example"] },
    });
    if (out.valid)
      expect(out.chain.map((c) => c.subject)).toEqual(["O=cluster.local", "O=cluster.local"]);
  });

  test("reads the chain from stdin", async () => {
    const r = await runCli(["svid", "verify", "--bundle", "root.pem", "-"], {
      cwd: dir,
      stdin: readFileSync(join(dir, "leaf.pem"), "utf8"),
    });
    expect(r.code).toBe(0);
  });

  test("exit 1 names the failed rule: keyCertSign on a leaf", async () => {
    const r = await run("--bundle", "root.pem", "bad-leaf.pem");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^invalid: leaf-key-cert-sign: /);
    const j = await run("--bundle", "root.pem", "-o", "json", "bad-leaf.pem");
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({
      valid: false,
      code: "ERR_IDENTITY_SVID_RULE",
      rule: "leaf-key-cert-sign",
    });
  });

  test("exit 1: bundle of another trust domain (never any root)", async () => {
    const r = await run("--bundle", "map-other.json", "leaf.pem");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("chain-no-bundle");
    const pinned = await run("--bundle", "root.pem", "--trust-domain", "other.example", "leaf.pem");
    expect(pinned.code).toBe(1);
    expect(pinned.stdout).toContain("chain-no-bundle");
  });

  test("exit 1: untrusted root; expired at --now", async () => {
    const r = await run("--bundle", "other-root.pem", "leaf.pem");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^invalid: chain-untrusted: /);
    const later = await run("--bundle", "root.pem", "--now", "2099-01-01T00:00:00Z", "leaf.pem");
    expect(later.code).toBe(1);
    expect(later.stdout).toMatch(/^invalid: chain-expired: /);
  });

  test.each([
    [["--bundle", "root.pem", "garbage.pem"], /cannot read the certificate chain garbage.pem/],
    [["--bundle", "root.pem", "bad-der.pem"], /cannot parse the certificate chain bad-der.pem/],
    [["--bundle", "garbage.pem", "leaf.pem"], /cannot read the bundle garbage.pem/],
    [["--bundle", "map-dup.json", "leaf.pem"], /duplicate JSON key "cluster.local"/],
    [["--bundle", "missing.pem", "leaf.pem"], /cannot read missing.pem/],
    [["--bundle", "root.pem", "--now", "yesterday", "leaf.pem"], /--now/],
    [["--bundle", "root.pem", "--trust-domain", "Bad:TD", "leaf.pem"], /--trust-domain/],
  ])("exit 2 on unreadable or garbage input: %j", async (args, message) => {
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  test("usage errors: missing --bundle, --help", async () => {
    expect((await run("leaf.pem")).code).toBe(2);
    const help = await runCli(["svid", "verify", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--bundle <file>");
  });
});
