import { describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";
import {
  type CertificateEvent,
  CertificateManager,
  type ManagedCertificate,
  type RotationClock,
} from "./rotation.js";

/** A manual clock: timers fire only when the test advances time. */
class FakeClock implements RotationClock {
  t: number;
  timers = new Map<number, { at: number; cb: () => void }>();
  next = 1;
  constructor(start: number) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(cb: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, cb });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** The delay of the one pending timer. */
  pendingDelay(): number | undefined {
    const [first] = [...this.timers.values()];
    return first === undefined ? undefined : first.at - this.t;
  }
  /** Moves to the next timer, fires it, and lets the async refresh settle. */
  async fireNext(): Promise<void> {
    const [entry] = [...this.timers.entries()].sort((a, b) => a[1].at - b[1].at);
    if (entry === undefined) throw new Error("no timer pending");
    this.timers.delete(entry[0]);
    this.t = Math.max(this.t, entry[1].at);
    entry[1].cb();
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
}

const HOUR = 3600_000;
const start = Date.UTC(2026, 0, 1);

function cert(notBefore: number, lifetimeMs: number, tag = ""): ManagedCertificate {
  return {
    certChainPem: `chain${tag}`,
    privateKeyPem: `key${tag}`,
    notBefore: new Date(notBefore),
    notAfter: new Date(notBefore + lifetimeMs),
  };
}

describe("CertificateManager", () => {
  it("refreshes at half-life, as ztunnel", async () => {
    const clock = new FakeClock(start);
    let n = 0;
    const m = new CertificateManager({
      clock,
      fetch: async () => cert(clock.now() - 2 * 60_000, 24 * HOUR + 2 * 60_000, String(n++)),
    });
    const events: CertificateEvent[] = [];
    m.on((e) => events.push(e));
    const first = await m.ready();
    expect(first.certChainPem).toBe("chain0");
    // backdated 2 min, 24 h TTL: refresh 11h59m after issuance
    expect(clock.pendingDelay()).toBe(11 * HOUR + 59 * 60_000);
    expect(m.refreshAt(first).toISOString()).toBe("2026-01-01T11:59:00.000Z");
    await clock.fireNext();
    expect(m.current()?.certChainPem).toBe("chain1");
    expect(events.map((e) => e.type)).toEqual(["issued", "issued"]);
    m.close();
    expect(clock.timers.size).toBe(0);
    expect(m.pending).toBe(false);
  });

  it("backs off 500 ms doubling to 150 s, serves the old cert until it expires, then reports expiry", async () => {
    const clock = new FakeClock(start);
    let fail = false;
    const m = new CertificateManager({
      clock,
      random: () => 0.5, // no jitter
      fetch: async () => {
        if (fail) throw new Error("istiod unavailable");
        return cert(clock.now(), 2 * HOUR);
      },
    });
    const events: CertificateEvent[] = [];
    m.on((e) => events.push(e));
    const first = await m.ready();
    fail = true;
    await clock.fireNext(); // half-life refresh fails
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      delays.push(clock.pendingDelay() as number);
      expect(m.current()).toBe(first); // still served
      await clock.fireNext();
      if (m.current() === undefined) break;
    }
    expect(delays.slice(0, 10)).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000,
    ]);
    // the old cert expires at 2 h; retries never overshoot it
    while (m.current() !== undefined) await clock.fireNext();
    expect(clock.now()).toBe(first.notAfter.getTime());
    expect(events.some((e) => e.type === "expired")).toBe(true);
    const failures = events.filter((e) => e.type === "refresh-failed");
    expect(failures[0]).toMatchObject({ attempt: 1, retryInMs: 500, servingPrevious: true });
    // recovery resets the backoff and serves the new cert
    fail = false;
    await clock.fireNext();
    expect(m.current()?.notBefore.getTime()).toBe(clock.now());
    expect(clock.pendingDelay()).toBe(HOUR);
    m.close();
    expect(clock.timers.size).toBe(0);
  });

  it("jitters retries by at most ±20 %", async () => {
    for (const r of [0, 0.999999]) {
      const clock = new FakeClock(start);
      const m = new CertificateManager({
        clock,
        random: () => r,
        fetch: async () => {
          throw new Error("down");
        },
      });
      m.start();
      await settle();
      const d = clock.pendingDelay() as number;
      expect(d).toBeGreaterThanOrEqual(400);
      expect(d).toBeLessThanOrEqual(600);
      expect(d).not.toBe(500);
      m.close();
    }
  });

  it("close() cancels timers, rejects waiters and ignores a fetch still in flight", async () => {
    const clock = new FakeClock(start);
    let release: (c: ManagedCertificate) => void = () => {};
    const m = new CertificateManager({
      clock,
      fetch: () => new Promise<ManagedCertificate>((r) => (release = r)),
    });
    const events: string[] = [];
    m.on((e) => events.push(e.type));
    const ready = m.ready();
    expect(m.pending).toBe(true);
    m.close();
    await expect(ready).rejects.toMatchObject({ code: "ERR_IDENTITY_ROTATION" });
    release(cert(clock.now(), HOUR));
    await settle();
    expect(m.current()).toBeUndefined();
    expect(clock.timers.size).toBe(0);
    expect(m.pending).toBe(false);
    expect(events).toEqual(["closed"]);
    expect(() => m.start()).toThrow(/closed/);
  });

  it("rotates real certificates from the CA", async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const m = new CertificateManager({
      fetch: () => ca.issue("spiffe://cluster.local/ns/a/sa/b", { ttlMs: HOUR }),
    });
    const c = await m.ready();
    expect(c.identity).toBe("spiffe://cluster.local/ns/a/sa/b");
    expect(m.refreshAt(c).getTime()).toBe(c.notBefore.getTime() + (HOUR + 2 * 60_000) / 2);
    expect(m.pending).toBe(true);
    m.close();
    expect(m.pending).toBe(false);
  });
});
