// The ztunnel side of ZDS: a client of istio-cni's node agent over a UNIX SOCK_SEQPACKET socket.
// Facts from ztunnel (src/inpod/*): hello first, one Ack per request, the netns fd as SCM_RIGHTS
// on AddWorkload only, a 1024-byte read buffer, reconcile on SnapshotSent, reconnect 10 ms → 15 s.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { InpodError } from "./errors.js";
import {
  Version,
  type WorkloadRequest,
  WorkloadRequestSchema,
  WorkloadResponseSchema,
  ZdsHelloSchema,
} from "./gen/zds_pb.js";
import { errnoName, libc, linux, type PollHandle } from "./native.js";
import { Netns, type NetnsId, netnsInterfaces } from "./netns.js";

/** ztunnel's INPOD_UDS default. */
export const DEFAULT_INPOD_UDS = "/var/run/ztunnel/ztunnel.sock";
/** The largest request accepted, as ztunnel's read buffer; larger ones get an error Ack. */
export const MAX_ZDS_MESSAGE_BYTES = 1024;
/** How often each workload's network namespace is checked for a torn-down network, by default. */
export const DEFAULT_NETNS_CHECK_INTERVAL_MS = 15_000;
/** How many removed-because-gone uids are remembered, so that a later Del/Keep of one acks ok. */
const GONE_REMEMBERED = 1024;

/** Who a pod is (ZDS WorkloadInfo). */
export interface WorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** A pod this ztunnel proxies. The client owns `netns` and closes it once the workload is gone. */
export interface InpodWorkload {
  readonly uid: string;
  readonly info: WorkloadInfo;
  readonly netns: Netns;
}

/**
 * What the ztunnel does with workloads. A throw (or rejection) refuses the request: the node
 * agent gets the message in its Ack and the client's state does not change.
 */
export interface ZdsWorkloadHandler {
  /** Start proxying (listeners inside `workload.netns`). Called again for a uid whose netns changed. */
  addWorkload(workload: InpodWorkload): void | Promise<void>;
  /** Stop proxying; the netns is closed right after this returns. */
  removeWorkload(workload: InpodWorkload): void | Promise<void>;
}

/** Kinds of WorkloadRequest, plus "invalid" for a datagram that is not one. */
export type ZdsRequestKind = "add" | "keep" | "del" | "snapshot_sent" | "invalid";

export interface ZdsClientOptions {
  /** The node agent's socket; default INPOD_UDS or DEFAULT_INPOD_UDS. */
  readonly path?: string;
  readonly handler: ZdsWorkloadHandler;
  /** Reconnect delay: starts at `initialMs` (10), doubles to `maxMs` (15 000), reset on connect. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /**
   * Every this many ms each workload's network namespace is checked, and a pod whose network is
   * gone (its netns has had an interface but now has only `lo`: CNI DEL deleted the veth; or the
   * fd no longer names the namespace) is removed as a DelWorkload would remove it. Our fd keeps
   * the namespace alive, so it cannot vanish from under us otherwise. Default 15 000; 0 disables.
   */
  readonly netnsCheckIntervalMs?: number;
  /** Observability hooks (logs, metrics, tests); they must not throw. */
  readonly on?: {
    readonly connected?: () => void;
    /** `retryInMs`: when the next attempt is made (the backoff's delay); undefined once closed. */
    readonly disconnected?: (error: InpodError, retryInMs: number | undefined) => void;
    readonly ack?: (kind: ZdsRequestKind, uid: string, error: string) => void;
    /** A pending workload was started again: `error` is "" when it now runs, else why not (yet). */
    readonly retried?: (workload: InpodWorkload, error: string) => void;
    /** A workload was removed because its network is gone (`reason` says how it was seen). */
    readonly netnsGone?: (workload: InpodWorkload, reason: string) => void;
  };
}

interface Datagram {
  readonly data: Buffer;
  readonly fds: number[];
  readonly truncated: boolean;
}

interface Connection {
  readonly fd: number;
  readonly poll: PollHandle;
  open: boolean;
}

