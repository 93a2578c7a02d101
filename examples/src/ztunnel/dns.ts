// ztunnel's DNS proxy (port 15053) for the reference ztunnel: answers A/AAAA for mesh services
// from MeshState, forwards everything else upstream. Semantics follow ztunnel's `dns::server::Store`
// (aliases, wildcards, namespace preference, CNAME for search-domain hits); the wire format is
// dns-packet (ADR 0011). Transport-agnostic core (`DnsProxy.answer`) plus UDP/TCP serving helpers.
import { randomInt } from "node:crypto";
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
  /**
   * Upstream forwards in flight at once (one DnsProxy serves every pod); beyond it a query gets
   * SERVFAIL without being forwarded. Default 256.
   */
  readonly maxForwards?: number;
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
  /** `.svc.<cluster domain>`, lower case: the suffix of a Kubernetes service's hostname. */
  readonly #svcSuffix: string;
  readonly #forward: (query: Buffer) => Promise<Buffer>;
  readonly #ttl: number;
  readonly #ipv6: boolean;
  readonly #observer: DnsObserver | undefined;
  readonly #maxForwards: number;
  #forwarding = 0;

  constructor(opts: DnsProxyOptions) {
    this.#maxForwards = opts.maxForwards ?? 256;
    this.#observer = opts.observer;
    this.#state = opts.state;
    this.#domain = labels(opts.domain ?? "cluster.local");
    this.#svcSuffix = `.svc.${this.#domain.join(".")}`.toLowerCase();
    this.#forward = opts.forward;
    this.#ttl = opts.ttl ?? 30;
    this.#ipv6 = opts.ipv6 ?? true;
  }

  /**
   * The response bytes for `query`, or undefined to drop it (fewer than 12 bytes: no id to answer,
   * as hickory drops a message whose header it cannot read; or a response: answering one would let
   * two resolvers, or a spoofed self-addressed packet, bounce messages forever). `client` undefined
   * → SERVFAIL, as ztunnel answers an unknown source.
   */
  async answer(
    query: Buffer,
    client: DnsClient | undefined,
    protocol: "udp" | "tcp" = "udp",
  ): Promise<Buffer | undefined> {
    // hickory drops responses before decoding them (reflection loops).
    if (query.length >= 3 && ((query[2] ?? 0) & 0x80) !== 0) return undefined;
    let req: DecodedPacket;
    try {
      req = dnsPacket.decode(query);
    } catch {
      return query.length >= 12 ? headerOnly(query, RCODE_FORMERR) : undefined;
    }
    const flags = req.flags ?? 0;
    // hickory: any opcode but QUERY is NOTIMP.
    if (((flags >> 11) & 0xf) !== 0) return headerOnly(query, RCODE_NOTIMP);
    const questions = req.questions ?? [];
    const q = questions[0];
    // hickory serves exactly one question per message.
    if (questions.length !== 1 || q === undefined) return headerOnly(query, RCODE_FORMERR);
    const metric: DnsRequestLabels = { queryType: String(q.type).toLowerCase(), protocol, client };
    this.#observe(() => this.#observer?.request(metric));
    // dns-packet decodes a label holding a '.' unescaped ("a.b" as one label reads like two), so
    // such a name is never looked up locally, and never re-encoded: forwarded as its bytes.
    const dotted = questionHasDottedLabel(query);
    if (!client)
      return dotted
        ? headerOnly(query, RCODE_SERVFAIL)
        : this.#respond(req, RCODE_SERVFAIL, [], false);

    if (dotted || (q.type !== "A" && q.type !== "AAAA"))
      return this.#forwardOrFail(query, req, metric, dotted);
    const found = this.#find(client, q.name);
    if (!found) return this.#forwardOrFail(query, req, metric);

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
    return s.vips.length === 0 && s.hostname.toLowerCase().endsWith(this.#svcSuffix);
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
    metric: DnsRequestLabels,
    dotted = false,
  ): Promise<Buffer> {
    const fail = (): Buffer =>
      dotted ? headerOnly(query, RCODE_SERVFAIL) : this.#respond(req, RCODE_SERVFAIL, [], false);
    // Full: SERVFAIL at once. Nothing went upstream, so no upstream request or failure is counted
    // (the request itself already was).
    if (this.#forwarding >= this.#maxForwards) return fail();
    this.#forwarding++;
    const t0 = performance.now();
    try {
      const res = await this.#forward(query);
      this.#observe(() => this.#observer?.forwarded(metric, (performance.now() - t0) / 1000, true));
      // The upstream's bytes as they are, under the client's id (a `forward` of the caller's own
      // may have re-keyed it; udpForwarder already restores it)
      const id = req.id ?? 0;
      if (res.length < 2 || res.readUInt16BE(0) === id) return res;
      const out = Buffer.from(res);
      out.writeUInt16BE(id, 0);
      return out;
    } catch {
      this.#observe(() =>
        this.#observer?.forwarded(metric, (performance.now() - t0) / 1000, false),
      );
      return fail();
    } finally {
      this.#forwarding--;
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

/** Offset just past the first question's name, or undefined when it is malformed or compressed. */
function questionNameEnd(msg: Buffer): number | undefined {
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined || (len & 0xc0) !== 0) return undefined;
    if (len === 0) return off + 1;
    off += 1 + len;
  }
}

/** Whether a label of the first question's name contains a literal '.' byte. */
function questionHasDottedLabel(msg: Buffer): boolean {
  const end = questionNameEnd(msg);
  if (end === undefined) return false;
  for (let off = 12; off < end - 1; off += 1 + (msg[off] ?? 0))
    if (msg.subarray(off + 1, off + 1 + (msg[off] ?? 0)).includes(0x2e)) return true;
  return false;
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
      // the query's EDNS size matters (and is decoded again) only for an answer over 512 bytes
      const out = res && (res.length <= UDP_MIN_PAYLOAD ? res : truncateForUdp(res, udpLimit(msg)));
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
    // A client may send its queries and then FIN: its answers must still go out (we end our side
    // in maybeClose), whatever the server was created with.
    sock.allowHalfOpen = true;
    const peer: DnsPeer = {
      address: sock.remoteAddress ?? "",
      port: sock.remotePort ?? 0,
      family: sock.remoteFamily ?? "",
    };
    // Unparsed bytes as received; copied out once per frame (no Buffer.concat per chunk).
    const pending: Buffer[] = [];
    let pendingLen = 0;
    let inFlight = 0;
    let ended = false;
    const take = (n: number): Buffer => {
      const out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const head = pending[0] as Buffer;
        const k = Math.min(head.length, n - off);
        head.copy(out, off, 0, k);
        off += k;
        if (k === head.length) pending.shift();
        else pending[0] = head.subarray(k);
      }
      pendingLen -= n;
      return out;
    };
    // The length prefix may straddle two (non-empty) chunks.
    const frameLen = (): number => {
      const head = pending[0] as Buffer;
      return head.length >= 2
        ? head.readUInt16BE(0)
        : ((head[0] ?? 0) << 8) | (pending[1]?.[0] ?? 0);
    };
    // Idle means no complete query for idleMs (a byte now and then does not keep a connection);
    // one still answering is not idle.
    let idle: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => (inFlight > 0 ? armIdle() : sock.destroy()), idleMs);
    };
    armIdle();
    sock.on("close", () => clearTimeout(idle));
    sock.on("error", () => sock.destroy());
    const maybeClose = (): void => {
      // The peer finished sending and every answer is out: close our side too, never half-open.
      // (Frames still queued behind a full output wait for 'drain'.)
      const queued = pendingLen >= 2 && pendingLen >= 2 + frameLen();
      if (ended && inFlight === 0 && !queued && !sock.destroyed) sock.end();
    };
    // Read only while we can take more queries and the peer takes our answers: a client that
    // floods or never reads cannot make us buffer without limit.
    const flow = (): void => {
      if (sock.destroyed) return;
      if (inFlight >= maxInFlight || sock.writableNeedDrain) sock.pause();
      else sock.resume();
    };
    const send = (res: Buffer | undefined): void => {
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
    };
    // Hands complete frames to the proxy while below maxInFlight and the peer reads our answers;
    // the rest waits in `pending` until an answer frees a slot or the output drains.
    const pump = (): void => {
      while (
        !sock.destroyed &&
        inFlight < maxInFlight &&
        !sock.writableNeedDrain &&
        pendingLen >= 2
      ) {
        const len = frameLen();
        // A zero-length frame is no DNS message: the framing is broken, the stream unusable.
        if (len === 0) {
          sock.destroy();
          return;
        }
        if (pendingLen < 2 + len) break;
        take(2);
        const query = take(len);
        armIdle();
        inFlight++;
        void proxy
          .answer(query, clientOf(peer), "tcp")
          .then(send)
          .catch(() => sock.destroy())
          .finally(() => {
            inFlight--;
            pump();
            maybeClose();
          });
      }
      flow();
    };
    sock.on("drain", () => {
      pump();
      maybeClose();
    });
    sock.on("end", () => {
      ended = true;
      maybeClose();
    });
    sock.on("data", (chunk: Buffer) => {
      if (chunk.length === 0) return;
      pending.push(chunk);
      pendingLen += chunk.length;
      pump();
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

/** The canonical text of an IP (`[0::1]` and `FD00:0000::1` as a reply's rinfo.address spells them). */
function canonicalIp(address: string): string {
  const family = net.isIP(address);
  if (family === 0) return address;
  return new net.SocketAddress({ address, family: family === 6 ? "ipv6" : "ipv4" }).address;
}

interface Upstream {
  readonly address: string;
  readonly port: number;
}

/**
 * A forwarder that tries `upstreams` in turn over UDP, each attempt on its own ephemeral socket
 * (a fresh source port and a fresh random id per query), accepting only a response from that
 * upstream with that id and the query's question. A truncated (TC) answer is asked again over
 * TCP to the same upstream. The answer carries the client's id. Rejects with ExampleError when
 * none answers within `timeoutMs` each (default 2000).
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
  const normalised: Upstream[] = targets.map((t) => ({
    address: canonicalIp(t.address),
    port: t.port,
  }));
  const timeoutMs = opts.timeoutMs ?? 2000;
  return async (query: Buffer): Promise<Buffer> => {
    if (query.length < 12) throw new ExampleError("ERR_EXAMPLES_ROUTE", "DNS query too short");
    const clientId = query.readUInt16BE(0);
    const failures: string[] = [];
    for (const t of normalised) {
      // A fresh id per upstream query: a spoofer cannot reuse the client's (or a previous) one.
      const q = Buffer.from(query);
      q.writeUInt16BE(randomInt(0, 0x10000), 0);
      try {
        let res = await askUdp(t, q, timeoutMs);
        if ((res.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE) !== 0)
          res = await askTcp(t, q, timeoutMs).catch(() => res);
        const out = Buffer.from(res);
        out.writeUInt16BE(clientId, 0);
        return out;
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

/** Whether `res` is a response to `query`: same id, and the same question (name case-insensitively). */
function answers(query: Buffer, res: Buffer): boolean {
  if (res.length < 12 || (res.readUInt16BE(2) & QR) === 0) return false;
  if (res.readUInt16BE(0) !== query.readUInt16BE(0)) return false;
  if (res.readUInt16BE(4) !== query.readUInt16BE(4)) return false;
  const end = questionNameEnd(query);
  if (end === undefined) return false;
  // The question follows the header uncompressed in both (nothing precedes it to point at): its
  // name, type and class compared byte by byte, ASCII letters folded.
  const n = end + 4;
  if (res.length < n || query.length < n) return false;
  for (let i = 12; i < n; i++) {
    const a = query[i] ?? 0;
    const b = res[i] ?? 0;
    if (a !== b && (i >= end || fold(a) !== fold(b))) return false;
  }
  return true;
}

function fold(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

function askUdp(t: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
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
      // Anything not from the upstream, or not for this query, is ignored (spoofing, stale answers).
      if (rinfo.address !== t.address || rinfo.port !== t.port) return;
      if (answers(query, msg)) done(undefined, msg);
    });
    sock.send(query, t.port, t.address, (e) => {
      if (e) done(e);
    });
  });
}

