// Test-only PKI: a root CA and SPIFFE leaf SVIDs generated with the openssl CLI (an independent
// implementation), P-256, URI SAN, EKU serverAuth+clientAuth, as Istio issues them.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HboneCredentials } from "../tls.js";

export interface TestCa {
  dir: string;
  certPem: string;
  keyPath: string;
  certPath: string;
  issue(spiffeId: string): TestLeaf;
  cleanup(): void;
}

export interface TestLeaf {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  id: string;
}

let counter = 0;

function ossl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Creates a self-signed root (`name` in the subject) in a fresh temp directory. */
export function createTestCa(name = "test-root"): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "hbone-pki-"));
  const keyPath = join(dir, "ca.key");
  const certPath = join(dir, "ca.pem");
  ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyPath], dir);
  ossl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      keyPath,
      "-sha256",
      "-days",
      "2",
      "-subj",
      `/O=ambientkit-test/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      certPath,
    ],
    dir,
  );
  const certPem = readFileSync(certPath, "utf8");
  return {
    dir,
    certPem,
    keyPath,
    certPath,
    issue(spiffeId: string): TestLeaf {
      const n = ++counter;
      const lk = join(dir, `leaf${n}.key`);
      const lc = join(dir, `leaf${n}.pem`);
      const csr = join(dir, `leaf${n}.csr`);
      const ext = join(dir, `leaf${n}.ext`);
      ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${lk}.ec`], dir);
      ossl(["pkcs8", "-topk8", "-nocrypt", "-in", `${lk}.ec`, "-out", lk], dir);
      ossl(["req", "-new", "-key", lk, "-subj", "/O=cluster.local", "-out", csr], dir);
      writeFileSync(
        ext,
        `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:${spiffeId}\n`,
      );
      ossl(
        [
          "x509",
          "-req",
          "-in",
          csr,
          "-CA",
          certPath,
          "-CAkey",
          keyPath,
          "-CAcreateserial",
          "-days",
          "1",
          "-sha256",
          "-extfile",
          ext,
          "-out",
          lc,
        ],
        dir,
      );
      return {
        certPem: readFileSync(lc, "utf8"),
        keyPem: readFileSync(lk, "utf8"),
        certPath: lc,
        keyPath: lk,
        id: spiffeId,
      };
    },
    cleanup(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function credsOf(leaf: TestLeaf, ...bundle: TestCa[]): HboneCredentials {
  return { cert: leaf.certPem, key: leaf.keyPem, ca: bundle.map((b) => b.certPem) };
}
