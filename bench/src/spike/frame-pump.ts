/**
 * Spike for issue #12: the smallest HTTP/2 frame pump HBONE needs — one CONNECT stream, DATA and
 * WINDOW_UPDATE — over `node:tls`, to measure whether a custom engine would beat node:http2 by the
 * ≥ 1.3× the issue asks for before one is built. Bench-only code: no package imports it.
 *
 * What it does (RFC 9113 framing, RFC 7541 header blocks):
 * - the client sends the connection preface, SETTINGS (ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 4 MiB,
 *   MAX_FRAME_SIZE 1 MiB) and a connection WINDOW_UPDATE up to 16 MiB in its first write; the
 *   server sends the same right away ("pre-negotiated": neither side waits for the other's
 *   SETTINGS, but both apply the peer's INITIAL_WINDOW_SIZE / MAX_FRAME_SIZE when they arrive and
 *   acknowledge them);
 * - a stream is a HEADERS frame (header block pre-encoded with literals without indexing, no
 *   Huffman), then DATA frames of up to the peer's MAX_FRAME_SIZE, END_STREAM as half-close;
 * - receive is zero-copy: a DATA payload is handed on as subarrays of the TLS chunks it arrived in
 *   (a frame split across chunks arrives as several pieces; only 9-byte frame headers and small
 *   control frames that straddle chunks are copied);
 * - everything queued in one event-loop turn goes out corked, i.e. as one writev;
 * - stream and connection WINDOW_UPDATEs are sent as the reader consumes data (an eighth of the
 *   window at a time by default), so a reader that stops stops the sender — the pump never stops reading its
 *   socket while its own writes are pending (node:http2 does).
 *
 * Not here (a real engine needs them): HPACK Huffman, CONTINUATION, PRIORITY handling beyond
 * skipping it, many streams' fairness, stream-count limits, PING liveness timers, GOAWAY drain,
 * and the flood defences (SETTINGS/PING/RST/empty-frame floods, rapid reset).
 */
import { Duplex } from "node:stream";

export const PREFACE: Buffer = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
} as const;

/** ztunnel's HTTP/2 settings (shared/reference/hbone-ztunnel.md §1.7). */
export const STREAM_WINDOW = 4 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;
export const MAX_FRAME = 1024 * 1024;
/** RFC 9113 defaults, in force until the peer's SETTINGS say otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME = 16_384;
const MAX_WINDOW = 2 ** 31 - 1;

export class Http2SpikeError extends Error {
  constructor(
    readonly h2code: number,
    message: string,
  ) {
    super(message);
    this.name = "Http2SpikeError";
  }
}

// ---------------------------------------------------------------------------------------------
// Frame codec

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = (length >>> 16) & 0xff;
  b[1] = (length >>> 8) & 0xff;
  b[2] = length & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  return b;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

export function settingsFrame(entries: ReadonlyArray<readonly [number, number]>): Buffer {
  const p = Buffer.allocUnsafe(entries.length * 6);
  entries.forEach(([id, value], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, p);
}

export const SETTINGS_ACK: Buffer = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = frameHeader(4, FrameType.WINDOW_UPDATE, 0, streamId);
  return Buffer.concat([b, u32(increment & 0x7fffffff)]);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  return frame(FrameType.RST_STREAM, 0, streamId, u32(code));
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  return frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(lastStreamId & 0x7fffffff), u32(code)]));
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** What the parser hands on. DATA comes as start / pieces / end so its payload is never copied. */
export interface FrameSink {
  /** A whole non-DATA frame. `payload` is a subarray of the chunk when the frame lay in one. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void;
  /** A DATA frame begins; `length` is its flow-controlled length (padding included). */
  dataStart(streamId: number, flags: number, length: number): void;
  /** A piece of a DATA frame's payload (padding removed): a subarray of a received chunk. */
  data(streamId: number, piece: Buffer): void;
  /** The DATA frame ended; `padding` = bytes of it that were padding (incl. the Pad Length octet). */
  dataEnd(streamId: number, flags: number, padding: number): void;
}

const S_HEADER = 0;
const S_PADLEN = 1;
const S_DATA = 2;
const S_PADDING = 3;
const S_PAYLOAD = 4;

