#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for the soak benchmark, and a delaying one for the
remote-registry benchmark (standard library only).

    fault_shaper.py --listen PORT --upstream HOST:PORT [--p-503 P] [--p-429 P] [--p-stall P]
                    [--p-drip P] [--p-reset P] [--stall-seconds S] [--drip-seconds S]
                    [--delay-ms MS] [--referrers-api]

Binds 127.0.0.1:PORT and forwards every request to the upstream (a real docker-registry) over a
small keep-alive pool. Per request, with the given probabilities, it instead:

    503    answers 503 Service Unavailable itself (the upstream is not asked)
    429    answers 429 Too Many Requests with Retry-After: 1 itself
    stall  reads the request, then sends nothing for --stall-seconds and closes the connection
    drip   forwards, then sends the body in small chunks spread over --drip-seconds
    reset  forwards, sends the headers and half the body, then resets the connection (RST)

--delay-ms makes every request cost one round trip of MS milliseconds: half before it is
forwarded, half before the answer is sent back, as a registry that far away would. With
--referrers-api the shaper plays an OCI 1.1 registry in front of one without the referrers API:
`GET /v2/<repo>/referrers/<alg>:<hex>` is answered from the referrers tag schema's index
`<alg>-<hex>` (an empty index when there is none), as one request.

It starts in "pass" mode (no faults). Control requests, never forwarded:

    POST /_shaper/mode/pass     no faults
    POST /_shaper/mode/fault    faults with the configured probabilities
    GET  /_shaper/stats         JSON: requests forwarded and faults injected by kind
    GET  /_shaper/log           JSON: every request since the last clear, with its method, target,
                                status, and when it arrived and was answered (seconds, monotonic)
    POST /_shaper/log/clear     empties the log
"""

import argparse
import asyncio
import json
import random
import re
import socket
import struct
import sys
import time

REFERRERS = re.compile(r"^/v2/(?P<repo>.+)/referrers/(?P<alg>[a-z0-9]+):(?P<hex>[a-f0-9]+)(\?.*)?$")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection", "content-length"}


class Shaper:
    def __init__(self, args):
        self.args = args
        self.up_host, up_port = args.upstream.rsplit(":", 1)
        self.up_port = int(up_port)
        self.faulting = False
        self.pool = []
        self.stats = {"requests": 0, "forwarded": 0, "upstream_errors": 0,
                      "faults": {k: 0 for k in ("503", "429", "stall", "drip", "reset")}}
        self.probs = [("503", args.p_503), ("429", args.p_429), ("stall", args.p_stall),
                      ("drip", args.p_drip), ("reset", args.p_reset)]
        self.log = []
        self.half_rtt = args.delay_ms / 2000.0

    async def half_trip(self):
        if self.half_rtt > 0:
            await asyncio.sleep(self.half_rtt)

    def pick_fault(self):
        if not self.faulting:
            return None
        r = random.random()
        for kind, p in self.probs:
            if r < p:
                return kind
            r -= p
        return None

    # --- upstream side ---

    async def upstream_exchange(self, head, body, method):
        """Sends one request upstream over a pooled connection; returns (status, headers, body)."""
        for attempt in range(2):
            if self.pool:
                reader, writer = self.pool.pop()
                reused = True
            else:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.up_host, self.up_port), 5)
                reused = False
            try:
                writer.write(head + body)
                await writer.drain()
                status, headers, rbody, keep = await asyncio.wait_for(
                    read_response(reader, method), 60)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                writer.close()
                if reused and attempt == 0:
                    continue  # a stale pooled connection: once more on a new one
                raise
            if keep and len(self.pool) < 32:
                self.pool.append((reader, writer))
            else:
                writer.close()
            return status, headers, rbody
        raise OSError("unreachable")

    # --- client side ---

    async def handle(self, reader, writer):
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                method, target, version, headers, body = req
                if target.startswith("/_shaper/"):
                    await self.control(writer, method, target)
                    continue
                self.stats["requests"] += 1
                arrived = time.monotonic()
                entry = {"method": method, "target": target, "start": arrived}
                self.log.append(entry)
                await self.half_trip()
                fault = self.pick_fault()
                if fault == "stall":
                    self.stats["faults"]["stall"] += 1
                    await asyncio.sleep(self.args.stall_seconds)
                    return
                if fault in ("503", "429"):
                    self.stats["faults"][fault] += 1
                    extra = [("Retry-After", "1")] if fault == "429" else []
                    msg = b'{"errors":[{"code":"UNAVAILABLE","message":"fault shaper"}]}'
                    await send_response(writer, int(fault), extra + [("Content-Type", "application/json")],
                                        msg, method)
                    continue
                m = REFERRERS.match(target) if self.args.referrers_api and method == "GET" else None
                if m:
                    # An OCI 1.1 registry's referrers API, from the tag schema's index.
                    target = f"/v2/{m['repo']}/manifests/{m['alg']}-{m['hex']}"
                    headers = [(k, v) for k, v in headers if k.lower() != "accept"] + [("Accept", OCI_INDEX)]
                out = [f"{method} {target} HTTP/1.1"]
                for k, v in headers:
                    if k.lower() not in HOP:
                        out.append(f"{k}: {v}")
                if body:
                    out.append(f"Content-Length: {len(body)}")
                head = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                try:
                    status, rheaders, rbody = await self.upstream_exchange(head, body, method)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                    self.stats["upstream_errors"] += 1
                    await send_response(writer, 502, [], b"upstream error\n", method)
                    continue
                self.stats["forwarded"] += 1
                if m:
                    if status == 404:
                        status, rbody = 200, json.dumps(
                            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
                    rheaders = [(k, v) for k, v in rheaders if k.lower() != "content-type"] + [
                        ("Content-Type", OCI_INDEX)]
                entry["status"] = status
                await self.half_trip()
                entry["end"] = time.monotonic()
                has_body = method != "HEAD" and status not in (204, 304) and status >= 200
                if fault == "reset" and has_body and len(rbody) > 1:
                    self.stats["faults"]["reset"] += 1
                    await send_head(writer, status, rheaders, len(rbody))
                    writer.write(rbody[: len(rbody) // 2])
                    await writer.drain()
                    reset(writer)
                    return
                if fault == "drip" and has_body and rbody:
                    self.stats["faults"]["drip"] += 1
                    await send_head(writer, status, rheaders, len(rbody))
                    steps = max(1, int(self.args.drip_seconds / 0.2))
                    size = max(1, -(-len(rbody) // steps))
                    for i in range(0, len(rbody), size):
                        writer.write(rbody[i: i + size])
                        await writer.drain()
                        await asyncio.sleep(0.2)
                    continue
                if method == "HEAD":
                    await send_response(writer, status, rheaders, b"", method)
                else:
                    await send_response(writer, status, rheaders, rbody, method)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                writer.close()
            except OSError:
                pass

    async def control(self, writer, method, target):
        if target == "/_shaper/mode/pass":
            self.faulting = False
        elif target == "/_shaper/mode/fault":
            self.faulting = True
        elif target == "/_shaper/log/clear":
            self.log = []
        if target == "/_shaper/log":
            body = json.dumps(self.log).encode()
            await send_response(writer, 200, [("Content-Type", "application/json")], body, method)
            return
        body = json.dumps(dict(self.stats, faulting=self.faulting)).encode()
        await send_response(writer, 200, [("Content-Type", "application/json")], body, method)


def reset(writer):
    """Closes with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def read_head(reader):
    data = await reader.readuntil(b"\r\n\r\n")
    if len(data) > 65536:
        raise ValueError("head too large")
    lines = data[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def read_body(reader, headers, to_eof):
    if (header(headers, "transfer-encoding") or "").lower() == "chunked":
        out = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out), True
            out += await reader.readexactly(n)
            await reader.readexactly(2)
    cl = header(headers, "content-length")
    if cl is not None:
        return await reader.readexactly(int(cl)), True
    if to_eof:
        return await reader.read(), False
    return b"", True


