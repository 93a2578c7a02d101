#!/usr/bin/env python3
"""A scriptable istiod stand-in for @ambientkit/xds's tests, on an independent gRPC implementation
(Debian's python3-grpcio). It speaks delta ADS and IstioCertificateService by protobuf field number,
encoding and decoding by hand, so it shares no code with the TypeScript client it tests.

stdin: one JSON command per line. stdout: one JSON event per line.
  {"cmd":"push","typeUrl":..,"nonce":..,"resources":[{"name","version","workload"|"authorization"|"hex"}],"removed":[..]}
  {"cmd":"drop"}            end the current stream with UNAVAILABLE
  {"cmd":"token","value":x} from now on require "authorization: Bearer x"
Events: listening{port}, stream{id,authorization}, request{stream,typeUrl,subscribe,unsubscribe,
initialVersions,nonce,error}, stream-end{id}, csr{...}.
"""
import argparse
import base64
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc

OUT_LOCK = threading.Lock()


def emit(**event):
    with OUT_LOCK:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


# ---------- protobuf wire format by hand ----------

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n) if n else b""


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def f_str(field, s):
    return f_bytes(field, s) if s else b""


def read_varint(buf, i):
    shift = 0
    n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def fields(buf):
    """Yields (field, wire, value) for every field of one message."""
    i = 0
    while i < len(buf):
        k, i = read_varint(buf, i)
        field, wire = k >> 3, k & 7
        if wire == 0:
            v, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            v = bytes(buf[i:i + n])
            i += n
        elif wire == 1:
            v = bytes(buf[i:i + 8])
            i += 8
        elif wire == 5:
            v = bytes(buf[i:i + 4])
            i += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, v


def ip_bytes(ip):
    import ipaddress
    return ipaddress.ip_address(ip).packed


def encode_workload(w):
    # istio.workload.Workload: uid=20 name=1 namespace=2 addresses=3 network=4 tunnel_protocol=5
    # trust_domain=6 service_account=7 node=9 canonical_name=10 cluster_id=18
    out = f_str(20, w["uid"]) + f_str(1, w.get("name", "")) + f_str(2, w.get("namespace", ""))
    for ip in w.get("addresses", []):
        out += f_bytes(3, ip_bytes(ip))
    out += f_str(4, w.get("network", ""))
    out += f_varint(5, 1 if w.get("protocol") == "HBONE" else 0)
    out += f_str(6, w.get("trustDomain", "cluster.local")) + f_str(7, w.get("serviceAccount", "default"))
    out += f_str(9, w.get("node", ""))
    return out


def encode_address(w):
    # istio.workload.Address{workload=1}
    return f_bytes(1, encode_workload(w))


def encode_authorization(a):
    # istio.security.Authorization: name=1 namespace=2 scope=3 action=4 rules=5 dry_run=6
    # Rule{clauses=1} Clause{matches=2} Match{namespaces=1 StringMatch{exact=1}}
    out = f_str(1, a["name"]) + f_str(2, a["namespace"])
    out += f_varint(3, {"GLOBAL": 0, "NAMESPACE": 1, "WORKLOAD_SELECTOR": 2}[a.get("scope", "NAMESPACE")])
    out += f_varint(4, {"ALLOW": 0, "DENY": 1}[a.get("action", "ALLOW")])
    for ns_list in a.get("ruleNamespaces", []):
        match = b"".join(f_bytes(1, f_str(1, ns)) for ns in ns_list)
        clause = f_bytes(2, match)
        out += f_bytes(5, f_bytes(1, clause))
    return out


def encode_response(cmd):
    out = f_str(1, cmd.get("systemVersion", ""))
    for r in cmd.get("resources", []):
        if "workload" in r:
            body = encode_address(r["workload"])
            type_url = "type.googleapis.com/istio.workload.Address"
        elif "authorization" in r:
            body = encode_authorization(r["authorization"])
            type_url = "type.googleapis.com/istio.security.Authorization"
        else:
            body = bytes.fromhex(r["hex"])
            type_url = r.get("anyTypeUrl", cmd["typeUrl"])
        any_msg = f_str(1, r.get("anyTypeUrl", type_url)) + f_bytes(2, body)
        res = f_str(1, r.get("version", "")) + f_bytes(2, any_msg) + f_str(3, r.get("name", ""))
        out += f_bytes(2, res)
    out += f_str(4, cmd["typeUrl"]) + f_str(5, cmd.get("nonce", ""))
    for name in cmd.get("removed", []):
        out += f_bytes(6, name)
    return out


