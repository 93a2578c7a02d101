// The only module that touches native code: libc through koffi (ADR 0009). Everything here is
// synchronous and non-blocking (sockets are created O_NONBLOCK); nothing waits on the network.
import { createRequire } from "node:module";
import { endianness } from "node:os";
import { getSystemErrorName } from "node:util";
import { InpodError } from "./errors.js";

/** Linux constants (asm-generic values, as on x86_64 and arm64). */
export const linux = {
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_SEQPACKET: 5,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_MARK: 36,
  SOL_IP: 0,
  IP_TRANSPARENT: 19,
  SO_ORIGINAL_DST: 80,
  SOL_IPV6: 41,
  IPV6_V6ONLY: 26,
  IPV6_TRANSPARENT: 75,
  IP6T_SO_ORIGINAL_DST: 80,
  CLONE_NEWNET: 0x40000000,
  MSG_CTRUNC: 0x8,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  POLLHUP: 0x10,
  POLLRDHUP: 0x2000,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
  SCM_RIGHTS: 1,
  SHUT_RDWR: 2,
  /** _IO(NSIO = 0xb7, 3): which kind of namespace an nsfs fd is (Linux 4.11+). */
  NS_GET_NSTYPE: 0xb703,
} as const;

type Fn<A extends unknown[], R> = (...args: A) => R;

/** The libc functions this package calls, typed as koffi passes them. */
export interface Libc {
  setns: Fn<[fd: number, nstype: number], number>;
  socket: Fn<[domain: number, type: number, protocol: number], number>;
  setsockopt: Fn<[fd: number, level: number, name: number, value: Buffer, len: number], number>;
  getsockopt: Fn<[fd: number, level: number, name: number, value: Buffer, len: number[]], number>;
  getsockname: Fn<[fd: number, addr: Buffer, len: number[]], number>;
  bind: Fn<[fd: number, addr: Buffer, len: number], number>;
  listen: Fn<[fd: number, backlog: number], number>;
  connect: Fn<[fd: number, addr: Buffer, len: number], number>;
  send: Fn<[fd: number, data: Buffer, len: number, flags: number], number>;
  recvmsg: Fn<[fd: number, msg: MsgHdr, flags: number], number>;
  shutdown: Fn<[fd: number, how: number], number>;
  close: Fn<[fd: number], number>;
  /** ioctl(fd, request) with no argument (NS_GET_NSTYPE). */
  ioctl: Fn<[fd: number, request: number], number>;
  errno(): number;
  /** poll(2) once, without waiting: the revents of `fd` for `events` (0 when none). */
  pollNow(fd: number, events: number): number;
  /** uv_poll on Node's own loop: `readable` callbacks run on the main thread. */
  poll(fd: number, onReadable: () => void): PollHandle;
}

/** struct msghdr as koffi marshals it; `flags` and `controllen` come back filled in. */
export interface MsgHdr {
  name: null;
  namelen: number;
  iov: { base: Buffer; len: number }[];
  iovlen: number;
  control: Buffer;
  controllen: number;
  flags: number;
}

export interface PollHandle {
  close(): void;
  unref(): void;
  ref(): void;
}

interface KoffiLike {
  load(path: string): { func(decl: string): unknown };
  struct(name: string, def: Record<string, string>): unknown;
  pointer(type: unknown): unknown;
  errno(): number;
  node: {
    poll(
      fd: number,
      opts: { readable: boolean; disconnect: boolean },
      cb: (ev: { readable: boolean; disconnect: boolean }) => void,
    ): PollHandle;
  };
}

let cached: Libc | undefined;

