// Sample apps for the demo and tests: an HTTP echo server (reports its version, pod and the client
// address it saw), a TCP echo server, and a small HTTP client that binds a pod's source IP.
import http from "node:http";
import net from "node:net";
import { type Listener, listen } from "../mesh/net.js";

/** What the HTTP echo server answers (JSON). */
export interface EchoReply {
  app: string;
  version: string;
  pod: string;
  /** The client address the app saw (ztunnel connects from the original source IP). */
  remoteAddress: string;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

/** An HTTP echo server on `host:port`; `?delay=<ms>` delays the answer (for timeout tests). */
export function startHttpEcho(opts: {
  host: string;
  port: number;
  app: string;
  version: string;
  pod: string;
}): Promise<Listener> {
  const srv = http.createServer((req, res) => {
    req.resume();
    req.once("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const delay = Number(url.searchParams.get("delay") ?? 0);
      const reply: EchoReply = {
        app: opts.app,
        version: opts.version,
        pod: opts.pod,
        remoteAddress: (req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""),
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
      };
      setTimeout(
        () => {
          res.writeHead(200, {
            "content-type": "application/json",
            "x-echo-version": opts.version,
          });
          res.end(JSON.stringify(reply));
        },
        Math.min(delay, 10_000),
      );
    });
  });
  srv.keepAliveTimeout = 1000;
  return listen(srv, opts.host, opts.port, `echo app ${opts.pod}`);
}

/** A TCP server that echoes every byte back (half-close aware). */
export function startTcpEcho(host: string, port: number): Promise<Listener> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  return listen(srv, host, port, `tcp echo ${host}:${port}`);
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request from `localAddress` (a pod IP) to `host:port`. */
export function httpRequest(opts: {
  host: string;
  port: number;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  localAddress?: string;
  timeoutMs?: number;
}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: opts.host,
        port: opts.port,
        path: opts.path ?? "/",
        method: opts.method ?? "GET",
        headers: opts.headers ?? {},
        agent: false,
        ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.once("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.once("error", reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () =>
      req.destroy(new Error(`request to ${opts.host}:${opts.port} timed out`)),
    );
    req.once("error", reject);
    req.end();
  });
}
