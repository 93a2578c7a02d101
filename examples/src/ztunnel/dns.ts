// ztunnel's DNS proxy (port 15053) for the reference ztunnel: answers A/AAAA for mesh services
// from MeshState, forwards everything else upstream. Semantics follow ztunnel's `dns::server::Store`
// (aliases, wildcards, namespace preference, CNAME for search-domain hits); the wire format is
// dns-packet (ADR 0011). Transport-agnostic core (`DnsProxy.answer`) plus UDP/TCP serving helpers.
import dgram from "node:dgram";
import net from "node:net";
import type { Service } from "@ambientkit/xds-types";
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer } from "dns-packet";
import { Counter, Histogram, type Registry } from "prom-client";
import { ExampleError } from "../mesh/errors.js";
import type { MeshState } from "../mesh/state.js";

/** Who asked: the client workload's namespace (and network, for VIP filtering; default ""). */
export interface DnsClient {
  readonly namespace: string;
  readonly network?: string;
  /** For the metrics' source_canonical_service / _revision labels ("unknown" when absent). */
  readonly canonicalService?: string;
  readonly canonicalRevision?: string;
}

/** What the DNS metrics are labelled with: ztunnel's DnsLabels. */
export interface DnsRequestLabels {
  /** The question's type, lower case (`a`, `aaaa`, `txt`…). */
  readonly queryType: string;
  readonly protocol: "udp" | "tcp";
  readonly client: DnsClient | undefined;
}

/** Where a DnsProxy reports its requests (ztunnel's istio_dns_* metrics: {@link dnsMetrics}). */
export interface DnsObserver {
  /** Every request with a question, answered locally or not. */
  request(labels: DnsRequestLabels): void;
  /** A request sent upstream: how long it took, and whether an answer came. */
  forwarded(labels: DnsRequestLabels, seconds: number, ok: boolean): void;
}

/** The peer a query came from, as a transport sees it. */
export interface DnsPeer {
  readonly address: string;
  readonly port: number;
  readonly family: string;
}

export interface DnsProxyOptions {
  readonly state: () => MeshState;
  /** Cluster domain; default `cluster.local`. */
  readonly domain?: string;
  /** Sends the raw query upstream and resolves the raw response. */
  readonly forward: (query: Buffer) => Promise<Buffer>;
  /** TTL of the records we author; default 30 s, as ztunnel. */
  readonly ttl?: number;
  /** false → AAAA for mesh hosts answers empty, as ztunnel with IPv6 disabled; default true. */
  readonly ipv6?: boolean;
  /** Metrics; none when absent. */
  readonly observer?: DnsObserver;
}

const RCODE_NOERROR = 0;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NOTIMP = 4;
const QR = 0x8000;
const UDP_MIN_PAYLOAD = 512;

interface Alias {
  readonly name: string;
  /** Set when the alias came from stripping a search domain: ztunnel answers with a CNAME then. */
  readonly stripped?: string;
}

const hostIndex = new WeakMap<MeshState, Map<string, Service[]>>();

/** Every service per hostname (ServiceEntry may define one host in several namespaces). */
function servicesByHost(state: MeshState): Map<string, Service[]> {
  let idx = hostIndex.get(state);
  if (!idx) {
    idx = new Map();
    for (const s of state.config.services) {
      const key = s.hostname.toLowerCase();
      const list = idx.get(key);
      if (list) list.push(s);
      else idx.set(key, [s]);
    }
    hostIndex.set(state, idx);
  }
  return idx;
}

function labels(name: string): string[] {
  return name.split(".").filter((l) => l !== "");
}

/** ztunnel's `trim_domain`: the labels before `domain`, if `name` ends with it and has more. */
function trimDomain(name: string[], domain: string[]): string[] | undefined {
  if (name.length <= domain.length) return undefined;
  const tail = name.slice(name.length - domain.length);
  return tail.every((l, i) => l.toLowerCase() === domain[i]?.toLowerCase())
    ? name.slice(0, name.length - domain.length)
    : undefined;
}

/** `name`, `*.rest`, `*.rest-1`, … down to two labels (ztunnel's `get_wildcards`). */
function wildcards(name: string[]): string[] {
  const out = [name.join(".")];
  for (let i = 0; name.length - i > 1; i++) out.push(["*", ...name.slice(i + 1)].join("."));
  return out;
}

/** Resolves ztunnel-style: mesh services answered locally, the rest forwarded. */
export class DnsProxy {
  readonly #state: () => MeshState;
  readonly #domain: string[];
  readonly #forward: (query: Buffer) => Promise<Buffer>;
  readonly #ttl: number;
  readonly #ipv6: boolean;
  readonly #observer: DnsObserver | undefined;

