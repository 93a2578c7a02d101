// A small istiod stand-in: serves a LOCAL_XDS config over delta ADS (Address + Authorization) and,
// given a CertificateAuthority, Istio's CreateCertificate — on loopback, for demos, tests of a
// bespoke ztunnel, and trying a config change end to end. Pushes are diffs: each stream gets what
// changed since what it has (initial_resource_versions on reconnect), removals included. Versions
// are content hashes, as istiod's are.
import { createHash } from "node:crypto";
import { createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import type { CertificateAuthority } from "@ambientkit/identity";
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  addressToProto,
  authorizationKey,
  authorizationToProto,
  encodeAddress,
  encodeAuthorization,
  type LocalConfig,
  serviceKey,
} from "@ambientkit/xds-types";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { IstioCertificateService } from "./gen/ca_pb.js";
import {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  DeltaDiscoveryResponseSchema,
  ResourceSchema,
} from "./gen/discovery_pb.js";

interface Encoded {
  readonly version: string;
  readonly bytes: Uint8Array;
}

type Resources = Map<string, Map<string, Encoded>>;

function encodeAll(config: LocalConfig): Resources {
  const v = (bytes: Uint8Array): Encoded => ({
    version: createHash("sha256").update(bytes).digest("hex").slice(0, 16),
    bytes,
  });
  const addresses = new Map<string, Encoded>();
  for (const workload of config.workloads)
    addresses.set(workload.uid, v(encodeAddress(addressToProto({ kind: "workload", workload }))));
  for (const service of config.services)
    addresses.set(
      serviceKey(service),
      v(encodeAddress(addressToProto({ kind: "service", service }))),
    );
  const policies = new Map<string, Encoded>();
  for (const p of config.policies)
    policies.set(authorizationKey(p), v(encodeAuthorization(authorizationToProto(p))));
  return new Map([
    [ADDRESS_TYPE_URL, addresses],
    [AUTHORIZATION_TYPE_URL, policies],
  ]);
}

/** One client stream: what it subscribed to and what it has (name → version) per type. */
class Subscriber {
  readonly has = new Map<string, Map<string, string>>();
  readonly #queue: DeltaDiscoveryResponse[] = [];
  #wake: (() => void) | undefined;
  #nonce = 0;
  closed = false;

  /** Queues what changed for `typeUrl` since what this stream has; `always`: even if nothing did. */
  push(typeUrl: string, resources: Resources, always = false): void {
    const known = this.has.get(typeUrl);
    const current = resources.get(typeUrl);
    if (known === undefined || current === undefined) return;
    const res = create(DeltaDiscoveryResponseSchema, { typeUrl, nonce: `n${++this.#nonce}` });
    for (const [name, e] of current) {
      if (known.get(name) === e.version) continue;
      known.set(name, e.version);
      res.resources.push(
        create(ResourceSchema, { name, version: e.version, resource: { typeUrl, value: e.bytes } }),
      );
    }
    for (const name of [...known.keys()]) {
      if (current.has(name)) continue;
      known.delete(name);
      res.removedResources.push(name);
    }
    if (!always && res.resources.length === 0 && res.removedResources.length === 0) return;
    this.#queue.push(res);
    this.#wake?.();
  }

  end(): void {
    this.closed = true;
    this.#wake?.();
  }

  async *responses(): AsyncGenerator<DeltaDiscoveryResponse> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((r) => {
        this.#wake = r;
      });
      this.#wake = undefined;
    }
  }
}

export interface LocalControlPlaneOptions {
  /** Signs CreateCertificate requests; without it the CA service answers UNIMPLEMENTED. */
  readonly ca?: CertificateAuthority;
  /** When set, every call must carry `authorization: Bearer <token>`. */
  readonly token?: string;
  /** Called for every NACK a client sends. */
  readonly onNack?: (typeUrl: string, message: string) => void;
}

