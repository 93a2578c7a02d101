// The node adapters skip the scan of every header value (headersWellFormed) for a request Node's
// own strict HTTP/1 parser built: that parser refuses every request with a header the decision
// would have to refuse. These tests hold that claim against the parser byte by byte (the fast path
// against the scan it replaces), and check that the requests it does not cover are still scanned:
// a lenient parser, fastify.inject. And the connection addresses kept per HTTP/1 connection are
// those of the request's own socket.
import { Agent, createServer, get, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { connect } from "node:net";
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { headersWellFormed } from "./authorizer.js";
import { listen, testAuthorizer } from "./harness.testutil.js";
import type { AppDecision, RequestFacts } from "./index.js";
import { nodeRequestFacts, parsedStrictly } from "./node/facts.js";
import { fastifyAuthz, withAuthz } from "./node/index.js";

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

/** Sends raw bytes on a new connection; resolves with the status line (empty if none). */
function send(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let out = "";
    const s = connect(port, "127.0.0.1", () => s.end(bytes));
    s.setEncoding("latin1").on("data", (c: string) => {
      out += c;
    });
    s.on("close", () => resolve(out.split("\r\n")[0] ?? "")).on("error", () => {});
  });
}

const request = (line: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from("GET /hello HTTP/1.1\r\nHost: api\r\n"),
    line,
    Buffer.from("\r\nConnection: close\r\n\r\n"),
  ]);

/** One header line with `b` inside its name, and one with `b` inside its value, for every byte. */
function everyByte(): { what: string; bytes: Buffer }[] {
  const out: { what: string; bytes: Buffer }[] = [];
  for (let b = 0; b < 256; b++) {
    const x = Buffer.from([b]);
    out.push({
      what: `name byte ${b}`,
      bytes: request(Buffer.concat([Buffer.from("X-A"), x, Buffer.from("B: v")])),
    });
    out.push({
      what: `value byte ${b}`,
      bytes: request(Buffer.concat([Buffer.from("X-V: a"), x, Buffer.from("b")])),
    });
    out.push({
      what: `value ending ${b}`,
      bytes: request(Buffer.concat([Buffer.from("X-V: a"), x])),
    });
  }
  for (const [what, text] of [
    ["obs-fold", "X-F: a\r\n b"],
    ["bare LF", "X-F: a\nb"],
    ["bare CR", "X-F: a\rb"],
    ["CR CR LF", "X-F: a\r\r\nb"],
    ["__proto__", "__proto__: x"],
    [
      "duplicates",
      "X-D: a\r\nX-D: b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nCookie: c=3\r\nCookie: d=4",
    ],
  ] as const)
    out.push({ what, bytes: request(Buffer.from(text, "latin1")) });
  return out;
}

async function server(insecureHTTPParser: boolean | undefined, seen: IncomingMessage[]) {
  const { authorizer } = await testAuthorizer();
  const s = createServer(
    insecureHTTPParser === undefined ? {} : { insecureHTTPParser },
    withAuthz(authorizer, (req: IncomingMessage & { authz?: AppDecision }, res: ServerResponse) => {
      seen.push(req);
      res.end(req.authz?.decidedBy ?? "");
    }),
  );
  // Denied requests never reach the handler: record them here too.
  s.prependListener("request", (req: IncomingMessage) => void seen.push(req));
  const port = await listen(s);
  closers.push(() => new Promise((r) => s.close(r)));
  return port;
}