  constructor(opts: DnsProxyOptions) {
    this.#observer = opts.observer;
    this.#state = opts.state;
    this.#domain = labels(opts.domain ?? "cluster.local");
    this.#forward = opts.forward;
    this.#ttl = opts.ttl ?? 30;
    this.#ipv6 = opts.ipv6 ?? true;
  }

  /**
   * The response bytes for `query`, or undefined to drop it (fewer than 12 bytes: no id to answer,
   * as hickory drops a message whose header it cannot read). `client` undefined → SERVFAIL, as
   * ztunnel answers an unknown source.
   */
  async answer(
    query: Buffer,
    client: DnsClient | undefined,
    protocol: "udp" | "tcp" = "udp",
  ): Promise<Buffer | undefined> {
    let req: DecodedPacket;
    try {
      req = dnsPacket.decode(query);
    } catch {
      return query.length >= 12 ? headerOnly(query, RCODE_FORMERR) : undefined;
    }
    const flags = req.flags ?? 0;
    // hickory: a response sent as a request is FORMERR; any opcode but QUERY is NOTIMP.
    if (req.type === "response") return headerOnly(query, RCODE_FORMERR);
    if (((flags >> 11) & 0xf) !== 0) return headerOnly(query, RCODE_NOTIMP);
    const questions = req.questions ?? [];
    const q = questions[0];
    // hickory serves exactly one question per message.
    if (questions.length !== 1 || q === undefined) return headerOnly(query, RCODE_FORMERR);
    const labels: DnsRequestLabels = { queryType: String(q.type).toLowerCase(), protocol, client };
    this.#observe(() => this.#observer?.request(labels));
    if (!client) return this.#respond(req, RCODE_SERVFAIL, [], false);

    if (q.type !== "A" && q.type !== "AAAA") return this.#forwardOrFail(query, req, labels);
    const found = this.#find(client, q.name);
    if (!found) return this.#forwardOrFail(query, req, labels);

    // From here on we are the authority (ztunnel sets AA on every locally built answer).
    const { service, matched, alias } = found;
    const family = service.ipFamilies;
    const allowed =
      !(q.type === "AAAA" && !this.#ipv6) &&
      !(family === "IPv4" && q.type === "AAAA") &&
      !(family === "IPv6" && q.type === "A");
    const want = q.type === "A" ? 4 : 6;
    const network = client.network ?? "";
    let addrs: string[] = [];
    if (allowed && service.vips.length > 0) {
      addrs = service.vips
        .filter((v) => net.isIP(v.address) === want && v.network === network)
        .map((v) => v.address);
    } else if (allowed) {
      // A Kubernetes headless service: its endpoints' addresses, the first of the asked family
      // of each workload (ztunnel's get_addresses)
      for (const ep of this.#state().endpoints(service)) {
        const ip = ep.workload.workloadIps.find((a) => net.isIP(a) === want);
        if (ip !== undefined) addrs.push(ip);
      }
    }
    if (addrs.length === 0) return this.#respond(req, RCODE_NOERROR, [], true);
    shuffle(addrs);

    const answers: Answer[] = [];
    // The records carry the requested name; only a search-domain hit on a non-wildcard host gets a
    // CNAME from the requested name to the stripped one, whose name the A/AAAA records then carry.
    let recordName = q.name;
    if (alias.stripped !== undefined && !matched.startsWith("*")) {
      answers.push({ type: "CNAME", name: q.name, ttl: this.#ttl, data: alias.stripped });
      recordName = alias.stripped;
    }
    for (const data of addrs)
      answers.push({ type: q.type, name: recordName, ttl: this.#ttl, class: "IN", data });
    return this.#respond(req, RCODE_NOERROR, answers, true);
  }

  /** ztunnel's alias list for a client in `namespace` (`get_aliases` without pod-host forms). */
  #aliases(client: DnsClient, requested: string): Alias[] {
    const out: Alias[] = [];
    const seen = new Set<string>();
    const add = (a: Alias): void => {
      const key = a.name.toLowerCase();
      if (!seen.has(key)) {
        seen.add(key);
        out.push(a);
      }
    };
    const name = labels(requested);
    add({ name: name.join(".") });
    for (const f of this.#kubeFqdns(name, client.namespace)) add({ name: f });
    // ztunnel in shared/in-pod mode assumes Kubernetes' per-pod search list rather than reading it.
    const search = [
      [client.namespace, "svc", ...this.#domain],
      ["svc", ...this.#domain],
      this.#domain,
    ];
    for (const domain of search) {
      const stripped = trimDomain(name, domain);
      if (!stripped) continue;
      const s = stripped.join(".");
      add({ name: s, stripped: s });
      for (const f of this.#kubeFqdns(stripped, client.namespace)) add({ name: f, stripped: s });
    }
    return out;
  }

  /** The service forms of `to_kube_fqdns` (the pod-host forms of headless services are left out). */
  #kubeFqdns(name: string[], namespace: string): string[] {
    const d = this.#domain.join(".");
    if (name.length === 1) return [`${name[0]}.${namespace}.svc.${d}`];
    if (name.length === 2) return [`${name.join(".")}.svc.${d}`];
    if (name.length === 3 && name[2]?.toLowerCase() === "svc") return [`${name.join(".")}.${d}`];
    return [];
  }

  #find(
    client: DnsClient,
    requested: string,
  ): { service: Service; matched: string; alias: Alias } | undefined {
    const index = servicesByHost(this.#state());
    for (const alias of this.#aliases(client, requested)) {
      for (const host of wildcards(labels(alias.name))) {
        // No VIP → not ours, unless a Kubernetes headless service (answered with its
        // endpoints): forward instead, as ztunnel.
        const candidates = (index.get(host.toLowerCase()) ?? []).filter(
          (s) => s.vips.length > 0 || this.#kubernetesHeadless(s),
        );
        const service = bestMatch(candidates, client.namespace);
        if (service) return { service, matched: host, alias };
      }
    }
    return undefined;
  }

  /** ztunnel's `is_kubernetes_headless`: no VIP, and a hostname in `.svc.<cluster domain>`. */
  #kubernetesHeadless(s: Service): boolean {
    return (
      s.vips.length === 0 &&
      s.hostname.toLowerCase().endsWith(`.svc.${this.#domain.join(".")}`.toLowerCase())
    );
  }

  /** A metrics hook must never fail an answer. */
  #observe(fn: () => void): void {
    try {
      fn();
    } catch {
      // ignored
    }
  }

  async #forwardOrFail(
    query: Buffer,
    req: DecodedPacket,
    labels: DnsRequestLabels,
  ): Promise<Buffer> {
    const t0 = performance.now();
    try {
      const res = await this.#forward(query);
      this.#observe(() => this.#observer?.forwarded(labels, (performance.now() - t0) / 1000, true));
      // The upstream's bytes as they are; the id is the client's (a forwarder may have re-keyed it).
      const out = Buffer.from(res);
      if (out.length >= 2) out.writeUInt16BE(req.id ?? 0, 0);
      return out;
    } catch {
      this.#observe(() =>
        this.#observer?.forwarded(labels, (performance.now() - t0) / 1000, false),
      );
      return this.#respond(req, RCODE_SERVFAIL, [], false);
    }
  }

  #respond(req: DecodedPacket, rcode: number, answers: Answer[], authoritative: boolean): Buffer {
    const reqFlags = req.flags ?? 0;
    let flags = dnsPacket.RECURSION_AVAILABLE | rcode;
    flags |= reqFlags & (dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
    if (authoritative) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
    const additionals: Answer[] = [];
    const opt = requestOpt(req);
    // As hickory: echo EDNS when the query had it, advertising at least 512.
    if (opt)
      additionals.push({
        type: "OPT",
        name: ".",
        udpPayloadSize: Math.max(opt.udpPayloadSize, UDP_MIN_PAYLOAD),
        extendedRcode: 0,
        ednsVersion: opt.ednsVersion,
        flags: opt.flag_do ? dnsPacket.DNSSEC_OK : 0,
        flag_do: opt.flag_do,
        options: [],
      } as OptAnswer);
    return dnsPacket.encode({
      type: "response",
      id: req.id ?? 0,
      flags,
      questions: req.questions ?? [],
      answers,
      additionals,
    });
  }
}

/** ztunnel's `ServiceMatch::find_best_match`: the client's namespace, else a canonical one, else the first. */
function bestMatch(services: Service[], namespace: string): Service | undefined {
  return (
    services.find((s) => s.namespace === namespace) ??
    services.find((s) => s.canonical) ??
    services[0]
  );
}

function requestOpt(req: DecodedPacket): OptAnswer | undefined {
  return (req.additionals ?? []).find((a): a is OptAnswer => a.type === "OPT");
}

/** A 12-byte response with only the header (id, opcode, RD from the query): for FORMERR/NOTIMP. */
function headerOnly(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(QR | (flags & 0x7800) | (flags & dnsPacket.RECURSION_DESIRED) | rcode, 2);
  return out;
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
}

/** The largest UDP response the querier accepts: 512, or its EDNS payload size if larger. */
function udpLimit(query: Buffer): number {
  try {
    const opt = requestOpt(dnsPacket.decode(query));
    return opt ? Math.max(UDP_MIN_PAYLOAD, opt.udpPayloadSize) : UDP_MIN_PAYLOAD;
  } catch {
    return UDP_MIN_PAYLOAD;
  }
}

/**
 * A response that fits `limit`: unchanged if it does, else header + question (+ OPT) with TC set,
 * so the client retries over TCP (RFC 1035 §4.2.1, RFC 2181 §9: no partial RRsets).
 */
export function truncateForUdp(response: Buffer, limit: number): Buffer | undefined {
  if (response.length <= limit) return response;
  let res: DecodedPacket;
  try {
    res = dnsPacket.decode(response);
  } catch {
    return undefined;
  }
  const out = dnsPacket.encode({
    type: "response",
    id: res.id ?? 0,
    flags: (res.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
    questions: res.questions ?? [],
    answers: [],
    authorities: [],
    additionals: (res.additionals ?? []).filter((a) => a.type === "OPT"),
  });
  return out.length <= limit ? out : undefined;
}

/** Serves `proxy` on a bound (or about to be bound) UDP socket. */
export function serveDnsUdp(
  socket: dgram.Socket,
  proxy: DnsProxy,
  clientOf: (peer: DnsPeer) => DnsClient | undefined,
): void {
  socket.on("message", (msg, rinfo) => {
    void (async () => {
      const res = await proxy.answer(msg, clientOf(rinfo), "udp");
      const out = res && truncateForUdp(res, udpLimit(msg));
      if (out) socket.send(out, rinfo.port, rinfo.address, () => {});
    })().catch(() => {
      // A failure for one datagram must not take the listener down; the client retries.
    });
  });
}

export interface DnsTcpOptions {
  /** Close a connection with no complete query for this long; default 5000 (ztunnel's 5 s). */
  readonly idleMs?: number;
  /** Queries answered concurrently per connection before reading pauses; default 32 as ztunnel. */
  readonly maxInFlight?: number;
}

/** Serves `proxy` on a TCP server: 2-byte length framing, several queries per connection. */
export function serveDnsTcp(
  server: net.Server,
  proxy: DnsProxy,
  clientOf: (peer: DnsPeer) => DnsClient | undefined,
  opts: DnsTcpOptions = {},
): void {
  const idleMs = opts.idleMs ?? 5000;
  const maxInFlight = opts.maxInFlight ?? 32;
  server.on("connection", (sock: net.Socket) => {
    const peer: DnsPeer = {
      address: sock.remoteAddress ?? "",
      port: sock.remotePort ?? 0,
      family: sock.remoteFamily ?? "",
    };
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    let ended = false;
    sock.setTimeout(idleMs, () => sock.destroy());
    sock.on("error", () => sock.destroy());
    const maybeClose = (): void => {
      // The peer finished sending and every answer is out: close our side too, never half-open.
      if (ended && inFlight === 0) sock.end();
    };
    sock.on("end", () => {
      ended = true;
      maybeClose();
    });
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        // A zero-length frame is no DNS message: the framing is broken, the stream unusable.
        if (len === 0) {
          sock.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const query = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        inFlight++;
        if (inFlight >= maxInFlight) sock.pause();
        void proxy
          .answer(Buffer.from(query), clientOf(peer), "tcp")
          .then((res) => {
            if (!res) {
              sock.destroy();
              return;
            }
            const out = res.length > 0xffff ? truncateForUdp(res, 0xffff) : res;
            if (!out) {
              sock.destroy();
              return;
            }
            const len2 = Buffer.alloc(2);
            len2.writeUInt16BE(out.length, 0);
            if (!sock.destroyed && sock.writable) sock.write(Buffer.concat([len2, out]));
          })
          .catch(() => sock.destroy())
          .finally(() => {
            inFlight--;
            if (inFlight < maxInFlight && !sock.destroyed) sock.resume();
            maybeClose();
          });
      }
    });
  });
}

/** `host`, `host:port`, `[v6]` or `[v6]:port` → address and port (default 53). */
function parseUpstream(s: string): { address: string; port: number } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket?.[1]) return { address: bracket[1], port: Number(bracket[2] ?? 53) };
  if (net.isIPv6(s)) return { address: s, port: 53 };
  const [address = "", port] = s.split(":");
  return { address, port: Number(port ?? 53) };
}

