// Workload certificates per SPIFFE identity, issued by the in-process CA and rotated at half-life
// (CertificateManager, as ztunnel's SecretManager). ztunnel holds one certificate per identity of
// the workloads on its node.
import {
  type CertificateAuthority,
  CertificateManager,
  type IssuedKeyAndCertificate,
  type RotationClock,
} from "@ambientkit/identity";
import type { HboneCredentials } from "../hbone.js";

export class WorkloadCertificates {
  readonly #ca: CertificateAuthority;
  readonly #ttlMs: number | undefined;
  readonly #clock: RotationClock | undefined;
  readonly #managers = new Map<string, CertificateManager<IssuedKeyAndCertificate>>();
  readonly #creds = new WeakMap<IssuedKeyAndCertificate, HboneCredentials>();
  /** Certificates issued so far (for tests of rotation). */
  issued = 0;

  /** `ttlMs`: requested SVID lifetime (default the CA's, 24 h); `clock`: rotation timers (tests). */
  constructor(ca: CertificateAuthority, options: { ttlMs?: number; clock?: RotationClock } = {}) {
    this.#ca = ca;
    this.#ttlMs = options.ttlMs;
    this.#clock = options.clock;
  }

  #manager(identity: string): CertificateManager<IssuedKeyAndCertificate> {
    let m = this.#managers.get(identity);
    if (!m) {
      const ttl = this.#ttlMs;
      m = new CertificateManager<IssuedKeyAndCertificate>({
        ...(this.#clock ? { clock: this.#clock } : {}),
        fetch: () => {
          this.issued++;
          return this.#ca.issue(identity, ttl === undefined ? {} : { ttlMs: ttl });
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

  #toCreds(c: IssuedKeyAndCertificate): HboneCredentials {
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
