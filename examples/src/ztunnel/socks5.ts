// A minimal SOCKS5 server as ztunnel's (port 15080): no authentication (method 0x00), CONNECT only,
// ATYP IPv4 / domain / IPv6. The reply is sent once the upstream is established.
import net from "node:net";

export type Socks5Target = { host: string; port: number; kind: "ip" | "domain" };

/** Reply codes (RFC 1928 §6). */
export const SOCKS5_SUCCEEDED = 0x00;
export const SOCKS5_GENERAL_FAILURE = 0x01;
export const SOCKS5_NOT_ALLOWED = 0x02;
export const SOCKS5_HOST_UNREACHABLE = 0x04;
export const SOCKS5_CONNECTION_REFUSED = 0x05;
export const SOCKS5_COMMAND_NOT_SUPPORTED = 0x07;
export const SOCKS5_ATYP_NOT_SUPPORTED = 0x08;

/**
 * How long a client may take to send its greeting and CONNECT request. ztunnel's SOCKS5 has no
 * deadline of its own (a FIN ends its `read_exact`); we use Envoy's `listener_filters_timeout`
 * default for the same pre-routing stage.
 */
export const SOCKS5_HANDSHAKE_TIMEOUT_MS = 15_000;

/** The longest greeting + request (2 + 255 methods, 4 + 1 + 255 + 2) plus a little early data. */
const MAX_HANDSHAKE_BYTES = 4096;

function reply(socket: net.Socket, code: number): void {
  if (socket.destroyed) return;
  socket.write(Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
}

/** Sends our last bytes and FIN, then releases the socket (we never read from it again). */
function endAndRelease(socket: net.Socket, last: Buffer): void {
  if (socket.destroyed) return;
  socket.end(last);
  socket.once("finish", () => socket.destroy());
}

/**
 * Reads the SOCKS5 handshake from `socket`, then calls `connect(target, head)`; `connect` resolves
 * with true once the upstream is ready (we answer success and hand over the socket) or false / a
 * reply code (we answer the failure and close). A client that closes, resets or stalls before its
 * request is complete is released at once (or after `handshakeTimeoutMs`): nothing stays half-open.
 */
export function serveSocks5(
  socket: net.Socket,
  connect: (target: Socks5Target, head: Buffer) => Promise<true | number>,
  options: { handshakeTimeoutMs?: number } = {},
): void {
  let buf: Buffer = Buffer.alloc(0);
  let stage: "greeting" | "request" | "connecting" | "done" = "greeting";
  const timer = setTimeout(() => {
    if (stage === "greeting" || stage === "request") socket.destroy();
  }, options.handshakeTimeoutMs ?? SOCKS5_HANDSHAKE_TIMEOUT_MS);
  const stop = (): void => {
    clearTimeout(timer);
    socket.removeListener("data", onData);
    socket.removeListener("end", onEnd);
  };
  // FIN before the request is complete: the client is gone, and our half must go too
  const onEnd = (): void => {
    stop();
    socket.destroy();
  };
  socket.once("close", () => clearTimeout(timer));
  const fail = (code: number): void => {
    stage = "done";
    stop();
    endAndRelease(socket, Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (buf.length > MAX_HANDSHAKE_BYTES) {
      stop();
      socket.destroy();
      return;
    }
    if (stage === "greeting") {
      if (buf.length < 2) return;
      if (buf[0] !== 0x05) {
        stop();
        socket.destroy();
        return;
      }
      const n = buf[1] ?? 0;
      if (buf.length < 2 + n) return;
      const methods = buf.subarray(2, 2 + n);
      buf = buf.subarray(2 + n);
      if (!methods.includes(0x00)) {
        stage = "done";
        stop();
        endAndRelease(socket, Buffer.from([0x05, 0xff]));
        return;
      }
      socket.write(Buffer.from([0x05, 0x00]));
      stage = "request";
    }
    if (stage === "request") {
      if (buf.length < 4) return;
      if (buf[0] !== 0x05) {
        fail(SOCKS5_GENERAL_FAILURE);
        return;
      }
      const cmd = buf[1];
      const atyp = buf[3];
      let host: string;
      let off: number;
      let kind: Socks5Target["kind"] = "ip";
      if (atyp === 0x01) {
        if (buf.length < 10) return;
        host = [...buf.subarray(4, 8)].join(".");
        off = 8;
      } else if (atyp === 0x03) {
        const len = buf[4] ?? 0;
        if (buf.length < 5 + len + 2) return;
        host = buf.subarray(5, 5 + len).toString("latin1");
        off = 5 + len;
        kind = "domain";
      } else if (atyp === 0x04) {
        if (buf.length < 22) return;
        const parts: string[] = [];
        for (let i = 0; i < 8; i++) parts.push(buf.readUInt16BE(4 + i * 2).toString(16));
        host = net.isIPv6(parts.join(":")) ? parts.join(":") : "::";
        off = 20;
      } else {
        fail(SOCKS5_ATYP_NOT_SUPPORTED);
        return;
      }
      const port = buf.readUInt16BE(off);
      const head = buf.subarray(off + 2);
      if (cmd !== 0x01) {
        fail(SOCKS5_COMMAND_NOT_SUPPORTED);
        return;
      }
      stage = "connecting";
      stop();
      // paused until connected; an RST meanwhile still closes the socket (the caller checks)
      socket.pause();
      connect({ host, port, kind }, Buffer.from(head)).then(
        (r) => {
          if (r === true) {
            stage = "done";
            reply(socket, SOCKS5_SUCCEEDED);
          } else {
            fail(r);
          }
        },
        () => fail(SOCKS5_GENERAL_FAILURE),
      );
    }
  };
  socket.on("data", onData);
  socket.once("end", onEnd);
}
