import { X509Certificate } from "node:crypto";
import { CertificateAuthority, type RotationClock } from "@ambientkit/identity";
import { describe, expect, it } from "vitest";
import { WorkloadCertificates } from "./certs.js";

/** A manual clock: timers fire when `advance` passes them. */
function manualClock(start: number): RotationClock & { advance(ms: number): void } {
  let now = start;
  const timers = new Map<number, { at: number; cb: () => void }>();
  let id = 0;
  return {
    now: () => now,
    setTimeout(cb, ms) {
      timers.set(++id, { at: now + ms, cb });
      return id;
    },
    clearTimeout(h) {
      timers.delete(h as number);
    },
    advance(ms) {
      now += ms;
      for (const [k, t] of [...timers]) {
        if (t.at <= now) {
          timers.delete(k);
          t.cb();
        }
      }
    },
  };
}

describe("WorkloadCertificates", () => {
  it("issues one SVID per identity and rotates it at half-life", async () => {
    const clock = manualClock(Date.now());
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
      now: () => new Date(clock.now()),
    });
    const certs = new WorkloadCertificates(ca, { clock });
    const id = "spiffe://cluster.local/ns/default/sa/echo";
    const first = await certs.ensure(id);
    expect(await certs.ensure(id)).toBe(first);
    const leaf = new X509Certificate(String(first.cert));
    expect(leaf.subjectAltName).toBe(`URI:${id}`);
    expect(certs.issued).toBe(1);
    const life = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    clock.advance(life / 2 - 5 * 60_000); // before half-life: still the first
    expect(certs.current(id)).toBe(first);
    clock.advance(10 * 60_000); // past half-life
    await new Promise((r) => setTimeout(r, 100));
    expect(certs.issued).toBe(2);
    const second = certs.current(id);
    expect(second).not.toBe(first);
    expect(new X509Certificate(String(second?.cert)).serialNumber).not.toBe(leaf.serialNumber);
    certs.close();
  });
});