/**
 * A forwarder that tries `upstreams` in turn over UDP, each attempt on its own ephemeral socket
 * (a fresh source port per query), accepting only a datagram from that upstream with the query's
 * id. Rejects with ExampleError when none answers within `timeoutMs` each (default 2000).
 */
export function udpForwarder(
  upstreams: string[],
  opts: { timeoutMs?: number } = {},
): (query: Buffer) => Promise<Buffer> {
  const targets = upstreams.map(parseUpstream);
  for (const t of targets)
    if (net.isIP(t.address) === 0 || !Number.isInteger(t.port) || t.port <= 0 || t.port > 65535)
      throw new ExampleError(
        "ERR_EXAMPLES_CONFIG",
        `DNS upstream ${JSON.stringify(t)}: not ip[:port]`,
      );
  if (targets.length === 0)
    throw new ExampleError("ERR_EXAMPLES_CONFIG", "DNS forwarding needs at least one upstream");
  const timeoutMs = opts.timeoutMs ?? 2000;
  return async (query: Buffer): Promise<Buffer> => {
    if (query.length < 12) throw new ExampleError("ERR_EXAMPLES_ROUTE", "DNS query too short");
    const id = query.readUInt16BE(0);
    const failures: string[] = [];
    for (const t of targets) {
      try {
        return await askOnce(t, query, id, timeoutMs);
      } catch (e) {
        failures.push(`${t.address}:${t.port}: ${(e as Error).message}`);
      }
    }
    throw new ExampleError(
      "ERR_EXAMPLES_ROUTE",
      `no DNS upstream answered (${failures.join("; ")})`,
    );
  };
}