/** Incremental frame parser: feed it chunks as they arrive, split anywhere. */
export class FrameParser {
  private readonly head = Buffer.alloc(9);
  private headHave = 0;
  private state = S_HEADER;
  private length = 0;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  /** Bytes left of the current section (DATA payload, padding, or control payload). */
  private left = 0;
  private padding = 0;
  private acc: Buffer | undefined;
  private accHave = 0;

  constructor(
    private readonly sink: FrameSink,
    /** Our SETTINGS_MAX_FRAME_SIZE: a longer frame is a FRAME_SIZE_ERROR. */
    public maxFrameSize: number = MAX_FRAME,
  ) {}

  push(chunk: Buffer): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      switch (this.state) {
        case S_HEADER: {
          if (this.headHave === 0 && n - off >= 9) {
            this.begin(chunk, off);
            off += 9;
          } else {
            const take = Math.min(9 - this.headHave, n - off);
            chunk.copy(this.head, this.headHave, off, off + take);
            this.headHave += take;
            off += take;
            if (this.headHave < 9) return;
            this.headHave = 0;
            this.begin(this.head, 0);
          }
          break;
        }
        case S_PADLEN: {
          this.padding = (chunk[off] as number) + 1;
          off += 1;
          if (this.padding > this.length) {
            throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "DATA padding exceeds the frame");
          }
          this.left = this.length - this.padding;
          this.afterDataSection();
          break;
        }
        case S_DATA: {
          const take = Math.min(this.left, n - off);
          const piece = take === n && off === 0 ? chunk : chunk.subarray(off, off + take);
          off += take;
          this.left -= take;
          this.sink.data(this.streamId, piece);
          if (this.left === 0) this.afterDataSection();
          break;
        }
        case S_PADDING: {
          const take = Math.min(this.left, n - off);
          off += take;
          this.left -= take;
          if (this.left === 0) this.endData();
          break;
        }
        default: {
          // S_PAYLOAD: a control frame's payload, handed on whole
          if (this.acc === undefined && n - off >= this.left) {
            const payload = chunk.subarray(off, off + this.left);
            off += this.left;
            this.state = S_HEADER;
            this.sink.frame(this.type, this.flags, this.streamId, payload);
            break;
          }
          if (this.acc === undefined) {
            this.acc = Buffer.allocUnsafe(this.left);
            this.accHave = 0;
          }
          const take = Math.min(this.left - this.accHave, n - off);
          chunk.copy(this.acc, this.accHave, off, off + take);
          this.accHave += take;
          off += take;
          if (this.accHave === this.left) {
            const payload = this.acc;
            this.acc = undefined;
            this.state = S_HEADER;
            this.sink.frame(this.type, this.flags, this.streamId, payload);
          }
        }
      }
    }
  }

  private begin(h: Buffer, at: number): void {
    const length = ((h[at] as number) << 16) | ((h[at + 1] as number) << 8) | (h[at + 2] as number);
    this.length = length;
    this.type = h[at + 3] as number;
    this.flags = h[at + 4] as number;
    this.streamId = h.readUInt32BE(at + 5) & 0x7fffffff;
    if (length > this.maxFrameSize) {
      throw new Http2SpikeError(
        ErrorCode.FRAME_SIZE_ERROR,
        `frame of ${length} bytes > ${this.maxFrameSize}`,
      );
    }
    if (this.type === FrameType.DATA) {
      if (this.streamId === 0) {
        throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
      }
      this.sink.dataStart(this.streamId, this.flags, length);
      this.padding = 0;
      if (this.flags & Flag.PADDED) {
        if (length === 0) {
          throw new Http2SpikeError(ErrorCode.FRAME_SIZE_ERROR, "PADDED DATA without Pad Length");
        }
        this.state = S_PADLEN;
      } else {
        this.left = length;
        this.afterDataSection();
      }
      return;
    }
    this.left = length;
    if (length === 0) {
      this.state = S_HEADER;
      this.sink.frame(this.type, this.flags, this.streamId, EMPTY);
    } else {
      this.state = S_PAYLOAD;
    }
  }

  /** After Pad Length or the payload: payload left → S_DATA, else padding, else the end. */
  private afterDataSection(): void {
    if (this.state !== S_DATA && this.left > 0) {
      this.state = S_DATA;
      return;
    }
    const pad = this.padding > 0 ? this.padding - 1 : 0; // the Pad Length octet is already read
    if (pad > 0) {
      this.state = S_PADDING;
      this.left = pad;
      return;
    }
    this.endData();
  }

  private endData(): void {
    this.state = S_HEADER;
    this.sink.dataEnd(this.streamId, this.flags, this.padding);
  }
}

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Minimal HPACK: static table, a dynamic table, raw (non-Huffman) string literals.

