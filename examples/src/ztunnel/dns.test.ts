import { execFile } from "node:child_process";
import dgram from "node:dgram";
import net from "node:net";
import dnsPacket from "dns-packet";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseScenario } from "../mesh/config.js";
import { ExampleError } from "../mesh/errors.js";
import { MeshState } from "../mesh/state.js";
import { parsePrometheus } from "../testing.js";
import {
  type DnsClient,
  DnsProxy,
  dnsMetrics,
  resolvConfNameservers,
  serveDnsTcp,
  serveDnsUdp,
  udpForwarder,
} from "./dns.js";

const MANY = Array.from({ length: 40 }, (_, i) => `"/127.0.121.${i + 1}"`).join(", ");
const LOCAL_XDS = `
workloads:
  - { uid: k//Pod/bookinfo/db-0, name: db-0, namespace: bookinfo, serviceAccount: db, trustDomain: cluster.local, workloadIps: ["127.0.130.1", "fd00::130:1"], protocol: HBONE, node: n, services: { "bookinfo/db.bookinfo.svc.cluster.local": { 5432: 5432 } } }
  - { uid: k//Pod/bookinfo/db-1, name: db-1, namespace: bookinfo, serviceAccount: db, trustDomain: cluster.local, workloadIps: ["127.0.130.2"], protocol: HBONE, node: n, services: { "bookinfo/db.bookinfo.svc.cluster.local": { 5432: 5432 } } }
services:
  - name: db
    namespace: bookinfo
    hostname: db.bookinfo.svc.cluster.local
    vips: []
    ports: { 5432: 5432 }
  - name: novip
    namespace: bookinfo
    hostname: novip.example.org
    vips: []
    ports: { 80: 80 }
  - name: reviews
    namespace: bookinfo
    hostname: reviews.bookinfo.svc.cluster.local
    vips: ["/127.0.120.1", "/fd00::1"]
    ports: { 9080: 9080 }
  - name: ratings
    namespace: bookinfo
    hostname: ratings.bookinfo.svc.cluster.local
    vips: ["/127.0.120.2"]
    ports: { 9080: 9080 }
  - name: wild
    namespace: bookinfo
    hostname: "*.example.com"
    vips: ["/127.0.120.9"]
    ports: { 443: 443 }
  - name: many
    namespace: bookinfo
    hostname: many.bookinfo.svc.cluster.local
    vips: [${MANY}]
    ports: { 80: 80 }
policies: []
`;

interface Dig {
  status: string;
  id: number;
  flags: string[];
  answers: string[][];
}

function dig(port: number, args: string[]): Promise<Dig> {
  const all = ["@127.0.0.1", "-p", String(port), "+tries=1", "+time=5", "+noall", "+comments"];
  return new Promise((resolve, reject) => {
    execFile("/usr/bin/dig", [...all, "+answer", ...args], { timeout: 15_000 }, (err, out) => {
      if (err) return reject(err);
      const head = /status: (\w+), id: (\d+)/.exec(out);
      const flags = /;; flags: ([a-z ]*);/.exec(out);
      if (!head || !flags) return reject(new Error(`unexpected dig output:\n${out}`));
      const answers = out
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.startsWith(";"))
        .map((l) => l.trim().split(/\s+/));
      resolve({
        status: head[1] ?? "",
        id: Number(head[2]),
        flags: (flags[1] ?? "").trim().split(" "),
        answers,
      });
    });
  });
}

/** The client namespace by source address: 127.0.0.1 is in bookinfo, 127.0.0.2 in test. */
function clientOf(peer: { address: string }): DnsClient | undefined {
  if (peer.address === "127.0.0.1") return { namespace: "bookinfo" };
  if (peer.address === "127.0.0.2") return { namespace: "test" };
  return undefined;
}

function frame(id: number, name: string, type: "A" | "TXT" = "A"): Buffer {
  const q = dnsPacket.encode({ type: "query", id, questions: [{ type, name }] });
  const len = Buffer.alloc(2);
  len.writeUInt16BE(q.length, 0);
  return Buffer.concat([len, q]);
}

