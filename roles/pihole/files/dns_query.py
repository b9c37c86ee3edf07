# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask a DNS server for the A/AAAA records of names; print JSON {name: [addresses]}.

Usage: dns_query.py SERVER PORT NAME... (standard library only: runs on a node without dig).
A name the server answers with NXDOMAIN or no address maps to []; a server that does not
answer within 2 s makes the script exit 1.
"""

import ipaddress
import json
import secrets
import socket
import struct
import sys


def query(server, port, name, rtype):
    ident = secrets.randbits(16)
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode("idna")
    packet += b"\0" + struct.pack(">HH", rtype, 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, (server, port))
        while True:
            data, _peer = sock.recvfrom(4096)
            if struct.unpack(">H", data[:2])[0] == ident:
                break
    _ident, flags, qdcount, ancount, _ns, _ar = struct.unpack(">HHHHHH", data[:12])
    if flags & 0x000F:
        return []
    pos = 12
    for _question in range(qdcount):
        pos = skip_name(data, pos) + 4
    found = []
    for _answer in range(ancount):
        pos = skip_name(data, pos)
        atype, _class, _ttl, length = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if atype == rtype and atype in (1, 28):
            found.append(str(ipaddress.ip_address(data[pos:pos + length])))
        pos += length
    return found


def skip_name(data, pos):
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1


def main(argv):
    server, port, names = argv[0], int(argv[1]), argv[2:]
    try:
        answers = {name: query(server, port, name, 1) + query(server, port, name, 28) for name in names}
    except OSError as exc:
        print(f"dns_query: no answer from {server}:{port}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answers, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
