#!/usr/bin/env python3
"""Writes the starting corpora and dictionaries of the fuzz targets.

    fuzz/seeds.py OUT_DIR

OUT_DIR/<target>/ gets seeds in each target's input layout, taken from real
data where the repository has some: keepalived's VRRP packets
(vrrp-core/testdata/*.pcap), the kernel's IPVS replies to ipvsadm
(lvs/testdata/ipvsadm/*.strace), this machine's rtnetlink link and address
dumps (read here over a netlink socket), vrrpd's example configurations
(examples/*.toml), the keepalived configurations of vrrpd's tests and, when
installed, keepalived's own samples. OUT_DIR/<target>.dict are libFuzzer
dictionaries built from the keys and keywords in vrrpd's sources, so they
follow the code when it changes. Nothing here is committed: run-all.sh calls
it before every run (it takes well under a second).
"""

import hashlib
import os
import re
import socket
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put(out, target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_ip_packets(path):
    """IP packets (header included) of an Ethernet pcap."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    at = 24
    while at + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        ethertype = struct.unpack(">H", frame[12:14])[0]
        if ethertype in (0x0800, 0x86DD):
            yield ethertype == 0x86DD, frame[14:]


def vrrp_seeds(out):
    for name in sorted(os.listdir(os.path.join(ROOT, "vrrp-core/testdata"))):
        if not name.endswith(".pcap"):
            continue
        for v6, ip in pcap_ip_packets(os.path.join(ROOT, "vrrp-core/testdata", name)):
            if v6:
                if ip[6] != 112:
                    continue
                payload = ip[40:]
            else:
                if ip[9] != 112:
                    continue
                payload = ip[(ip[0] & 0xF) * 4:]
            # decode: (v6, v3-compat checksum, bytes)
            put(out, "decode", bytes([int(v6), 0]) + payload)
            # net_datagram: 8 metadata bytes, then what recvmsg returned
            if v6:
                put(out, "net_datagram", bytes([1 | 2 | 4 | 8 | 16, 0, 0, 0, 0x40, 2, 255, 2]) + payload)
            else:
                put(out, "net_datagram", bytes([0, 0, 0, 0, 0, 0, 0, 2]) + ip)


def strace_transfers(text):
    """(sent, bytes) of each sendmsg/recvmsg hex dump in an strace log."""
    current = None
    for line in text.splitlines():
        if line.startswith("sendmsg(") or line.startswith("recvmsg("):
            if current:
                yield current
            current = (line.startswith("sendmsg("), bytearray())
        elif line.startswith(" | ") and current is not None:
            for tok in line[3 + 7:3 + 56].split():
                current[1].append(int(tok, 16))
    if current:
        yield current


def ipvs_seeds(out):
    d = os.path.join(ROOT, "lvs/testdata/ipvsadm")
    for name in sorted(os.listdir(d)):
        if name.endswith(".strace"):
            for sent, data in strace_transfers(open(os.path.join(d, name)).read()):
                if not sent and data:
                    put(out, "ipvs_reply", bytes(data))


def rtnetlink_seeds(out):
    """Payloads of this machine's RTM_NEWLINK and RTM_NEWADDR dumps."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    except OSError:
        return
    with s:
        for seq, (msg_type, body) in enumerate([(18, struct.pack("=BxHiII", 0, 0, 0, 0, 0)),  # RTM_GETLINK
                                                 (22, struct.pack("=BBBBI", 0, 0, 0, 0, 0))]):  # RTM_GETADDR
            req = struct.pack("=IHHII", 16 + len(body), msg_type, 0x301, seq + 1, 0) + body
            s.sendto(req, (0, 0))
            done = False
            while not done:
                data = s.recv(65536)
                at = 0
                while at + 16 <= len(data):
                    length, ty = struct.unpack("=IH", data[at:at + 6])
                    if length < 16 or ty in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
                        done = True
                        break
                    put(out, "net_rtnetlink", data[at + 16:at + length])
                    at += (length + 3) & ~3


def dns_reply(ident, qtype, answers, rcode=0):
    def name(n):
        return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
    msg = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0)
    msg += name("www.example.com") + struct.pack(">HH", qtype, 1)
    for rdata in answers:
        msg += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
    return msg


