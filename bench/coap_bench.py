#!/usr/bin/python3
"""CoAP benchmark for moatd (a benchmark, not a test: it reports figures
and never fails on them).  docs/benchmarks.md has the results.

  bench/coap_bench.py [--moatd build/moatd] [--seconds 5]

1. publishes/s: Confirmable POSTs to /ps/bench/p from one raw UDP client
   (a window of 32 outstanding requests), delivered to a mosquitto_sub
   MQTT subscriber (the count it received is reported too);
2. notifications/s: NON POSTs to /ps/bench/n while a raw CoAP observer of
   that topic counts the notifications it receives;
3. publishes/s over DTLS-PSK (openssl s_client -dtls1_2 sessions, one
   CoAP message per record), into the MQTT subscriber;
4. RSS per idle DTLS session: moatd's VmRSS before and after N
   coap-client-openssl processes each hold a DTLS-PSK session with one
   observation (idle: nothing is published meanwhile).

The clients are Python and libcoap processes on the same machine: the
figures are bounded by them as much as by moatd."""
import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from test_coap_client import coap_build, coap_parse  # noqa: E402

PSK = "bench-key-00001"
PEERS = 8


def start(moatd, d, extra=""):
    conf = os.path.join(d, "moatd.conf")
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\nlistener 0 127.0.0.1\nprotocol coap\n"
                "listener 0 127.0.0.1\nprotocol coaps\n"
                "psk_file %s/psk\nworkers 2\nlog_level notice\n%s"
                % (d, extra))
    with open(os.path.join(d, "psk"), "w") as f:
        f.write("dev:%s\n" % PSK.encode().hex())
    os.chmod(os.path.join(d, "psk"), 0o600)
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([moatd, "-c", conf], stdout=log,
                         stderr=subprocess.STDOUT)
    for _ in range(500):
        log.seek(0)
        ports = re.findall(r"listening on 127\.0\.0\.1:(\d+)", log.read())
        if len(ports) == 3:
            return p, [int(x) for x in ports]
        time.sleep(0.02)
    raise RuntimeError("moatd did not start")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def path(*segs):
    return [(11, s.encode()) for s in segs]


def publishes(mport, cport, seconds):
    got = tempfile.TemporaryFile()
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(mport), "-t",
                            "bench/p", "-q", "0"], stdout=got,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    # Several client sockets: each is a peer with its own request rate
    # bound (MOAT_COAP_RATE per peer).
    socks = []
    for _ in range(PEERS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(1)
        socks.append(s)
    dst = ("127.0.0.1", cport)
    mid, acked, window = 0, 0, 32
    end = time.monotonic() + seconds
    t0 = time.monotonic()
    outstanding = 0
    while time.monotonic() < end:
        while outstanding < window:
            mid = (mid + 1) & 0xFFFF
            socks[mid % PEERS].sendto(
                coap_build(0, 2, mid, b"\x01", path("ps", "bench", "p"),
                           b"x" * 32), dst)
            outstanding += 1
        s = socks[(mid - outstanding + 1) % PEERS]
        try:
            s.recv(2048)
            acked += 1
            outstanding -= 1
        except socket.timeout:
            outstanding = 0  # lost: refill the window
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    sub.terminate()
    sub.wait()
    got.seek(0)
    return acked / elapsed, got.read().count(b"\n")


def notifications(cport, seconds):
    obs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    obs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    obs.settimeout(1)
    dst = ("127.0.0.1", cport)
    obs.sendto(coap_build(0, 1, 1, b"ob", [(6, b"")] +
                          path("ps", "bench", "n")), dst)
    obs.recv(2048)
    pubs = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(PEERS)]
    got, mid = 0, 0
    end = time.monotonic() + seconds
    t0 = time.monotonic()
    obs.setblocking(False)
    while time.monotonic() < end:
        for _ in range(16):
            mid = (mid + 1) & 0xFFFF
            pubs[mid % PEERS].sendto(
                coap_build(1, 2, mid, b"", path("ps", "bench", "n"),
                           b"y" * 32), dst)
        while True:
            try:
                d = obs.recv(2048)
            except BlockingIOError:
                break
            m = coap_parse(d)
            if m and m[1] == 0x45:
                got += 1
                if m[0] == 0:  # CON notification: acknowledge
                    obs.sendto(coap_build(2, 0, m[2]), dst)
        time.sleep(0.0005)
    return got / (time.monotonic() - t0)


def dtls_publishes(mport, sport, seconds):
    """CON POSTs over DTLS-PSK through `openssl s_client -dtls1_2` (one
    CoAP message per record), one session per peer, round robin."""
    import select
    got = tempfile.TemporaryFile()
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(mport), "-t",
                            "bench/d", "-q", "0"], stdout=got,
                           stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen(
        ["openssl", "s_client", "-dtls1_2", "-quiet", "-psk_identity", "dev",
         "-psk", PSK.encode().hex(), "-cipher", "PSK-AES128-CCM8",
         "-connect", "127.0.0.1:%d" % sport],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL) for _ in range(PEERS)]
    time.sleep(1)
    mid = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for p in procs:
            mid = (mid + 1) & 0xFFFF
            p.stdin.write(coap_build(0, 2, mid, b"\x01",
                                     path("ps", "bench", "d"), b"z" * 32))
            p.stdin.flush()
        for p in procs:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                os.read(p.stdout.fileno(), 2048)
    elapsed = time.monotonic() - t0
    for p in procs:
        p.kill()
        p.wait()
    time.sleep(0.5)
    sub.terminate()
    sub.wait()
    got.seek(0)
    # (Responses can arrive merged in one read of s_client's output: the
    # subscriber's count is the figure.)
    delivered = got.read().count(b"\n")
    return delivered / elapsed, delivered


def dtls_rss(pid, sport, n):
    before = rss_kib(pid)
    procs = []
    for i in range(n):
        # One after another: the record buffers of a session idle for a
        # second go back to the allocator and serve the next ones.
        procs.append(subprocess.Popen(
            ["coap-client-openssl", "-u", "dev", "-k", PSK, "-s", "60", "-m",
             "get", "coaps://127.0.0.1:%d/ps/idle/%d" % (sport, i)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.04)
    time.sleep(3)
    after = rss_kib(pid)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    return before, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moatd", default=os.path.join(HERE, "..", "build",
                                                    "moatd"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--sessions", type=int, default=200)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="moat-coap-bench-") as d:
        p, (mport, cport, sport) = start(a.moatd, d)
        try:
            rate, delivered = publishes(mport, cport, a.seconds)
            print("CoAP CON POST -> MQTT subscriber: %.0f publishes/s "
                  "(subscriber received %d)" % (rate, delivered))
            print("CoAP NON POST -> CoAP observer: %.0f notifications/s"
                  % notifications(cport, a.seconds))
            rate, delivered = dtls_publishes(mport, sport, a.seconds)
            print("CoAP over DTLS (%d sessions, one request at a time "
                  "each) -> MQTT subscriber: %.0f publishes/s delivered "
                  "(%d)" % (PEERS, rate, delivered))
            before, after = dtls_rss(p.pid, sport, a.sessions)
            print("RSS %d KiB -> %d KiB with %d idle DTLS sessions "
                  "(one observation each): %.1f KiB per session"
                  % (before, after, a.sessions,
                     (after - before) / a.sessions))
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