/** Collects the DNS messages a TCP client receives (2-byte framing). */
function tcpReader(s: net.Socket): Buffer[] {
  const got: Buffer[] = [];
  let buf = Buffer.alloc(0);
  s.on("data", (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  return got;
}

async function listenTcp(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

/** Resolves after `ms`, or rejects with `what` (a generous bound, not a timing assertion). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms);
    }),
  ]);
}

/** The data of a message's first answer record. */
function firstData(msg: Buffer): unknown {
  return (dnsPacket.decode(msg).answers?.[0] as { data?: unknown } | undefined)?.data;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("DnsProxy on loopback, asked by dig", () => {
  const upstreamSeen: { name: string; type: string; id: number }[] = [];
  let upstream: dgram.Socket;
  let udp: dgram.Socket;
  let tcp: net.Server;
  let udpPort = 0;
  let tcpPort = 0;

  beforeAll(async () => {
    // A fake upstream resolver: every question gets A 192.0.2.7 under the query's id.
    upstream = dgram.createSocket("udp4");
    upstream.on("message", (msg, rinfo) => {
      const q = dnsPacket.decode(msg);
      const question = q.questions?.[0];
      upstreamSeen.push({ name: question?.name ?? "", type: question?.type ?? "", id: q.id ?? -1 });
      const res = dnsPacket.encode({
        type: "response",
        id: q.id ?? 0,
        flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
        questions: q.questions ?? [],
        answers: [{ type: "A", name: question?.name ?? "", ttl: 77, data: "192.0.2.7" }],
      });
      upstream.send(res, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => upstream.bind(0, "127.0.0.1", r));
    const state = new MeshState(parseScenario({ file: "dns.yaml", text: LOCAL_XDS }).local);
    const proxy = new DnsProxy({
      state: () => state,
      forward: udpForwarder([`127.0.0.1:${upstream.address().port}`], { timeoutMs: 3000 }),
    });
    // UDP and TCP on one port number, as ztunnel's 15053: dig retries a truncated answer over TCP there.
    for (;;) {
      udp = dgram.createSocket("udp4");
      serveDnsUdp(udp, proxy, clientOf);
      await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
      udpPort = udp.address().port;
      tcp = net.createServer({ allowHalfOpen: true });
      serveDnsTcp(tcp, proxy, clientOf, { idleMs: 300 });
      const ok = await new Promise<boolean>((r) => {
        tcp.once("error", () => r(false));
        tcp.listen(udpPort, "127.0.0.1", () => r(true));
      });
      if (ok) break;
      udp.close();
    }
    tcpPort = (tcp.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    udp.close();
    upstream.close();
    await new Promise((r) => tcp.close(r));
  });

  it("answers a service FQDN with its IPv4 VIP, TTL 30, authoritative", async () => {
    const r = await dig(udpPort, ["reviews.bookinfo.svc.cluster.local", "A"]);
    expect(r.status).toBe("NOERROR");
    expect(r.flags).toContain("aa");
    expect(r.answers).toEqual([
      ["reviews.bookinfo.svc.cluster.local.", "30", "IN", "A", "127.0.120.1"],
    ]);
  });

  it("answers AAAA with the IPv6 VIP", async () => {
    const r = await dig(udpPort, ["reviews.bookinfo.svc.cluster.local", "AAAA"]);
    expect(r.answers).toEqual([
      ["reviews.bookinfo.svc.cluster.local.", "30", "IN", "AAAA", "fd00::1"],
    ]);
  });

  it("expands short names for the client's namespace and answers under the requested name", async () => {
    for (const name of ["reviews", "reviews.bookinfo", "reviews.bookinfo.svc"]) {
      const r = await dig(udpPort, ["+nosearch", name, "A"]);
      expect(r.answers, name).toEqual([[`${name}.`, "30", "IN", "A", "127.0.120.1"]]);
    }
  });

  it("answers a search-domain hit with a CNAME to the stripped name, as ztunnel", async () => {
    const r = await dig(udpPort, ["reviews.bookinfo.bookinfo.svc.cluster.local", "A"]);
    expect(r.answers).toEqual([
      ["reviews.bookinfo.bookinfo.svc.cluster.local.", "30", "IN", "CNAME", "reviews.bookinfo."],
      ["reviews.bookinfo.", "30", "IN", "A", "127.0.120.1"],
    ]);
  });

  it("matches a wildcard host", async () => {
    const r = await dig(udpPort, ["api.example.com", "A"]);
    expect(r.answers).toEqual([["api.example.com.", "30", "IN", "A", "127.0.120.9"]]);
  });

  it("a known host without data for the type: NOERROR, authoritative, no answers", async () => {
    const r = await dig(udpPort, ["ratings.bookinfo.svc.cluster.local", "AAAA"]);
    expect(r.status).toBe("NOERROR");
    expect(r.flags).toContain("aa");
    expect(r.answers).toEqual([]);
  });

  it("forwards an unknown name and returns the upstream's answer under the client's id", async () => {
    const before = upstreamSeen.length;
    const r = await dig(udpPort, ["www.example.org", "A"]);
    expect(r.answers).toEqual([["www.example.org.", "77", "IN", "A", "192.0.2.7"]]);
    expect(r.flags).not.toContain("aa");
    // the upstream saw the forwarder's own random id; dig checked the answer carries its own
    expect(upstreamSeen.slice(before).map((s) => `${s.name}/${s.type}`)).toEqual([
      "www.example.org/A",
    ]);
  });

  it("forwards a short name of another namespace, and non-A/AAAA types of a known host", async () => {
    const before = upstreamSeen.length;
    const other = await dig(udpPort, ["-b", "127.0.0.2", "+nosearch", "reviews", "A"]);
    expect(other.answers).toEqual([["reviews.", "77", "IN", "A", "192.0.2.7"]]);
    await dig(udpPort, ["reviews.bookinfo.svc.cluster.local", "TXT"]);
    expect(upstreamSeen.slice(before).map((s) => `${s.name}/${s.type}`)).toEqual([
      "reviews/A",
      "reviews.bookinfo.svc.cluster.local/TXT",
    ]);
  });

  it("answers a Kubernetes headless service (no VIP) with its endpoints' addresses, as ztunnel", async () => {
    const a = await dig(udpPort, ["db.bookinfo.svc.cluster.local", "A"]);
    expect(a.status).toBe("NOERROR");
    expect(a.flags).toContain("aa");
    expect(a.answers.map((r) => r[4]).sort()).toEqual(["127.0.130.1", "127.0.130.2"]);
    // only the endpoints that have an address of the asked family
    const aaaa = await dig(udpPort, ["db", "AAAA"]);
    expect(aaaa.answers.map((r) => r[4])).toEqual(["fd00::130:1"]);
    // a host without a VIP outside the cluster domain is not ours: forwarded
    const before = upstreamSeen.length;
    const other = await dig(udpPort, ["novip.example.org", "A"]);
    expect(other.answers.map((r) => r[4])).toEqual(["192.0.2.7"]);
    expect(upstreamSeen.length).toBe(before + 1);
  });

  it("SERVFAIL for a source that is no known client", async () => {
    const r = await dig(udpPort, ["-b", "127.0.0.3", "reviews.bookinfo.svc.cluster.local", "A"]);
    expect(r.status).toBe("SERVFAIL");
  });

  it("serves TCP (+tcp)", async () => {
    const r = await dig(tcpPort, ["+tcp", "reviews.bookinfo.svc.cluster.local", "A"]);
    expect(r.answers).toEqual([
      ["reviews.bookinfo.svc.cluster.local.", "30", "IN", "A", "127.0.120.1"],
    ]);
  });

  it("truncates over 512 bytes without EDNS (TC, no answers); dig's TCP retry gets them all", async () => {
    const cut = await dig(udpPort, ["+noedns", "+ignore", "many.bookinfo.svc.cluster.local", "A"]);
    expect(cut.flags).toContain("tc");
    expect(cut.answers).toEqual([]);
    const retried = await dig(udpPort, ["+noedns", "many.bookinfo.svc.cluster.local", "A"]);
    expect(retried.answers).toHaveLength(40);
    const edns = await dig(udpPort, [
      // dns-packet does not compress names (ADR 0011): 40 records need ~1.9 kB here
      "+bufsize=4096",
      "+ignore",
      "many.bookinfo.svc.cluster.local",
    ]);
    expect(edns.flags).not.toContain("tc");
    expect(edns.answers).toHaveLength(40);
  });

  it("FORMERR for an undecodable query with a header; drops one too short to have an id", async () => {
    const c = dgram.createSocket("udp4");
    await new Promise<void>((r) => c.bind(0, "127.0.0.1", r));
    const got: Buffer[] = [];
    const two = new Promise<void>((resolve) =>
      c.on("message", (m) => {
        got.push(m);
        if (got.length === 2) resolve();
      }),
    );
    // id 0xbeef, one question announced, none present
    const bad = Buffer.from([0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x05]);
    c.send(Buffer.from([0x12]), udpPort, "127.0.0.1");
    c.send(bad, udpPort, "127.0.0.1");
    const good = dnsPacket.encode({
      type: "query",
      id: 0x4242,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: "A", name: "ratings.bookinfo.svc.cluster.local" }],
    });
    c.send(good, udpPort, "127.0.0.1");
    await two;
    c.close();
    const ids = got.map((m) => m.readUInt16BE(0)).sort();
    expect(ids).toEqual([0x4242, 0xbeef]);
    const formerr = got.find((m) => m.readUInt16BE(0) === 0xbeef);
    expect((formerr?.readUInt16BE(2) ?? 0) & 0x800f).toBe(0x8001);
  });

  it("TCP: several queries on one connection; a zero-length frame closes it", async () => {
    const s = net.connect(tcpPort, "127.0.0.1");
    const frame = (id: number, name: string): Buffer => {
      const q = dnsPacket.encode({ type: "query", id, questions: [{ type: "A", name }] });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length, 0);
      return Buffer.concat([len, q]);
    };
    let buf = Buffer.alloc(0);
    const ids: number[] = [];
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    const both = new Promise<void>((resolve) =>
      s.on("data", (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          ids.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))).id ?? -1);
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (ids.length === 2) resolve();
      }),
    );
    s.write(Buffer.concat([frame(1, "reviews"), frame(2, "ratings.bookinfo")]));
    await both;
    expect(ids.sort()).toEqual([1, 2]);
    s.write(Buffer.from([0, 0]));
    await closed;
    expect(s.destroyed).toBe(true);
  });

  it("TCP: an idle connection is closed by the server", async () => {
    const s = net.connect(tcpPort, "127.0.0.1");
    const ended = new Promise<boolean>((r) => s.on("close", (hadError) => r(hadError)));
    s.on("error", () => {});
    await ended;
    expect(s.destroyed).toBe(true);
  });

  it("drops a message that is already a response, decodable or not (no reflection loop)", async () => {
    const c = dgram.createSocket("udp4");
    await new Promise<void>((r) => c.bind(0, "127.0.0.1", r));
    const got: Buffer[] = [];
    const first = new Promise<void>((resolve) =>
      c.on("message", (m) => {
        got.push(m);
        resolve();
      }),
    );
    const response = dnsPacket.encode({
      type: "response",
      id: 0x5151,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: "A", name: "reviews.bookinfo.svc.cluster.local" }],
    });
    // QR set, one question announced, none present: undecodable
    const badResponse = Buffer.from([0x52, 0x52, 0x81, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x05]);
    c.send(response, udpPort, "127.0.0.1");
    c.send(badResponse, udpPort, "127.0.0.1");
    const good = dnsPacket.encode({
      type: "query",
      id: 0x4343,
      questions: [{ type: "A", name: "ratings.bookinfo.svc.cluster.local" }],
    });
    c.send(good, udpPort, "127.0.0.1");
    await first;
    // nothing else comes: checked over a generous wait after the answer to the later query
    await sleep(300);
    c.close();
    expect(got.map((m) => m.readUInt16BE(0))).toEqual([0x4343]);
  });

  it("TCP: bytes dribbled without completing a frame do not keep the connection open", async () => {
    const s = net.connect(tcpPort, "127.0.0.1");
    s.on("error", () => {});
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    // a 256-byte frame announced, then one byte every 100 ms (idleMs is 300): never complete
    s.write(Buffer.from([0x01, 0x00, 0x00]));
    const dribble = setInterval(() => {
      if (!s.destroyed) s.write(Buffer.from([0x00]));
    }, 100);
    try {
      await within(closed, 3000, "close");
    } finally {
      clearInterval(dribble);
    }
    expect(s.destroyed).toBe(true);
  });

  it("TCP: a query followed by FIN still gets its answer, then the server closes", async () => {
    const s = net.connect(tcpPort, "127.0.0.1");
    const got = tcpReader(s);
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    // a forwarded name: its answer comes after the FIN has been read
    s.end(frame(9, "fin.example.org"));
    await closed;
    expect(got.map((m) => dnsPacket.decode(m).id)).toEqual([9]);
    expect(firstData(got[0] as Buffer)).toBe("192.0.2.7");
  });
});

