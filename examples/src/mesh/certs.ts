// Workload certificates per SPIFFE identity, issued by the in-process CA or by istiod's CA (the
// @ambientkit/xds CA client) and rotated at half-life (CertificateManager, as ztunnel's
// SecretManager). ztunnel holds one certificate per identity of the workloads on its node.
import {
  CertificateAuthority,
  CertificateManager,
  type ManagedCertificate,
  type RotationClock,
} from "@ambientkit/identity";
import type { HboneCredentials } from "../hbone.js";

/** A certificate with the roots to trust beside it (what both CAs return). */
export type WorkloadCertificate = ManagedCertificate & { readonly rootCertPem: string };

/** Where certificates come from: the in-process CA, or any fetch (e.g. `IstioCaClient`). */
export type CertificateSource =
  | CertificateAuthority
  | ((identity: string) => Promise<WorkloadCertificate>);

export class WorkloadCertificates {
  readonly #fetch: (identity: string) => Promise<WorkloadCertificate>;
  readonly #clock: RotationClock | undefined;
  readonly #managers = new Map<string, CertificateManager<WorkloadCertificate>>();
  readonly #creds = new WeakMap<WorkloadCertificate, HboneCredentials>();
  /** Certificates issued so far (for tests of rotation). */
  issued = 0;

  /**
   * `ttlMs`: requested SVID lifetime with the in-process CA (default the CA's, 24 h; a fetch
   * function asks for its own); `clock`: rotation timers (tests).
   */
  constructor(source: CertificateSource, options: { ttlMs?: number; clock?: RotationClock } = {}) {
    const ttl = options.ttlMs;
    this.#fetch =
      source instanceof CertificateAuthority
        ? (identity) => source.issue(identity, ttl === undefined ? {} : { ttlMs: ttl })
        : source;
    this.#clock = options.clock;
  }

  #manager(identity: string): CertificateManager<WorkloadCertificate> {
    let m = this.#managers.get(identity);
    if (!m) {
      m = new CertificateManager<WorkloadCertificate>({
        ...(this.#clock ? { clock: this.#clock } : {}),
        fetch: () => {
          this.issued++;
          return this.#fetch(identity);
        },
      }).start();
      this.#managers.set(identity, m);
    }
    return m;
  }

  /** Issues (once) and waits for the certificate of `identity`. */
  async ensure(identity: string): Promise<HboneCredentials> {
    return this.#toCreds(await this.#manager(identity).ready());
  }

  /** The current credentials of `identity`, if issued. */
  current(identity: string): HboneCredentials | undefined {
    const c = this.#managers.get(identity)?.current();
    return c ? this.#toCreds(c) : undefined;
  }

  /** The certificate currently served for `identity` (config dumps). */
  certificate(identity: string): WorkloadCertificate | undefined {
    return this.#managers.get(identity)?.current();
  }

  #toCreds(c: WorkloadCertificate): HboneCredentials {
    let creds = this.#creds.get(c);
    if (!creds) {
      creds = { cert: c.certChainPem, key: c.privateKeyPem, ca: c.rootCertPem };
      this.#creds.set(c, creds);
    }
    return creds;
  }

  /** Identities with a certificate. */
  identities(): string[] {
    return [...this.#managers.keys()];
  }

  close(): void {
    for (const m of this.#managers.values()) m.close();
    this.#managers.clear();
  }
}