def decode_request(buf):
    req = {"typeUrl": "", "subscribe": [], "unsubscribe": [], "initialVersions": {}, "nonce": "", "error": None, "nodeId": None}
    for field, _, v in fields(buf):
        if field == 1:
            for nf, _, nv in fields(v):
                if nf == 1:
                    req["nodeId"] = nv.decode()
        elif field == 2:
            req["typeUrl"] = v.decode()
        elif field == 3:
            req["subscribe"].append(v.decode())
        elif field == 4:
            req["unsubscribe"].append(v.decode())
        elif field == 5:
            entry = dict((ef, ev.decode()) for ef, _, ev in fields(v))
            req["initialVersions"][entry.get(1, "")] = entry.get(2, "")
        elif field == 6:
            req["nonce"] = v.decode()
        elif field == 7:
            err = {"code": 0, "message": ""}
            for ef, _, ev in fields(v):
                if ef == 1:
                    err["code"] = ev
                elif ef == 2:
                    err["message"] = ev.decode()
            req["error"] = err
    return req


# ---------- the server ----------

class State:
    def __init__(self, token):
        self.token = token
        self.lock = threading.Lock()
        self.current = None  # queue of the newest stream
        self.next_id = 0
        self.ca = None


STATE = None
DROP = object()


def ads(request_iterator, context):
    md = dict(context.invocation_metadata())
    auth = md.get("authorization")
    with STATE.lock:
        STATE.next_id += 1
        sid = STATE.next_id
        q = queue.Queue()
        STATE.current = q
        token = STATE.token
    emit(event="stream", id=sid, authorization=auth)
    if token is not None and auth != "Bearer " + token:
        emit(event="stream-end", id=sid, reason="unauthenticated")
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication failure")

    def reader():
        try:
            for raw in request_iterator:
                r = decode_request(raw)
                r["stream"] = sid
                emit(event="request", **r)
        except Exception:
            pass
        q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        item = q.get()
        if item is None:
            emit(event="stream-end", id=sid, reason="client")
            return
        if item is DROP:
            emit(event="stream-end", id=sid, reason="dropped")
            context.abort(grpc.StatusCode.UNAVAILABLE, "dropped by the test")
        yield item


def create_certificate(request, context):
    md = dict(context.invocation_metadata())
    auth = md.get("authorization")
    csr_pem = ""
    ttl = 0
    meta = {}
    for field, _, v in fields(request):
        if field == 1:
            csr_pem = v.decode()
        elif field == 3:
            ttl = v
        elif field == 4:
            for ef, _, ev in fields(v):  # Struct.fields map entries
                if ef != 1:
                    continue
                entry = {}
                for kf, _, kv in fields(ev):
                    entry[kf] = kv
                k = entry.get(1, b"").decode()
                value = entry.get(2, b"")
                for vf, _, vv in fields(value):
                    if vf == 3:  # Value.string_value
                        meta[k] = vv.decode()
    emit(event="csr", authorization=auth, ttl=ttl, metadata=meta, clusterid=md.get("clusterid"))
    if STATE.token is not None and auth != "Bearer " + STATE.token:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "request authenticate failure")
    identity = meta.get("ImpersonatedIdentity") or STATE.ca["identity"]
    with tempfile.TemporaryDirectory() as d:
        csr = os.path.join(d, "csr.pem")
        ext = os.path.join(d, "ext.cnf")
        leaf = os.path.join(d, "leaf.pem")
        with open(csr, "w") as f:
            f.write(csr_pem)
        with open(ext, "w") as f:
            f.write("subjectAltName=critical,URI:%s\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n" % identity)
        days = max(1, ttl // 86400) if ttl else 1
        p = subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", STATE.ca["cert"], "-CAkey", STATE.ca["key"],
                            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
                            "-extfile", ext, "-out", leaf], capture_output=True)
        if p.returncode != 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "CSR signing error (%s)" % p.stderr.decode().strip())
        with open(leaf) as f:
            leaf_pem = f.read()
    with open(STATE.ca["cert"]) as f:
        root_pem = f.read()
    chain = [leaf_pem, root_pem]
    if STATE.ca.get("wrongChain"):
        chain = [root_pem]
    return b"".join(f_bytes(1, c) for c in chain)


def commands():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        with STATE.lock:
            q = STATE.current
        if cmd["cmd"] == "push":
            if q is not None:
                q.put(encode_response(cmd))
        elif cmd["cmd"] == "drop":
            if q is not None:
                q.put(DROP)
        elif cmd["cmd"] == "token":
            STATE.token = cmd["value"]
        elif cmd["cmd"] == "ca":
            STATE.ca = cmd["ca"]
        emit(event="ack", cmd=cmd["cmd"])
    os._exit(0)


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--token")
    args = ap.parse_args()
    STATE = State(args.token)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("envoy.service.discovery.v3.AggregatedDiscoveryService", {
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(ads),
        }),
        grpc.method_handlers_generic_handler("istio.v1.auth.IstioCertificateService", {
            "CreateCertificate": grpc.unary_unary_rpc_method_handler(create_certificate),
        }),
    ))
    if args.tls_cert:
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        with open(args.tls_key, "rb") as f:
            key_pem = f.read()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    emit(event="listening", port=port)
    commands()


if __name__ == "__main__":
    main()
