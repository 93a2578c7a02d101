// HTTP/2 and pool defaults, as ztunnel's `config.rs` / `proxy/h2/{client,server}.rs` set them.
import { HBONE_TLS_CIPHERSUITES } from "@ambientkit/identity/node";

/** Per-stream flow-control window: 4 MiB (`HTTP2_STREAM_WINDOW_SIZE`). */
export const STREAM_WINDOW_SIZE: number = 4 * 1024 * 1024;
/** Connection window: 16 MiB (`HTTP2_CONNECTION_WINDOW_SIZE`); applied with `setLocalWindowSize`. */
export const CONNECTION_WINDOW_SIZE: number = 16 * 1024 * 1024;
/** Max DATA frame size: 1 MiB (`HTTP2_FRAME_SIZE`). */
export const MAX_FRAME_SIZE: number = 1024 * 1024;
/** Streams per pooled connection before a new one is dialled (`POOL_MAX_STREAMS_PER_CONNECTION`). */
export const POOL_MAX_STREAMS_PER_CONNECTION = 100;
/** Idle pooled connections are closed after 5 min (`POOL_UNUSED_RELEASE_TIMEOUT`). */
export const POOL_UNUSED_RELEASE_TIMEOUT_MS: number = 5 * 60_000;
/** PING every 10 s; a connection with a PING unanswered for 20 s is dead (`PING_INTERVAL`/`PING_TIMEOUT`). */
export const PING_INTERVAL_MS = 10_000;
export const PING_TIMEOUT_MS = 20_000;
/** Client `max_header_list_size` 16 KiB; server 64 KiB. */
export const CLIENT_MAX_HEADER_LIST_SIZE: number = 16 * 1024;
export const SERVER_MAX_HEADER_LIST_SIZE: number = 64 * 1024;
/** Server `max_concurrent_streams` (hyper's default, ztunnel's server). */
export const SERVER_MAX_CONCURRENT_STREAMS = 200;
/** Upstream TCP connect timeout on the server (`CONNECTION_TIMEOUT`): 10 s, then 503. */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;
/** TLS handshake timeout used by client and server. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** ztunnel's TLS 1.3 suites (no ChaCha20): `HBONE_TLS_CIPHERSUITES` of `@ambientkit/identity/node`. */
export const TLS_CIPHERSUITES: string = HBONE_TLS_CIPHERSUITES;
/**
 * Node's `maxSessionMemory` (MB). Node counts queued outbound DATA and header tables; with 4 MiB
 * stream windows, a 16 MiB connection window and 100-200 streams, the default 10 MB refuses new
 * streams (ENHANCE_YOUR_CALM) under load. Real buffering stays bounded by flow control.
 */
export const MAX_SESSION_MEMORY_MB = 256;

/** Node `settings` for an HBONE session. */
export function h2Settings(
  maxHeaderListSize: number,
  maxConcurrentStreams?: number,
  streamWindowSize: number = STREAM_WINDOW_SIZE,
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
    maxFrameSize: MAX_FRAME_SIZE,
    maxHeaderListSize,
    ...(maxConcurrentStreams !== undefined ? { maxConcurrentStreams } : {}),
  };
}