describe("DnsProxy metrics", () => {
  it("reports ztunnel's istio_dns_* metrics, labelled by query type, protocol and source", async () => {
    const registry = new Registry();
    const state = new MeshState(parseScenario({ file: "dns.yaml", text: LOCAL_XDS }).local);
    const proxy = new DnsProxy({
      state: () => state,
      // example.org answers; down.example has no upstream that answers
      forward: async (query) => {
        const q = dnsPacket.decode(query);
        if (q.questions?.[0]?.name === "down.example") throw new Error("no upstream answered");
        return dnsPacket.encode({ type: "response", id: q.id ?? 0, questions: q.questions ?? [] });
      },
      observer: dnsMetrics(registry),
    });
    const ask = (name: string, type: "A" | "AAAA", protocol: "udp" | "tcp") =>
      proxy.answer(
        dnsPacket.encode({ type: "query", id: 7, questions: [{ type, name }] }),
        { namespace: "bookinfo", canonicalService: "productpage", canonicalRevision: "v1" },
        protocol,
      );
    await ask("reviews.bookinfo.svc.cluster.local", "A", "udp");
    await ask("reviews", "AAAA", "tcp");
    await ask("example.org", "A", "udp");
    const failed = await ask("down.example", "A", "udp");
    expect(((dnsPacket.decode(failed as Buffer).flags ?? 0) & 0xf) === 2).toBe(true); // SERVFAIL
    const samples = parsePrometheus(await registry.metrics());
    const value = (name: string, labels: Record<string, string>) =>
      samples
        .filter(
          (m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v),
        )
        .reduce((n, m) => n + m.value, 0);
    const src = { source_canonical_service: "productpage", source_canonical_revision: "v1" };
    expect(
      value("istio_dns_requests_total", {
        ...src,
        request_query_type: "a",
        request_protocol: "udp",
      }),
    ).toBe(3);
    expect(
      value("istio_dns_requests_total", {
        ...src,
        request_query_type: "aaaa",
        request_protocol: "tcp",
      }),
    ).toBe(1);
    expect(value("istio_dns_upstream_requests_total", src)).toBe(2);
    expect(value("istio_dns_upstream_failures_total", src)).toBe(1);
    expect(value("istio_dns_upstream_request_duration_seconds_count", src)).toBe(2);
  });
});

