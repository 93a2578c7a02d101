import { execFileSync } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../testing.js";
import type { CaInitJson, CaIssuedJson } from "./ca.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-cli-ca-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ID = "spiffe://cluster.local/ns/default/sa/app";

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("ambientkit ca", () => {
  it("init → issue → sign, with chains openssl verifies", async () => {
    const init = await runCli(
      [
        "ca",
        "init",
        "--trust-domain",
        "cluster.local",
        "--out",
        "cacerts",
        "--key-type",
        "ec-p256",
        "--output",
        "json",
      ],
      { cwd: dir },
    );
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const report = JSON.parse(init.stdout) as CaInitJson;
    expect(report).toMatchObject({ trustDomain: "cluster.local", keyType: "ec-p256" });
    const cacerts = join(dir, "cacerts");
    expect(readdirSync(cacerts).sort()).toEqual([
      "ca-cert.pem",
      "ca-key.pem",
      "cert-chain.pem",
      "root-cert.pem",
    ]);
    expect(statSync(join(cacerts, "ca-key.pem")).mode & 0o777).toBe(0o600);
    expect(openssl(["x509", "-in", join(cacerts, "ca-cert.pem"), "-noout", "-subject"])).toMatch(
      /O ?= ?cluster\.local/,
    );

    const issue = await runCli(
      ["ca", "issue", "--ca", "cacerts", "--id", ID, "--ttl", "1h", "--out", "wl"],
      { cwd: dir },
    );
    expect(issue.code).toBe(0);
    expect(issue.stdout).toContain(`issued ${ID} serial `);
    const wl = join(dir, "wl");
    expect(readdirSync(wl).sort()).toEqual(["cert-chain.pem", "key.pem", "root-cert.pem"]);
    expect(statSync(join(wl, "key.pem")).mode & 0o777).toBe(0o600);
    expect(
      openssl(["verify", "-CAfile", join(wl, "root-cert.pem"), join(wl, "cert-chain.pem")]),
    ).toContain("OK");
    const text = openssl(["x509", "-in", join(wl, "cert-chain.pem"), "-noout", "-text"]);
    expect(text).toContain(`X509v3 Subject Alternative Name: critical\n                URI:${ID}`);
    // key.pem belongs to the certificate
    expect(openssl(["pkey", "-in", join(wl, "key.pem"), "-pubout"])).toBe(
      openssl(["x509", "-in", join(wl, "cert-chain.pem"), "-noout", "-pubkey"]),
    );

    const csrPath = join(dir, "req.csr");
    openssl([
      "req",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(dir, "req.key"),
      "-subj",
      "/CN=whatever",
      "-out",
      csrPath,
    ]);
    const sign = await runCli(["ca", "sign", "--ca", "cacerts", "--csr", "req.csr", "--id", ID], {
      cwd: dir,
    });
    expect(sign.code).toBe(0);
    const blocks = sign.stdout.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    expect(blocks).toHaveLength(2); // leaf, root
    const chainFile = join(dir, "signed.pem");
    execFileSync("sh", ["-c", `cat > ${chainFile}`], { input: sign.stdout });
    expect(openssl(["verify", "-CAfile", join(cacerts, "root-cert.pem"), chainFile])).toContain(
      "OK",
    );

    const viaStdin = await runCli(
      ["ca", "sign", "--ca", "cacerts", "--csr", "-", "--id", ID, "--output", "json"],
      {
        cwd: dir,
        stdin: readFileSync(csrPath, "utf8"),
      },
    );
    expect(viaStdin.code).toBe(0);
    const json = JSON.parse(viaStdin.stdout) as CaIssuedJson;
    expect(json.identity).toBe(ID);
    expect(json.certChain).toHaveLength(2);
    expect(Date.parse(json.notAfter) - Date.parse(json.notBefore)).toBe(24 * 3600_000 + 2 * 60_000);
  });

  it("exits 2 with one clear line on bad input", async () => {
    await runCli(
      ["ca", "init", "--trust-domain", "td.example", "--out", "ca2", "--key-type", "ec-p256"],
      { cwd: dir },
    );
    const cases: [string[], RegExp][] = [
      [["ca", "init", "--trust-domain", "Bad_TD!", "--out", "x"], /trust domain/],
      [
        ["ca", "init", "--trust-domain", "td.example", "--out", "ca2"],
        /already holds a CA.*--force/,
      ],
      [["ca", "issue", "--ca", "nope", "--id", ID, "--out", "o"], /cannot read .*ca-cert\.pem/],
      [
        ["ca", "issue", "--ca", "ca2", "--id", "spiffe://td.example", "--out", "o"],
        /non-root path/,
      ],
      [["ca", "issue", "--ca", "ca2", "--id", "not-an-id", "--out", "o"], /scheme/],
      [
        ["ca", "issue", "--ca", "ca2", "--id", ID, "--ttl", "2161h", "--out", "o"],
        /greater than the max allowed TTL 2160h0m0s/,
      ],
      [
        ["ca", "issue", "--ca", "ca2", "--id", ID, "--ttl", "soon", "--out", "o"],
        /invalid duration/,
      ],
      [["ca", "sign", "--ca", "ca2", "--csr", "-", "--id", ID], /CERTIFICATE REQUEST|no PEM block/],
      [
        ["ca", "issue", "--ca", "ca2", "--id", ID, "--out", "o", "--key-type", "dsa"],
        /Allowed choices/,
      ],
    ];
    for (const [argv, message] of cases) {
      const r = await runCli(argv, { cwd: dir, stdin: "garbage" });
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr, argv.join(" ")).toMatch(message);
      expect(r.stderr.trim().split("\n"), argv.join(" ")).toHaveLength(1);
      expect(r.stdout, argv.join(" ")).toBe("");
    }
    expect(readdirSync(dir)).not.toContain("o");
  });

  it("has --help", async () => {
    const r = await runCli(["ca", "issue", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--id <spiffe-id>");
  });
});

/** Names, file modes and contents under `root` (directories as "dir"), to compare before and after. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string, prefix: string): void => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const st = lstatSync(path);
      if (st.isDirectory()) {
        out[`${prefix}${name}/`] = "dir";
        walk(path, `${prefix}${name}/`);
      } else {
        out[`${prefix}${name}`] = `${(st.mode & 0o777).toString(8)} ${readFileSync(path, "utf8")}`;
      }
    }
  };
  walk(root, "");
  return out;
}

describe("ambientkit ca: output is all or nothing (#14)", () => {
  const ca = join(dir, "fail-closed-ca");
  beforeAll(async () => {
    const r = await runCli([
      "ca",
      "init",
      "--trust-domain",
      "cluster.local",
      "--out",
      ca,
      "--key-type",
      "ec-p256",
    ]);
    expect(r.code).toBe(0);
  });

  function expectOneLine(r: { code: number; stdout: string; stderr: string }, message: RegExp) {
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  }

  it("ca issue leaves an existing --out exactly as before when the last file cannot be written", async () => {
    const out = mkdtempSync(join(dir, "issue-blocked-"));
    writeFileSync(join(out, "cert-chain.pem"), "previous chain\n");
    writeFileSync(join(out, "root-cert.pem"), "previous root\n");
    mkdirSync(join(out, "key.pem")); // a directory where the key should go
    const before = snapshot(out);
    const r = await runCli(["ca", "issue", "--ca", ca, "--id", ID, "--out", out]);
    expectOneLine(r, /key\.pem is a directory.*ERR_IDENTITY_OUTPUT_REFUSED/);
    expect(snapshot(out)).toEqual(before);
  });

  it("ca issue and ca init refuse a --out below a file and create nothing", async () => {
    const base = mkdtempSync(join(dir, "below-file-"));
    writeFileSync(join(base, "file"), "x");
    const before = snapshot(base);
    for (const argv of [
      ["ca", "issue", "--ca", ca, "--id", ID, "--out", join(base, "file", "wl")],
      ["ca", "init", "--trust-domain", "td.example", "--out", join(base, "file", "ca")],
    ]) {
      expectOneLine(await runCli(argv), /is a file, not a directory.*ERR_IDENTITY_OUTPUT_REFUSED/);
    }
    expect(snapshot(base)).toEqual(before);
  });

  it("ca init --force over a CA leaves it untouched when one file cannot be replaced", async () => {
    const out = join(dir, "force-blocked");
    expect((await runCli(["ca", "init", "--trust-domain", "a.example", "--out", out])).code).toBe(
      0,
    );
    rmSync(join(out, "cert-chain.pem"));
    mkdirSync(join(out, "cert-chain.pem"));
    const before = snapshot(out);
    const r = await runCli(["ca", "init", "--trust-domain", "b.example", "--out", out, "--force"]);
    expectOneLine(r, /cert-chain\.pem is a directory/);
    expect(snapshot(out)).toEqual(before);
  });

  it("ca issue --out /proc/x is refused at once (it used to hang in mkdir)", async () => {
    for (const target of ["/proc/x", "/sys/x/y", "/dev/x"]) {
      const started = performance.now();
      const r = await runCli(["ca", "issue", "--ca", ca, "--id", ID, "--out", target]);
      expectOneLine(r, /refusing to write to .*pseudo filesystem.*ERR_IDENTITY_OUTPUT_REFUSED/);
      expect(performance.now() - started, target).toBeLessThan(3000);
    }
  });

  // The CSR key rule: ECDSA P-256/P-384/P-521, RSA >= 2048, Ed25519 (istiod only checks the
  // self-signature of whatever Go parses); every refusal names that set.
  it("ca sign certifies a P-521 CSR and refuses secp256k1 naming the accepted curves", async () => {
    const csr = (curve: string): string => {
      const path = join(dir, `sign-${curve}.csr`);
      openssl([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        `ec_paramgen_curve:${curve}`,
        "-nodes",
        "-keyout",
        join(dir, `sign-${curve}.key`),
        "-subj",
        "/",
        "-out",
        path,
      ]);
      return path;
    };
    const p521 = await runCli(["ca", "sign", "--ca", ca, "--csr", csr("P-521"), "--id", ID]);
    expect(p521.stderr).toBe("");
    expect(p521.code).toBe(0);
    const chain = join(dir, "sign-p521-chain.pem");
    writeFileSync(chain, p521.stdout);
    expect(openssl(["verify", "-CAfile", join(ca, "root-cert.pem"), chain])).toContain("OK");
    expect(openssl(["x509", "-in", chain, "-noout", "-text"])).toContain("NIST CURVE: P-521");

    const k1 = await runCli(["ca", "sign", "--ca", ca, "--csr", csr("secp256k1"), "--id", ID]);
    expectOneLine(
      k1,
      /unsupported CSR key curve secp256k1; a CSR key must be ECDSA P-256 \(ztunnel\), P-384 or P-521, RSA ≥ 2048 bits, or Ed25519 \(ERR_IDENTITY_CSR\)/,
    );
  });
});
