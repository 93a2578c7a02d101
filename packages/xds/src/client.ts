// A delta-xDS client for the ztunnel workload API, as ztunnel speaks it to istiod
// (`ztunnel:src/xds/client.rs`): one ADS stream (`DeltaAggregatedResources`), subscriptions to
// Address and Authorization, ACK by nonce, NACK with error_detail (the last good state keeps
// serving), removals, `initial_resource_versions` on reconnect, backoff with jitter, on-demand mode.
// gRPC through connect-node's gRPC transport (ADR 0007); nothing here frames HTTP/2 by hand.
import { readFile } from "node:fs/promises";
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from "@ambientkit/xds-types";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { applyDeltaResponse, TYPE_URLS } from "./apply.js";
import { XdsClientError } from "./errors.js";
import {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
  DeltaDiscoveryResponseSchema,
  type Node,
  StatusSchema,
} from "./gen/discovery_pb.js";
import type { XdsMetrics, XdsTerminationReason } from "./metrics.js";
import type { MeshStateStore, ResourceKind } from "./state.js";

export { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL };

/** gRPC status INVALID_ARGUMENT, what a NACK's error_detail carries. */
const INVALID_ARGUMENT = 3;

export interface XdsBackoff {
  /** First retry delay (ms). */
  readonly initialMs: number;
  /** Cap (ms). */
  readonly maxMs: number;
  /** ± fraction of randomisation, 0–1. */
  readonly jitter: number;
}

/** Backoff between reconnects: 100 ms doubling to 15 s, ±20 %; reset once a stream has delivered. */
export const DEFAULT_XDS_BACKOFF: XdsBackoff = { initialMs: 100, maxMs: 15_000, jitter: 0.2 };

export type XdsLogLevel = "debug" | "info" | "warn" | "error";
export type XdsLogger = (
  level: XdsLogLevel,
  message: string,
  fields?: Record<string, unknown>,
) => void;

export interface XdsClientOptions {
  /**
   * `XDS_ADDRESS`: `https://istiod.istio-system.svc:15012` (TLS, the server certificate verified
   * against `rootCert`) or `http://127.0.0.1:15010` (plaintext, for local use only).
   */
  readonly address: string;
  /** `XDS_ROOT_CA`: PEM of the mesh root that signed istiod's serving certificate (required for https). */
  readonly rootCert?: string;
  /**
   * The name istiod's certificate is checked against, when it differs from the address's host (e.g.
   * `istiod.istio-system.svc` while dialling an IP).
   */
  readonly serverName?: string;
  /** A bearer token file (`./var/run/secrets/tokens/istio-token`), re-read on every connect. */
  readonly tokenFile?: string;
  /** The node ztunnel presents (see `ztunnelNode()`). */
  readonly node: Node;
  /** The store every accepted response is applied to. */
  readonly state: MeshStateStore;
  /** Which kinds to subscribe to (default both). */
  readonly kinds?: readonly ResourceKind[];
  /**
   * `XDS_ON_DEMAND`: Address resources are not pushed wholesale; `subscribe()` fetches them by
   * `network/ip` alias or uid.
   */
  readonly onDemand?: boolean;
  /** Extra request metadata, e.g. `{ clusterid: "Kubernetes" }` (ztunnel's `CA_HEADERS`-style). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Largest response accepted (bytes, default 64 MiB); a larger one fails the stream, state kept. */
  readonly maxMessageBytes?: number;
  readonly backoff?: XdsBackoff;
  readonly metrics?: XdsMetrics;
  readonly log?: XdsLogger;
  /** Injectable randomness for the backoff jitter (tests). */
  readonly random?: () => number;
}

/** A rejected response: what was refused and why (also logged and sent as the NACK's error_detail). */
export interface XdsRejection {
  readonly typeUrl: string;
  readonly nonce: string;
  readonly error: XdsClientError;
}

/** Events an embedder (or `ambientkit xds watch`) can follow. */
export interface XdsClientEvents {
  connected?: () => void;
  disconnected?: (error: XdsClientError | undefined, reason: XdsTerminationReason) => void;
  rejected?: (r: XdsRejection) => void;
  /** Every raw response, before it is applied (for debugging tools). */
  response?: (r: DeltaDiscoveryResponse) => void;
}