/** Work done one item at a time: a request from the node agent, or a netns check. */
type Task =
  | { readonly kind: "request"; readonly conn: Connection; readonly dgram: Datagram }
  | { readonly kind: "check"; readonly done: (removed: string[]) => void }
  | { readonly kind: "retry" };

function closedError(): InpodError {
  return new InpodError(
    "ERR_INPOD_CLOSED",
    "the ZdsClient was closed before the node agent sent a full snapshot",
  );
}

/** A refused request: its message becomes the Ack's error. */
function refused(message: string): InpodError {
  return new InpodError("ERR_INPOD_ZDS_PROTOCOL", message);
}

/**
 * Keeps the set of in-pod workloads in step with istio-cni's node agent. Start it with `start()`;
 * `ready()` resolves after the first complete snapshot; `close()` removes every workload.
 */
export class ZdsClient {
  readonly path: string;
  #handler: ZdsWorkloadHandler;
  #on: NonNullable<ZdsClientOptions["on"]>;
  #initialMs: number;
  #maxMs: number;
  #delayMs: number;
  #workloads = new Map<string, InpodWorkload>();
  /**
   * Workloads the handler failed to start, kept (with their netns) and retried with backoff, as
   * ztunnel's pending workloads: until they start, a Del removes them or a new connection drops them.
   */
  #pending = new Map<string, InpodWorkload>();
  #pendingDelayMs: number;
  #pendingTimer: NodeJS.Timeout | undefined;
  #retryQueued = false;
  /** uids named since this connection began (Add, Keep), for the reconcile on SnapshotSent. */
  #snapshotNames = new Set<string>();
  #snapshotReceived = false;
  #conn: Connection | undefined;
  #queue: Task[] = [];
  #checkMs: number;
  #checkTimer: NodeJS.Timeout | undefined;
  #checkQueued: Promise<string[]> | undefined;
  /** Workloads whose namespace has been seen with an interface besides lo. */
  #hadNetwork = new WeakSet<InpodWorkload>();
  /** uids removed because their network was gone, with that namespace (oldest first, bounded). */
  #gone = new Map<string, NetnsId>();
  #processing: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #started = false;
  #readyWaiters: { resolve: () => void; reject: (err: InpodError) => void }[] = [];
  #everReady = false;