/** libc, loaded on first use so that importing the package never fails by itself. */
export function libc(): Libc {
  if (cached) return cached;
  if (process.platform !== "linux") {
    throw new InpodError(
      "ERR_INPOD_UNSUPPORTED",
      `@ambientkit/inpod needs Linux (network namespaces, netfilter); this is ${process.platform}`,
    );
  }
  let koffi: KoffiLike;
  let lib: { func(decl: string): unknown };
  try {
    koffi = createRequire(import.meta.url)("koffi") as KoffiLike;
    lib = koffi.load("libc.so.6");
  } catch (cause) {
    throw new InpodError(
      "ERR_INPOD_UNSUPPORTED",
      "cannot load koffi or libc.so.6: reinstall dependencies (`npm ci`) so that koffi's prebuilt " +
        "binary for this platform (@koromix/koffi-*) is present; musl libc is not supported yet",
      { cause },
    );
  }
  koffi.struct("ambientkit_iovec", { base: "void *", len: "size_t" });
  koffi.struct("ambientkit_msghdr", {
    name: "void *",
    namelen: "uint32_t",
    iov: "ambientkit_iovec *",
    iovlen: "size_t",
    control: "void *",
    controllen: "size_t",
    flags: "int",
  });
  const f = <T>(decl: string): T => lib.func(decl) as T;
  const sysPoll = f<Fn<[fds: Buffer, nfds: number, timeout: number], number>>(
    "int poll(_Inout_ void *fds, unsigned long nfds, int timeout)",
  );
  cached = {
    setns: f("int setns(int fd, int nstype)"),
    socket: f("int socket(int domain, int type, int protocol)"),
    setsockopt: f("int setsockopt(int fd, int level, int name, const void *value, uint32_t len)"),
    getsockopt: f(
      "int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)",
    ),
    getsockname: f("int getsockname(int fd, _Out_ void *addr, _Inout_ uint32_t *len)"),
    bind: f("int bind(int fd, const void *addr, uint32_t len)"),
    listen: f("int listen(int fd, int backlog)"),
    connect: f("int connect(int fd, const void *addr, uint32_t len)"),
    send: f("long send(int fd, const void *data, size_t len, int flags)"),
    recvmsg: f("long recvmsg(int fd, _Inout_ ambientkit_msghdr *msg, int flags)"),
    shutdown: f("int shutdown(int fd, int how)"),
    close: f("int close(int fd)"),
    ioctl: f("int ioctl(int fd, unsigned long request, ...)"),
    errno: () => koffi.errno(),
    pollNow: (fd, events) => {
      // struct pollfd { int fd; short events; short revents; }, in host byte order
      const pfd = Buffer.alloc(8);
      if (le) {
        pfd.writeInt32LE(fd, 0);
        pfd.writeUInt16LE(events, 4);
      } else {
        pfd.writeInt32BE(fd, 0);
        pfd.writeUInt16BE(events, 4);
      }
      if (sysPoll(pfd, 1, 0) !== 1) return 0;
      return le ? pfd.readUInt16LE(6) : pfd.readUInt16BE(6);
    },
    poll: (fd, onReadable) =>
      // disconnect too: a peer that hangs up must wake us so that recvmsg sees the EOF.
      koffi.node.poll(fd, { readable: true, disconnect: true }, () => onReadable()),
  };
  return cached;
}

/** "EADDRINUSE" for 98; the errno name operators search for. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** Closes a raw fd we own, ignoring EBADF-style failures (there is nothing left to do). */
export function closeFd(fd: number): void {
  libc().close(fd);
}

const le = endianness() === "LE";

/** sa_family is in host byte order, the port and address in network order. */
function writeFamily(b: Buffer, family: number): void {
  if (le) b.writeUInt16LE(family, 0);
  else b.writeUInt16BE(family, 0);
}
function readFamily(b: Buffer): number {
  return le ? b.readUInt16LE(0) : b.readUInt16BE(0);
}

/** A socket address as this package reports it. */
export interface SocketAddress {
  readonly address: string;
  readonly port: number;
  readonly family: "IPv4" | "IPv6";
}

/** Encodes sockaddr_in / sockaddr_in6 for an IP literal; returns undefined for anything else. */
export function encodeSockaddr(address: string, port: number): Buffer | undefined {
  const v4 = parseIPv4(address);
  if (v4) {
    const b = Buffer.alloc(16);
    writeFamily(b, linux.AF_INET);
    b.writeUInt16BE(port, 2);
    v4.copy(b, 4);
    return b;
  }
  const v6 = parseIPv6(address);
  if (v6) {
    const b = Buffer.alloc(28);
    writeFamily(b, linux.AF_INET6);
    b.writeUInt16BE(port, 2);
    v6.copy(b, 8);
    return b;
  }
  return undefined;
}

/** Decodes a sockaddr_in / sockaddr_in6 filled in by the kernel. */
export function decodeSockaddr(b: Buffer): SocketAddress | undefined {
  const family = readFamily(b);
  const port = b.readUInt16BE(2);
  if (family === linux.AF_INET)
    return { address: [...b.subarray(4, 8)].join("."), port, family: "IPv4" };
  if (family === linux.AF_INET6)
    return { address: formatIPv6(b.subarray(8, 24)), port, family: "IPv6" };
  return undefined;
}

function parseIPv4(s: string): Buffer | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (const [i, p] of parts.entries()) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIPv6(s: string): Buffer | undefined {
  if (s.includes("%")) return undefined; // zone ids would need a scope id; no use for them here
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (const [i, g] of items.entries()) {
      if (i === items.length - 1 && g.includes(".")) {
        const v4 = parseIPv4(g);
        if (!v4) return undefined;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(Number.parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0] ?? "");
  const tail = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  return out;
}

function formatIPv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // WHATWG URL serialisation is RFC 5952 (longest zero run compressed, lowercase).
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}