/** RFC 7541 Appendix A. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

export type HeaderList = Array<[string, string]>;

function encodeInt(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function encodeString(out: number[], s: string): void {
  const bytes = Buffer.from(s, "latin1");
  encodeInt(out, 0x00, 7, bytes.length); // H = 0: no Huffman
  for (const b of bytes) out.push(b);
}

/**
 * Encodes a header list without touching the dynamic table: exact static matches as indexed
 * fields, everything else as "literal without indexing" (static name index when there is one).
 */
export function encodeHeaderBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    let nameIdx = 0;
    let fullIdx = 0;
    for (let i = 0; i < STATIC_TABLE.length; i++) {
      const e = STATIC_TABLE[i] as readonly [string, string];
      if (e[0] !== name) continue;
      if (nameIdx === 0) nameIdx = i + 1;
      if (e[1] === value) {
        fullIdx = i + 1;
        break;
      }
    }
    if (fullIdx > 0) {
      encodeInt(out, 0x80, 7, fullIdx);
    } else if (nameIdx > 0) {
      encodeInt(out, 0x00, 4, nameIdx);
      encodeString(out, value);
    } else {
      out.push(0x00);
      encodeString(out, name);
      encodeString(out, value);
    }
  }
  return Buffer.from(out);
}

/** A decoder with its dynamic table (one per connection and direction). */
export class HpackDecoder {
  private dynamic: Array<[string, string]> = [];
  private size = 0;
  private maxSize = 4096;

  decode(block: Buffer): HeaderList {
    const headers: HeaderList = [];
    let off = 0;
    const int = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let v = (block[off++] as number) & max;
      if (v < max) return v;
      let m = 1;
      for (;;) {
        if (off >= block.length) throw compression("truncated integer");
        const b = block[off++] as number;
        v += (b & 0x7f) * m;
        m *= 128;
        if ((b & 0x80) === 0) return v;
        if (m > 2 ** 28) throw compression("integer too large");
      }
    };
    const str = (): string => {
      if (off >= block.length) throw compression("truncated string");
      const huffman = ((block[off] as number) & 0x80) !== 0;
      const len = int(7);
      if (off + len > block.length) throw compression("truncated string");
      if (huffman) throw compression("Huffman-coded strings are not supported by the spike");
      const s = block.toString("latin1", off, off + len);
      off += len;
      return s;
    };
    const entry = (idx: number): readonly [string, string] => {
      const e =
        idx <= STATIC_TABLE.length
          ? STATIC_TABLE[idx - 1]
          : this.dynamic[idx - STATIC_TABLE.length - 1];
      if (idx === 0 || e === undefined) throw compression(`bad index ${idx}`);
      return e;
    };
    while (off < block.length) {
      const b = block[off] as number;
      if (b & 0x80) {
        const [n, v] = entry(int(7));
        headers.push([n, v]);
      } else if (b & 0x40) {
        const idx = int(6);
        const name = idx === 0 ? str() : (entry(idx)[0] as string);
        const value = str();
        headers.push([name, value]);
        this.insert(name, value);
      } else if (b & 0x20) {
        const size = int(5);
        if (size > 4096) throw compression("table size update above SETTINGS_HEADER_TABLE_SIZE");
        this.maxSize = size;
        this.evict();
      } else {
        // literal without indexing (0000) or never indexed (0001)
        const idx = int(4);
        const name = idx === 0 ? str() : (entry(idx)[0] as string);
        headers.push([name, str()]);
      }
    }
    return headers;
  }

  private insert(name: string, value: string): void {
    this.dynamic.unshift([name, value]);
    this.size += name.length + value.length + 32;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const e = this.dynamic.pop();
      if (e === undefined) break;
      this.size -= e[0].length + e[1].length + 32;
    }
  }
}