  constructor(options: ZdsClientOptions) {
    this.path = options.path ?? process.env.INPOD_UDS ?? DEFAULT_INPOD_UDS;
    this.#handler = options.handler;
    this.#on = options.on ?? {};
    this.#initialMs = options.backoff?.initialMs ?? 10;
    this.#maxMs = options.backoff?.maxMs ?? 15_000;
    this.#delayMs = this.#initialMs;
    this.#pendingDelayMs = this.#initialMs;
    this.#checkMs = options.netnsCheckIntervalMs ?? DEFAULT_NETNS_CHECK_INTERVAL_MS;
    if (!Number.isFinite(this.#checkMs) || this.#checkMs < 0)
      throw new InpodError(
        "ERR_INPOD_ZDS_CONNECTION",
        `netnsCheckIntervalMs must be a number of ms ≥ 0 (0 disables the check), not ${this.#checkMs}`,
      );
    if (Buffer.byteLength(this.path) > 107) {
      throw new InpodError(
        "ERR_INPOD_ZDS_CONNECTION",
        `INPOD_UDS path is longer than a UNIX socket address allows (107 bytes): ${this.path}`,
      );
    }
  }

  /** Connects (and keeps reconnecting) to the node agent. */
  start(): this {
    if (this.#closed)
      throw new InpodError("ERR_INPOD_CLOSED", "this ZdsClient was closed; create a new one");
    if (!this.#started) {
      this.#started = true;
      this.#connect();
      if (this.#checkMs > 0) {
        // unref: a check alone must not keep the process alive
        this.#checkTimer = setInterval(() => void this.checkNetns(), this.#checkMs).unref();
      }
    }
    return this;
  }

  /** Workloads by uid, as the last applied requests left them. */
  get workloads(): ReadonlyMap<string, InpodWorkload> {
    return this.#workloads;
  }

  /**
   * Workloads whose start failed (the Ack said why) and that are retried with the same backoff as
   * the connection, by uid. Ready in ztunnel's sense means a snapshot received and none pending.
   */
  get pending(): ReadonlyMap<string, InpodWorkload> {
    return this.#pending;
  }

  /** True while connected to the node agent. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** True between the SnapshotSent of the current connection and its end. */
  get snapshotReceived(): boolean {
    return this.#snapshotReceived;
  }

  /** Resolves once a full snapshot has been applied (once per client); rejects on close() before. */
  ready(): Promise<void> {
    if (this.#everReady) return Promise.resolve();
    if (this.#closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /**
   * Checks every workload's network namespace now (after the requests already queued) and
   * removes each whose network is gone; resolves with their uids. The timer of
   * `netnsCheckIntervalMs` calls this; a check queued and not yet started is shared.
   */
  checkNetns(): Promise<string[]> {
    if (this.#closed) return Promise.resolve([]);
    if (this.#checkQueued !== undefined) return this.#checkQueued;
    const p = new Promise<string[]>((done) => this.#queue.push({ kind: "check", done }));
    this.#checkQueued = p;
    this.#pump();
    return p;
  }

  /** Stops reconnecting, closes the socket, removes every workload and closes its netns. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#pendingTimer);
    clearInterval(this.#checkTimer);
    this.#teardown();
    for (const t of this.#queue.splice(0)) if (t.kind === "check") t.done([]);
    for (const w of this.#readyWaiters.splice(0)) w.reject(closedError());
    await this.#processing;
    for (const w of [...this.#workloads.values()]) {
      try {
        await this.#handler.removeWorkload(w);
      } catch {
        // closing anyway: the netns must not outlive the client
      }
      w.netns.close();
    }
    this.#workloads.clear();
    this.#dropPending();
    this.#snapshotNames.clear();
    this.#gone.clear();
  }

  #connect(): void {
    if (this.#closed) return;
    const c = libc();
    const fd = c.socket(
      linux.AF_UNIX,
      linux.SOCK_SEQPACKET | linux.SOCK_NONBLOCK | linux.SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) {
      this.#retryLater(this.#connError("socket()", c.errno()));
      return;
    }
    const addr = Buffer.alloc(110); // sockaddr_un: family + 108-byte path
    addr.writeUInt16LE(linux.AF_UNIX, 0);
    addr.write(this.path, 2);
    const hello = Buffer.from(
      toBinary(ZdsHelloSchema, create(ZdsHelloSchema, { version: Version.V1 })),
    );
    // A UNIX connect never waits for the peer: it succeeds or fails (EAGAIN = backlog full).
    if (c.connect(fd, addr, 2 + Buffer.byteLength(this.path) + 1) !== 0) {
      const err = this.#connError(`connect(${this.path})`, c.errno());
      c.close(fd);
      this.#retryLater(err);
      return;
    }
    if (c.send(fd, hello, hello.length, linux.MSG_DONTWAIT | linux.MSG_NOSIGNAL) !== hello.length) {
      const err = this.#connError("sending ZdsHello", c.errno());
      c.close(fd);
      this.#retryLater(err);
      return;
    }
    let conn: Connection | undefined;
    let poll: PollHandle;
    try {
      poll = c.poll(fd, () => {
        if (conn) this.#readable(conn);
      });
    } catch (cause) {
      c.close(fd);
      this.#retryLater(
        new InpodError(
          "ERR_INPOD_ZDS_CONNECTION",
          `cannot watch the ZDS socket on the event loop: ${(cause as Error).message}`,
          { cause },
        ),
      );
      return;
    }
    conn = { fd, poll, open: true };
    this.#conn = conn;
    // A new connection starts a new snapshot; the workloads themselves stay until reconciled.
    this.#snapshotReceived = false;
    this.#snapshotNames.clear();
    this.#delayMs = this.#initialMs;
    this.#on.connected?.();
  }

  #connError(what: string, errno: number): InpodError {
    const e = errnoName(errno);
    return new InpodError(
      "ERR_INPOD_ZDS_CONNECTION",
      `${what} failed with ${e}: is the Istio CNI node agent running and serving ${this.path} (INPOD_UDS)?`,
    );
  }

  #retryLater(err: InpodError): void {
    if (this.#closed) {
      this.#on.disconnected?.(err, undefined);
      return;
    }
    const delay = this.#delayMs;
    this.#delayMs = Math.min(this.#maxMs, this.#delayMs * 2);
    this.#on.disconnected?.(err, delay);
    this.#retry = setTimeout(() => this.#connect(), delay);
  }

  /** Drains every datagram the kernel holds; called from the uv_poll callback. */
  #readable(conn: Connection): void {
    const c = libc();
    while (conn.open) {
      const data = Buffer.alloc(MAX_ZDS_MESSAGE_BYTES);
      // Room for several fds, so that a sender of too many is caught (and all of them closed).
      const control = Buffer.alloc(64);
      const msg = {
        name: null,
        namelen: 0,
        iov: [{ base: data, len: data.length }],
        iovlen: 1,
        control,
        controllen: control.length,
        flags: 0,
      };
      const n = c.recvmsg(conn.fd, msg, linux.MSG_DONTWAIT | linux.MSG_CMSG_CLOEXEC);
      if (n < 0) {
        const errno = c.errno();
        if (errnoName(errno) === "EAGAIN") break; // drained
        this.#lost(conn, this.#connError("recvmsg", errno));
        return;
      }
      const fds = scmRights(control, msg.controllen);
      // On SOCK_SEQPACKET an empty datagram and the peer's close both read as 0 bytes; only a
      // closed peer leaves the socket hung up. An empty datagram is a request like any other
      // (and refused as one), so one stray send(…, 0) never costs the node agent its connection.
      if (n === 0 && fds.length === 0 && hungUp(c, conn.fd)) {
        this.#lost(
          conn,
          new InpodError(
            "ERR_INPOD_ZDS_CONNECTION",
            `the node agent closed ${this.path}; reconnecting`,
          ),
        );
        return;
      }
      this.#queue.push({
        kind: "request",
        conn,
        dgram: {
          data: data.subarray(0, n),
          fds,
          truncated: (msg.flags & (linux.MSG_TRUNC | linux.MSG_CTRUNC)) !== 0,
        },
      });
    }
    this.#pump();
  }

  #lost(conn: Connection, err: InpodError): void {
    if (this.#conn !== conn) return;
    this.#teardown();
    this.#retryLater(err);
  }

  #teardown(): void {
    const conn = this.#conn;
    if (!conn) return;
    this.#conn = undefined;
    conn.open = false;
    conn.poll.close(); // before close(fd): libuv must stop watching it first
    libc().close(conn.fd);
    this.#snapshotReceived = false;
    this.#snapshotNames.clear();
    // As ztunnel: pending workloads die with the connection; the next snapshot sends them again.
    this.#dropPending();
    // Requests read but not yet handled die with the connection; their fds must not leak.
    // A queued netns check stays.
    const checks: Task[] = [];
    for (const t of this.#queue.splice(0)) {
      if (t.kind === "request") closeAll(t.dgram.fds);
      else if (t.kind === "check") checks.push(t);
    }
    this.#retryQueued = false;
    this.#queue.push(...checks);
  }

  /**
   * Handles queued work one item at a time: the node agent waits for each Ack anyway, and a
   * netns check must not interleave with an Add or Del of the same pod.
   */
  #pump(): void {
    if (this.#processing !== undefined) return;
    const next = this.#queue.shift();
    if (!next) return;
    if (next.kind === "retry") {
      this.#retryQueued = false;
      this.#processing = this.#retryPending().finally(() => {
        this.#processing = undefined;
        this.#pump();
      });
      return;
    }
    if (next.kind === "check") {
      this.#checkQueued = undefined; // from now on a new call needs a check of its own
      this.#processing = this.#sweep()
        .then(
          (removed) => next.done(removed),
          () => next.done([]),
        )
        .finally(() => {
          this.#processing = undefined;
          this.#pump();
        });
      return;
    }
    this.#processing = (async () => {
      const { conn, dgram } = next;
      let kind: ZdsRequestKind = "invalid";
      let uid = "";
      let error = "";
      try {
        const req = decode(dgram);
        kind = req.kind;
        uid = req.uid;
        await this.#apply(req, conn);
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
      }
      if (conn.open && this.#conn === conn) this.#ack(conn, kind, uid, error);
    })().finally(() => {
      this.#processing = undefined;
      this.#pump();
    });
  }

  #ack(conn: Connection, kind: ZdsRequestKind, uid: string, error: string): void {
    const c = libc();
    const bytes = Buffer.from(
      toBinary(
        WorkloadResponseSchema,
        create(WorkloadResponseSchema, { payload: { case: "ack", value: { error } } }),
      ),
    );
    this.#on.ack?.(kind, uid, error);
    if (
      c.send(conn.fd, bytes, bytes.length, linux.MSG_DONTWAIT | linux.MSG_NOSIGNAL) !== bytes.length
    ) {
      this.#lost(conn, this.#connError("sending Ack", c.errno()));
    }
  }

