import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, writeSync } from "node:fs";
import { isMainThread } from "node:worker_threads";
import { InpodError } from "./errors.js";
import { errnoName, libc, linux } from "./native.js";

/** Identity of a network namespace: two fds name the same one when dev and inode agree. */
export interface NetnsId {
  readonly dev: number;
  readonly ino: number;
}

/**
 * An open network namespace fd (from `/run/netns/NAME`, `/proc/PID/ns/net`, or received from
 * istio-cni over ZDS). Holding the fd keeps the namespace alive; `close()` releases it.
 */
export class Netns {
  readonly fd: number;
  readonly id: NetnsId;
  #owned: boolean;
  #closed = false;

  private constructor(fd: number, id: NetnsId, owned: boolean) {
    this.fd = fd;
    this.id = id;
    this.#owned = owned;
  }

  /** Opens a namespace file; the Netns owns the fd. */
  static open(path: string): Netns {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (cause) {
      throw new InpodError(
        "ERR_INPOD_NETNS",
        `cannot open network namespace ${path}: check the path (\`ip netns list\`, /proc/PID/ns/net) and that this process may read it`,
        { cause },
      );
    }
    try {
      return new Netns(fd, netnsId(fd, path), true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * Wraps an fd that must already be a network namespace. With `own: true` the Netns closes it
   * (also when validation fails here); otherwise the caller keeps it.
   */
  static fromFd(fd: number, options: { own: boolean }): Netns {
    try {
      return new Netns(fd, netnsId(fd, `fd ${fd}`), options.own);
    } catch (err) {
      if (options.own) closeQuietly(fd);
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** True when both name the same namespace (same nsfs dev and inode). */
  sameAs(other: Netns): boolean {
    return this.id.dev === other.id.dev && this.id.ino === other.id.ino;
  }

  /**
   * Throws ERR_INPOD_NETNS unless the fd still names this namespace (someone closed it behind
   * this Netns, and the number may name another file now: close() then leaves that number alone).
   */
  check(): void {
    if (this.#closed) throw new InpodError("ERR_INPOD_NETNS", "the Netns was closed");
    let id: NetnsId;
    try {
      id = netnsId(this.fd, `fd ${this.fd}`);
    } catch (err) {
      this.#owned = false; // the number is not ours any more: close() must not close it
      throw err;
    }
    if (id.dev !== this.id.dev || id.ino !== this.id.ino) {
      this.#owned = false;
      throw new InpodError(
        "ERR_INPOD_NETNS",
        `fd ${this.fd} names another network namespace (net:[${id.ino}]) than it did (net:[${this.id.ino}]): it was closed and reused behind this Netns`,
      );
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) closeQuietly(this.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing is leaked
  }
}

/** Validates that `fd` is a network namespace (ioctl NS_GET_NSTYPE) and returns its id. */
function netnsId(fd: number, what: string): NetnsId {
  let st: ReturnType<typeof fstatSync>;
  try {
    st = fstatSync(fd);
  } catch (cause) {
    throw new InpodError("ERR_INPOD_NETNS", `${what} is not an open file descriptor`, { cause });
  }
  const c = libc();
  const type = c.ioctl(fd, linux.NS_GET_NSTYPE);
  if (type !== linux.CLONE_NEWNET) {
    let it = type < 0 ? errnoName(c.errno()) : `namespace type 0x${type.toString(16)}`;
    try {
      it = `${readlinkSync(`/proc/self/fd/${fd}`)}, ${it}`;
    } catch {
      // the errno alone says enough
    }
    throw new InpodError(
      "ERR_INPOD_NETNS",
      `${what} is not a network namespace (${it}): pass a netns fd or a path such as /run/netns/NAME or /proc/PID/ns/net`,
    );
  }
  return { dev: st.dev, ino: st.ino };
}

/** What listenInNetns and friends accept: a path, a raw netns fd (borrowed), or a Netns. */
export type NetnsRef = string | number | Netns;

/** Opens `ref` for the duration of `fn` (paths only; fds and Netns are borrowed). */
export function withNetnsRef<T>(ref: NetnsRef, fn: (fd: number) => T): T {
  if (typeof ref === "string") {
    const ns = Netns.open(ref);
    try {
      return fn(ns.fd);
    } finally {
      ns.close();
    }
  }
  if (typeof ref === "number") {
    netnsId(ref, `fd ${ref}`);
    return fn(ref);
  }
  if (ref.closed) throw new InpodError("ERR_INPOD_NETNS", "the Netns was closed before use");
  return fn(ref.fd);
}

/**
 * Runs `fn` with the calling thread inside the network namespace `netnsFd`, then moves the thread
 * back. setns(2) changes only the calling thread, and `fn` is synchronous, so nothing else runs on
 * this thread meanwhile; sockets created in `fn` stay in the namespace for their whole life.
 */
export function runInNetns<T>(netnsFd: number, fn: () => T): T {
  const c = libc();
  // The thread's own namespace: the main thread's is opened once and kept (an in-pod ztunnel
  // creates a socket here per connection); a worker re-opens its own each time, so that nothing
  // is left open when it exits.
  if (isMainThread && mainHome === undefined) mainHome = openSync("/proc/thread-self/ns/net", "r");
  const home = isMainThread ? (mainHome as number) : openSync("/proc/thread-self/ns/net", "r");
  try {
    if (c.setns(netnsFd, linux.CLONE_NEWNET) !== 0) {
      const e = errnoName(c.errno());
      throw new InpodError(
        "ERR_INPOD_NETNS",
        `setns(fd ${netnsFd}, CLONE_NEWNET) failed with ${e}: ${e === "EPERM" ? "the process needs CAP_SYS_ADMIN (run as root or grant the capability)" : "the fd is not a network namespace"}`,
      );
    }
    let result: T;
    try {
      result = fn();
    } finally {
      if (c.setns(home, linux.CLONE_NEWNET) !== 0) {
        // Staying in the pod's namespace would silently put every later socket of this thread
        // there; ztunnel panics in the same place, so do we.
        writeSync(
          2,
          `@ambientkit/inpod: cannot return to the original network namespace (${errnoName(c.errno())}); aborting\n`,
        );
        process.abort();
      }
    }
    if (typeof (result as { then?: unknown } | null)?.then === "function") {
      // Only the part before the first await ran inside; the rest would run in the wrong place.
      throw new InpodError(
        "ERR_INPOD_NETNS",
        "runInNetns needs a synchronous function: create the socket inside, await outside",
      );
    }
    return result;
  } finally {
    if (home !== mainHome) closeSync(home);
  }
}

/** The main thread's own network namespace (see runInNetns), held for the process's life. */
let mainHome: number | undefined;

/**
 * The names of the network interfaces in a namespace, `lo` included: /proc/thread-self/net/dev
 * read with this thread inside it (/proc/self/net would show the main thread's namespace, not the
 * calling thread's). A pod whose network was torn down (CNI DEL deleted its veth) has only `lo`.
 */
export function netnsInterfaces(ref: NetnsRef): string[] {
  const text = withNetnsRef(ref, (fd) =>
    runInNetns(fd, () => readFileSync("/proc/thread-self/net/dev", "latin1")),
  );
  // two header lines, then "  NAME: counters…" per interface
  const names: string[] = [];
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon > 0) names.push(line.slice(0, colon).trim());
  }
  return names;
}
