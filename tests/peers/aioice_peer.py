#!/usr/bin/env python3
"""An aioice (0.13) ICE peer that speaks `floe ice`'s signalling: SDP attribute lines.

stdout: a=ice-ufrag, a=ice-pwd, a=candidate (one per local candidate), a=end-of-candidates,
then status lines CONNECTED <local> <remote>, SENT <text>, RECEIVED <text>,
ECHOED <text>, FAILED <reason>. stdin: the peer's lines in any order; other lines are
ignored; EOF counts as end-of-candidates. Exit codes as `floe ice`: 0 ok, 1 ICE failed,
2 usage, 3 timeout, 4 echo missing or wrong. Logs go to stderr.

aioice gathers host candidates on every interface address except 127.0.0.1 and ::1;
--host-ip restricts them (aioice has no option for it, so its address lookup is replaced).
"""

import argparse
import asyncio
import ipaddress
import logging
import sys
import time

import aioice
import aioice.ice

SEND_TRIES = 10
SEND_INTERVAL = 0.5


def address(host, port):
    """ip:port, IPv6 in brackets, as `floe ice` prints it."""
    if ipaddress.ip_address(host).version == 6:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def host_port(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def say(line):
    try:
        print(line, flush=True)
    except BrokenPipeError:
        pass


class Failure(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Peer:
    def __init__(self, args):
        self.args = args
        turn = host_port(args.turn) if args.turn else None
        self.conn = aioice.Connection(
            ice_controlling=args.controlling,
            components=1,
            stun_server=host_port(args.stun) if args.stun else None,
            turn_server=turn,
            turn_username=args.turn_user,
            turn_password=args.turn_pass,
            transport_policy=(
                aioice.TransportPolicy.RELAY
                if args.relay_only
                else aioice.TransportPolicy.ALL
            ),
        )
        self.credentials = asyncio.Event()
        self.remote_end = False

    async def remote_line(self, line):
        line = line.strip()
        if not line.startswith("a="):
            return
        name, _, value = line[2:].partition(":")
        if name == "ice-ufrag":
            self.conn.remote_username = value
        elif name == "ice-pwd":
            self.conn.remote_password = value
        elif name == "candidate":
            if self.remote_end:
                return
            try:
                await self.conn.add_remote_candidate(aioice.Candidate.from_sdp(value))
            except ValueError as e:
                logging.warning("candidate %r ignored: %s", value, e)
        elif name == "end-of-candidates":
            await self.end_of_candidates()
        if self.conn.remote_username and self.conn.remote_password:
            self.credentials.set()

    async def end_of_candidates(self):
        if not self.remote_end:
            self.remote_end = True
            await self.conn.add_remote_candidate(None)

    async def read_stdin(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        while True:
            line = await reader.readline()
            if not line:
                break
            await self.remote_line(line.decode())
        if not self.credentials.is_set():
            raise Failure(1, "stdin closed without the peer's credentials")
        await self.end_of_candidates()

    async def signal_and_connect(self):
        say(f"a=ice-ufrag:{self.conn.local_username}")
        say(f"a=ice-pwd:{self.conn.local_password}")
        await self.conn.gather_candidates()
        for c in self.conn.local_candidates:
            say(f"a=candidate:{c.to_sdp()}")
        say("a=end-of-candidates")
        # aioice's connect() needs the peer's credentials first.
        await self.credentials.wait()
        try:
            await self.conn.connect()
        except ConnectionError as e:
            raise Failure(1, f"ICE failed: {e}")
        pair = self.conn._nominated[1]  # aioice has no public getter for the pair
        local, remote = pair.local_candidate, pair.remote_candidate
        say(
            f"CONNECTED {address(local.host, local.port)} "
            f"{address(remote.host, remote.port)}"
        )

    async def exchange(self):
        """--send / --echo, then linger; returns at success."""
        args = self.args
        if args.send is None and not args.echo:
            return
        if args.send is not None:
            text = args.send.encode()
            for _ in range(SEND_TRIES):
                await self.conn.send(text)
                say(f"SENT {args.send}")
                try:
                    data = await asyncio.wait_for(self.conn.recv(), SEND_INTERVAL)
                except asyncio.TimeoutError:
                    continue
                shown = data.decode(errors="replace")
                if data == text:
                    say(f"ECHOED {shown}")
                    return
                say(f"RECEIVED {shown}")
                raise Failure(4, "the echo differs from the text sent")
            raise Failure(4, f"no echo after {SEND_TRIES} tries")
        data = await self.conn.recv()
        say(f"RECEIVED {data.decode(errors='replace')}")
        await self.conn.send(data)

    async def linger(self):
        """Stays up for --linger seconds, echoing with --echo (each datagram extends it)."""
        end = time.monotonic() + self.args.linger
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                data = await asyncio.wait_for(self.conn.recv(), left)
            except asyncio.TimeoutError:
                return
            say(f"RECEIVED {data.decode(errors='replace')}")
            if self.args.echo:
                await self.conn.send(data)
                end = time.monotonic() + self.args.linger


async def run(args):
    peer = Peer(args)
    stdin = asyncio.create_task(peer.read_stdin())

    async def until_success():
        await peer.signal_and_connect()
        await peer.exchange()

    work = asyncio.create_task(until_success())
    code = 0
    try:
        done, _ = await asyncio.wait(
            [work, stdin], timeout=args.timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        if work not in done:
            for task in done:
                task.result()  # a stdin failure
            raise Failure(3, f"timeout after {args.timeout}s")
        work.result()
        await peer.linger()
    except Failure as f:
        say(f"FAILED {f.reason}")
        code = f.code
    finally:
        for task in (work, stdin):
            task.cancel()
        await peer.conn.close()  # deletes the TURN allocation
    return code


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    role = ap.add_mutually_exclusive_group(required=True)
    role.add_argument("--controlling", action="store_true")
    role.add_argument("--controlled", action="store_true")
    ap.add_argument("--stun", metavar="HOST:PORT")
    ap.add_argument("--turn", metavar="HOST:PORT")
    ap.add_argument("--turn-user")
    ap.add_argument("--turn-pass")
    ap.add_argument("--relay-only", action="store_true")
    ap.add_argument("--host-ip", action="append", default=[])
    ap.add_argument("--send", metavar="TEXT")
    ap.add_argument("--echo", action="store_true")
    ap.add_argument("--linger", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.relay_only and not args.turn:
        ap.error("--relay-only needs --turn")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr
    )
    if args.host_ip:
        ips = [ipaddress.ip_address(ip) for ip in args.host_ip]

        def host_addresses(use_ipv4, use_ipv6):
            return [
                str(ip)
                for ip in ips
                if (ip.version == 4 and use_ipv4) or (ip.version == 6 and use_ipv6)
            ]

        aioice.ice.get_host_addresses = host_addresses
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