function askOnce(
  t: { address: string; port: number },
  query: Buffer,
  id: number,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(t.address) ? "udp6" : "udp4");
    let finished = false;
    const done = (err: Error | undefined, res?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(res as Buffer);
    };
    const timer = setTimeout(() => done(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    sock.on("error", (e) => done(e));
    sock.on("message", (msg, rinfo) => {
      // Anything not from the upstream, or for another id, is ignored (spoofing, stale answers).
      if (rinfo.address !== t.address || rinfo.port !== t.port) return;
      if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg.readUInt16BE(2) & QR) === 0) return;
      done(undefined, msg);
    });
    sock.send(query, t.port, t.address, (e) => {
      if (e) done(e);
    });
  });
}

/** The `nameserver` addresses of a resolv.conf text, in order (comments and other lines skipped). */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, value] = line.split(/\s+/);
    if (key === "nameserver" && value !== undefined && net.isIP(value.replace(/%.*$/, "")) !== 0)
      out.push(value.replace(/%.*$/, ""));
  }
  return out;
}

/**
 * ztunnel's DNS metrics on a prom-client registry (its names under the `istio` prefix, all marked
 * unstable there): istio_dns_requests_total, istio_dns_upstream_requests_total,
 * istio_dns_upstream_failures_total and istio_dns_upstream_request_duration_seconds, labelled
 * request_query_type, request_protocol, source_canonical_service, source_canonical_revision.
 */