describe("udpForwarder and resolv.conf", () => {
  it("skips an upstream that never answers and uses the next; ignores a wrong id", async () => {
    const silent = dgram.createSocket("udp4");
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
    const liar = dgram.createSocket("udp4");
    liar.on("message", (msg, rinfo) => {
      const wrong = Buffer.from(msg);
      wrong.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
      wrong.writeUInt16BE(0x8180, 2);
      const right = Buffer.from(msg);
      right.writeUInt16BE(0x8183, 2); // NXDOMAIN
      liar.send(wrong, rinfo.port, rinfo.address);
      liar.send(right, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => liar.bind(0, "127.0.0.1", r));
    const fwd = udpForwarder(
      [`127.0.0.1:${silent.address().port}`, `127.0.0.1:${liar.address().port}`],
      { timeoutMs: 300 },
    );
    const q = dnsPacket.encode({ type: "query", id: 7, questions: [{ type: "A", name: "x.y" }] });
    const res = await fwd(q);
    expect(res.readUInt16BE(0)).toBe(7);
    expect(res.readUInt16BE(2) & 0xf).toBe(3);
    const none = udpForwarder([`127.0.0.1:${silent.address().port}`], { timeoutMs: 200 });
    const err = await none(q).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExampleError);
    expect((err as ExampleError).code).toBe("ERR_EXAMPLES_ROUTE");
    silent.close();
    liar.close();
  });

  it("reads nameserver lines of resolv.conf", () => {
    const text =
      "# generated\nsearch ns.svc.cluster.local\nnameserver 10.96.0.10\n; x\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
    expect(resolvConfNameservers(text)).toEqual(["10.96.0.10", "fe80::1"]);
  });
});

describe("DnsProxy limits and edge cases", () => {
  const state = new MeshState(parseScenario({ file: "dns.yaml", text: LOCAL_XDS }).local);
  const bookinfo: DnsClient = { namespace: "bookinfo" };
  const echo = (query: Buffer): Buffer => {
    const q = dnsPacket.decode(query);
    return dnsPacket.encode({ type: "response", id: q.id ?? 0, questions: q.questions ?? [] });
  };

  it("TCP: at most maxInFlight queries of one connection are answered at once; all get answers", async () => {
    let now = 0;
    let peak = 0;
    const proxy = new DnsProxy({
      state: () => state,
      forward: async (query) => {
        now++;
        peak = Math.max(peak, now);
        await new Promise((r) => setImmediate(r));
        now--;
        return echo(query);
      },
    });
    const server = net.createServer({ allowHalfOpen: true });
    serveDnsTcp(server, proxy, clientOf);
    const port = await listenTcp(server);
    const s = net.connect(port, "127.0.0.1");
    const got = tcpReader(s);
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    // 200 frames in one write: one chunk for the server (or a few)
    s.end(Buffer.concat(Array.from({ length: 200 }, (_, i) => frame(i, `n${i}.example.org`))));
    await closed;
    await new Promise((r) => server.close(r));
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(32);
    expect(new Set(got.map((m) => dnsPacket.decode(m).id)).size).toBe(200);
  });

  it("TCP: a client that does not read its answers stops the server reading its queries", async () => {
    let forwarded = 0;
    const proxy = new DnsProxy({
      state: () => state,
      // 60 kB answers: a few fill every buffer between the two sockets
      forward: async (query) => {
        forwarded++;
        return Buffer.concat([echo(query), Buffer.alloc(60_000)]);
      },
    });
    const server = net.createServer({ allowHalfOpen: true });
    serveDnsTcp(server, proxy, clientOf, { idleMs: 60_000 });
    const port = await listenTcp(server);
    const s = net.connect(port, "127.0.0.1");
    s.pause();
    s.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(i, `n${i}.example.org`))));
    // wait until the server makes no more progress (bounded), then count what it took on
    let last = -1;
    for (let i = 0; i < 50 && forwarded !== last; i++) {
      last = forwarded;
      await sleep(100);
    }
    s.destroy();
    await new Promise((r) => server.close(r));
    expect(forwarded).toBeGreaterThan(0);
    // without backpressure all 1000 (60 MB) would be answered into the socket's buffer
    expect(forwarded).toBeLessThan(500);
  });

  it("beyond maxForwards in flight: SERVFAIL without forwarding, counted as a request only", async () => {
    const registry = new Registry();
    const release: (() => void)[] = [];
    let forwarded = 0;
    const proxy = new DnsProxy({
      state: () => state,
      maxForwards: 2,
      observer: dnsMetrics(registry),
      forward: async (query) => {
        forwarded++;
        await new Promise<void>((r) => release.push(r));
        return echo(query);
      },
    });
    const ask = (id: number) =>
      proxy.answer(
        dnsPacket.encode({ type: "query", id, questions: [{ type: "A", name: "x.example.org" }] }),
        bookinfo,
      );
    const held = [ask(1), ask(2)];
    const over = await ask(3);
    expect(forwarded).toBe(2);
    expect((over?.readUInt16BE(2) ?? 0) & 0xf).toBe(2); // SERVFAIL
    for (const r of release) r();
    const done = await Promise.all(held);
    expect(done.map((b) => (b?.readUInt16BE(2) ?? -1) & 0xf)).toEqual([0, 0]);
    // a slot is free again
    const again = ask(4);
    await sleep(0);
    expect(forwarded).toBe(3);
    for (const r of release) r();
    await again;
    const samples = parsePrometheus(await registry.metrics());
    const total = (name: string) =>
      samples.filter((m) => m.name === name).reduce((n, m) => n + m.value, 0);
    expect(total("istio_dns_requests_total")).toBe(4);
    expect(total("istio_dns_upstream_requests_total")).toBe(3);
    expect(total("istio_dns_upstream_failures_total")).toBe(0);
  });

  it("labels query types outside a fixed set as 'other'", async () => {
    const registry = new Registry();
    const proxy = new DnsProxy({
      state: () => state,
      forward: async (q) => echo(q),
      observer: dnsMetrics(registry),
    });
    for (const type of ["NAPTR", "TXT"] as const)
      await proxy.answer(
        dnsPacket.encode({ type: "query", id: 1, questions: [{ type, name: "x.example.org" }] }),
        bookinfo,
      );
    const types = parsePrometheus(await registry.metrics())
      .filter((m) => m.name === "istio_dns_requests_total")
      .map((m) => m.labels.request_query_type)
      .sort();
    expect(types).toEqual(["other", "txt"]);
  });

  it("a name with a '.' inside one wire label is never the mesh name: forwarded as its bytes", async () => {
    const seen: Buffer[] = [];
    const proxy = new DnsProxy({
      state: () => state,
      forward: async (q) => {
        seen.push(q);
        const res = Buffer.from(q);
        res.writeUInt16BE(0x8183, 2); // NXDOMAIN
        return res;
      },
    });
    // one label "reviews.bookinfo": dns-packet decodes it as "reviews.bookinfo", a mesh name
    const label = Buffer.from("reviews.bookinfo");
    const query = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, label.length]),
      label,
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    expect(dnsPacket.decode(query).questions?.[0]?.name).toBe("reviews.bookinfo");
    const res = await proxy.answer(query, bookinfo);
    expect(seen).toEqual([query]);
    expect((res?.readUInt16BE(2) ?? 0) & 0xf).toBe(3);
    // an unknown source: SERVFAIL, header only (the question is not re-encoded as two labels)
    const servfail = await proxy.answer(query, undefined);
    expect(servfail?.length).toBe(12);
    expect((servfail?.readUInt16BE(2) ?? 0) & 0x800f).toBe(0x8002);
  });
});

