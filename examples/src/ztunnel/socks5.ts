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

function reply(socket: net.Socket, code: number): void {
  if (socket.destroyed) return;
  socket.write(Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
}

/**
 * Reads the SOCKS5 handshake from `socket`, then calls `connect(target, head)`; `connect` resolves
 * with true once the upstream is ready (we answer success and hand over the socket) or false / a
 * reply code (we answer the failure and close).
 */
export function serveSocks5(
  socket: net.Socket,
  connect: (target: Socks5Target, head: Buffer) => Promise<true | number>,
): void {
  let buf = Buffer.alloc(0);
  let stage: "greeting" | "request" | "done" = "greeting";
  const fail = (code: number): void => {
    reply(socket, code);
    socket.end();
    stage = "done";
  };
  const onData = (chunk: Buffer): void => {
    buf = Buffer.concat([buf, chunk]);
    if (stage === "greeting") {
      if (buf.length < 2) return;
      if (buf[0] !== 0x05) {
        socket.destroy();
        return;
      }
      const n = buf[1] ?? 0;
      if (buf.length < 2 + n) return;
      const methods = buf.subarray(2, 2 + n);
      buf = buf.subarray(2 + n);
      if (!methods.includes(0x00)) {
        socket.end(Buffer.from([0x05, 0xff]));
        stage = "done";
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
      stage = "done";
      socket.removeListener("data", onData);
      socket.pause();
      if (cmd !== 0x01) {
        fail(SOCKS5_COMMAND_NOT_SUPPORTED);
        return;
      }
      connect({ host, port, kind }, Buffer.from(head)).then(
        (r) => {
          if (r === true) {
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
}
