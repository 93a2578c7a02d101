import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
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