def protocol_seeds(out):
    for r in [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
              b"HTTP/1.0 503 Service Unavailable\r\nServer: x\r\n\r\nbusy",
              b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
              b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"]:
        put(out, "hc_http", b"\0" + r)
        put(out, "hc_http", b"\x83\x05\x20\x01" + r)
    for code, r in [(220, b"220 mail.example.com ESMTP ready\r\n"),
                    (220, b"220-mail.example.com\r\n220-more\r\n220 ready\r\n"),
                    (250, b"250 mail.example.com Hello\r\n"),
                    (220, b"554 5.3.2 no service\r\n"),
                    (220, b"SSH-2.0-OpenSSH_9.2\r\n")]:
        put(out, "hc_smtp", struct.pack("<HB", code, 2) + b"\x07\x40" + r)
    put(out, "hc_dns", dns_reply(0x1234, 1, [bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])]))
    put(out, "hc_dns", dns_reply(0x4321, 15, [b"\x00\x0a\x04mail\xc0\x10"]))
    put(out, "hc_dns", dns_reply(0x0001, 1, [], rcode=3))
    # What operators write into tracked files, and strtol's corners.
    for v in [b"0\n", b"1\n", b"-254\n", b"  +42 \n", b"0x1F\n", b"0X\n", b"017",
              b"2147483648\n", b"-2147483649", b"9223372036854775808", b"12abc", b"\t-0x7fffffff\0 9"]:
        put(out, "hc_track_file", v)


def config_seeds(out):
    ex = os.path.join(ROOT, "examples")
    for name in sorted(os.listdir(ex)):
        if name.endswith(".toml"):
            put(out, "toml_config", open(os.path.join(ex, name), "rb").read())
    dirs = [os.path.join(ROOT, "vrrpd/tests/data"),
            os.path.join(ROOT, "vrrpd/tests/differential/corpus"),
            "/usr/share/doc/keepalived/samples"]
    for d in dirs:
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if (name.startswith("keepalived") or name.endswith(".conf")) and not name.endswith(".gz"):
                    put(out, "keepalived_import", open(os.path.join(d, name), "rb").read())
    # The importer target's scratch directory has inc/one.conf, inc/two.conf
    # (including one.conf), inc/loop.conf (including itself) and open.conf
    # (an unclosed block).
    put(out, "keepalived_import", b"include inc/two.conf\nvrrp_instance A {\n interface eth0\n virtual_router_id 9\n track_script {\n  chk\n }\n}\n")
    put(out, "keepalived_import", b"include inc/*.conf\n")
    put(out, "keepalived_import", b"include open.conf\n}\n")


def dictionaries(out):
    def words(path, pattern):
        text = open(os.path.join(ROOT, path)).read()
        return set(re.findall(pattern, text))

    toml = words("vrrpd/src/config/raw.rs", r"pub ([a-z][a-z0-9_]*):")
    toml |= words("vrrpd/src/config/raw.rs", r'"([a-z][a-z0-9_-]*)"')
    toml |= words("vrrpd/src/config/mod.rs", r'"([a-z][a-z0-9_]*)"')
    toml |= {"[instance.", "[[virtual_server]]", "[[virtual_server.real_server]]", "[global]",
             "[script.", "[sync_group.", "[track_file.", " = ", "\"", "h", "ms", "s", "d",
             "8760h", "31536000", "3000000000000000h", "18446744073709551615"}
    keep = set()
    for f in os.listdir(os.path.join(ROOT, "vrrpd/src/import")):
        if f.endswith(".rs") and f != "tests.rs":
            keep |= words(os.path.join("vrrpd/src/import", f), r'"([A-Za-z_][A-Za-z0-9_]*)"')
    keep |= {"{", "}", "include", "!", "#", "\"", "192.0.2.1", "2001:db8::1", "@", "inc/", "*", "?", "["}
    for name, toks in [("toml_config", toml), ("keepalived_import", keep)]:
        with open(os.path.join(out, name + ".dict"), "w") as f:
            for t in sorted(toks):
                f.write('"%s"\n' % t.replace("\\", "\\\\").replace('"', '\\"'))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    vrrp_seeds(out)
    ipvs_seeds(out)
    rtnetlink_seeds(out)
    protocol_seeds(out)
    config_seeds(out)
    dictionaries(out)


if __name__ == "__main__":
    main()
