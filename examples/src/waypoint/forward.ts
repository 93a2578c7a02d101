// The upstream half of one HTTP request at the waypoint: the request goes over a fresh HBONE tunnel
// to the chosen pod, HTTP/1.1 as HTTP/1.1 and HTTP/2 as HTTP/2 (trailers included, so gRPC works),
// the response comes back with the route's response header modifiers applied.
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { HboneStream } from "../hbone.js";
import { applyHeaderModifier } from "./httproute.js";

export type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;
export type HeaderModifier = Parameters<typeof applyHeaderModifier>[1];

export const HOP_BY_HOP: readonly string[] = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
];

export function reply(res: AnyResponse, status: number, text: string): void {
  (res as http.ServerResponse).writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

function abort(res: AnyResponse): void {
  if (res instanceof http.ServerResponse) res.destroy();
  else res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}

export interface Forward {
  req: AnyRequest;
  res: AnyResponse;
  /** The HBONE tunnel to the destination pod (owned from here on). */
  tunnel: HboneStream;
  /** The pod, `ip:port` (the upstream HTTP/2 session's origin). */
  origin: string;
  /** `:authority` / Host sent upstream. */
  host: string;
  /** Request headers after the route's modifiers, hop-by-hop ones removed. */
  headers: Record<string, string | string[] | undefined>;
  responseModifiers: readonly HeaderModifier[];
  /**
   * HTTPRoute `timeouts.request` (504 when exceeded). As Envoy's route timeout it starts once the
   * whole downstream request (body included) has been received.
   */
  timeoutMs: number | undefined;
  /** Called once with the final status (and Envoy response flags on a local reply). */
  done(status: number, flags?: string): void;
}

/** Sends the request upstream over `f.tunnel` and streams the response back. */
export function forward(f: Forward): void {
  const { req, res, tunnel } = f;
  const isH2 = req instanceof http2.Http2ServerRequest;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const fail = (status: number, flags: string, text: string): void => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    tunnel.destroy();
    if (!res.headersSent) {
      f.done(status, flags);
      reply(res, status, text);
    } else abort(res);
  };
  const respond = (
    status: number,
    headers: Record<string, string | string[] | undefined>,
    body: NodeJS.ReadableStream,
  ): void => {
    if (finished) return;
    if (timer) clearTimeout(timer);
    const out: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(headers))
      if (!k.startsWith(":") && !HOP_BY_HOP.includes(k)) out[k] = v;
    for (const m of f.responseModifiers) applyHeaderModifier(out, m);
    (res as http.ServerResponse).writeHead(status, out as http.OutgoingHttpHeaders);
    body.pipe(res as NodeJS.WritableStream);
    body.once("end", () => {
      finished = true;
      f.done(status);
    });
  };
  if (f.timeoutMs !== undefined) {
    const ms = f.timeoutMs;
    const start = (): void => {
      if (!finished) timer = setTimeout(() => fail(504, "UT", "upstream request timeout\n"), ms);
    };
    if (req.readableEnded) start();
    else req.once("end", start);
  }
  // The client went away (FIN or RST mid-upload, or before the response finished): release the
  // upstream tunnel too; Envoy records response code 0 with DC (downstream connection termination).
  const downstreamGone = (): void => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    tunnel.destroy();
    f.done(0, "DC");
  };
  res.once("close", () => {
    const r = res as { writableFinished?: boolean; writableEnded: boolean };
    if (!(r.writableFinished ?? r.writableEnded)) downstreamGone();
  });
  req.once("aborted", downstreamGone);
  if (isH2) {
    // HTTP/2 downstream → HTTP/2 upstream (gRPC needs trailers end to end)
    const session = http2.connect(`http://${f.origin}`, {
      createConnection: () => tunnel as unknown as net.Socket,
    });
    session.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
    const up = session.request({
      ":method": req.method ?? "GET",
      ":path": req.url ?? "/",
      ":authority": String(f.headers.host ?? f.host),
      ...Object.fromEntries(Object.entries(f.headers).filter(([k]) => k !== "host")),
    });
    up.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
    up.on("response", (h) => respond(Number(h[":status"] ?? 502), h as Record<string, string>, up));
    up.on("trailers", (tr) => {
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(tr))
        if (!k.startsWith(":") && v !== undefined) out[k] = String(v);
      (res as http2.Http2ServerResponse).addTrailers(out);
    });
    up.once("close", () => session.close());
    req.pipe(up);
    return;
  }
  const up = http.request({
    createConnection: () => tunnel as unknown as net.Socket,
    method: req.method ?? "GET",
    path: req.url ?? "/",
    headers: f.headers as http.OutgoingHttpHeaders,
  });
  up.on("response", (ur) => respond(ur.statusCode ?? 502, ur.headers, ur));
  up.on("error", (e) => fail(503, "URX", `upstream error: ${e.message}\n`));
  req.pipe(up);
}
