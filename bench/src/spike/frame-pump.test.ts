import { createHash, randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { clientTlsOptions, serverTlsOptions } from "@ambientkit/hbone";
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  encodeHeaderBlock,
  Flag,
  FrameParser,
  FramePumpConnection,
  type FrameSink,
  FrameType,
  frame,
  frameHeader,
  HpackDecoder,
  Http2SpikeError,
  PREFACE,
  type PumpStream,
  SETTINGS_ACK,
  Setting,
  settingsFrame,
  windowUpdateFrame,
} from "./frame-pump.js";
import { fixture } from "./setup.js";

type Event =
  | ["frame", number, number, number, string]
  | ["dataStart", number, number, number]
  | ["data", number, string]
  | ["dataEnd", number, number, number];

/** Records what the parser hands on; DATA pieces are joined per frame so splits compare equal. */
function recorder(): { sink: FrameSink; events: Event[]; pieces: Buffer[] } {
  const events: Event[] = [];
  const pieces: Buffer[] = [];
  const sink: FrameSink = {
    frame: (t, f, s, p) => events.push(["frame", t, f, s, p.toString("hex")]),
    dataStart: (s, f, l) => events.push(["dataStart", s, f, l]),
    data: (s, piece) => {
      pieces.push(piece);
      const last = events.at(-1);
      if (last?.[0] === "data" && last[1] === s) last[2] += piece.toString("hex");
      else events.push(["data", s, piece.toString("hex")]);
    },
    dataEnd: (s, f, p) => events.push(["dataEnd", s, f, p]),
  };
  return { sink, events, pieces };
}

/** Hand-built frames, byte by byte as RFC 9113 §4.1 lays them out. */
const HAND_BUILT = Buffer.concat([
  // SETTINGS: INITIAL_WINDOW_SIZE = 4 MiB, MAX_FRAME_SIZE = 1 MiB
  Buffer.from("00000c040000000000" + "0004" + "00400000" + "0005" + "00100000", "hex"),
  // SETTINGS ACK
  Buffer.from("000000040100000000", "hex"),
  // WINDOW_UPDATE stream 0, +16,711,681 (16 MiB - 65,535)
  Buffer.from("000004080000000000" + "00ff0001", "hex"),
  // DATA stream 1, "hello"
  Buffer.from("000005000000000001" + "68656c6c6f", "hex"),
  // DATA stream 1, PADDED (pad length 3), END_STREAM, "abc" + 3 zero bytes
  Buffer.from("000007000900000001" + "03" + "616263" + "000000", "hex"),
  // an unknown frame type 0x42, which must be handed on (and ignored by the connection)
  Buffer.from("000002420000000003" + "abcd", "hex"),
  // empty DATA with END_STREAM on stream 3
  Buffer.from("000000000100000003", "hex"),
  // PING
  Buffer.from("000008060000000000" + "0102030405060708", "hex"),
]);

const EXPECTED: Event[] = [
  ["frame", FrameType.SETTINGS, 0, 0, "0004004000000005" + "00100000"],
  ["frame", FrameType.SETTINGS, Flag.ACK, 0, ""],
  ["frame", FrameType.WINDOW_UPDATE, 0, 0, "00ff0001"],
  ["dataStart", 1, 0, 5],
  ["data", 1, "68656c6c6f"],
  ["dataEnd", 1, 0, 0],
  ["dataStart", 1, Flag.PADDED | Flag.END_STREAM, 7],
  ["data", 1, "616263"],
  ["dataEnd", 1, Flag.PADDED | Flag.END_STREAM, 4],
  ["frame", 0x42, 0, 3, "abcd"],
  ["dataStart", 3, Flag.END_STREAM, 0],
  ["dataEnd", 3, Flag.END_STREAM, 0],
  ["frame", FrameType.PING, 0, 0, "0102030405060708"],
];

