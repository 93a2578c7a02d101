// Workload certificate rotation as ztunnel's SecretManager does it (src/identity/manager.rs,
// src/tls/certificate.rs): refresh at half of the certificate's lifetime, retry failures with
// exponential backoff (500 ms doubling to 150 s, ±20 %), keep serving the old certificate until
// it expires. Universal: the clock and timers are injectable, nothing from node:.
import { IdentityError } from "./errors.js";

/** A certificate the manager serves; {@link IssuedKeyAndCertificate} fits. */
export interface ManagedCertificate {
  /** Leaf + intermediates, PEM. */
  readonly certChainPem: string;
  readonly privateKeyPem: string;
  /** The trust anchors that came with it (the last element of Istio's CA response). */
  readonly rootCertPem?: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Time and timers; defaults are `Date.now`, `setTimeout`, `clearTimeout`. */
export interface RotationClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface CertificateManagerOptions<C extends ManagedCertificate = ManagedCertificate> {
  /** Obtains a fresh certificate (e.g. `() => ca.issue(id)`, or a CSR to istiod). */
  fetch: () => Promise<C>;
  clock?: RotationClock;
  /** Uniform [0, 1) source for backoff jitter (default Math.random). */
  random?: () => number;
  /** Fraction of the lifetime after notBefore at which to refresh (default 0.5, ztunnel). */
  refreshRatio?: number;
  /** First retry delay after a failure (default 500 ms). */
  initialBackoffMs?: number;
  /** Retry delay cap (default 150 s, ztunnel CERT_REFRESH_FAILURE_RETRY_DELAY_MAX_INTERVAL). */
  maxBackoffMs?: number;
  /** Jitter as a fraction of the delay (default 0.2). */
  backoffJitter?: number;
}

/** What the manager reports. */
export type CertificateEvent<C extends ManagedCertificate = ManagedCertificate> =
  | { readonly type: "issued"; readonly certificate: C; readonly refreshAt: Date }
  | {
      readonly type: "refresh-failed";
      readonly error: unknown;
      /** Consecutive failures so far (1 for the first). */
      readonly attempt: number;
      readonly retryInMs: number;
      /** Whether a still-valid certificate keeps being served meanwhile. */
      readonly servingPrevious: boolean;
    }
  | { readonly type: "expired"; readonly certificate: C }
  | { readonly type: "closed" };

export const DEFAULT_REFRESH_RATIO = 0.5;
export const DEFAULT_INITIAL_BACKOFF_MS = 500;
export const DEFAULT_MAX_BACKOFF_MS = 150_000;

const systemClock: RotationClock = {
  now: () => Date.now(),
  setTimeout: (cb, ms) => globalThis.setTimeout(cb, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
};

/**
 * Keeps one workload certificate fresh. `start()` fetches at once; afterwards the manager
 * refreshes at `notBefore + ratio × lifetime`, retries failures with backoff (never later than
 * the current certificate's expiry), and serves the previous certificate until it expires.
 * `close()` cancels every timer and ignores fetches still in flight.
 */
export class CertificateManager<C extends ManagedCertificate = ManagedCertificate> {
  readonly #fetch: () => Promise<C>;
  readonly #clock: RotationClock;
  readonly #random: () => number;
  readonly #ratio: number;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  readonly #jitter: number;
  readonly #listeners = new Set<(event: CertificateEvent<C>) => void>();
  readonly #waiters: { resolve: (c: C) => void; reject: (e: unknown) => void }[] = [];
  #cert: C | undefined;
  #timer: unknown;
  #timerSet = false;
  #failures = 0;
  #started = false;
  #closed = false;
  #fetching = false;

  constructor(options: CertificateManagerOptions<C>) {
    this.#fetch = options.fetch;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#ratio = options.refreshRatio ?? DEFAULT_REFRESH_RATIO;
    this.#initialBackoff = options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
    this.#maxBackoff = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.#jitter = options.backoffJitter ?? 0.2;
    if (!(this.#ratio > 0 && this.#ratio <= 1)) {
      throw rotationError(`refreshRatio must be in (0, 1], got ${this.#ratio}`);
    }
    if (!(this.#initialBackoff > 0) || !(this.#maxBackoff >= this.#initialBackoff)) {
      throw rotationError("need 0 < initialBackoffMs <= maxBackoffMs");
    }
  }

  /** Starts fetching the first certificate. Calling it again does nothing. */
  start(): this {
    if (this.#closed) throw rotationError("the certificate manager is closed");
    if (!this.#started) {
      this.#started = true;
      void this.#refresh();
    }
    return this;
  }

  /** The certificate to serve now, or undefined (none yet, or the last one expired). */
  current(): C | undefined {
    const c = this.#cert;
    if (c !== undefined && this.#clock.now() >= c.notAfter.getTime()) return undefined;
    return c;
  }

  /** Resolves with the first valid certificate (starts the manager if needed). */
  ready(): Promise<C> {
    const c = this.current();
    if (c !== undefined) return Promise.resolve(c);
    if (this.#closed) return Promise.reject(rotationError("the certificate manager is closed"));
    const p = new Promise<C>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.start();
    return p;
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (event: CertificateEvent<C>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** When a certificate is due for refresh: notBefore + ratio × (notAfter − notBefore). */
  refreshAt(cert: ManagedCertificate): Date {
    const nb = cert.notBefore.getTime();
    return new Date(nb + Math.floor((cert.notAfter.getTime() - nb) * this.#ratio));
  }

  /** True while a timer is pending (for tests and health checks). */
  get pending(): boolean {
    return this.#timerSet || this.#fetching;
  }

  /** Stops: cancels the timer, rejects `ready()` waiters, ignores in-flight fetches. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    for (const w of this.#waiters.splice(0))
      w.reject(rotationError("the certificate manager was closed"));
    this.#emit({ type: "closed" });
    this.#listeners.clear();
  }

  async #refresh(): Promise<void> {
    if (this.#closed) return;
    this.#checkExpiry();
    this.#fetching = true;
    let fresh: C;
    try {
      fresh = await this.#fetch();
      const nb = fresh.notBefore.getTime();
      const na = fresh.notAfter.getTime();
      if (!(na > nb)) throw rotationError("fetched certificate has notAfter <= notBefore");
      if (this.#clock.now() >= na) {
        throw rotationError(
          `fetched certificate already expired at ${fresh.notAfter.toISOString()}`,
        );
      }
    } catch (error) {
      this.#fetching = false;
      if (this.#closed) return;
      this.#failed(error);
      return;
    }
    this.#fetching = false;
    if (this.#closed) return;
    this.#failures = 0;
    this.#cert = fresh;
    const refreshAt = this.refreshAt(fresh);
    for (const w of this.#waiters.splice(0)) w.resolve(fresh);
    this.#emit({ type: "issued", certificate: fresh, refreshAt });
    this.#schedule(refreshAt.getTime() - this.#clock.now());
  }

  #failed(error: unknown): void {
    this.#failures++;
    const base = Math.min(this.#maxBackoff, this.#initialBackoff * 2 ** (this.#failures - 1));
    const jittered = base * (1 + this.#jitter * (2 * this.#random() - 1));
    let delay = Math.max(1, Math.min(this.#maxBackoff, Math.round(jittered)));
    const now = this.#clock.now();
    const serving = this.current() !== undefined;
    if (this.#cert !== undefined && serving) {
      // never sleep past the expiry of what we serve: retry (and report expiry) by then
      delay = Math.max(1, Math.min(delay, this.#cert.notAfter.getTime() - now));
    }
    this.#emit({
      type: "refresh-failed",
      error,
      attempt: this.#failures,
      retryInMs: delay,
      servingPrevious: serving,
    });
    this.#schedule(delay);
  }

  #checkExpiry(): void {
    const c = this.#cert;
    if (c !== undefined && this.#clock.now() >= c.notAfter.getTime()) {
      this.#cert = undefined;
      this.#emit({ type: "expired", certificate: c });
    }
  }

  #schedule(ms: number): void {
    this.#clearTimer();
    this.#timerSet = true;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timerSet = false;
        this.#timer = undefined;
        void this.#refresh();
      },
      Math.max(0, ms),
    );
  }

  #clearTimer(): void {
    if (this.#timerSet) {
      this.#clock.clearTimeout(this.#timer);
      this.#timerSet = false;
      this.#timer = undefined;
    }
  }

  #emit(event: CertificateEvent<C>): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch {
        // a listener's failure must not stop rotation
      }
    }
  }
}

function rotationError(message: string): IdentityError {
  return new IdentityError("ERR_IDENTITY_ROTATION", message);
}
