// UDP sockets inside a network namespace: what an in-pod DNS proxy (port 15053) needs. Same
// scheme as sockets.ts: socket(2) on a thread moved into the namespace, then handed to Node.
import dgram from "node:dgram";
import { InpodError } from "./errors.js";
import { closeFd, encodeSockaddr, errnoName, libc, linux } from "./native.js";
import { type NetnsRef, runInNetns, withNetnsRef } from "./netns.js";
import { setMark } from "./sockets.js";

const SOCK_DGRAM = 2;

export interface BindUdpInNetnsOptions {
  /** An IP literal (`0.0.0.0`, `127.0.0.1`, `::1`, `::`, a pod address): no DNS from here. */
  readonly host: string;
  /** 0 picks a free port: read it back with `socket.address().port`. */
  readonly port: number;
  /** SO_MARK for the socket (ztunnel's DEFAULT_INPOD_MARK = 1337); needs CAP_NET_ADMIN. */
  readonly mark?: number;
  /** For an IPv6 `host`: IPv6 only (IPV6_V6ONLY). Default false (`::` takes IPv4 too). */
  readonly v6Only?: boolean;
}

function udpError(call: string, errno: number, hint: string): InpodError {
  return new InpodError("ERR_INPOD_SOCKET", `${call} failed with ${errnoName(errno)}: ${hint}`);
}

/**
 * A UDP socket created inside a network namespace, bound to `host:port` there, as a
 * dgram.Socket (already bound: no `bind()` call, `listening` has been emitted). Everything it
 * sends and receives belongs to that namespace. Close it as usual.
 */
export async function bindUdpInNetns(
  netns: NetnsRef,
  options: BindUdpInNetnsOptions,
): Promise<dgram.Socket> {
  const { host, port } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InpodError("ERR_INPOD_SOCKET", `UDP port ${port} is out of range (0-65535)`);
  }
  const sa = encodeSockaddr(host, port);
  if (!sa) {
    throw new InpodError(
      "ERR_INPOD_SOCKET",
      `UDP bind address ${JSON.stringify(host)} is not an IP literal: resolve names before entering the namespace`,
    );
  }
  const v6 = sa.length === 28;
  const c = libc();
  const fd = withNetnsRef(netns, (nsFd) =>
    runInNetns(nsFd, () =>
      c.socket(
        v6 ? linux.AF_INET6 : linux.AF_INET,
        SOCK_DGRAM | linux.SOCK_NONBLOCK | linux.SOCK_CLOEXEC,
        0,
      ),
    ),
  );
  if (fd < 0) throw udpError("socket()", c.errno(), "the process is out of file descriptors?");
  const socket = dgram.createSocket({ type: v6 ? "udp6" : "udp4" });
  try {
    if (v6) {
      const on = Buffer.from(new Uint32Array([options.v6Only ? 1 : 0]).buffer);
      if (c.setsockopt(fd, linux.SOL_IPV6, linux.IPV6_V6ONLY, on, 4) !== 0)
        throw udpError("setsockopt(IPV6_V6ONLY)", c.errno(), "see ipv6(7)");
    }
    if (options.mark !== undefined) setMark(fd, options.mark);
    // No SO_REUSEADDR: on UDP it would let two sockets share the port instead of EADDRINUSE.
    if (c.bind(fd, sa, sa.length) !== 0) {
      throw udpError(
        `bind(udp ${v6 ? `[${host}]` : host}:${port})`,
        c.errno(),
        "is the port taken in that namespace, or the address not on any of its interfaces?",
      );
    }
    // libuv wraps the fd as is (no dup): the namespace, mark and binding stay. Synchronous;
    // on success the socket owns the fd, on failure the fd is still ours (closed below).
    socket.bind({ fd });
  } catch (err) {
    closeFd(fd);
    socket.close();
    throw err instanceof InpodError
      ? err
      : new InpodError(
          "ERR_INPOD_SOCKET",
          `Node could not take the UDP socket (${(err as Error).message}): this needs Node on Linux`,
          { cause: err },
        );
  }
  return socket;
}
