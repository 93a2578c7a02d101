// The listeners that follow the config: HBONE inbound and plaintext passthrough on each local
// in-mesh workload IP, and the outbound capture listener on every service VIP:port. `sync()` opens
// what the config wants and closes what it no longer does (a new LOCAL_XDS load).
import net from "node:net";
import { workloadIdentity } from "@ambientkit/xds-types";
import { type Listener, listen } from "../mesh/net.js";
import type { ZtunnelContext } from "./context.js";

export interface ListenerHandlers {
  /** An accepted HBONE inbound socket (podIP:15008). */
  hbone(socket: net.Socket): void;
  /** An accepted plaintext passthrough socket (podIP:15006). */
  passthrough(socket: net.Socket): void;
  /** A connection captured on a service VIP:port. */
  captured(socket: net.Socket, ip: string, port: number): void;
}

/** A set of listeners keyed by address, reconciled against a wanted set. */
class ListenerSet {
  readonly #open = new Map<string, Listener>();

  async sync(want: ReadonlySet<string>, open: (key: string) => Promise<Listener>): Promise<void> {
    for (const [k, l] of this.#open) {
      if (!want.has(k)) {
        this.#open.delete(k);
        await l.close();
      }
    }
    for (const k of want) if (!this.#open.has(k)) this.#open.set(k, await open(k));
  }

  values(): Listener[] {
    return [...this.#open.values()];
  }

  take(): Listener[] {
    const all = [...this.#open.values()];
    this.#open.clear();
    return all;
  }
}

export class ZtunnelListeners {
  readonly #ctx: ZtunnelContext;
  readonly #on: ListenerHandlers;
  readonly #inbound = new ListenerSet();
  readonly #passthrough = new ListenerSet();
  readonly #vips = new ListenerSet();

  constructor(ctx: ZtunnelContext, on: ListenerHandlers) {
    this.#ctx = ctx;
    this.#on = on;
  }

  async sync(): Promise<void> {
    const ctx = this.#ctx;
    const locals = ctx.localWorkloads;
    await Promise.all(locals.map((w) => ctx.certs.ensure(workloadIdentity(w))));
    const podIps = new Set<string>();
    for (const w of locals)
      if (w.protocol === "HBONE") for (const ip of w.workloadIps) podIps.add(ip);
    await this.#inbound.sync(podIps, (ip) =>
      listen(
        net.createServer({ noDelay: true }, (s) => this.#on.hbone(s)),
        ip,
        ctx.ports.hbone,
        `ztunnel ${ctx.node} HBONE inbound`,
      ),
    );
    const passthroughPort = ctx.ports.passthrough;
    await this.#passthrough.sync(passthroughPort === null ? new Set() : podIps, (ip) =>
      listen(
        net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
          s.on("error", () => {});
          this.#on.passthrough(s);
        }),
        ip,
        passthroughPort ?? 0,
        `ztunnel ${ctx.node} inbound passthrough`,
      ),
    );
    const vips = new Set<string>();
    if (ctx.opts.captureServices !== false) {
      for (const s of ctx.state.config.services)
        for (const v of s.vips) for (const p of Object.keys(s.ports)) vips.add(`${v.address}:${p}`);
    }
    await this.#vips.sync(vips, (k) => {
      const i = k.lastIndexOf(":");
      const ip = k.slice(0, i);
      const port = Number(k.slice(i + 1));
      return listen(
        net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
          s.on("error", () => {});
          this.#on.captured(s, ip, port);
        }),
        ip,
        port,
        `ztunnel ${ctx.node} outbound capture`,
      );
    });
  }

  /** Every open listener. */
  all(): Listener[] {
    return [...this.#inbound.values(), ...this.#passthrough.values(), ...this.#vips.values()];
  }

  /** Closes every listener (and the sockets they accepted). */
  async close(): Promise<void> {
    const all = [...this.#inbound.take(), ...this.#passthrough.take(), ...this.#vips.take()];
    await Promise.all(all.map((l) => l.close()));
  }
}
