#!/usr/bin/env python3
"""The attacker and the health probe of bench/stress.sh (standard library only).

  STRESS_TOKEN=... stress_attack.py attack PORT SECONDS HEADERS UPLOADS
      holds HEADERS connections that send their request headers a byte at a
      time and UPLOADS uploads whose bodies trickle a byte at a time, to
      127.0.0.1:PORT, for SECONDS; a connection the gateway closes is opened
      again. The uploads carry the bearer token STRESS_TOKEN (an attacker
      holding a valid credential). Prints one line of counts, then stops by
      itself.
  stress_attack.py probe PORT SECONDS
      GET /healthz on a fresh connection every 50 ms for SECONDS; prints the
      p50 and p99 latency and the failures.

Loopback only: the host is fixed to 127.0.0.1.
"""
import asyncio
import os
import resource
import sys
import time

HOST = "127.0.0.1"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Counts:
    def __init__(self):
        self.opened = 0
        self.closed_by_server = 0
        self.connect_failed = 0


async def hold(port, deadline, counts, first, drip, every):
    """One attacker slot: sends `first`, then a byte of `drip` every `every`
    seconds until the deadline; reconnects when the gateway closes."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port), timeout=5)
        except (OSError, asyncio.TimeoutError):
            counts.connect_failed += 1
            await asyncio.sleep(1)
            continue
        counts.opened += 1
        try:
            writer.write(first)
            await writer.drain()
            i = 0
            while time.monotonic() < deadline:
                # A closed connection shows as EOF (or an error) on read.
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=every)
                    if not data:
                        break
                    # An answer (a 408, a 413): the slot starts over.
                    break
                except asyncio.TimeoutError:
                    pass
                writer.write(drip[i % len(drip):i % len(drip) + 1])
                i += 1
                await writer.drain()
            if time.monotonic() < deadline:
                counts.closed_by_server += 1
        except OSError:
            counts.closed_by_server += 1
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), timeout=1)
            except (OSError, asyncio.TimeoutError):
                pass


async def attack(port, seconds, headers, uploads, token):
    raise_fd_limit()
    deadline = time.monotonic() + seconds
    slow_headers, slow_uploads = Counts(), Counts()
    header_first = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{port}\r\n".encode()
    header_drip = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    upload_first = (
        f"POST /api/v1/imports?mapping=workday HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: 100000000\r\n\r\n"
        "Employee ID,First Name,Last Name,Work Email\n").encode()
    upload_drip = b"1,A,B,a@example.com\n"
    tasks = []
    for _ in range(headers):
        tasks.append(hold(port, deadline, slow_headers, header_first, header_drip, 5.0))
    for _ in range(uploads):
        tasks.append(hold(port, deadline, slow_uploads, upload_first, upload_drip, 1.0))
    # Opened over about two seconds, as a botnet's connections would arrive.
    async def staggered(i, t):
        await asyncio.sleep(2.0 * i / len(tasks))
        await t
    await asyncio.gather(*(staggered(i, t) for i, t in enumerate(tasks)))
    print(f"attacker slow_headers_opened={slow_headers.opened} "
          f"slow_headers_closed={slow_headers.closed_by_server} "
          f"slow_uploads_opened={slow_uploads.opened} "
          f"slow_uploads_closed={slow_uploads.closed_by_server} "
          f"connect_failed={slow_headers.connect_failed + slow_uploads.connect_failed}")


async def probe(port, seconds):
    deadline = time.monotonic() + seconds
    times, failures = [], 0
    request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port), timeout=5)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            if not answer.startswith(b"HTTP/1.1 200"):
                failures += 1
            else:
                times.append(time.perf_counter() - start)
        except (OSError, asyncio.TimeoutError):
            failures += 1
        await asyncio.sleep(0.05)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000 if times else -1
    print(f"healthz samples={len(times)} failures={failures} "
          f"p50_ms={pick(0.50):.2f} p99_ms={pick(0.99):.2f}")


def main():
    mode = sys.argv[1]
    port, seconds = int(sys.argv[2]), float(sys.argv[3])
    if mode == "attack":
        token = os.environ["STRESS_TOKEN"]
        asyncio.run(attack(port, seconds, int(sys.argv[4]), int(sys.argv[5]), token))
    elif mode == "probe":
        asyncio.run(probe(port, seconds))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
