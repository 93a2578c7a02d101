#!/usr/bin/python3
"""An independent HBONE peer built on python3-h2 (Debian python3-h2) and the ssl module.

server mode: TLS 1.3 + ALPN h2 + required client cert; answers CONNECT with 200 and echoes the
stream (END_STREAM after the echo), answers non-CONNECT with 400 and `:authority` "status-NNN:1"
with NNN. Prints {"port": N} and serves until killed.

client mode: one connection; runs an action and prints a JSON result:
  echo AUTHORITY NBYTES        CONNECT, send NBYTES random bytes, END_STREAM, read to the end
  status METHOD AUTHORITY      send one request and report the :status (or the reset)
  rapid-reset AUTHORITY COUNT  send COUNT x (HEADERS CONNECT + RST_STREAM CANCEL) back to back
  peer-first AUTHORITY         CONNECT, read until the peer's END_STREAM, then send "late" + END_STREAM
"""
import hashlib, json, os, socket, ssl, sys, threading

import h2.config, h2.connection, h2.events, h2.errors, h2.exceptions, h2.settings

# h2 4.x validates a plain CONNECT as if it needed :path/:scheme (it only knows extended CONNECT),
# so header validation is off; framing, HPACK and flow control are still h2's own.

def ctx(server, cert, key, ca):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    c.load_cert_chain(cert, key)
    c.load_verify_locations(ca)
    c.verify_mode = ssl.CERT_REQUIRED
    if not server:
        c.check_hostname = False
    c.set_alpn_protocols(["h2"])
    return c

def flush(sock, conn):
    data = conn.data_to_send()
    if data:
        sock.sendall(data)

class Sender:
    """Sends buffered data per stream within the flow-control windows."""
    def __init__(self, conn):
        self.conn, self.pending, self.ending = conn, {}, set()
    def queue(self, sid, data, end=False):
        self.pending.setdefault(sid, bytearray()).extend(data)
        if end:
            self.ending.add(sid)
        self.pump()
    def pump(self):
        for sid in list(self.pending):
            buf = self.pending[sid]
            try:
                while buf:
                    n = min(len(buf), self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                    if n <= 0:
                        break
                    self.conn.send_data(sid, bytes(buf[:n]))
                    del buf[:n]
                if not buf and sid in self.ending:
                    self.conn.end_stream(sid)
                    self.ending.discard(sid)
                    del self.pending[sid]
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                self.pending.pop(sid, None)
                self.ending.discard(sid)

def serve_conn(tls_sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=False, validate_outbound_headers=False))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024})
    conn.increment_flow_control_window(15 * 1024 * 1024)
    flush(tls_sock, conn)
    sender = Sender(conn)
    banner = {}
    try:
        while True:
            data = tls_sock.recv(262144)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    auth = h.get(":authority", "")
                    if h.get(":method") != "CONNECT":
                        conn.send_headers(ev.stream_id, [(":status", "400")], end_stream=True)
                    elif auth.startswith("status-"):
                        conn.send_headers(ev.stream_id, [(":status", auth[7:10])], end_stream=True)
                    elif auth.startswith("reset-"):
                        # 200, one DATA frame, then RST_STREAM with the code in the authority
                        conn.send_headers(ev.stream_id, [(":status", "200")])
                        conn.send_data(ev.stream_id, b"y")
                        conn.reset_stream(ev.stream_id, int(auth[6:auth.index(":")]))
                    elif auth.startswith("banner"):
                        conn.send_headers(ev.stream_id, [(":status", "200")])
                        conn.send_data(ev.stream_id, b"banner", end_stream=True)
                        banner[ev.stream_id] = bytearray()
                    else:
                        conn.send_headers(ev.stream_id, [(":status", "200")])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id in banner:
                        banner[ev.stream_id].extend(ev.data)
                    else:
                        sender.queue(ev.stream_id, ev.data)
                elif isinstance(ev, h2.events.StreamEnded):
                    if ev.stream_id in banner:
                        print(json.dumps({"banner_received": banner.pop(ev.stream_id).decode()}), flush=True)
                    else:
                        sender.queue(ev.stream_id, b"", end=True)
                elif isinstance(ev, h2.events.WindowUpdated):
                    sender.pump()
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            flush(tls_sock, conn)
    except (OSError, h2.exceptions.ProtocolError) as e:
        print(json.dumps({"conn_error": str(e)}), flush=True)
        return
    finally:
        try:
            tls_sock.close()
        except OSError:
            pass