async def read_request(reader):
    try:
        line, headers = await read_head(reader)
    except asyncio.IncompleteReadError:
        return None
    method, target, version = line.split(" ", 2)
    body, _ = await read_body(reader, headers, to_eof=False)
    return method, target, version, headers, body


async def read_response(reader, method):
    line, headers = await read_head(reader)
    status = int(line.split(" ", 2)[1])
    keep = (header(headers, "connection") or "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or status < 200:
        return status, headers, b"", keep
    body, framed = await read_body(reader, headers, to_eof=True)
    return status, headers, body, keep and framed


async def send_head(writer, status, headers, length, head_length=None):
    out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    for k, v in headers:
        if k.lower() not in HOP:
            out.append(f"{k}: {v}")
    out.append(f"Content-Length: {length if head_length is None else head_length}")
    writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))


async def send_response(writer, status, headers, body, method):
    if method == "HEAD":
        # keep the upstream's Content-Length for a HEAD
        cl = header(headers, "content-length")
        await send_head(writer, status, headers, 0, head_length=cl if cl is not None else len(body))
    else:
        await send_head(writer, status, headers, len(body))
        writer.write(body)
    await writer.drain()


REASONS = {200: "OK", 201: "Created", 202: "Accepted", 206: "Partial Content", 307: "Temporary Redirect",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           416: "Range Not Satisfiable", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


async def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    for kind, default in (("503", 0.03), ("429", 0.02), ("stall", 0.01), ("drip", 0.02), ("reset", 0.02)):
        ap.add_argument(f"--p-{kind}", type=float, default=default, dest=f"p_{kind}")
    ap.add_argument("--stall-seconds", type=float, default=5.0)
    ap.add_argument("--drip-seconds", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--delay-ms", type=float, default=0.0, dest="delay_ms")
    ap.add_argument("--referrers-api", action="store_true", dest="referrers_api")
    args = ap.parse_args(argv)
    if args.seed is not None:
        random.seed(args.seed)
    shaper = Shaper(args)
    server = await asyncio.start_server(shaper.handle, "127.0.0.1", args.listen, limit=1 << 20)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