  async #apply(req: Decoded, conn: Connection): Promise<void> {
    switch (req.kind) {
      case "add":
        return await this.#add(req.workload, conn);
      case "keep": {
        if (this.#snapshotReceived) {
          throw refused(
            `KeepWorkload for ${req.uid} after SnapshotSent: keep is only meaningful while the snapshot is being sent; nothing changed`,
          );
        }
        if (!this.#workloads.has(req.uid) && !this.#pending.has(req.uid)) {
          // removed because its network is gone: nothing left to keep, and that is no error
          if (this.#gone.has(req.uid)) return;
          throw refused(
            `KeepWorkload for unknown uid ${req.uid}: this ztunnel has no such workload, so there is nothing to keep`,
          );
        }
        this.#snapshotNames.add(req.uid);
        return;
      }
      case "del": {
        const waiting = this.#pending.get(req.uid);
        if (waiting) {
          // never started: nothing to stop, only its netns to let go
          this.#pending.delete(req.uid);
          waiting.netns.close();
          if (this.#pending.size === 0) this.#pendingDelayMs = this.#initialMs;
          if (!this.#workloads.has(req.uid)) {
            this.#snapshotNames.delete(req.uid);
            return;
          }
        }
        const w = this.#workloads.get(req.uid);
        // the node agent catching up with a pod whose network we saw go: already done
        if (!w && this.#gone.delete(req.uid)) return;
        if (!w)
          throw refused(
            `DelWorkload for unknown uid ${req.uid}: this ztunnel has no such workload; nothing changed`,
          );
        await this.#remove(w, "DelWorkload");
        this.#snapshotNames.delete(req.uid);
        return;
      }
      case "snapshot_sent": {
        if (this.#snapshotReceived)
          throw refused("SnapshotSent twice on one connection; nothing changed");
        const failures: string[] = [];
        for (const w of [...this.#workloads.values()]) {
          if (this.#snapshotNames.has(w.uid)) continue;
          try {
            await this.#remove(w, "reconcile");
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
        this.#snapshotNames.clear();
        if (conn !== this.#conn) return; // the connection ended meanwhile: this snapshot is void
        this.#snapshotReceived = true;
        if (!this.#everReady) {
          this.#everReady = true;
          for (const w of this.#readyWaiters.splice(0)) w.resolve();
        }
        if (failures.length > 0) throw refused(`snapshot applied, but ${failures.join("; ")}`);
        return;
      }
    }
  }

  async #add(added: InpodWorkload, conn: Connection): Promise<void> {
    let w = added;
    const old = this.#workloads.get(w.uid);
    const network = hasNetwork(w.netns);
    const gone = this.#gone.get(w.uid);
    if (gone && network === false && gone.dev === w.netns.id.dev && gone.ino === w.netns.id.ino) {
      // the very namespace we removed for having no network, sent again (a reconnect's snapshot
      // from a node agent that has not seen the pod go yet): it would only be removed again
      w.netns.close();
      throw new InpodError(
        "ERR_INPOD_NETNS",
        `AddWorkload for ${w.uid}: its network namespace (net:[${gone.ino}]) has no interface but lo; the pod's network was torn down and the workload removed already`,
      );
    }
    if (network) this.#hadNetwork.add(w);
    if (old?.netns.sameAs(w.netns)) {
      // A repeat of what we have (same pod, same namespace): nothing to start.
      w.netns.close();
      if (!this.#snapshotReceived) this.#snapshotNames.add(w.uid);
      return;
    }
    if (!this.#snapshotReceived) this.#snapshotNames.add(w.uid);
    const waiting = this.#pending.get(w.uid);
    if (waiting?.netns.sameAs(w.netns)) {
      // the node agent sending again what is already waiting for a retry: retry it now
      w.netns.close();
      this.#pending.delete(w.uid);
      w = waiting;
    } else if (waiting) {
      this.#pending.delete(w.uid);
      waiting.netns.close();
    }
    try {
      await this.#handler.addWorkload(w);
    } catch (cause) {
      // kept and retried, as ztunnel keeps a pending workload; the Ack still says it failed.
      // Not if the connection ended meanwhile: pending dies with it (the next snapshot resends).
      if (conn === this.#conn && !this.#closed) {
        this.#pending.set(w.uid, w);
        this.#schedulePendingRetry();
      } else {
        w.netns.close();
      }
      throw new InpodError(
        "ERR_INPOD_ZDS_HANDLER",
        `workload ${w.uid} (${w.info.namespace}/${w.info.name}) was not started: ${(cause as Error)?.message ?? String(cause)}; it is retried`,
        { cause },
      );
    }
    await this.#install(w, old);
  }

  /** Records a workload whose proxy runs, and retires the proxy of its previous namespace. */
  async #install(w: InpodWorkload, old: InpodWorkload | undefined): Promise<void> {
    this.#workloads.set(w.uid, w);
    this.#gone.delete(w.uid);
    // The pod got a new namespace (sandbox recreated): the new proxy runs, retire the old one.
    if (old) {
      try {
        await this.#handler.removeWorkload(old);
      } catch (cause) {
        throw new InpodError(
          "ERR_INPOD_ZDS_HANDLER",
          `workload ${w.uid} moved to a new network namespace and its new proxy runs, but removing the old proxy failed: ${(cause as Error)?.message ?? String(cause)}`,
          { cause },
        );
      } finally {
        old.netns.close();
      }
    }
  }

  #schedulePendingRetry(): void {
    if (this.#closed || this.#pendingTimer !== undefined || this.#pending.size === 0) return;
    const delay = this.#pendingDelayMs;
    this.#pendingDelayMs = Math.min(this.#maxMs, this.#pendingDelayMs * 2);
    this.#pendingTimer = setTimeout(() => {
      this.#pendingTimer = undefined;
      if (this.#closed || this.#retryQueued) return;
      this.#retryQueued = true;
      this.#queue.push({ kind: "retry" });
      this.#pump();
    }, delay);
  }

  /** Starts every pending workload again (in turn with the requests); those failing stay pending. */
  async #retryPending(): Promise<void> {
    for (const w of [...this.#pending.values()]) {
      if (this.#closed || this.#pending.get(w.uid) !== w) continue; // removed or replaced meanwhile
      let error = "";
      try {
        await this.#handler.addWorkload(w);
      } catch (cause) {
        error = (cause as Error)?.message ?? String(cause);
      }
      if (this.#pending.get(w.uid) !== w) {
        // deleted while starting: stop what just started
        if (error === "")
          await Promise.resolve()
            .then(() => this.#handler.removeWorkload(w))
            .catch(() => {});
        continue;
      }
      if (error === "") {
        this.#pending.delete(w.uid);
        try {
          await this.#install(w, this.#workloads.get(w.uid));
        } catch (err) {
          error = (err as Error).message;
        }
      }
      try {
        this.#on.retried?.(w, error);
      } catch {
        // a hook must not stop the retries of the other pods
      }
    }
    if (this.#pending.size === 0) this.#pendingDelayMs = this.#initialMs;
    else this.#schedulePendingRetry();
  }

  #dropPending(): void {
    clearTimeout(this.#pendingTimer);
    this.#pendingTimer = undefined;
    for (const w of this.#pending.values()) w.netns.close();
    this.#pending.clear();
    this.#pendingDelayMs = this.#initialMs;
  }

  /** A uid removed for its network, so the node agent's late Del/Keep of it is acked ok (bounded). */
  #remember(w: InpodWorkload): void {
    this.#gone.delete(w.uid);
    this.#gone.set(w.uid, w.netns.id);
    if (this.#gone.size > GONE_REMEMBERED)
      this.#gone.delete(this.#gone.keys().next().value as string);
  }

  /** Why `w`'s pod network is gone (CNI DEL left only lo, or the fd lost it), else undefined. */
  #networkGone(w: InpodWorkload): string | undefined {
    try {
      w.netns.check();
      const network = hasNetwork(w.netns);
      if (network) this.#hadNetwork.add(w);
      else if (network === false && this.#hadNetwork.has(w))
        return `its network namespace (net:[${w.netns.id.ino}]) has no interface but lo any more: the pod's network was torn down (CNI DEL)`;
    } catch (err) {
      return `its network namespace fd no longer names it: ${(err as Error).message}`;
    }
    return undefined;
  }

  /** The netns check: removes every workload whose network is gone; returns their uids. */
  async #sweep(): Promise<string[]> {
    const removed: string[] = [];
    // a pending workload whose pod went away: nothing runs for it, only its netns fd to let go
    for (const w of [...this.#pending.values()]) {
      if (this.#closed) break;
      const gone = this.#networkGone(w);
      if (gone === undefined) continue;
      this.#pending.delete(w.uid);
      w.netns.close();
      this.#remember(w);
      removed.push(w.uid);
      try {
        this.#on.netnsGone?.(w, `${gone} (it was pending, never started)`);
      } catch {
        // as below
      }
    }
    if (this.#pending.size === 0) this.#pendingDelayMs = this.#initialMs;
    for (const w of [...this.#workloads.values()]) {
      if (this.#closed) break;
      if (this.#workloads.get(w.uid) !== w) continue; // replaced meanwhile
      let reason = this.#networkGone(w);
      if (reason === undefined) continue;
      // The pod is gone: removed even when the handler fails, so that the fd is not kept for it.
      this.#workloads.delete(w.uid);
      this.#snapshotNames.delete(w.uid);
      try {
        await this.#handler.removeWorkload(w);
      } catch (err) {
        reason += `; removing its proxy failed: ${(err as Error)?.message ?? String(err)}`;
      }
      w.netns.close();
      this.#remember(w);
      removed.push(w.uid);
      try {
        this.#on.netnsGone?.(w, reason);
      } catch {
        // a hook must not stop the check of the other pods
      }
    }
    return removed;
  }

  async #remove(w: InpodWorkload, why: string): Promise<void> {
    try {
      await this.#handler.removeWorkload(w);
    } catch (cause) {
      throw new InpodError(
        "ERR_INPOD_ZDS_HANDLER",
        `workload ${w.uid} (${w.info.namespace}/${w.info.name}) could not be removed (${why}): ${(cause as Error)?.message ?? String(cause)}; it is kept`,
        { cause },
      );
    }
    this.#workloads.delete(w.uid);
    w.netns.close();
  }
}

// A Kubernetes pod UID: a UUID in its canonical text form (istio-cni sends `string(pod.UID)`).
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Why `uid` is not a pod UID, or undefined when it is one. */
function badUid(uid: string): string | undefined {
  if (POD_UID.test(uid)) return undefined;
  const shown = JSON.stringify(uid.length > 64 ? `${uid.slice(0, 64)}…` : uid);
  return `uid ${shown} is not a Kubernetes pod UID (a UUID such as 0b7e2f6c-4a1d-4c3e-9f0a-5d6e7f809a1b); check what the node agent sends`;
}

function hungUp(c: ReturnType<typeof libc>, fd: number): boolean {
  return (c.pollNow(fd, linux.POLLRDHUP) & (linux.POLLHUP | linux.POLLRDHUP)) !== 0;
}

type Decoded =
  | { kind: "add"; uid: string; workload: InpodWorkload }
  | { kind: "keep" | "del"; uid: string }
  | { kind: "snapshot_sent"; uid: "" };

/**
 * Turns one datagram into a request, or throws ERR_INPOD_ZDS_PROTOCOL with the reason. Every received fd is
 * either handed over (inside the returned Netns) or closed here, on every path.
 */
function decode(d: Datagram): Decoded {
  const refuse = (why: string): never => {
    closeAll(d.fds);
    throw refused(why);
  };
  if (d.truncated) {
    refuse(
      `request larger than ${MAX_ZDS_MESSAGE_BYTES} bytes (or with too much ancillary data) was truncated and ignored`,
    );
  }
  let req: WorkloadRequest;
  try {
    req = fromBinary(WorkloadRequestSchema, d.data);
  } catch (err) {
    return refuse(
      `cannot decode WorkloadRequest (${(err as Error).message}); is the node agent speaking ZDS V1?`,
    );
  }
  const p = req.payload;
  if (p.case === undefined)
    return refuse(
      "WorkloadRequest without a known payload (add, keep, del, snapshot_sent); nothing changed",
    );
  if (p.case !== "add") {
    if (d.fds.length > 0)
      refuse(
        `${p.case} request carries ${d.fds.length} fd(s); only AddWorkload may carry a netns fd`,
      );
    if (p.case === "snapshotSent") return { kind: "snapshot_sent", uid: "" };
    if (p.value.uid === "") refuse(`${p.case} request without a uid`);
    const bad = badUid(p.value.uid);
    if (bad) refuse(`${p.case} request: ${bad}; nothing changed`);
    return { kind: p.case, uid: p.value.uid };
  }
  const { uid, workloadInfo } = p.value;
  if (d.fds.length !== 1) {
    refuse(
      `AddWorkload for ${uid || "(no uid)"} carries ${d.fds.length} fds; it needs exactly one, the pod's netns (SCM_RIGHTS)`,
    );
  }
  if (uid === "") refuse("AddWorkload without a uid");
  const bad = badUid(uid);
  if (bad) refuse(`AddWorkload: ${bad}; nothing changed`);
  if (!workloadInfo) refuse(`AddWorkload for ${uid} without workload_info; it is required`);
  let netns: Netns;
  try {
    netns = Netns.fromFd(d.fds[0] as number, { own: true }); // closes the fd when it is no netns
  } catch (err) {
    throw refused(`AddWorkload for ${uid}: ${(err as Error).message}`);
  }
  const info = workloadInfo as NonNullable<typeof workloadInfo>;
  return {
    kind: "add",
    uid,
    workload: {
      uid,
      info: { name: info.name, namespace: info.namespace, serviceAccount: info.serviceAccount },
      netns,
    },
  };
}

/** The fds of every SCM_RIGHTS control message (struct cmsghdr: size_t len, int level, int type). */
function scmRights(control: Buffer, length: number): number[] {
  const fds: number[] = [];
  let off = 0;
  while (off + 16 <= length) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < 16 || off + len > length) break;
    const level = control.readInt32LE(off + 8);
    const type = control.readInt32LE(off + 12);
    if (level === linux.SOL_SOCKET && type === linux.SCM_RIGHTS) {
      for (let i = off + 16; i + 4 <= off + len; i += 4) fds.push(control.readInt32LE(i));
    }
    off += (len + 7) & ~7;
  }
  return fds;
}

/**
 * Whether the namespace has an interface besides lo; undefined when it cannot be read (then the
 * check decides nothing: a failure of ours must not remove a pod).
 */
function hasNetwork(netns: Netns): boolean | undefined {
  try {
    return netnsInterfaces(netns).some((name) => name !== "lo");
  } catch {
    return undefined;
  }
}

function closeAll(fds: number[]): void {
  const c = libc();
  for (const fd of fds) c.close(fd);
}
