// Test lab: pairs of network namespaces joined by a veth pair, with addresses that route nowhere
// outside them (10.213.x.x, fd00:213::/64). Every name carries a random tag so that parallel runs
// never collide, and delete() removes all of it even after a failed setup.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readlinkSync } from "node:fs";
import { Netns, runInNetns } from "./netns.js";

/** Set on machines that lack root: the namespace tests are then not run (and say so). */
export const NO_PRIVILEGE_ENV = "AMBIENTKIT_INPOD_NO_NETNS_PRIVILEGE";

/** True when the privileged tests should run; throws when they should but cannot. */
export function privileged(): boolean {
  if (process.env[NO_PRIVILEGE_ENV] === "1") return false;
  if (process.platform !== "linux") throw new Error("@ambientkit/inpod tests need Linux");
  if (process.getuid?.() !== 0) {
    throw new Error(
      `needs root (CI runs as root): network namespaces, veth and iptables; set ${NO_PRIVILEGE_ENV}=1 only on a machine that lacks the privilege`,
    );
  }
  return true;
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 10_000,
  });
}

export interface NetnsPair {
  /** Namespace names (`ip netns`), paths under /run/netns. */
  readonly a: string;
  readonly b: string;
  readonly pathA: string;
  readonly pathB: string;
  readonly ipA: "10.213.0.1";
  readonly ipB: "10.213.0.2";
  readonly ip6A: "fd00:213::1";
  readonly ip6B: "fd00:213::2";
  /** In namespace `ns`, run `cmd args…` (ip netns exec). */
  exec(ns: string, cmd: string, args: string[]): string;
  delete(): void;
}

/** Creates namespaces A and B joined by a veth pair (A = .1, B = .2), loopback up in both. */
export function createNetnsPair(): NetnsPair {
  const tag = randomBytes(3).toString("hex");
  const a = `ak-inpod-${tag}-a`;
  const b = `ak-inpod-${tag}-b`;
  const va = `akv${tag}a`;
  const vb = `akv${tag}b`;
  const pair: NetnsPair = {
    a,
    b,
    pathA: `/run/netns/${a}`,
    pathB: `/run/netns/${b}`,
    ipA: "10.213.0.1",
    ipB: "10.213.0.2",
    ip6A: "fd00:213::1",
    ip6B: "fd00:213::2",
    exec: (ns, cmd, args) => run("ip", ["netns", "exec", ns, cmd, ...args]),
    delete: () => {
      for (const ns of [a, b]) {
        try {
          run("ip", ["netns", "delete", ns]);
        } catch {
          // not created: nothing to delete (the veth goes with its namespace)
        }
      }
    },
  };
  try {
    run("ip", ["netns", "add", a]);
    run("ip", ["netns", "add", b]);
    run("ip", ["-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b]);
    for (const [ns, dev, ip, ip6] of [
      [a, va, pair.ipA, pair.ip6A],
      [b, vb, pair.ipB, pair.ip6B],
    ] as const) {
      run("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
      // nodad: usable at once, no duplicate-address-detection wait
      run("ip", ["-n", ns, "addr", "add", `${ip6}/64`, "dev", dev, "nodad"]);
      run("ip", ["-n", ns, "link", "set", dev, "up"]);
      run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  } catch (err) {
    pair.delete();
    throw err;
  }
  return pair;
}

/**
 * Opens what stays open for the process by design (koffi, libc, and the main thread's own
 * namespace that runInNetns keeps), so that an fd count taken after it sees only leaks.
 */
export function openLifetimeFds(): void {
  const own = Netns.open("/proc/self/ns/net");
  try {
    runInNetns(own.fd, () => undefined);
  } finally {
    own.close();
  }
}

/** Open fds of this process. */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** The network namespace of the calling thread, as nsfs names it (`net:[inode]`). */
export function threadNetns(): string {
  return readlinkSync("/proc/thread-self/ns/net");
}

/** Bounded wait for a condition that settles asynchronously (fd counts after close). */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}
