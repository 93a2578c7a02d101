import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { IdentityError } from "./errors.js";
import {
  base64Decode,
  base64Encode,
  decodePem,
  decodePemCertificates,
  decodePemCsr,
  decodePemPrivateKey,
  encodePem,
  encodePemCertificates,
} from "./pem.js";

function code(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError);
    return (error as IdentityError).code;
  }
  throw new Error("expected an error");
}

describe("base64", () => {
  test("round-trips every length against Node's Buffer", () => {
    for (let n = 0; n < 70; n++) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
      const b64 = base64Encode(bytes);
      expect(b64).toBe(Buffer.from(bytes).toString("base64"));
      expect(base64Decode(b64)).toEqual(bytes);
    }
  });
  test.each([
    ["QUJD!", "invalid character"],
    ["QUI", "missing padding"],
    ["Q===", "too much padding"],
    ["QQ==QQ==", "data after padding"],
    ["QR==", "non-canonical trailing bits"],
    ["QUJDRA=", "bad padding length"],
    ["-_-_", "base64url alphabet"],
  ])("rejects %j (%s)", (input) => {
    expect(code(() => base64Decode(input))).toBe("ERR_IDENTITY_PEM");
  });
  test("skips line breaks and spaces", () => {
    expect(new TextDecoder().decode(base64Decode("QUJD\r\nREVG\n R0g="))).toBe("ABCDEFGH");
  });
});

describe("PEM", () => {
  const der = new Uint8Array(200).map((_, i) => i);
  test("encode wraps at 64 columns and decodes back", () => {
    const pem = encodePem("CERTIFICATE", der);
    const lines = pem.trimEnd().split("\n");
    expect(lines[0]).toBe("-----BEGIN CERTIFICATE-----");
    expect(lines.at(-1)).toBe("-----END CERTIFICATE-----");
    for (const l of lines.slice(1, -1)) expect(l.length).toBeLessThanOrEqual(64);
    expect(decodePem(pem)).toEqual([{ label: "CERTIFICATE", der }]);
  });
  test("explanatory text around blocks and CRLF are fine; order is kept", () => {
    const a = encodePem("CERTIFICATE", new Uint8Array([1, 2, 3]));
    const b = encodePem("CERTIFICATE", new Uint8Array([4, 5, 6]));
    const text = `subject=CN = leaf\r\n${a.replaceAll("\n", "\r\n")}\nissuer: something\n${b}trailing`;
    expect(decodePemCertificates(text)).toEqual([
      new Uint8Array([1, 2, 3]),
      new Uint8Array([4, 5, 6]),
    ]);
    expect(encodePemCertificates([new Uint8Array([1, 2, 3]), new Uint8Array([4, 5, 6])])).toBe(
      a + b,
    );
  });
  test.each([
    ["", "empty input"],
    ["garbage", "no block"],
    ["-----BEGIN CERTIFICATE-----\nAAAA\n", "no END line"],
    ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n", "mismatched END"],
    ["-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty body"],
    ["-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n", "bad base64"],
    [
      "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
      "legacy encrypted headers",
    ],
  ])("garbage %#: %s", (text) => {
    expect(code(() => decodePem(text))).toBe("ERR_IDENTITY_PEM");
  });
  test("certificates: other blocks are an error unless allowed", () => {
    const text = encodePem("CERTIFICATE", der) + encodePem("PRIVATE KEY", der);
    expect(code(() => decodePemCertificates(text))).toBe("ERR_IDENTITY_PEM");
    expect(decodePemCertificates(text, { allowOtherBlocks: true })).toHaveLength(1);
    expect(
      code(() => decodePemCertificates(encodePem("PRIVATE KEY", der), { allowOtherBlocks: true })),
    ).toBe("ERR_IDENTITY_PEM");
  });
  test("private keys: exactly one, unencrypted; certificates alongside are skipped", () => {
    for (const label of ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"] as const) {
      expect(decodePemPrivateKey(encodePem("CERTIFICATE", der) + encodePem(label, der))).toEqual({
        label,
        der,
      });
    }
    expect(code(() => decodePemPrivateKey(encodePem("ENCRYPTED PRIVATE KEY", der)))).toBe(
      "ERR_IDENTITY_PEM",
    );
    expect(code(() => decodePemPrivateKey(encodePem("PRIVATE KEY", der).repeat(2)))).toBe(
      "ERR_IDENTITY_PEM",
    );
    expect(code(() => decodePemPrivateKey(encodePem("CERTIFICATE", der)))).toBe("ERR_IDENTITY_PEM");
    expect(code(() => decodePemPrivateKey(encodePem("PUBLIC KEY", der)))).toBe("ERR_IDENTITY_PEM");
  });
  test("CSRs: both labels, exactly one", () => {
    expect(decodePemCsr(encodePem("CERTIFICATE REQUEST", der))).toEqual(der);
    expect(decodePemCsr(encodePem("NEW CERTIFICATE REQUEST", der))).toEqual(der);
    expect(code(() => decodePemCsr(encodePem("CERTIFICATE", der)))).toBe("ERR_IDENTITY_PEM");
    expect(code(() => decodePemCsr(encodePem("CERTIFICATE REQUEST", der).repeat(2)))).toBe(
      "ERR_IDENTITY_PEM",
    );
  });
});

describe("PEM made by openssl", () => {
  const dir = mkdtempSync(join(tmpdir(), "ambientkit-pem-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  test("cert, key and CSR decode to openssl's own DER", () => {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const csr = join(dir, "csr.pem");
    execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    execFileSync("openssl", [
      "req",
      "-new",
      "-x509",
      "-key",
      key,
      "-subj",
      "/O=test",
      "-days",
      "1",
      "-out",
      cert,
    ]);
    execFileSync("openssl", ["req", "-new", "-key", key, "-subj", "/O=test", "-out", csr]);
    const certDer = execFileSync("openssl", ["x509", "-in", cert, "-outform", "DER"]);
    const csrDer = execFileSync("openssl", ["req", "-in", csr, "-outform", "DER"]);
    const keyDer = execFileSync("openssl", ["ec", "-in", key, "-outform", "DER"], {
      stdio: ["pipe", "pipe", "ignore"],
    });
    expect(decodePemCertificates(readFileSync(cert, "utf8"))).toEqual([new Uint8Array(certDer)]);
    expect(decodePemCsr(readFileSync(csr, "utf8"))).toEqual(new Uint8Array(csrDer));
    const k = decodePemPrivateKey(readFileSync(key, "utf8"));
    expect(k.label).toBe("EC PRIVATE KEY");
    expect(k.der).toEqual(new Uint8Array(keyDer));
    // And openssl reads what we encode.
    const ours = encodePem("CERTIFICATE", new Uint8Array(certDer));
    const back = execFileSync("openssl", ["x509", "-outform", "DER"], { input: ours });
    expect(new Uint8Array(back)).toEqual(new Uint8Array(certDer));
  });
});