function compression(msg: string): Http2SpikeError {
  return new Http2SpikeError(ErrorCode.COMPRESSION_ERROR, msg);
}

// ---------------------------------------------------------------------------------------------
// Connection and stream

/** The socket a pump runs over: a TLS socket in the bench, any Duplex of bytes in tests. */
export type ByteSocket = Duplex;

export interface PumpOptions {
  streamWindow?: number;
  connectionWindow?: number;
  maxFrameSize?: number;
  /** Bytes a stream accepts from its writer before it holds the write callback (default 256 KiB). */
  sendBuffer?: number;
  /**
   * DATA is written only while the socket holds less than this (default 64 KiB): small writes keep
   * the TLS plaintext, ciphertext and the kernel's buffers in cache (measured: 1 MiB writes cost
   * ~30 % more CPU per byte than 64 KiB ones).
   */
  socketBudget?: number;
  /** WINDOW_UPDATE once window / creditDivisor bytes were consumed (default 8). */
  creditDivisor?: number;
  /** A DATA frame's payload is written to the socket this many bytes at a time (default 64 KiB). */
  writeChunk?: number;
  /** DATA frames we send are at most this long (default: the peer's MAX_FRAME_SIZE). */
  frameCap?: number;
}

export class FramePumpConnection implements FrameSink {
  readonly streams: Map<number, PumpStream> = new Map();
  /** Server: called for each new stream with its decoded request headers. */
  onStream: ((stream: PumpStream, headers: HeaderList) => void) | undefined;
  readonly streamWindow: number;
  readonly connectionWindow: number;
  readonly sendBuffer: number;
  readonly creditDivisor: number;
  private readonly writeChunk: number;
  /** The DATA frame being written: its stream, payload bytes left, and whether it ends the stream. */
  private frameStream: PumpStream | undefined;
  private frameLeft = 0;
  private frameEnds = false;
  private readonly frameCap: number;
  private readonly socketBudget: number;
  private readonly parser: FrameParser;
  private readonly hpack = new HpackDecoder();
  private control: Buffer[] = [];
  private flushScheduled = false;
  private prefaceLeft: number;
  private nextStreamId = 1;
  private lastPeerStreamId = 0;
  /** What we may still send (peer's connection window) and the peer's settings. */
  private sendWindow = DEFAULT_WINDOW;
  peerInitialWindow: number = DEFAULT_WINDOW;
  peerMaxFrame: number = DEFAULT_MAX_FRAME;
  /** What the peer may still send us on the connection, and consumed bytes not yet credited. */
  private recvWindow: number;
  private recvUncredited = 0;
  /** The DATA frame being parsed belongs to no open stream (already credited to the connection). */
  private discarding = false;
  private closed = false;
  /** Why DATA writing stopped with data pending, and how many flushes ran (diagnostics). */
  readonly stats = { flushes: 0, blockedOnWindow: 0, blockedOnSocket: 0 };
  /** Frames sent/received by type, for tests and the bench report. */
  readonly sentFrames: number[] = Array(10).fill(0);
  readonly receivedFrames: number[] = Array(10).fill(0);

  constructor(
    readonly socket: ByteSocket,
    readonly role: "client" | "server",
    opts: PumpOptions = {},
  ) {
    this.streamWindow = opts.streamWindow ?? STREAM_WINDOW;
    this.connectionWindow = opts.connectionWindow ?? CONNECTION_WINDOW;
    this.sendBuffer = opts.sendBuffer ?? 256 * 1024;
    this.socketBudget = opts.socketBudget ?? 64 * 1024;
    this.creditDivisor = opts.creditDivisor ?? 8;
    this.writeChunk = opts.writeChunk ?? 64 * 1024;
    this.frameCap = opts.frameCap ?? Number.POSITIVE_INFINITY;
    this.parser = new FrameParser(this, opts.maxFrameSize ?? MAX_FRAME);
    this.recvWindow = this.connectionWindow;
    this.prefaceLeft = role === "server" ? PREFACE.length : 0;
    if (role === "client") this.queue(PREFACE);
    this.queue(
      settingsFrame([
        [Setting.ENABLE_PUSH, 0],
        [Setting.INITIAL_WINDOW_SIZE, this.streamWindow],
        [Setting.MAX_FRAME_SIZE, this.parser.maxFrameSize],
      ]),
    );
    if (this.connectionWindow > DEFAULT_WINDOW) {
      this.queue(windowUpdateFrame(0, this.connectionWindow - DEFAULT_WINDOW));
    }
    socket.on("data", (chunk: Buffer) => this.onChunk(chunk));
    socket.on("drain", () => this.scheduleFlush());
    socket.on("close", () => this.onSocketGone(undefined));
    socket.on("error", (err: Error) => this.onSocketGone(err));
  }