def server(cert, key, ca):
    c = ctx(True, cert, key, ca)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
    while True:
        raw, _ = ls.accept()
        def handle(raw=raw):
            try:
                s = c.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print(json.dumps({"tls_error": str(e)}), flush=True)
                raw.close()
                return
            serve_conn(s)
        threading.Thread(target=handle, daemon=True).start()

def client(port, cert, key, ca, action, args):
    c = ctx(False, cert, key, ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        s = c.wrap_socket(raw)
    except (ssl.SSLError, OSError) as e:
        return {"tls_error": str(e)}
    peer = s.getpeercert()
    sans = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_inbound_headers=False, validate_outbound_headers=False))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024})
    conn.increment_flow_control_window(15 * 1024 * 1024)
    flush(s, conn)
    out = {"peer_sans": sans, "tls_version": s.version(), "alpn": s.selected_alpn_protocol(), "cipher": s.cipher()[0]}
    sender = Sender(conn)

    if action == "rapid-reset":
        authority, count = args[0], int(args[1])
        sent = 0
        try:
            for i in range(count):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)])
                conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
                if i % 20 == 0:
                    flush(s, conn)
            flush(s, conn)
        except (OSError, h2.exceptions.ProtocolError):
            pass
        out["sent"] = sent
        s.settimeout(10)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    out["closed"] = True
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        out["goaway"] = int(ev.error_code)
                flush(s, conn)
        except (OSError, h2.exceptions.ProtocolError) as e:
            out["closed"] = True
            out["error"] = str(e)
        return out

    if action == "status":
        method, authority = args[0], args[1]
        headers = [(":method", method), (":authority", authority)]
        if method != "CONNECT":
            headers = [(":method", method), (":scheme", "https"), (":path", "/"), (":authority", authority)]
    else:
        headers = [(":method", "CONNECT"), (":authority", args[0])]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers)
    flush(s, conn)
    payload = os.urandom(int(args[1])) if action == "echo" else b""
    if action == "echo":
        out["sent_sha256"] = hashlib.sha256(payload).hexdigest()
    recv = hashlib.sha256()
    nrecv = 0
    started = False
    while True:
        data = s.recv(262144)
        if not data:
            out["eof"] = True
            break
        done = False
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = int(dict(ev.headers)[":status"])
                if action == "status" or out["status"] != 200:
                    done = True
                elif action == "echo" and not started:
                    started = True
                    sender.queue(sid, payload, end=True)
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                recv.update(ev.data)
                nrecv += len(ev.data)
            elif isinstance(ev, h2.events.WindowUpdated):
                sender.pump()
            elif isinstance(ev, h2.events.StreamEnded):
                if action == "peer-first":
                    out["received_before_late"] = nrecv
                    sender.queue(sid, b"late", end=True)
                    action = "peer-first-sent"
                else:
                    done = True
            elif isinstance(ev, h2.events.StreamReset):
                out["reset"] = int(ev.error_code)
                done = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["goaway"] = int(ev.error_code)
                done = True
        flush(s, conn)
        if action == "peer-first-sent" and sid not in sender.pending:
            break
        if done:
            break
    out["recv_sha256"] = recv.hexdigest()
    out["recv_bytes"] = nrecv
    s.close()
    return out

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        server(*sys.argv[2:5])
    else:
        port, cert, key, ca, action = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
        try:
            result = client(port, cert, key, ca, action, sys.argv[7:])
        except (OSError, h2.exceptions.ProtocolError) as e:
            result = {"error": str(e)}
        print(json.dumps(result), flush=True)
