"""Run by test_coap_broker.py inside `unshare -rn` (a network namespace
with only loopback): moatd with a plaintext CoAP listener on 0.0.0.0 (a
"network" listener, allow_insecure_listener true), requests from other
127.0.0.x source addresses standing for spoofed victims.  Exit 0 when
every answer to an unvalidated address is at most 3x the request (RFC
9175 §2.4) and a legitimate client still gets its data."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_coap_client import CON, coap_build, coap_parse, opt  # noqa: E402

MOATD = os.environ.get("MOATD_BIN", "../../build/moatd")
ECHO, URI_PATH = 252, 11
RATE = 5  # coap_request_rate_per_ip in this run


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    d = tempfile.mkdtemp(prefix="moat-spoof-")
    conf = os.path.join(d, "moatd.conf")
    with open(os.path.join(d, "acl"), "w") as f:
        f.write("topic readwrite pub/#\n")
    os.chmod(os.path.join(d, "acl"), 0o600)
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\nlistener 0 0.0.0.0\nprotocol coap\n"
                "allow_insecure_listener true\nallow_anonymous true\n"
                "acl_file %s/acl\nworkers 2\nuser root\n"
                # 127.0.0.x stand for network addresses here.
                "limit_loopback true\ncoap_request_rate_per_ip %d\n"
                % (d, RATE))
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([MOATD, "-c", conf, "-v"], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(500):
            log.seek(0)
            m = re.search(r"listening on 0\.0\.0\.0:(\d+) \(CoAP", log.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.02)
        if not port:
            log.seek(0)
            fail("moatd did not start:\n" + log.read())
        check(port)
    finally:
        p.terminate()
        p.wait(timeout=15)
        log.seek(0)
        text = log.read()
        if p.returncode != 0 or "Sanitizer" in text:
            fail("moatd exit %d:\n%s" % (p.returncode, text[-3000:]))
    print("ok")


def exchange(src, port, data):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(3)
    s.sendto(data, ("127.0.0.1", port))
    try:
        r = s.recv(70000)
    except socket.timeout:
        r = None
    s.close()
    return r


def check(port):
    # The classic reflection request: 21 bytes to /.well-known/core.
    req = coap_build(CON, 1, 0x1234, b"", [(URI_PATH, b".well-known"),
                                           (URI_PATH, b"core")])
    for i in range(2, 50):  # many victims
        r = exchange("127.0.0.%d" % i, port, req)
        if r is None:
            continue  # silence is within the bound too
        if len(r) > 3 * len(req):
            fail("%d bytes answered with %d" % (len(req), len(r)))
        m = coap_parse(r)
        if m[1] != 0x81 or opt(m[4], ECHO) is None:
            fail("expected 4.01 + Echo, got %r" % (m,))
    # A large retained value, fetched from a spoofed address: 4.01 + Echo
    # within 3x; the same peer repeating the Echo gets it.
    big = b"v" * 1000
    put = coap_build(CON, 3, 1, b"\x07", [(URI_PATH, b"ps"), (URI_PATH, b"pub"),
                                          (URI_PATH, b"big")], big)
    exchange("127.0.0.1", port, put)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.77", 0))
    s.settimeout(3)
    get = coap_build(CON, 1, 2, b"\x08", [(URI_PATH, b"ps"),
                                          (URI_PATH, b"pub"),
                                          (URI_PATH, b"big")])
    s.sendto(get, ("127.0.0.1", port))
    r = s.recv(70000)
    m = coap_parse(r)
    if len(r) > 3 * len(get) or m[1] != 0x81:
        fail("large answer to an unvalidated peer: %d bytes" % len(r))
    echo = opt(m[4], ECHO)
    get2 = coap_build(CON, 1, 3, b"\x08", [(URI_PATH, b"ps"),
                                           (URI_PATH, b"pub"),
                                           (URI_PATH, b"big"),
                                           (ECHO, echo)])
    s.sendto(get2, ("127.0.0.1", port))
    m = coap_parse(s.recv(70000))
    if m[1] != 0x45 or m[5] != big:
        fail("validated peer did not get the value: %r" % (m[:3],))
    # A legitimate libcoap client, which answers Echo itself.
    r = subprocess.run(["coap-client-openssl", "-m", "get",
                        "coap://127.0.0.1:%d/ps/pub/big" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if r.stdout.strip() != big:
        fail("coap-client-openssl: %r %r" % (r.stdout[:80], r.stderr))
    s.close()
    check_rate_per_ip(port)


def post(src, port, mid, echo=None):
    """A CON POST from a new port of src: (socket, parsed answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(3)
    opts = [(URI_PATH, b"ps"), (URI_PATH, b"pub"), (URI_PATH, b"rate")]
    if echo:
        opts.append((ECHO, echo))
    s.sendto(coap_build(CON, 2, mid, b"\x09", opts, b"r"), ("127.0.0.1", port))
    try:
        return s, coap_parse(s.recv(70000))
    except socket.timeout:
        return s, None


def check_rate_per_ip(port):
    """One host with many ports shares one budget per IP address
    (coap_request_rate_per_ip, bursts of twice that) until a peer
    validates its address with Echo; another address is not affected."""
    n, start, codes, echoed = 40, time.monotonic(), [], None
    socks = []
    for i in range(n):
        s, m = post("127.0.0.99", port, 100 + i)
        socks.append(s)
        codes.append(m[1] if m else None)
        if m and m[1] == 0x81 and echoed is None:
            echoed = (s, 100 + i, opt(m[4], ECHO))
    elapsed = time.monotonic() - start
    done = codes.count(0x44)
    print("one address, %d ports: %d handled, %d 4.01 + Echo, %d silent "
          "in %.2f s" % (n, done, codes.count(0x81), codes.count(None),
                         elapsed))
    # Within the budget (derived from the time taken: no timing
    # assumption), and beyond it 4.01 + Echo rather than silence.
    if done > 2 * RATE + RATE * elapsed + 1:
        fail("%d of %d requests from one address handled in %.1f s"
             % (done, n, elapsed))
    if elapsed < (n - 2 * RATE) / RATE - 1:
        if echoed is None:
            fail("no 4.01 + Echo beyond the per-address rate: %r" % codes)
        # The peer that repeats the Echo is validated: handled.
        s, mid, echo = echoed
        s.sendto(coap_build(CON, 2, mid + 1000, b"\x09",
                            [(URI_PATH, b"ps"), (URI_PATH, b"pub"),
                             (URI_PATH, b"rate"), (ECHO, echo)], b"r"),
                 ("127.0.0.1", port))
        m = coap_parse(s.recv(70000))
        if m[1] != 0x44:
            fail("a validated peer was refused: %r" % (m[:3],))
    s, m = post("127.0.0.100", port, 1)  # another address: its own budget
    socks.append(s)
    if not m or m[1] != 0x44:
        fail("another address was refused: %r" % (m,))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