/** A running local control plane; `address` is its `http://127.0.0.1:port`. */
export class LocalControlPlane {
  readonly #server: Http2Server;
  readonly #subscribers = new Set<Subscriber>();
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #o: LocalControlPlaneOptions;
  #resources: Resources;
  address = "";

  private constructor(config: LocalConfig, options: LocalControlPlaneOptions) {
    this.#o = options;
    this.#resources = encodeAll(config);
    this.#server = createServer(connectNodeAdapter({ routes: (r) => this.#routes(r) }));
    this.#server.on("session", (session) => {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
    });
  }

  /** Listens on `host:port` (default 127.0.0.1, an ephemeral port). */
  static async start(
    config: LocalConfig,
    options: LocalControlPlaneOptions & { host?: string; port?: number } = {},
  ): Promise<LocalControlPlane> {
    const cp = new LocalControlPlane(config, options);
    const host = options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      cp.#server.once("error", reject);
      cp.#server.listen(options.port ?? 0, host, () => {
        cp.#server.off("error", reject);
        resolve();
      });
    });
    cp.address = `http://${host}:${(cp.#server.address() as AddressInfo).port}`;
    return cp;
  }

  /** Streams connected now. */
  get streams(): number {
    return this.#subscribers.size;
  }

  /** Replaces the config and pushes the diff to every connected stream. */
  setConfig(config: LocalConfig): void {
    this.#resources = encodeAll(config);
    for (const s of this.#subscribers)
      for (const typeUrl of s.has.keys()) s.push(typeUrl, this.#resources);
  }

  #authorize(header: string | null): void {
    if (this.#o.token !== undefined && header !== `Bearer ${this.#o.token}`)
      throw new ConnectError("authentication failure", Code.Unauthenticated);
  }

  #routes(router: ConnectRouter): void {
    const self = this;
    router.service(AggregatedDiscoveryService, {
      async *deltaAggregatedResources(requests: AsyncIterable<DeltaDiscoveryRequest>, context) {
        self.#authorize(context.requestHeader.get("authorization"));
        const sub = new Subscriber();
        self.#subscribers.add(sub);
        const reader = (async () => {
          try {
            for await (const r of requests) {
              if (r.errorDetail !== undefined) self.#o.onNack?.(r.typeUrl, r.errorDetail.message);
              if (r.responseNonce !== "") continue; // ACK or NACK
              if (!sub.has.has(r.typeUrl)) {
                sub.has.set(r.typeUrl, new Map(Object.entries(r.initialResourceVersions)));
                // The first answer is sent even when empty: it is what makes the client ready.
                sub.push(r.typeUrl, self.#resources, true);
              }
            }
          } finally {
            sub.end();
          }
        })();
        try {
          yield* sub.responses();
        } finally {
          sub.end();
          self.#subscribers.delete(sub);
          await reader.catch(() => {});
        }
      },
    });
    router.service(IstioCertificateService, {
      async createCertificate(req, context) {
        self.#authorize(context.requestHeader.get("authorization"));
        const ca = self.#o.ca;
        if (ca === undefined) throw new ConnectError("no CA configured", Code.Unimplemented);
        const identity = req.metadata?.ImpersonatedIdentity;
        if (typeof identity !== "string" || identity === "")
          throw new ConnectError(
            "this local CA signs only impersonated identities",
            Code.InvalidArgument,
          );
        try {
          const ttl = Number(req.validityDuration);
          const issued = await ca.sign(req.csr, {
            identity,
            ...(ttl > 0 ? { ttlMs: ttl * 1000 } : {}),
          });
          return { certChain: [...issued.chain] };
        } catch (e) {
          throw new ConnectError(
            `CSR signing error (${(e as Error).message})`,
            Code.InvalidArgument,
          );
        }
      },
    });
  }

  /** Ends every stream and stops listening. */
  async close(): Promise<void> {
    for (const s of this.#subscribers) s.end();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      // Open HTTP/2 sessions keep close() waiting: end them.
      for (const s of this.#sessions) s.destroy();
    });
  }
}
