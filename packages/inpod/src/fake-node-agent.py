#!/usr/bin/python3
"""A stand-in for istio-cni's node agent, the ZDS server side, run by @ambientkit/inpod/testing's
FakeNodeAgent (and so by this package's own ZdsClient tests).

Independent of the TypeScript code under test: protobuf is encoded by field number by hand (from
proto/zds.proto, whose field table follows istio/ztunnel's proto/zds.proto, Apache-2.0; no code is
copied from Istio) and the socket is Python's own AF_UNIX/SOCK_SEQPACKET with SCM_RIGHTS
(socket.send_fds: Python 3.9+, standard library only). Written for this repository, Apache-2.0.

Usage: fake-node-agent.py SOCKET_PATH
Reads one JSON command per line on stdin, answers one JSON line per command on stdout:
  {"op": "accept"}                        -> {"hello": "<hex of the ZdsHello datagram>"}
  {"op": "add", "uid": U, "info": {"name","namespace","sa"} | null}
  {"op": "keep", "uid": U} / {"op": "del", "uid": U} / {"op": "snapshot"}
  {"op": "raw", "hex": H}                  -> sends those bytes as one datagram
  {"op": "big", "size": N}                 -> sends an N-byte datagram (a valid-looking prefix)
      each of these may carry "fds": [path, ...] (opened and sent by SCM_RIGHTS) and answers
      {"ack": "<error, empty on success>"} or {"eof": true}
  {"op": "disconnect"}                     -> closes the current connection, {"ok": true}
  {"op": "quit"}                           -> exits
"""
import json
import os
import socket
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_str(num, s):
    return field_bytes(num, s.encode())


def workload_request(case, body):
    # WorkloadRequest oneof payload: add = 1, del = 2, snapshot_sent = 3, keep = 5
    return field_bytes({"add": 1, "del": 2, "snapshot_sent": 3, "keep": 5}[case], body)


def add_body(uid, info):
    body = field_str(1, uid)  # AddWorkload.uid = 1
    if info is not None:
        wi = field_str(1, info["name"]) + field_str(2, info["namespace"]) + field_str(3, info["sa"])
        body += field_bytes(2, wi)  # AddWorkload.workload_info = 2
    return body


def parse_ack(data):
    # WorkloadResponse { ack = 1 { error = 1 } }; enough of a decoder for what ztunnel sends
    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = read_varint(buf, i)
            num, wt = key >> 3, key & 7
            if wt != 2:
                raise ValueError("unexpected wire type %d" % wt)
            n, i = read_varint(buf, i)
            yield num, buf[i : i + n]
            i += n

    for num, val in fields(data):
        if num == 1:
            for num2, val2 in fields(val):
                if num2 == 1:
                    return val2.decode()
            return ""
    raise ValueError("no ack in %r" % data)


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def main():
    path = sys.argv[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(4)
    srv.settimeout(10)
    conn = None

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"listening": path})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "accept":
            if conn is not None:
                conn.close()
            conn, _ = srv.accept()
            conn.settimeout(10)
            say({"hello": conn.recv(65536).hex()})
            continue
        if op == "disconnect":
            conn.close()
            conn = None
            say({"ok": True})
            continue
        fds = []
        if op == "add":
            data = workload_request("add", add_body(cmd["uid"], cmd.get("info")))
        elif op == "keep":
            data = workload_request("keep", field_str(1, cmd["uid"]))
        elif op == "del":
            data = workload_request("del", field_str(2, cmd["uid"]))  # DelWorkload.uid = 2
        elif op == "snapshot":
            data = workload_request("snapshot_sent", b"")
        elif op == "raw":
            data = bytes.fromhex(cmd["hex"])
        elif op == "big":
            data = workload_request("keep", field_str(1, "x" * cmd["size"]))
        else:
            raise ValueError("unknown op " + op)
        for p in cmd.get("fds", []):
            fds.append(os.open(p, os.O_RDONLY))
        try:
            if fds:
                socket.send_fds(conn, [data], fds)
            else:
                conn.send(data)
        finally:
            for fd in fds:
                os.close(fd)
        reply = conn.recv(65536)
        if not reply:
            say({"eof": True})
        else:
            say({"ack": parse_ack(reply)})
    if conn is not None:
        conn.close()
    srv.close()
    os.unlink(path)


if __name__ == "__main__":
    main()
