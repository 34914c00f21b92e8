#!/usr/bin/env python3
"""A bounded load generator for one Engine API socket (loopback only: a unix socket).

CLIENTS processes (not threads: one interpreter lock shared by all would put its switching
interval, 5 ms, into the tails measured), each with its own keep-alive connection, send
requests for SECONDS or until MAX requests in all, whichever comes first, mixing by weight: container list (ps), inspect,
logs (tail), events (a closed window), exec (create + start, output read), and a container's
life (create + start + remove with force, one sample; no network, so that both engines do the
same work whatever their default network). Every request's latency is kept; the
summary is one JSON object on stdout: per kind the count, requests/s, p50 and p99 in
milliseconds, and errors (any non-2xx answer or failed exchange).

With --rate R the clients are paced to R requests/s in all (each client sends on a fixed
schedule, at once when it is late), so that two daemons see the same load and their
latencies compare; without it each client sends its next request as soon as the last is
answered (the most the daemon serves).

Paced, one more client measures the floor: `GET /_ping` as often as `ps` is sent, to a server
in this script that answers at once without looking at the request (kind "floor"). Its
latencies are what this client and this machine, under the same load, cost any server: a
daemon's tail cannot be shorter.

Usage: load.py SOCKET TARGET_CONTAINER IMAGE [--clients 16] [--seconds 60] [--max 200000]
               [--rate R]
"""
import argparse
import http.client
import json
import multiprocessing
import random
import os
import socket
import sys
import tempfile
import time

WEIGHTS = [("ps", 30), ("inspect", 30), ("logs", 15), ("events", 10), ("exec", 10), ("life", 5)]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.conn = UnixConnection(sock)

    def call(self, method, path, body=None):
        """One exchange on the kept connection (opened again after a failure): status, body."""
        headers = {"Host": "docker"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
            return resp.status, payload
        except Exception:
            self.conn.close()
            self.conn = UnixConnection(self.sock)
            raise

    def ok(self, method, path, body=None):
        status, payload = self.call(method, path, body)
        if status // 100 != 2:
            raise RuntimeError(f"{method} {path}: {status} {payload[:200]!r}")
        return payload


def one(client, kind, target, image):
    if kind == "ps":
        client.ok("GET", "/v1.41/containers/json?all=1")
    elif kind == "inspect":
        client.ok("GET", f"/v1.41/containers/{target}/json")
    elif kind == "logs":
        client.ok("GET", f"/v1.41/containers/{target}/logs?stdout=1&stderr=1&tail=10")
    elif kind == "events":
        now = int(time.time())
        client.ok("GET", f"/v1.41/events?since={now - 5}&until={now}")
    elif kind == "exec":
        created = json.loads(client.ok(
            "POST", f"/v1.41/containers/{target}/exec",
            {"Cmd": ["echo", "hi"], "AttachStdout": True, "AttachStderr": True}))
        out = client.ok("POST", f"/v1.41/exec/{created['Id']}/start", {"Detach": False, "Tty": False})
        if b"hi" not in out:
            raise RuntimeError(f"exec output {out!r}")
    elif kind == "life":
        created = json.loads(client.ok(
            "POST", "/v1.41/containers/create",
            {"Image": image, "Cmd": ["sleep", "30"], "HostConfig": {"NetworkMode": "none"}}))
        cid = created["Id"]
        try:
            client.ok("POST", f"/v1.41/containers/{cid}/start")
        finally:
            client.ok("DELETE", f"/v1.41/containers/{cid}?force=1")


def null_server(path):
    """Answers every request on `path` with 200 and no body, at once (one connection)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    conn, _ = srv.accept()
    pending = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        pending += data
        while b"\r\n\r\n" in pending:
            _, pending = pending.split(b"\r\n\r\n", 1)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("target")
    ap.add_argument("image")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max", type=int, default=200000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0)
    args = ap.parse_args()

    kinds = [k for k, w in WEIGHTS for _ in range(w)]
    # Forked, so that the workers share this function's closure.
    mp = multiprocessing.get_context("fork")
    budget = mp.Value("l", args.max)
    results = mp.Queue()
    deadline = time.monotonic() + args.seconds
    interval = args.clients / args.rate if args.rate > 0 else 0

    def worker(n):
        rng = random.Random(args.seed * 1000 + n)
        client = Client(args.socket)
        samples = {k: [] for k, _ in WEIGHTS}
        errors = {k: 0 for k, _ in WEIGHTS}
        first_error = {}
        due = time.monotonic() + interval * n / args.clients
        while time.monotonic() < deadline:
            if interval:
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                due += interval
            with budget.get_lock():
                if budget.value <= 0:
                    break
                budget.value -= 1
            kind = rng.choice(kinds)
            t0 = time.perf_counter()
            try:
                one(client, kind, args.target, args.image)
                samples[kind].append(time.perf_counter() - t0)
            except Exception as e:  # counted, and the first of each kind reported
                errors[kind] += 1
                first_error.setdefault(kind, str(e)[:300])
        results.put((samples, errors, first_error))

    floor_dir = tempfile.mkdtemp(prefix="berth-load-floor-")
    floor_sock = os.path.join(floor_dir, "null.sock")
    ps_share = dict(WEIGHTS)["ps"] / sum(w for _, w in WEIGHTS)

    def floor_probe():
        client = Client(floor_sock)
        samples = {"floor": []}
        gap = 1 / (args.rate * ps_share)
        due = time.monotonic()
        errors = {"floor": 0}
        first_error = {}
        while time.monotonic() < deadline:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            due += gap
            t0 = time.perf_counter()
            try:
                client.ok("GET", "/_ping")
                samples["floor"].append(time.perf_counter() - t0)
            except Exception as e:
                errors["floor"] += 1
                first_error.setdefault("floor", str(e)[:300])
        results.put((samples, errors, first_error))

    started = time.monotonic()
    procs = [mp.Process(target=worker, args=(n,)) for n in range(args.clients)]
    server = None
    if interval:
        server = mp.Process(target=null_server, args=(floor_sock,), daemon=True)
        server.start()
        while not os.path.exists(floor_sock):
            time.sleep(0.01)
        procs.append(mp.Process(target=floor_probe))
    for p in procs:
        p.start()
    kinds_out = [k for k, _ in WEIGHTS] + (["floor"] if interval else [])
    samples = {k: [] for k in kinds_out}
    errors = {k: 0 for k in kinds_out}
    first_error = {}
    for _ in procs:
        s, e, f = results.get()
        for k in s:
            samples[k] += s[k]
            errors[k] += e.get(k, 0)
            if k in f:
                first_error.setdefault(k, f[k])
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    if server:
        server.join(timeout=5)
        server.kill()
    if os.path.exists(floor_sock):
        os.unlink(floor_sock)
    os.rmdir(floor_dir)

    def pct(v, p):
        if not v:
            return None
        v = sorted(v)
        return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 3)

    out = {"seconds": round(elapsed, 2), "rate": args.rate, "kinds": {}}
    for k in kinds_out:
        v = samples[k]
        out["kinds"][k] = {
            "count": len(v),
            "rps": round(len(v) / elapsed, 1),
            "p50_ms": pct(v, 0.50),
            "p99_ms": pct(v, 0.99),
            "errors": errors[k],
            "first_error": first_error.get(k),
        }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