export function dnsMetrics(registry: Registry): DnsObserver {
  const labelNames = [
    "request_query_type",
    "request_protocol",
    "source_canonical_service",
    "source_canonical_revision",
  ] as const;
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const requests = counter("istio_dns_requests_total", "Total number of DNS requests (unstable)");
  const upstream = counter(
    "istio_dns_upstream_requests_total",
    "Total number of DNS requests forwarded to upstream (unstable)",
  );
  const failures = counter(
    "istio_dns_upstream_failures_total",
    "Total number of DNS requests that failed to forward upstream (unstable)",
  );
  const duration = new Histogram({
    name: "istio_dns_upstream_request_duration_seconds",
    help: "Total time in seconds Istio takes to get DNS response from upstream (unstable)",
    labelNames,
    // ztunnel's buckets, in order
    buckets: [0.001, 0.005, 0.01, 0.1, 1, 5],
    registers: [registry],
  });
  const of = (l: DnsRequestLabels) => ({
    request_query_type: l.queryType,
    request_protocol: l.protocol,
    source_canonical_service: l.client?.canonicalService || "unknown",
    source_canonical_revision: l.client?.canonicalRevision || "unknown",
  });
  return {
    request: (l) => requests.inc(of(l)),
    forwarded: (l, seconds, ok) => {
      const labels = of(l);
      upstream.inc(labels);
      duration.observe(labels, seconds);
      if (!ok) failures.inc(labels);
    },
  };
}