describe("frame codec", () => {
  it("encodes frame headers and control frames as RFC 9113 lays them out", () => {
    expect(frameHeader(0x10203, FrameType.DATA, Flag.END_STREAM, 0x80000005).toString("hex")).toBe(
      "010203000100000005", // the reserved bit is cleared
    );
    expect(
      settingsFrame([
        [Setting.INITIAL_WINDOW_SIZE, 4 * 1024 * 1024],
        [Setting.MAX_FRAME_SIZE, 1024 * 1024],
      ]).toString("hex"),
    ).toBe("00000c040000000000" + "000400400000" + "000500100000");
    expect(SETTINGS_ACK.toString("hex")).toBe("000000040100000000");
    expect(windowUpdateFrame(3, 65_536).toString("hex")).toBe("000004080000000003" + "00010000");
    expect(frame(FrameType.PING, Flag.ACK, 0, Buffer.alloc(8)).length).toBe(17);
    expect(PREFACE.toString("latin1")).toBe("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  });

  it("parses hand-built frames fed whole", () => {
    const r = recorder();
    new FrameParser(r.sink).push(HAND_BUILT);
    expect(r.events).toEqual(EXPECTED);
  });

  it("parses the same frames split at every offset, and byte by byte", () => {
    for (let at = 1; at < HAND_BUILT.length; at++) {
      const r = recorder();
      const p = new FrameParser(r.sink);
      p.push(HAND_BUILT.subarray(0, at));
      p.push(HAND_BUILT.subarray(at));
      expect(r.events, `split at ${at}`).toEqual(EXPECTED);
    }
    const r = recorder();
    const p = new FrameParser(r.sink);
    for (let i = 0; i < HAND_BUILT.length; i++) p.push(HAND_BUILT.subarray(i, i + 1));
    expect(r.events).toEqual(EXPECTED);
  });

  it("hands DATA payloads on as views of the received chunk (no copy)", () => {
    const r = recorder();
    const chunk = Buffer.from(HAND_BUILT);
    new FrameParser(r.sink).push(chunk);
    expect(r.pieces.length).toBe(2);
    for (const piece of r.pieces) expect(piece.buffer).toBe(chunk.buffer);
    // a DATA frame split across two chunks arrives as two views, one of each chunk
    const big = Buffer.concat([frameHeader(10, FrameType.DATA, 0, 1), Buffer.from("0123456789")]);
    const a = Buffer.from(big.subarray(0, 14));
    const b = Buffer.from(big.subarray(14));
    const r2 = recorder();
    const p = new FrameParser(r2.sink);
    p.push(a);
    p.push(b);
    expect(r2.pieces.map((x) => x.toString())).toEqual(["01234", "56789"]);
    expect(r2.pieces[0]?.buffer).toBe(a.buffer);
    expect(r2.pieces[1]?.buffer).toBe(b.buffer);
  });

  it("rejects a frame longer than our MAX_FRAME_SIZE and padding longer than the frame", () => {
    const p = new FrameParser(recorder().sink, 16_384);
    expect(() => p.push(frameHeader(16_385, FrameType.DATA, 0, 1))).toThrow(
      expect.objectContaining({ h2code: ErrorCode.FRAME_SIZE_ERROR }),
    );
    const q = new FrameParser(recorder().sink);
    expect(() => q.push(Buffer.from("000002000800000001" + "05" + "00", "hex"))).toThrow(
      Http2SpikeError,
    );
  });
});

describe("HPACK subset", () => {
  it("encodes a CONNECT request without Huffman or indexing, and decodes it back", () => {
    const headers: Array<[string, string]> = [
      [":method", "CONNECT"],
      [":authority", "10.0.0.2:8080"],
      ["baggage", "k8s.namespace.name=default"],
    ];
    const block = encodeHeaderBlock(headers);
    // :method (static 2) literal without indexing, 7 bytes "CONNECT"
    expect(block.subarray(0, 9).toString("hex")).toBe("0207434f4e4e454354");
    expect(new HpackDecoder().decode(block)).toEqual(headers);
    expect(encodeHeaderBlock([[":status", "200"]]).toString("hex")).toBe("88");
  });

  it("decodes RFC 7541 C.3 (requests without Huffman) with its dynamic table", () => {
    const d = new HpackDecoder();
    expect(d.decode(Buffer.from("828684410f7777772e6578616d706c652e636f6d", "hex"))).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    expect(d.decode(Buffer.from("828684be58086e6f2d6361636865", "hex"))).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    expect(() => d.decode(Buffer.from("0081ff0161", "hex"))).toThrow(/Huffman/);
  });
});

/**
 * Two connected byte streams that re-chunk everything written at awkward sizes (1 byte to ~40 KiB,
 * so frame headers and payloads split anywhere) and deliver it on a later turn.
 */
function awkwardPair(seed: number): [Duplex, Duplex] {
  let x = seed;
  const rnd = (): number => {
    x = (x * 1_103_515_245 + 12_345) >>> 0;
    return x;
  };
  const sizes = [1, 2, 7, 8, 9, 10, 17, 4095, 16_384, 16_393, 40_000];
  const make = (): Duplex & { peer?: Duplex } =>
    new Duplex({
      write(chunk: Buffer, _enc, cb) {
        const peer = (this as { peer?: Duplex }).peer as Duplex;
        let off = 0;
        const parts: Buffer[] = [];
        while (off < chunk.length) {
          const n = rnd() % 3 === 0 ? (sizes[rnd() % sizes.length] as number) : 1 + (rnd() % 3000);
          parts.push(chunk.subarray(off, off + n));
          off += n;
        }
        setImmediate(() => {
          for (const p of parts) peer.push(p);
          cb();
        });
      },
      writev(chunks: Array<{ chunk: Buffer }>, cb) {
        (this as Duplex)._write(
          Buffer.concat(chunks.map((c) => c.chunk)),
          "buffer" as BufferEncoding,
          cb as (e?: Error | null) => void,
        );
      },
      read() {},
      final(cb) {
        const peer = (this as { peer?: Duplex }).peer as Duplex;
        setImmediate(() => peer.push(null));
        cb();
      },
    });
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

function sha256(bufs: Buffer[]): string {
  const h = createHash("sha256");
  for (const b of bufs) h.update(b);
  return h.digest("hex");
}

function collect(s: PumpStream): Promise<Buffer[]> {
  const got: Buffer[] = [];
  s.on("data", (c: Buffer) => got.push(Buffer.from(c)));
  return new Promise((resolve, reject) => {
    s.once("end", () => resolve(got));
    s.once("error", reject);
  });
}

/** Writes `data` in uneven pieces with backpressure, then ends. */
async function send(s: PumpStream, data: Buffer, seed: number): Promise<void> {
  let off = 0;
  let i = seed;
  while (off < data.length) {
    i = (i * 31 + 7) % 1000;
    const n = Math.min(data.length - off, 1 + i * 211);
    if (!s.write(data.subarray(off, off + n))) await new Promise((r) => s.once("drain", r));
    off += n;
  }
  s.end();
}

describe("frame pump connection", () => {
  it("moves 32 MiB each way byte-exact through awkward chunk boundaries (echo)", async () => {
    const [a, b] = awkwardPair(42);
    const server = new FramePumpConnection(b, "server");
    let requested: Array<[string, string]> = [];
    server.onStream = (stream, headers) => {
      requested = headers;
      stream.respond(200);
      stream.pipe(stream);
    };
    const client = new FramePumpConnection(a, "client");
    const stream = client.connect("10.0.0.2:8080");
    const status = await new Promise((r) => stream.once("response", r));
    expect(status).toBe(200);
    expect(requested).toEqual([
      [":method", "CONNECT"],
      [":authority", "10.0.0.2:8080"],
    ]);
    const data = randomBytes(32 * 1024 * 1024);
    const back = collect(stream);
    await send(stream, data, 1);
    const got = await back;
    expect(got.reduce((n, c) => n + c.length, 0)).toBe(data.length);
    expect(sha256(got)).toBe(sha256([data]));
    // 1 MiB frames were allowed and used; flow control ran both ways
    expect(client.peerMaxFrame).toBe(1024 * 1024);
    expect(client.sentFrames[FrameType.DATA]).toBeLessThan(200);
    expect(client.receivedFrames[FrameType.WINDOW_UPDATE]).toBeGreaterThan(32);
    expect(server.receivedFrames[FrameType.WINDOW_UPDATE]).toBeGreaterThan(32);
    a.destroy();
    b.destroy();
  }, 60_000);

  it("moves 32 MiB byte-exact over TLS 1.3 with ALPN h2 and the bench certificates", async () => {
    const fx = await fixture();
    const received: Buffer[] = [];
    let serverConn: FramePumpConnection | undefined;
    const done = new Promise<void>((resolve) => {
      const server = tls.createServer(serverTlsOptions(fx.server), (socket) => {
        serverConn = new FramePumpConnection(socket, "server");
        serverConn.onStream = (stream) => {
          stream.respond(200);
          stream.on("data", (c: Buffer) => received.push(Buffer.from(c)));
          stream.on("end", () => {
            server.close();
            resolve();
          });
        };
      });
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as net.AddressInfo).port;
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          ...clientTlsOptions(fx.client, [fx.serverId]),
        });
        socket.once("secureConnect", () => {
          expect(socket.getProtocol()).toBe("TLSv1.3");
          expect(socket.alpnProtocol).toBe("h2");
          const conn = new FramePumpConnection(socket, "client");
          const stream = conn.connect("127.0.0.1:9");
          stream.on("error", () => {}); // the socket closes under it at the end
          stream.once("response", () => {
            void send(stream, data, 5);
          });
          stream.once("finish", () => setTimeout(() => socket.end(), 10));
        });
      });
    });
    const data = randomBytes(32 * 1024 * 1024);
    await done;
    expect(sha256(received)).toBe(sha256([data]));
    // frames are as large as the writer's queue allows (up to 1 MiB), not node's 16 KiB
    expect(serverConn?.receivedFrames[FrameType.DATA]).toBeLessThan(512);
  }, 60_000);

  it("stops the sender at the stream window when the reader does not read", async () => {
    const [a, b] = awkwardPair(7);
    const server = new FramePumpConnection(b, "server");
    let serverStream: PumpStream | undefined;
    server.onStream = (stream) => {
      stream.on("error", () => {}); // its socket is destroyed at the end
      serverStream = stream;
      stream.respond(200);
      stream.pause();
    };
    const client = new FramePumpConnection(a, "client");
    const stream = client.connect("10.0.0.2:80");
    stream.on("error", () => {});
    await new Promise((r) => stream.once("response", r));
    for (let i = 0; i < 64; i++) stream.write(Buffer.alloc(256 * 1024, i));
    await new Promise((r) => setTimeout(r, 300));
    // 4 MiB stream window: the server holds exactly that much, the rest waits at the client
    expect(serverStream?.readableLength).toBe(4 * 1024 * 1024);
    expect(stream.pendingBytes).toBeGreaterThan(0);
    expect(client.stats.blockedOnWindow).toBeGreaterThan(0);
    // reading resumes the flow
    const got = collect(serverStream as PumpStream);
    serverStream?.resume();
    stream.end();
    const all = await got;
    expect(all.reduce((n, c) => n + c.length, 0)).toBe(16 * 1024 * 1024);
    a.destroy();
    b.destroy();
  }, 30_000);

  it("speaks valid HTTP/2 to node:http2 (nghttp2) as the server: CONNECT, 8 MiB echo", async () => {
    const server = http2.createServer({
      settings: { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 },
    });
    let authority: string | undefined;
    server.on("stream", (s, headers) => {
      authority = headers[":authority"];
      // no `date`: node would Huffman-code it, which the spike's decoder does not do
      s.respond({ ":status": 200 }, {
        sendDate: false,
      } as http2.ServerStreamResponseOptions);
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const conn = new FramePumpConnection(socket, "client");
    const stream = conn.connect("10.0.0.1:80", [["baggage", "k8s.namespace.name=default"]]);
    stream.on("error", () => {});
    expect(await new Promise((r) => stream.once("response", r))).toBe(200);
    expect(authority).toBe("10.0.0.1:80");
    const data = randomBytes(8 * 1024 * 1024);
    const back = collect(stream);
    await send(stream, data, 3);
    expect(sha256(await back)).toBe(sha256([data]));
    socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }, 30_000);

  it("answers a malformed peer with GOAWAY and closes", async () => {
    const [a, b] = awkwardPair(3);
    const server = new FramePumpConnection(b, "server");
    const got: Buffer[] = [];
    a.on("data", (c: Buffer) => got.push(c));
    a.write(Buffer.from("GET / HTTP/1.1\r\n\r\nxxxxxx"));
    await new Promise((r) => setTimeout(r, 50));
    const out = Buffer.concat(got);
    // server preface (SETTINGS, WINDOW_UPDATE), then GOAWAY(PROTOCOL_ERROR)
    const goaway = out.indexOf(Buffer.from([0, 0, 8, FrameType.GOAWAY]));
    expect(goaway).toBeGreaterThan(0);
    expect(out.readUInt32BE(goaway + 13)).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(server.streams.size).toBe(0);
  });
});
