import net from "node:net";
import { InpodError } from "./errors.js";
import {
  decodeSockaddr,
  encodeSockaddr,
  errnoName,
  libc,
  linux,
  type SocketAddress,
} from "./native.js";
import { type NetnsRef, runInNetns, withNetnsRef } from "./netns.js";

export type { SocketAddress } from "./native.js";

/** ztunnel's DEFAULT_INPOD_MARK: its own sockets carry it so the pod's iptables rules skip them. */
export const DEFAULT_INPOD_MARK = 0x539;

/** Options shared by the sockets this package creates inside a namespace. */
export interface NetnsSocketOptions {
  /** SO_MARK for the socket (ztunnel uses DEFAULT_INPOD_MARK = 1337); needs CAP_NET_ADMIN. */
  readonly mark?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT: bind or accept foreign addresses; needs CAP_NET_ADMIN. */
  readonly transparent?: boolean;
}

export interface ListenInNetnsOptions extends NetnsSocketOptions {
  /** An IP literal; default `0.0.0.0`. Use `::` for both families. */
  readonly host?: string;
  /**
   * For an IPv6 `host`: IPv6 only (IPV6_V6ONLY), so that a `0.0.0.0` listener on the same port
   * takes IPv4 and its peers are not seen as `::ffff:` addresses. Default false (both families).
   */
  readonly v6Only?: boolean;
  readonly port: number;
  /** listen(2) backlog; default 511, as node:net. */
  readonly backlog?: number;
  /** The server to listen with, so that its `connection` handler is in place first. */
  readonly server?: net.Server;
}

export interface ConnectInNetnsOptions extends NetnsSocketOptions {
  /** An IP literal: there is no DNS inside the namespace from here. */
  readonly host: string;
  readonly port: number;
  /** Bind to this source address first (with `transparent`, any address: source spoofing). */
  readonly localAddress?: string;
  readonly localPort?: number;
  /** Give up after this long; default 10 000 ms, ztunnel's CONNECTION_TIMEOUT. */
  readonly timeoutMs?: number;
  /**
   * Keep the writable side open after the peer's FIN (as `net.connect`'s option): a proxy must,
   * to forward a half-close. Default false.
   */
  readonly allowHalfOpen?: boolean;
  /** TCP_NODELAY, as `net.connect`'s `noDelay` (a proxy wants it). Default false. */
  readonly noDelay?: boolean;
}

type Family = typeof linux.AF_INET | typeof linux.AF_INET6;

function sockaddrOrThrow(host: string, port: number, what: string): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InpodError("ERR_INPOD_SOCKET", `${what} port ${port} is not a TCP port (0-65535)`);
  }
  const sa = encodeSockaddr(host, port);
  if (!sa) {
    throw new InpodError(
      "ERR_INPOD_SOCKET",
      `${what} ${JSON.stringify(host)} is not an IP literal: resolve names before entering the namespace`,
    );
  }
  return sa;
}

function familyOf(sa: Buffer): Family {
  return sa.length === 16 ? linux.AF_INET : linux.AF_INET6;
}

function socketError(call: string, errno: number, hint: string): InpodError {
  return new InpodError("ERR_INPOD_SOCKET", `${call} failed with ${errnoName(errno)}: ${hint}`);
}

/** setsockopt takes an int in host byte order. */
function intOpt(value: number): Buffer {
  return Buffer.from(new Uint32Array([value >>> 0]).buffer);
}

/** Applies the options shared by listen and connect to a fresh socket (any failure throws). */
function applyOptions(fd: number, family: Family, o: NetnsSocketOptions): void {
  if (o.mark !== undefined) setMark(fd, o.mark);
  if (o.transparent) setTransparent(fd, true, family);
}

/** socket() inside the namespace; the fd is non-blocking and close-on-exec. */
function socketIn(netnsFd: number, family: Family): number {
  const c = libc();
  const fd = runInNetns(netnsFd, () =>
    c.socket(family, linux.SOCK_STREAM | linux.SOCK_NONBLOCK | linux.SOCK_CLOEXEC, 0),
  );
  if (fd < 0) throw socketError("socket()", c.errno(), "the process is out of file descriptors?");
  return fd;
}

/**
 * Listens on a TCP socket created inside a network namespace and returns the listening
 * net.Server. Accepted connections belong to that namespace too; their `localAddress` is the
 * pod-side address (or, after an iptables REDIRECT, the address the listener is bound to: see
 * {@link originalDestination}).
 */
