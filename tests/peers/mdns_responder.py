#!/usr/bin/env python3
"""An mDNS responder and a silent ICE peer, for floe's test of mDNS over real multicast.

Run inside a network namespace whose loopback carries multicast. It binds a UDP socket on
127.0.0.1 (the peer's candidate) and prints `PORT <port>`; it joins 224.0.0.251 on port
5353 and answers one-shot queries for NAME (RFC 6762 section 6.7: a unicast reply from port
5353 to the querying port, with the query's ID and question) with 127.0.0.1, printing
`QUERY`; it prints `CHECK` and exits when a STUN Binding request reaches the peer socket,
or `TIMEOUT` after 10 s.

    mdns_responder.py NAME
"""
import select
import socket
import struct
import sys
import time


def main():
    name = sys.argv[1].lower()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    mdns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mdns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    mdns.bind(("0.0.0.0", 5353))
    group = struct.pack("4s4s", socket.inet_aton("224.0.0.251"), socket.inet_aton("127.0.0.1"))
    mdns.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
    print("PORT", peer.getsockname()[1], flush=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        ready, _, _ = select.select([mdns, peer], [], [], 0.5)
        for s in ready:
            data, source = s.recvfrom(2048)
            if s is peer:
                if data[:2] == b"\x00\x01":
                    print("CHECK", flush=True)
                    return
                continue
            at, labels = 12, []
            while at < len(data) and data[at]:
                size = data[at]
                labels.append(data[at + 1 : at + 1 + size].decode("ascii", "replace"))
                at += 1 + size
            if ".".join(labels).lower() != name or source[1] == 5353:
                continue
            print("QUERY", flush=True)
            question = data[12 : at + 1 + 4]
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x0a\x00\x04" + socket.inet_aton("127.0.0.1")
            header = data[:2] + b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"
            mdns.sendto(header + question + answer, source)
    print("TIMEOUT", flush=True)


if __name__ == "__main__":
    main()
