// fd and thread-namespace probes for this package's own leak checks; the pods themselves come from
// ./testing.ts (the public @ambientkit/inpod/testing), as a user's tests get them.
import { readdirSync, readlinkSync } from "node:fs";
import { Netns, runInNetns } from "./netns.js";

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