export async function listenInNetns(
  netns: NetnsRef,
  options: ListenInNetnsOptions,
): Promise<net.Server> {
  const sa = sockaddrOrThrow(options.host ?? "0.0.0.0", options.port, "listen address");
  const family = familyOf(sa);
  const c = libc();
  const fd = withNetnsRef(netns, (nsFd) => socketIn(nsFd, family));
  try {
    setIntOpt(fd, linux.SOL_SOCKET, linux.SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (family === linux.AF_INET6)
      setIntOpt(fd, linux.SOL_IPV6, linux.IPV6_V6ONLY, options.v6Only ? 1 : 0, "IPV6_V6ONLY");
    applyOptions(fd, family, options);
    if (c.bind(fd, sa, sa.length) !== 0) {
      throw socketError(
        `bind(${options.host ?? "0.0.0.0"}:${options.port})`,
        c.errno(),
        "is the port taken in that namespace, or the address not on any of its interfaces (set transparent for foreign addresses)?",
      );
    }
    if (c.listen(fd, options.backlog ?? 511) !== 0)
      throw socketError("listen()", c.errno(), "see listen(2)");
  } catch (err) {
    c.close(fd);
    throw err;
  }
  const server = options.server ?? net.createServer();
  // From here on libuv owns the fd and closes it with the server, even when listen fails.
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen({ fd }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  return server;
}

/**
 * Connects a TCP socket created inside a network namespace and resolves once connected. The
 * socket is a plain net.Socket: close it as usual.
 */
export async function connectInNetns(
  netns: NetnsRef,
  options: ConnectInNetnsOptions,
): Promise<net.Socket> {
  const remote = sockaddrOrThrow(options.host, options.port, "destination");
  const family = familyOf(remote);
  const local =
    options.localAddress !== undefined || options.localPort !== undefined
      ? sockaddrOrThrow(
          options.localAddress ?? (family === linux.AF_INET ? "0.0.0.0" : "::"),
          options.localPort ?? 0,
          "local address",
        )
      : undefined;
  if (local && familyOf(local) !== family) {
    throw new InpodError(
      "ERR_INPOD_SOCKET",
      `local address ${options.localAddress} and destination ${options.host} are of different IP families`,
    );
  }
  const c = libc();
  const fd = withNetnsRef(netns, (nsFd) => socketIn(nsFd, family));
  let socket: net.Socket;
  try {
    applyOptions(fd, family, options);
    if (local && c.bind(fd, local, local.length) !== 0) {
      throw socketError(
        `bind(${options.localAddress ?? ""}:${options.localPort ?? 0})`,
        c.errno(),
        "is the source address on an interface of the namespace (or transparent set)?",
      );
    }
    // node:net connects an fd-backed handle in place (no new socket), so the namespace,
    // mark and source binding survive.
    socket = new net.Socket({
      fd,
      readable: true,
      writable: true,
      allowHalfOpen: options.allowHalfOpen ?? false,
    });
  } catch (err) {
    c.close(fd);
    throw err;
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  return await new Promise<net.Socket>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        fail(
          new InpodError(
            "ERR_INPOD_SOCKET",
            `connect to ${options.host}:${options.port} timed out after ${timeoutMs} ms: is anything listening there, and is it routable from the namespace?`,
          ),
        ),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        err instanceof InpodError
          ? err
          : new InpodError(
              "ERR_INPOD_SOCKET",
              `connect to ${options.host}:${options.port} failed (${(err as NodeJS.ErrnoException).code ?? err.message}): is anything listening there, and is it routable from the namespace?`,
              { cause: err },
            ),
      );
    };
    socket.once("error", fail);
    socket.connect({ host: options.host, port: options.port }, () => {
      clearTimeout(timer);
      if (options.noDelay) socket.setNoDelay(true);
      socket.off("error", fail);
      resolve(socket);
    });
  });
}

/** Anything that has a socket fd: a raw fd, a net.Socket or a listening net.Server. */
export type SocketRef = number | net.Socket | net.Server;

/** The fd of a net.Socket or net.Server (libuv's handle keeps it; node:net does not expose it). */
export function socketFd(ref: SocketRef): number {
  if (typeof ref === "number") return ref;
  const fd = (ref as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new InpodError(
      "ERR_INPOD_SOCKET",
      "this socket has no file descriptor (not connected or listening yet, already closed, or not a TCP socket)",
    );
  }
  return fd;
}