  /** Client: opens a CONNECT stream to `authority`; resolves with it once the 200 arrives. */
  connect(authority: string, extra: ReadonlyArray<readonly [string, string]> = []): PumpStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new PumpStream(this, id);
    this.streams.set(id, stream);
    const block = encodeHeaderBlock([[":method", "CONNECT"], [":authority", authority], ...extra]);
    this.queue(frameHeader(block.length, FrameType.HEADERS, Flag.END_HEADERS, id), block);
    return stream;
  }

  /** Sends GOAWAY(NO_ERROR) and ends the socket once written. */
  close(): void {
    if (this.closed) return;
    this.queue(goawayFrame(this.lastPeerStreamId, ErrorCode.NO_ERROR));
    this.flush();
    this.closed = true;
    this.socket.end();
  }

  /** A protocol error gets GOAWAY and a graceful socket end; anything else a hard close. */
  destroy(err?: Error): void {
    // (a GOAWAY cannot go out while a DATA frame's payload is half written)
    const goaway = err instanceof Http2SpikeError && !this.closed && this.frameLeft === 0;
    this.onSocketGone(err);
    if (goaway) {
      this.control = [goawayFrame(this.lastPeerStreamId, err.h2code)];
      this.flush();
      this.socket.end();
      this.socket.removeAllListeners("data");
      this.socket.resume();
    } else {
      this.socket.destroy();
    }
  }

  // --- sending ---

  /** Queues control frames; they go out, before any DATA, in this turn's single writev. */
  queue(...bufs: Buffer[]): void {
    for (const b of bufs) {
      this.control.push(b);
      if (b.length >= 9 && b !== PREFACE) this.countSent(b[3] as number);
    }
    this.scheduleFlush();
  }

  private countSent(type: number): void {
    if (type < this.sentFrames.length) this.sentFrames[type] = (this.sentFrames[type] ?? 0) + 1;
  }

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => this.flush());
  }

  /** Writes the queued control frames and as much DATA as windows and the socket budget allow. */
  flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    this.stats.flushes++;
    const write = (b: Buffer): void => {
      socket.write(b);
    };
    socket.cork();
    // Control frames never go inside a DATA frame's payload: only between frames.
    if (this.frameLeft === 0) this.writeControl(write);
    while (socket.writableLength < this.socketBudget) {
      const fs = this.frameStream;
      if (fs !== undefined) {
        // Continue the DATA frame in progress, writeChunk bytes at a time.
        const k = Math.min(this.frameLeft, this.writeChunk);
        fs.takePending(k, write);
        this.frameLeft -= k;
        if (this.frameLeft === 0) {
          this.frameStream = undefined;
          if (this.frameEnds) fs.endSent();
          this.writeControl(write);
        }
        continue;
      }
      let started = false;
      for (const stream of this.streams.values()) {
        const n = Math.min(
          stream.pendingBytes,
          this.peerMaxFrame,
          this.frameCap,
          stream.sendWindow,
          this.sendWindow,
        );
        if (n > 0) {
          // Commit a frame of n bytes that are already queued; its payload may be written over
          // several turns as the socket drains (frames stay large, writes stay small).
          this.frameEnds = stream.endRequested && n === stream.pendingBytes;
          write(frameHeader(n, FrameType.DATA, this.frameEnds ? Flag.END_STREAM : 0, stream.id));
          this.countSent(FrameType.DATA);
          stream.sendWindow -= n;
          this.sendWindow -= n;
          this.frameStream = stream;
          this.frameLeft = n;
          started = true;
          break;
        }
        if (stream.pendingBytes === 0 && stream.endRequested && !stream.endWasSent) {
          write(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
          this.countSent(FrameType.DATA);
          stream.endSent();
          started = true;
          break;
        }
      }
      if (!started) break;
    }
    if (this.frameLeft === 0) {
      for (const stream of this.streams.values()) {
        if (stream.pendingBytes === 0) continue;
        if (socket.writableLength >= this.socketBudget) this.stats.blockedOnSocket++;
        else this.stats.blockedOnWindow++;
      }
    } else {
      this.stats.blockedOnSocket++;
    }
    for (const stream of this.streams.values()) stream.releaseWriter();
    socket.uncork();
  }

  private writeControl(write: (b: Buffer) => void): void {
    for (const b of this.control) write(b);
    this.control = [];
  }

  // --- receiving ---

  private onChunk(chunk: Buffer): void {
    try {
      if (this.prefaceLeft > 0) {
        const at = PREFACE.length - this.prefaceLeft;
        const take = Math.min(this.prefaceLeft, chunk.length);
        if (!chunk.subarray(0, take).equals(PREFACE.subarray(at, at + take))) {
          throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "bad connection preface");
        }
        this.prefaceLeft -= take;
        if (take === chunk.length) return;
        chunk = chunk.subarray(take);
      }
      this.parser.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  dataStart(streamId: number, _flags: number, length: number): void {
    this.receivedFrames[FrameType.DATA] = (this.receivedFrames[FrameType.DATA] ?? 0) + 1;
    if (length > this.recvWindow) {
      throw new Http2SpikeError(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded");
    }
    this.recvWindow -= length;
    const stream = this.streams.get(streamId);
    this.discarding = stream === undefined || stream.remoteEnded;
    if (stream === undefined || stream.remoteEnded) {
      // closed or unknown stream: the bytes still count against the connection; give them back
      this.credit(length);
      if (stream === undefined && streamId > this.lastPeerStreamId && this.role === "server") {
        throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream");
      }
      this.queue(rstStreamFrame(streamId, ErrorCode.STREAM_CLOSED));
      return;
    }
    stream.onDataStart(length);
  }

  data(streamId: number, piece: Buffer): void {
    if (!this.discarding) this.streams.get(streamId)?.onData(piece);
  }

  dataEnd(streamId: number, flags: number, padding: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined || this.discarding) return;
    // padding is flow-controlled but never reaches the reader: credit it now
    if (padding > 0) stream.creditPadding(padding);
    if (flags & Flag.END_STREAM) stream.onRemoteEnd();
  }

  frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (type < this.receivedFrames.length) {
      this.receivedFrames[type] = (this.receivedFrames[type] ?? 0) + 1;
    }
    switch (type) {
      case FrameType.SETTINGS:
        this.onSettings(flags, streamId, payload);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(streamId, payload);
        return;
      case FrameType.HEADERS:
        this.onHeaders(flags, streamId, payload);
        return;
      case FrameType.PING:
        if (payload.length !== 8) throw new Http2SpikeError(ErrorCode.FRAME_SIZE_ERROR, "PING");
        if (!(flags & Flag.ACK)) {
          this.queue(frame(FrameType.PING, Flag.ACK, 0, Buffer.from(payload)));
        }
        return;
      case FrameType.RST_STREAM: {
        const code = payload.readUInt32BE(0);
        this.streams.get(streamId)?.onReset(code);
        return;
      }
      case FrameType.GOAWAY:
        this.closed = true;
        for (const s of this.streams.values()) {
          if (s.id > payload.readUInt32BE(0)) s.onReset(ErrorCode.CANCEL);
        }
        return;
      case FrameType.CONTINUATION:
      case FrameType.PUSH_PROMISE:
        throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, `frame type ${type} not supported`);
      default:
        return; // PRIORITY and unknown types are ignored (RFC 9113 §5.5)
    }
  }

  private onSettings(flags: number, streamId: number, p: Buffer): void {
    if (streamId !== 0) throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) return;
    if (p.length % 6 !== 0) throw new Http2SpikeError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS");
    for (let i = 0; i < p.length; i += 6) {
      const id = p.readUInt16BE(i);
      const value = p.readUInt32BE(i + 2);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) {
          throw new Http2SpikeError(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE");
        }
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) {
          throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE");
        }
        this.peerMaxFrame = value;
      }
    }
    this.queue(SETTINGS_ACK);
  }

  private onWindowUpdate(streamId: number, p: Buffer): void {
    if (p.length !== 4) throw new Http2SpikeError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE");
    const inc = p.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (inc === 0 || this.sendWindow + inc > MAX_WINDOW) {
        throw new Http2SpikeError(ErrorCode.FLOW_CONTROL_ERROR, "connection WINDOW_UPDATE");
      }
      this.sendWindow += inc;
    } else {
      const s = this.streams.get(streamId);
      if (s === undefined) return;
      if (inc === 0 || s.sendWindow + inc > MAX_WINDOW) {
        s.onReset(ErrorCode.FLOW_CONTROL_ERROR);
        this.queue(rstStreamFrame(streamId, ErrorCode.FLOW_CONTROL_ERROR));
        return;
      }
      s.sendWindow += inc;
    }
    this.scheduleFlush();
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (!(flags & Flag.END_HEADERS)) {
      throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION is not supported");
    }
    let block = payload;
    if (flags & Flag.PADDED) {
      const pad = block[0] as number;
      block = block.subarray(1, block.length - pad);
    }
    if (flags & Flag.PRIORITY) block = block.subarray(5);
    const headers = this.hpack.decode(block);
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      existing.onHeaders(headers, (flags & Flag.END_STREAM) !== 0);
      return;
    }
    if (this.role !== "server" || streamId % 2 === 0 || streamId <= this.lastPeerStreamId) {
      throw new Http2SpikeError(ErrorCode.PROTOCOL_ERROR, `unexpected HEADERS on ${streamId}`);
    }
    this.lastPeerStreamId = streamId;
    const stream = new PumpStream(this, streamId);
    this.streams.set(streamId, stream);
    if (flags & Flag.END_STREAM) stream.onRemoteEnd();
    const method = headers.find(([n]) => n === ":method")?.[1];
    if (method !== "CONNECT" || this.onStream === undefined) {
      stream.respond(400);
      stream.end();
      return;
    }
    this.onStream(stream, headers);
  }

  /** Gives `n` consumed bytes back to the peer's connection window (batched). */
  credit(n: number): void {
    this.recvUncredited += n;
    if (this.recvUncredited >= this.connectionWindow / this.creditDivisor) {
      this.recvWindow += this.recvUncredited;
      this.queue(windowUpdateFrame(0, this.recvUncredited));
      this.recvUncredited = 0;
    }
  }

  forget(stream: PumpStream): void {
    this.streams.delete(stream.id);
  }

  private onSocketGone(err: Error | undefined): void {
    this.closed = true;
    for (const s of this.streams.values()) {
      if (!s.destroyed) s.destroy(err ?? (s.remoteEnded ? undefined : new Error("socket closed")));
    }
    this.streams.clear();
  }
}