describe("udpForwarder upstream matching and TCP fallback", () => {
  /** A UDP upstream answering every query via `reply` (undefined → silence). */
  async function udpUpstream(
    family: "udp4" | "udp6",
    reply: (q: Buffer) => Buffer[],
  ): Promise<{ sock: dgram.Socket; port: number; seen: Buffer[] }> {
    const sock = dgram.createSocket(family);
    const seen: Buffer[] = [];
    sock.on("message", (msg, rinfo) => {
      seen.push(msg);
      for (const r of reply(msg)) sock.send(r, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => sock.bind(0, family === "udp6" ? "::1" : "127.0.0.1", r));
    return { sock, port: sock.address().port, seen };
  }
  const answerA = (query: Buffer, data: string, flags = 0, name?: string): Buffer => {
    const q = dnsPacket.decode(query);
    const qn = name ?? q.questions?.[0]?.name ?? "";
    return dnsPacket.encode({
      type: "response",
      id: q.id ?? 0,
      flags,
      questions: [{ type: "A", name: qn }],
      answers: flags & dnsPacket.TRUNCATED_RESPONSE ? [] : [{ type: "A", name: qn, data }],
    });
  };
  const query = (id: number, name = "x.example.org"): Buffer =>
    dnsPacket.encode({ type: "query", id, questions: [{ type: "A", name }] });

  it("accepts replies from an upstream written [0::1]:port or in full zero-padded upper-case", async () => {
    const up = await udpUpstream("udp6", (q) => [answerA(q, "192.0.2.1")]);
    for (const addr of ["[0::1]", "[0000:0000:0000:0000:0000:0000:0000:0001]"]) {
      const fwd = udpForwarder([`${addr}:${up.port}`], { timeoutMs: 2000 });
      const res = await fwd(query(77));
      expect(res.readUInt16BE(0)).toBe(77);
      expect(firstData(res)).toBe("192.0.2.1");
    }
    up.sock.close();
  });

  it("ignores a reply with the right id for another question; accepts a case-changed name", async () => {
    // first upstream: only a reply with our id but another name (then silence)
    const liar = await udpUpstream("udp4", (q) => [answerA(q, "192.0.2.66", 0, "evil.example")]);
    // second: the right question, name upper-cased
    const good = await udpUpstream("udp4", (q) => [answerA(q, "192.0.2.2", 0, "X.EXAMPLE.ORG")]);
    const fwd = udpForwarder([`127.0.0.1:${liar.port}`, `127.0.0.1:${good.port}`], {
      timeoutMs: 300,
    });
    const res = await fwd(query(5));
    expect(res.readUInt16BE(0)).toBe(5);
    expect(firstData(res)).toBe("192.0.2.2");
    expect(liar.seen).toHaveLength(1);
    liar.sock.close();
    good.sock.close();
  });

  it("repeats a truncated answer over TCP to the same upstream; keeps the UDP one if TCP fails", async () => {
    const up = await udpUpstream("udp4", (q) => [answerA(q, "", dnsPacket.TRUNCATED_RESPONSE)]);
    const tcpUp = net.createServer((s) => {
      const got = tcpReader(s);
      s.on("data", () => {
        const q = got.shift();
        if (!q) return;
        const res = answerA(q, "192.0.2.3");
        const len = Buffer.alloc(2);
        len.writeUInt16BE(res.length, 0);
        s.write(Buffer.concat([len, res]));
      });
    });
    await new Promise<void>((r) => tcpUp.listen(up.port, "127.0.0.1", r));
    const fwd = udpForwarder([`127.0.0.1:${up.port}`], { timeoutMs: 2000 });
    const res = await fwd(query(11));
    expect(res.readUInt16BE(0)).toBe(11);
    expect(res.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE).toBe(0);
    expect(firstData(res)).toBe("192.0.2.3");
    await new Promise((r) => tcpUp.close(r));
    // no TCP listener any more: the truncated UDP answer is returned
    const cut = await fwd(query(12));
    expect(cut.readUInt16BE(0)).toBe(12);
    expect(cut.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE).not.toBe(0);
    up.sock.close();
  });
});