function setIntOpt(fd: number, level: number, name: number, value: number, what: string): void {
  const c = libc();
  if (c.setsockopt(fd, level, name, intOpt(value), 4) !== 0) {
    const e = c.errno();
    throw socketError(
      `setsockopt(${what})`,
      e,
      e === 1 ? "it needs CAP_NET_ADMIN (run as root or grant the capability)" : "see socket(7)",
    );
  }
}

function getIntOpt(fd: number, level: number, name: number, what: string): number {
  const c = libc();
  const b = Buffer.alloc(4);
  const len = [4];
  if (c.getsockopt(fd, level, name, b, len) !== 0)
    throw socketError(`getsockopt(${what})`, c.errno(), "is this a TCP socket?");
  return new Uint32Array(b.buffer, b.byteOffset, 1)[0] ?? 0;
}

/** Sets SO_MARK (what ztunnel's mark 1337 rides on); needs CAP_NET_ADMIN. */
export function setMark(ref: SocketRef, mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) {
    throw new InpodError("ERR_INPOD_SOCKET", `mark ${mark} is not a 32-bit unsigned integer`);
  }
  setIntOpt(socketFd(ref), linux.SOL_SOCKET, linux.SO_MARK, mark, "SO_MARK");
}

/** Reads SO_MARK back. */
export function getMark(ref: SocketRef): number {
  return getIntOpt(socketFd(ref), linux.SOL_SOCKET, linux.SO_MARK, "SO_MARK");
}

function familyOfFd(fd: number): Family {
  return decodeSockaddr(localSockaddr(fd))?.family === "IPv6" ? linux.AF_INET6 : linux.AF_INET;
}

function localSockaddr(fd: number): Buffer {
  const c = libc();
  const b = Buffer.alloc(128);
  const len = [128];
  if (c.getsockname(fd, b, len) !== 0)
    throw socketError("getsockname()", c.errno(), "is this an open socket?");
  return b;
}

/** Sets IP_TRANSPARENT (IPv4) or IPV6_TRANSPARENT (IPv6, also set on dual-stack sockets). */
export function setTransparent(ref: SocketRef, on: boolean, family?: Family): void {
  const fd = socketFd(ref);
  const fam = family ?? familyOfFd(fd);
  if (fam === linux.AF_INET6)
    setIntOpt(fd, linux.SOL_IPV6, linux.IPV6_TRANSPARENT, on ? 1 : 0, "IPV6_TRANSPARENT");
  // A dual-stack socket carries IPv4 traffic too, which reads the IPv4 option.
  setIntOpt(fd, linux.SOL_IP, linux.IP_TRANSPARENT, on ? 1 : 0, "IP_TRANSPARENT");
}

/** Reads IP_TRANSPARENT back. */
export function getTransparent(ref: SocketRef): boolean {
  return getIntOpt(socketFd(ref), linux.SOL_IP, linux.IP_TRANSPARENT, "IP_TRANSPARENT") !== 0;
}

/**
 * The destination a connection had before netfilter redirected it (iptables REDIRECT / DNAT):
 * SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6. Throws ERR_INPOD_ORIGINAL_DST for a
 * connection that was not redirected.
 */
export function originalDestination(ref: SocketRef): SocketAddress {
  const fd = socketFd(ref);
  // an accepted net.Socket knows its local address already (one FFI call less per connection)
  const known = ref instanceof net.Socket && ref.localFamily !== undefined;
  const local = known
    ? { family: ref.localFamily, address: ref.localAddress ?? "" }
    : decodeSockaddr(localSockaddr(fd));
  const v6 = local?.family === "IPv6" && !local.address.startsWith("::ffff:");
  const c = libc();
  const b = Buffer.alloc(v6 ? 28 : 16);
  const len = [b.length];
  const rc = v6
    ? c.getsockopt(fd, linux.SOL_IPV6, linux.IP6T_SO_ORIGINAL_DST, b, len)
    : c.getsockopt(fd, linux.SOL_IP, linux.SO_ORIGINAL_DST, b, len);
  const dst = rc === 0 ? decodeSockaddr(b) : undefined;
  if (!dst) {
    const e = rc === 0 ? "no address" : errnoName(c.errno());
    throw new InpodError(
      "ERR_INPOD_ORIGINAL_DST",
      `cannot read the original destination (${v6 ? "IP6T_SO_ORIGINAL_DST" : "SO_ORIGINAL_DST"}: ${e}): the connection was not redirected by netfilter (check the pod's iptables REDIRECT/TPROXY rules and that nf_conntrack is loaded)`,
    );
  }
  return dst;
}