describe("headers from Node's strict HTTP/1 parser", () => {
  it("every request the strict parser hands over has headers the scan would pass (every byte in a name and a value)", async () => {
    const seen: IncomingMessage[] = [];
    const port = await server(undefined, seen);
    let accepted = 0;
    let refused = 0;
    for (const { what, bytes } of everyByte()) {
      seen.length = 0;
      const status = await send(port, bytes);
      if (seen.length === 0) {
        expect(status, what).toMatch(/^HTTP\/1\.1 400 /);
        refused++;
        continue;
      }
      accepted++;
      for (const req of seen) {
        expect(parsedStrictly(req), what).toBe(true);
        expect(headersWellFormed(req.headers as Record<string, string>), what).toBe(true);
      }
    }
    // Both kinds happened: NUL, CR, LF, controls and separators are refused, the rest accepted.
    expect(refused).toBeGreaterThan(100);
    expect(accepted).toBeGreaterThan(300);
  });

  it("a lenient parser (insecureHTTPParser) is not trusted: a NUL it lets through is Envoy's 400", async () => {
    const seen: IncomingMessage[] = [];
    const port = await server(true, seen);
    const status = await send(port, request(Buffer.from("X-V: a\0b")));
    expect(seen.length).toBeGreaterThan(0);
    for (const req of seen) {
      expect(parsedStrictly(req)).toBe(false);
      expect(headersWellFormed(req.headers as Record<string, string>)).toBe(false);
    }
    expect(status).toMatch(/^HTTP\/1\.1 403 /);
    // The same request without the NUL is allowed (GET is), so the 403 is the header's doing.
    expect(await send(port, request(Buffer.from("X-V: ab")))).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("a server that says insecureHTTPParser: false is trusted", async () => {
    const seen: IncomingMessage[] = [];
    const port = await server(false, seen);
    expect(await send(port, request(Buffer.from("X-V: ab")))).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen.length).toBeGreaterThan(0);
    for (const req of seen) expect(parsedStrictly(req)).toBe(true);
  });

  it("fastify.inject is scanned: a malformed header no policy reads is still Envoy's 400", async () => {
    // Dry run: every request goes through, with the decision in the answer. inject's mock socket
    // has no local address, so the authorizer is given one.
    const { authorizer } = await testAuthorizer(undefined, {
      mode: "dry-run",
      destinationIp: "127.0.0.1",
    });
    const app = Fastify();
    await app.register(fastifyAuthz, { authorizer });
    let strict: boolean | undefined;
    app.addHook("onRequest", (request, _reply, done) => {
      strict = parsedStrictly(request.raw);
      done();
    });
    app.get(
      "/hello",
      async (request) => (request as unknown as { authz: AppDecision }).authz.decidedBy,
    );
    closers.push(() => app.close());
    const ok = await app.inject({ method: "GET", url: "/hello", headers: { "x-v": "ab" } });
    expect(ok.body).toBe("shop/allow-reads");
    expect(strict).toBe(false);
    for (const value of ["a\0b", "a\r\nx-y: z", "a\nb"]) {
      const r = await app.inject({ method: "GET", url: "/hello", headers: { "x-v": value } });
      expect(r.body, JSON.stringify(value)).toBe("implicit:invalid-request");
    }
  });
});

describe("connection addresses, read once per HTTP/1 connection", () => {
  it("every request on every connection sees its own socket's addresses", async () => {
    const seen: { facts: RequestFacts; socket: Socket }[] = [];
    const s = createServer((req, res) => {
      seen.push({ facts: nodeRequestFacts(req) as RequestFacts, socket: req.socket });
      res.end();
    });
    // Both families where the machine has them: ::1 and 127.0.0.1 on one dual-stack server.
    await new Promise<void>((r) => s.listen(0, "::", r));
    closers.push(() => new Promise((r) => s.close(r)));
    const port = (s.address() as AddressInfo).port;
    const keepAlive = (host: string) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      closers.push(() => agent.destroy());
      return async () => {
        await new Promise<void>((resolve, reject) =>
          get({ host, port, agent }, (r) => r.resume().on("end", resolve)).on("error", reject),
        );
      };
    };
    const conns = [keepAlive("127.0.0.1"), keepAlive("127.0.0.1"), keepAlive("::1")];
    for (let i = 0; i < 3; i++) for (const c of conns) await c().catch(() => undefined); // ::1 may be missing
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(new Set(seen.map((x) => x.socket)).size).toBeGreaterThanOrEqual(2);
    for (const { facts, socket } of seen)
      expect([facts.sourceIp, facts.destinationIp, facts.destinationPort]).toEqual([
        socket.remoteAddress,
        socket.localAddress,
        socket.localPort,
      ]);
  });
});