/** `query` once over TCP (2-byte framing); the socket is closed whatever happens. */
function askTcp(t: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: t.address, port: t.port });
    const chunks: Buffer[] = [];
    let got = 0;
    let finished = false;
    const done = (err: Error | undefined, res?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res as Buffer);
    };
    const timer = setTimeout(() => done(new Error(`no TCP answer in ${timeoutMs} ms`)), timeoutMs);
    sock.on("error", (e) => done(e));
    sock.on("close", () => done(new Error("TCP connection closed before an answer")));
    sock.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got < 2) return;
      const all = Buffer.concat(chunks);
      const len = all.readUInt16BE(0);
      if (got < 2 + len) return;
      const res = all.subarray(2, 2 + len);
      if (answers(query, res)) done(undefined, res);
      else done(new Error("TCP answer for another query"));
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length, 0);
    sock.write(Buffer.concat([len, query]));
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

const QUERY_TYPES: ReadonlySet<string> = new Set([
  "a",
  "aaaa",
  "cname",
  "txt",
  "srv",
  "mx",
  "ns",
  "ptr",
  "soa",
  "caa",
  "https",
  "svcb",
  "any",
]);

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
    // A fixed set of values: any type a client makes up must not mint a new series.
    request_query_type: QUERY_TYPES.has(l.queryType) ? l.queryType : "other",
    request_protocol: l.protocol,
    source_canonical_service: l.client?.canonicalService || "unknown",
    source_canonical_revision: l.client?.canonicalRevision || "unknown",
  });
  return {
    request: (l) => requests.inc(of(l)),
    forwarded: (l, seconds, ok) => {
      const series = of(l);
      upstream.inc(series);
      duration.observe(series, seconds);
      if (!ok) failures.inc(series);
    },
  };
}
