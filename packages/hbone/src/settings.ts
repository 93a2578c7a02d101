// HTTP/2 and pool defaults, as ztunnel's `config.rs` / `proxy/h2/{client,server}.rs` set them.
import { HBONE_TLS_CIPHERSUITES } from "@ambientkit/identity/node";

/** The defaults of an HBONE client, pool and server; each option of the same name overrides one. */
export interface HboneDefaults {
  /** Per-stream flow-control window: 4 MiB (ztunnel `HTTP2_STREAM_WINDOW_SIZE`). */
  readonly streamWindowSize: number;
  /** Connection window: 16 MiB (`HTTP2_CONNECTION_WINDOW_SIZE`); applied with `setLocalWindowSize`. */
  readonly connectionWindowSize: number;
  /** Max DATA frame size: 1 MiB (`HTTP2_FRAME_SIZE`). */
  readonly maxFrameSize: number;
  /** Streams per pooled connection before a new one is dialled: 100 (`POOL_MAX_STREAMS_PER_CONNECTION`). */
  readonly poolMaxStreamsPerConnection: number;
  /** Idle pooled connections are closed after 5 min (`POOL_UNUSED_RELEASE_TIMEOUT`). */
  readonly poolUnusedReleaseTimeoutMs: number;
  /** PING every 10 s (`PING_INTERVAL`). */
  readonly pingIntervalMs: number;
  /** A connection with a PING unanswered for 20 s is dead (`PING_TIMEOUT`). */
  readonly pingTimeoutMs: number;
  /** Client `max_header_list_size`: 16 KiB. */
  readonly clientMaxHeaderListSize: number;
  /** Server `max_header_list_size`: 64 KiB. */
  readonly serverMaxHeaderListSize: number;
  /** Server `max_concurrent_streams`: 200 (hyper's default, ztunnel's server). */
  readonly serverMaxConcurrentStreams: number;
  /** Upstream TCP connect timeout on the server: 10 s, then 503 (`CONNECTION_TIMEOUT`). */
  readonly upstreamConnectTimeoutMs: number;
  /** TLS handshake timeout of client and server: 10 s. */
  readonly handshakeTimeoutMs: number;
  /** ztunnel's TLS 1.3 suites (no ChaCha20): `HBONE_TLS_CIPHERSUITES` of `@ambientkit/identity/node`. */
  readonly tlsCiphersuites: string;
  /**
   * Node's `maxSessionMemory` (MB): 256. Node counts queued outbound DATA and header tables; with
   * 4 MiB stream windows, a 16 MiB connection window and 100-200 streams, the default 10 MB refuses
   * new streams (ENHANCE_YOUR_CALM) under load. Real buffering stays bounded by flow control.
   */
  readonly maxSessionMemoryMb: number;
}

/** The HBONE defaults in one frozen object (ztunnel's names in the field docs). */
export const HBONE_DEFAULTS: HboneDefaults = Object.freeze({
  streamWindowSize: 4 * 1024 * 1024,
  connectionWindowSize: 16 * 1024 * 1024,
  maxFrameSize: 1024 * 1024,
  poolMaxStreamsPerConnection: 100,
  poolUnusedReleaseTimeoutMs: 5 * 60_000,
  pingIntervalMs: 10_000,
  pingTimeoutMs: 20_000,
  clientMaxHeaderListSize: 16 * 1024,
  serverMaxHeaderListSize: 64 * 1024,
  serverMaxConcurrentStreams: 200,
  upstreamConnectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  tlsCiphersuites: HBONE_TLS_CIPHERSUITES,
  maxSessionMemoryMb: 256,
});

/** Node `settings` for an HBONE session. */
export function h2Settings(
  maxHeaderListSize: number,
  maxConcurrentStreams?: number,
  streamWindowSize: number = HBONE_DEFAULTS.streamWindowSize,
): {
  enablePush: boolean;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
  maxConcurrentStreams?: number;
} {
  return {
    enablePush: false,
    initialWindowSize: streamWindowSize,
    maxFrameSize: HBONE_DEFAULTS.maxFrameSize,
    maxHeaderListSize,
    ...(maxConcurrentStreams !== undefined ? { maxConcurrentStreams } : {}),
  };
}