/** A queue the request stream reads from; `end()` finishes the iterator. */
class RequestQueue implements AsyncIterable<DeltaDiscoveryRequest> {
  readonly #items: DeltaDiscoveryRequest[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  push(r: DeltaDiscoveryRequest): void {
    if (this.#done) return;
    this.#items.push(r);
    this.#wake?.();
  }
  end(): void {
    this.#done = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<DeltaDiscoveryRequest> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#done) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Keeps one delta ADS stream to the control plane open until `close()`, applying every accepted
 * response to the state store. Failures never throw out of the loop: they are logged, counted,
 * reported through `on.disconnected`/`on.rejected`, and retried with backoff.
 */
export class DeltaXdsClient {
  readonly #o: XdsClientOptions;
  readonly #kinds: readonly ResourceKind[];
  readonly #backoff: XdsBackoff;
  readonly #log: XdsLogger;
  readonly #random: () => number;
  readonly #onDemandNames = new Set<string>();
  readonly #on: XdsClientEvents;
  #queue: RequestQueue | undefined;
  #abort: AbortController | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #sleepTimer: NodeJS.Timeout | undefined;
  #wakeSleep: (() => void) | undefined;
  #attempt = 0;
  #connects = 0;
  #lastError: XdsClientError | undefined;

  constructor(options: XdsClientOptions, on: XdsClientEvents = {}) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch (cause) {
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        `xDS address ${JSON.stringify(options.address)} is not a URL: use https://host:15012 or http://host:port`,
        { cause },
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        `xDS address ${options.address} must start with https:// (istiod, TLS) or http:// (plaintext, local use)`,
      );
    if (url.protocol === "https:" && (options.rootCert === undefined || options.rootCert === ""))
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CONFIG",
        "an https xDS address needs rootCert: the PEM of the mesh root that signed istiod's certificate (XDS_ROOT_CA)",
      );
    this.#o = options;
    this.#kinds = options.kinds ?? ["address", "authorization"];
    if (this.#kinds.length === 0)
      throw new XdsClientError("ERR_XDS_CLIENT_CONFIG", "subscribe to at least one kind");
    this.#backoff = options.backoff ?? DEFAULT_XDS_BACKOFF;
    this.#log = options.log ?? (() => {});
    this.#random = options.random ?? Math.random;
    this.#on = on;
  }

  /** The error that ended the last stream or rejected the last response, if any. */
  get lastError(): XdsClientError | undefined {
    return this.#lastError;
  }
  /** Streams opened so far. */
  get connects(): number {
    return this.#connects;
  }
  /** Resolves once the first response of every subscribed kind has been applied. */
  ready(): Promise<void> {
    return this.#o.state.whenReady(this.#kinds);
  }

  /** Opens the stream (and keeps reopening it) until `close()`. */
  start(): this {
    if (this.#closed)
      throw new XdsClientError(
        "ERR_XDS_CLIENT_CLOSED",
        "this xDS client was closed; create a new one",
      );
    this.#loop ??= this.#run();
    return this;
  }

  /** On-demand mode: fetch Address resources by `network/ip` alias or uid. */
  subscribe(names: readonly string[]): void {
    const fresh: string[] = [];
    for (const n of names) {
      if (this.#onDemandNames.has(n)) continue;
      this.#onDemandNames.add(n);
      fresh.push(n);
    }
    if (fresh.length > 0)
      this.#queue?.push(this.#request("address", { resourceNamesSubscribe: fresh }));
  }
  /** On-demand mode: stop tracking these Address resources. */
  unsubscribe(names: readonly string[]): void {
    const gone = names.filter((n) => this.#onDemandNames.delete(n));
    if (gone.length > 0)
      this.#queue?.push(this.#request("address", { resourceNamesUnsubscribe: gone }));
  }

  /** Ends the stream and stops reconnecting; the state store keeps what it has. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue?.end();
    this.#abort?.abort();
    if (this.#sleepTimer !== undefined) clearTimeout(this.#sleepTimer);
    this.#wakeSleep?.();
    await this.#loop;
  }

  #request(
    kind: ResourceKind,
    init: MessageInitShape<typeof DeltaDiscoveryRequestSchema>,
  ): DeltaDiscoveryRequest {
    return create(DeltaDiscoveryRequestSchema, {
      node: this.#o.node,
      typeUrl: TYPE_URLS[kind],
      ...init,
    });
  }

  /** The first request of each kind on a (re)connected stream. */
  #initialRequests(): DeltaDiscoveryRequest[] {
    return this.#kinds.map((kind) => {
      const initialResourceVersions = Object.fromEntries(this.#o.state.versions(kind));
      if (kind === "address" && this.#o.onDemand === true) {
        // On-demand: opt out of the wildcard ("*" subscribed and unsubscribed at once), then
        // re-subscribe to what was being tracked before the reconnect.
        return this.#request(kind, {
          resourceNamesSubscribe: ["*", ...this.#onDemandNames],
          resourceNamesUnsubscribe: ["*"],
          initialResourceVersions,
        });
      }
      return this.#request(kind, { initialResourceVersions });
    });
  }

  async #headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { ...this.#o.headers };
    if (this.#o.tokenFile !== undefined) {
      let token: string;
      try {
        token = (await readFile(this.#o.tokenFile, "utf8")).trim();
      } catch (cause) {
        throw new XdsClientError(
          "ERR_XDS_CLIENT_TOKEN",
          `cannot read the xDS token file ${this.#o.tokenFile}: ${errorText(cause)} — mount the projected service-account token (audience istio-ca) there`,
          { cause },
        );
      }
      if (token === "")
        throw new XdsClientError(
          "ERR_XDS_CLIENT_TOKEN",
          `the xDS token file ${this.#o.tokenFile} is empty`,
        );
      headers.authorization = `Bearer ${token}`;
    }
    return headers;
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const delivered = await this.#stream();
      if (this.#closed) break;
      if (delivered) this.#attempt = 0;
      const delay = this.#delay();
      this.#attempt++;
      this.#log("info", "xds: reconnecting", { inMs: Math.round(delay) });
      await new Promise<void>((resolve) => {
        this.#wakeSleep = resolve;
        this.#sleepTimer = setTimeout(resolve, delay);
      });
      this.#sleepTimer = undefined;
      this.#wakeSleep = undefined;
    }
  }

  #delay(): number {
    const b = this.#backoff;
    const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(this.#attempt, 30));
    return Math.max(0, base * (1 + b.jitter * (2 * this.#random() - 1)));
  }

  /** One stream, from connect to its end; true when it delivered at least one response. */
  async #stream(): Promise<boolean> {
    const o = this.#o;
    const abort = new AbortController();
    const queue = new RequestQueue();
    this.#abort = abort;
    this.#queue = queue;
    let delivered = false;
    let reason: XdsTerminationReason = "Complete";
    let failure: XdsClientError | undefined;
    let session: Http2SessionManager | undefined;
    try {
      const headers = await this.#headers();
      const url = new URL(o.address);
      // Our own session manager, so the connection is torn down with the stream (no idle socket
      // left behind to keep the process alive or to carry a later stream on stale credentials).
      session = new Http2SessionManager(
        url.origin,
        // A dead control plane must not leave us waiting forever on a silent connection.
        { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 },
        url.protocol === "https:"
          ? {
              ca: o.rootCert,
              ...(o.serverName !== undefined ? { servername: o.serverName } : {}),
              minVersion: "TLSv1.2",
            }
          : {},
      );
      const transport = createGrpcTransport({
        baseUrl: url.origin,
        readMaxBytes: o.maxMessageBytes ?? 64 * 1024 * 1024,
        sessionManager: session,
      });
      const client = createClient(AggregatedDiscoveryService, transport);
      for (const r of this.#initialRequests()) queue.push(r);
      this.#connects++;
      let announced = false;
      for await (const res of client.deltaAggregatedResources(queue, {
        signal: abort.signal,
        headers,
      })) {
        if (!announced) {
          announced = true;
          this.#log("info", "xds: stream established", { address: o.address });
          this.#on.connected?.();
        }
        delivered = true;
        o.metrics?.messageReceived(
          res.typeUrl,
          toBinary(DeltaDiscoveryResponseSchema, res).byteLength,
        );
        this.#on.response?.(res);
        queue.push(this.#handle(res));
      }
      // The server ended the stream cleanly: istiod does so to rebalance; reconnect.
      reason = "Reconnect";
      failure = new XdsClientError(
        "ERR_XDS_CLIENT_STREAM",
        `the control plane at ${o.address} ended the xDS stream; reconnecting`,
      );
    } catch (e) {
      if (this.#closed) {
        reason = "Complete";
      } else {
        failure = this.#classify(e);
        reason =
          failure.code === "ERR_XDS_CLIENT_STREAM" && !delivered ? "ConnectionError" : "Error";
      }
    } finally {
      queue.end();
      abort.abort();
      session?.abort();
    }
    if (failure !== undefined) {
      this.#lastError = failure;
      this.#log(
        failure.code === "ERR_XDS_CLIENT_STREAM" && reason === "Reconnect" ? "info" : "warn",
        `xds: ${failure.message}`,
        {
          code: failure.code,
        },
      );
    }
    o.metrics?.connectionTerminated(reason);
    this.#on.disconnected?.(failure, reason);
    return delivered;
  }

  #classify(e: unknown): XdsClientError {
    if (e instanceof XdsClientError) return e;
    const ce = ConnectError.from(e);
    if (ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied)
      return new XdsClientError(
        "ERR_XDS_CLIENT_UNAUTHENTICATED",
        `the control plane at ${this.#o.address} refused our credentials (${ce.rawMessage}): check the token file and its audience (istio-ca)`,
        { cause: e },
      );
    return new XdsClientError(
      "ERR_XDS_CLIENT_STREAM",
      `the xDS stream to ${this.#o.address} failed (${Code[ce.code]}: ${ce.rawMessage}); the last good state keeps serving`,
      { cause: e },
    );
  }

  /** Converts and applies one response (all or nothing) and returns its ACK or NACK. */
  #handle(res: DeltaDiscoveryResponse): DeltaDiscoveryRequest {
    const result = applyDeltaResponse(this.#o.state, res, this.#kinds);
    if (result.ok) return this.#request(result.kind, { responseNonce: res.nonce });
    const error = result.error;
    this.#lastError = error;
    this.#log(
      "warn",
      `xds: rejected a response (NACK); the last good state keeps serving: ${error.message}`,
      { typeUrl: res.typeUrl, nonce: res.nonce },
    );
    this.#on.rejected?.({ typeUrl: res.typeUrl, nonce: res.nonce, error });
    return create(DeltaDiscoveryRequestSchema, {
      node: this.#o.node,
      typeUrl: res.typeUrl,
      responseNonce: res.nonce,
      errorDetail: create(StatusSchema, { code: INVALID_ARGUMENT, message: error.message }),
    });
  }
}