type WriteCallback = (err?: Error | null) => void;

/**
 * One CONNECT stream as a Duplex: writes become DATA frames, received DATA pieces are pushed as
 * they are (subarrays of TLS chunks), `end()` sends END_STREAM, END_STREAM ends the readable side.
 */
export class PumpStream extends Duplex {
  /** The peer's window for this stream: what we may still send. */
  sendWindow: number;
  pendingBytes = 0;
  endRequested = false;
  endWasSent = false;
  remoteEnded = false;
  status: number | undefined;
  private pending: Buffer[] = [];
  private heldWrite: WriteCallback | undefined;
  private heldFinal: WriteCallback | undefined;
  /** Flow control on receive: payload bytes received, bytes credited back, the window left. */
  private received = 0;
  private credited = 0;
  private recvWindow: number;

  constructor(
    readonly conn: FramePumpConnection,
    readonly id: number,
  ) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: conn.sendBuffer,
      writableHighWaterMark: conn.sendBuffer,
    });
    this.sendWindow = conn.peerInitialWindow;
    this.recvWindow = conn.streamWindow;
  }

  /** Server: sends the response HEADERS (200 opens the tunnel). */
  respond(status = 200): void {
    const block = encodeHeaderBlock([[":status", String(status)]]);
    this.conn.queue(frameHeader(block.length, FrameType.HEADERS, Flag.END_HEADERS, this.id), block);
  }

  // --- Duplex ---

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.conn.scheduleFlush();
    if (this.pendingBytes < this.conn.sendBuffer) cb();
    else this.heldWrite = cb;
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: WriteCallback): void {
    for (const { chunk } of chunks) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    this.conn.scheduleFlush();
    if (this.pendingBytes < this.conn.sendBuffer) cb();
    else this.heldWrite = cb;
  }

  override _final(cb: WriteCallback): void {
    this.endRequested = true;
    this.heldFinal = cb;
    this.conn.scheduleFlush();
  }

  override _read(): void {
    this.maybeCredit();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!(this.endWasSent && this.remoteEnded)) {
      this.conn.queue(rstStreamFrame(this.id, ErrorCode.CANCEL));
    }
    this.releaseConnectionCredit();
    this.conn.forget(this);
    cb(err);
  }

  // --- called by the connection ---

  hasOutput(): boolean {
    return this.pendingBytes > 0 || (this.endRequested && !this.endWasSent);
  }

  /** Hands the first `n` pending bytes to `write`, splitting a chunk without copying. */
  takePending(n: number, write: (piece: Buffer) => void): void {
    this.pendingBytes -= n;
    while (n > 0) {
      const head = this.pending[0] as Buffer;
      if (head.length <= n) {
        this.pending.shift();
        write(head);
        n -= head.length;
      } else {
        write(head.subarray(0, n));
        this.pending[0] = head.subarray(n);
        n = 0;
      }
    }
  }

  releaseWriter(): void {
    if (this.heldWrite !== undefined && this.pendingBytes < this.conn.sendBuffer) {
      const cb = this.heldWrite;
      this.heldWrite = undefined;
      cb();
    }
  }

  endSent(): void {
    this.endWasSent = true;
    const cb = this.heldFinal;
    this.heldFinal = undefined;
    cb?.();
    if (this.remoteEnded) this.conn.forget(this);
  }

  onHeaders(headers: HeaderList, endStream: boolean): void {
    const status = headers.find(([n]) => n === ":status")?.[1];
    if (status !== undefined && this.status === undefined) {
      this.status = Number(status);
      this.emit("response", this.status, headers);
      if (this.status !== 200) this.destroy(new Error(`CONNECT answered ${status}`));
    }
    if (endStream) this.onRemoteEnd();
  }

  onDataStart(length: number): void {
    if (length > this.recvWindow) {
      throw new Http2SpikeError(ErrorCode.FLOW_CONTROL_ERROR, `stream ${this.id} window exceeded`);
    }
    this.recvWindow -= length;
  }

  onData(piece: Buffer): void {
    if (this.destroyed) {
      this.conn.credit(piece.length);
      return;
    }
    this.received += piece.length;
    this.push(piece);
    if (this.readableLength === 0) this.maybeCredit();
  }

  /** Padding is flow-controlled but never reaches the reader: it is credited at once. */
  creditPadding(n: number): void {
    this.recvWindow += n;
    this.conn.credit(n);
    if (!this.remoteEnded) this.conn.queue(windowUpdateFrame(this.id, n));
  }

  onRemoteEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.releaseConnectionCredit();
    this.push(null);
    if (this.endWasSent) this.conn.forget(this);
  }

  /**
   * Once no more DATA can come on this stream, what it holds unread no longer needs a stream
   * window, but the connection window must get it back (bounded by the stream window anyway).
   */
  private releaseConnectionCredit(): void {
    const owed = this.received - this.credited;
    this.credited = this.received;
    if (owed > 0) this.conn.credit(owed);
  }

  onReset(code: number): void {
    this.remoteEnded = true;
    this.endWasSent = true;
    if (code === ErrorCode.NO_ERROR || code === ErrorCode.CANCEL) {
      this.push(null);
      this.destroy();
    } else {
      this.destroy(new Error(`stream reset with code ${code}`));
    }
  }

  /** Credits what the reader consumed, window / creditDivisor at a time. */
  private maybeCredit(): void {
    if (this.remoteEnded) return;
    const consumed = this.received - this.readableLength - this.credited;
    if (consumed >= this.conn.streamWindow / this.conn.creditDivisor) {
      this.credited += consumed;
      this.recvWindow += consumed;
      this.conn.queue(windowUpdateFrame(this.id, consumed));
      this.conn.credit(consumed);
    }
  }
}
