// Corrupted DER must always end in an IdentityError with the right code: CSRs come from the
// network (ztunnel, or anyone), keys from files. Seeded byte flips, truncations and appended bytes.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createCsr, parseCsr } from "./csr.js";
import { IdentityError } from "./errors.js";
import {
  exportPrivateKeyDer,
  generateKeyPair,
  importPrivateKeyDer,
  importPrivateKeyPem,
} from "./keys.js";
import { decodePemPrivateKey, encodePem } from "./pem.js";

/** mulberry32: a small seeded PRNG, so a failing variant can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` corrupted copies of `der`: 1–3 flipped bytes, a truncation, or bytes appended. */
function variants(
  der: Uint8Array,
  count: number,
  seed: number,
): { what: string; bytes: Uint8Array }[] {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const out: { what: string; bytes: Uint8Array }[] = [];
  for (let i = 0; i < count; i++) {
    const kind = i % 5;
    if (kind === 3) {
      const len = int(der.length);
      out.push({ what: `truncated to ${len}`, bytes: der.slice(0, len) });
    } else if (kind === 4) {
      const extra = Uint8Array.from({ length: 1 + int(4) }, () => int(256));
      const bytes = new Uint8Array(der.length + extra.length);
      bytes.set(der);
      bytes.set(extra, der.length);
      out.push({ what: `appended ${extra.length} bytes`, bytes });
    } else {
      const bytes = der.slice();
      const flips: string[] = [];
      for (let f = 0; f <= kind; f++) {
        const at = int(der.length);
        const mask = 1 + int(255);
        bytes[at] = (bytes[at] as number) ^ mask;
        flips.push(`${at}^${mask.toString(16)}`);
      }
      out.push({ what: `flipped ${flips.join(",")}`, bytes });
    }
  }
  return out;
}

type Outcome = "accepted" | "IdentityError";

async function outcome(
  what: string,
  run: () => Promise<unknown>,
  codes: readonly string[],
): Promise<Outcome> {
  try {
    await run();
    return "accepted";
  } catch (error) {
    if (!(error instanceof IdentityError) || !codes.includes(error.code)) {
      throw new Error(
        `${what}: expected an IdentityError ${codes.join("/")}, got ${String(error)}`,
        {
          cause: error,
        },
      );
    }
    return "IdentityError";
  }
}

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
}

describe("corrupted DER", () => {
  it("every corrupted CSR (DER and PEM) is an ERR_IDENTITY_CSR error", async () => {
    const key = await generateKeyPair("ec-p256");
    const pem = await createCsr("spiffe://cluster.local/ns/default/sa/app", key);
    const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64"));
    await parseCsr(der); // the original is fine
    for (const v of variants(der, 300, 1)) {
      expect(await outcome(`CSR ${v.what}`, () => parseCsr(v.bytes), ["ERR_IDENTITY_CSR"])).toBe(
        "IdentityError",
      );
      expect(
        await outcome(
          `CSR PEM ${v.what}`,
          () => parseCsr(encodePem("CERTIFICATE REQUEST", v.bytes)),
          ["ERR_IDENTITY_CSR"],
        ),
      ).toBe("IdentityError");
    }
  });

  it("every corrupted PKCS#8, SEC 1 and PKCS#1 key is an ERR_IDENTITY_KEY/PEM error", async () => {
    const sec1 = decodePemPrivateKey(
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
    ).der;
    const pkcs1 = decodePemPrivateKey(openssl(["genrsa", "-traditional", "2048"])).der;
    // Ed25519 is left out on purpose: its PKCS#8 holds only the 32-byte seed, so a flipped seed
    // byte is simply another valid key.
    const cases = [
      {
        name: "PKCS#8 P-256",
        der: await exportPrivateKeyDer(await generateKeyPair("ec-p256")),
        label: "PRIVATE KEY",
        seed: 2,
        count: 200,
      },
      {
        name: "PKCS#8 RSA",
        der: await exportPrivateKeyDer(await generateKeyPair("rsa-2048")),
        label: "PRIVATE KEY",
        seed: 5,
        count: 100,
      },
      { name: "SEC 1", der: sec1, label: "EC PRIVATE KEY", seed: 3, count: 150 },
      { name: "PKCS#1", der: pkcs1, label: "RSA PRIVATE KEY", seed: 4, count: 100 },
    ];
    const codes = ["ERR_IDENTITY_KEY", "ERR_IDENTITY_PEM"];
    for (const c of cases) {
      await importPrivateKeyPem(encodePem(c.label, c.der)); // the original is fine
      for (const v of variants(c.der, c.count, c.seed)) {
        const pemText = encodePem(c.label, v.bytes);
        expect(
          await outcome(`${c.name} ${v.what}`, () => importPrivateKeyPem(pemText), codes),
        ).toBe("IdentityError");
        if (c.label === "PRIVATE KEY") {
          expect(
            await outcome(`${c.name} DER ${v.what}`, () => importPrivateKeyDer(v.bytes), codes),
          ).toBe("IdentityError");
        }
      }
    }
  });
});
