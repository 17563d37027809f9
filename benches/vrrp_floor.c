/*
 * The cost floor of benches/vrrp_scale.sh (issue 14): what it costs the
 * kernel alone to put N VRRPv3 advertisements on the wire every interval,
 * and to take them in, with nothing else done.
 *
 *   vrrp_floor send IFACE SOURCE COUNT PRIORITY INTERVAL_MS SECONDS [VIP_BASE]
 *     Builds once the advertisements of VRIDs 1..COUNT (VRRPv3, IPv4, no
 *     addresses, or VRID k with VIP_BASE + k - 1; Max Adver Int INTERVAL_MS / 10 cs, checksum over the
 *     pseudo-header from SOURCE to 224.0.0.18: the bytes the program under
 *     test sends) and sends all of them with one sendmmsg(2) on a raw
 *     protocol-112 socket (TTL 255, TOS 0xc0, IP_PKTINFO with SOURCE and
 *     IFACE, as ours) on a 10 ms absolute clock_nanosleep cadence.
 *   vrrp_floor sink IFACE SECONDS
 *     Joins 224.0.0.18 on IFACE with a raw protocol-112 socket and reads
 *     everything with recvmmsg(2), blocking, 256 at a time. It also says
 *     how often the LAN itself went quiet: the gaps between the kernel
 *     receive stamps (SO_TIMESTAMPNS) of successive VRID 1 advertisements
 *     over 26.09 ms (Master_Down_Interval - Advertisement_Interval of a
 *     priority-100 backup at 10 ms), which a sender's stall or deferred
 *     packet processing (ksoftirqd on a busy host) causes whatever the
 *     programs do. SIGUSR1 starts the counts again (at the window's start).
 *
 * Both stop after SECONDS (or on SIGTERM / SIGINT) and print one line of
 * key=value totals. The script compiles this with gcc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX 255
#define PLEN 12

static volatile sig_atomic_t stop, restart;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; restart = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

static uint16_t checksum(const uint8_t *p, size_t n, uint32_t sum) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int raw_socket(const char *iface) {
    int fd = socket(AF_INET, SOCK_RAW, 112);
    if (fd < 0) die("socket(raw, 112)");
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, strlen(iface)) < 0) die("SO_BINDTODEVICE");
    return fd;
}

static void add_ns(struct timespec *t, long ns) {
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000L) { t->tv_nsec -= 1000000000L; t->tv_sec++; }
}

static int run_send(const char *iface, const char *source, int count, int prio, int interval_ms,
                    int seconds, const char *vip_base) {
    unsigned ifindex = if_nametoindex(iface);
    if (!ifindex) die(iface);
    struct in_addr src, grp;
    if (inet_pton(AF_INET, source, &src) != 1) { fprintf(stderr, "bad source %s\n", source); return 1; }
    inet_pton(AF_INET, "224.0.0.18", &grp);
    struct in_addr vip = { 0 };
    if (vip_base && inet_pton(AF_INET, vip_base, &vip) != 1) { fprintf(stderr, "bad VIP base %s\n", vip_base); return 1; }
    size_t len = vip_base ? 12 : 8;
    int fd = raw_socket(iface);
    int ttl = 255, off = 0, tos = 0xc0;
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) die("IP_TTL");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0) die("IP_MULTICAST_TTL");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off) < 0) die("IP_MULTICAST_LOOP");
    if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) < 0) die("IP_TOS");

    static uint8_t pkt[MAX][PLEN];
    static struct iovec iov[MAX];
    static struct mmsghdr msgs[MAX];
    static union { char buf[CMSG_SPACE(sizeof(struct in_pktinfo))]; struct cmsghdr align; } ctl[MAX];
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr = grp };
    uint16_t cs = (uint16_t)(interval_ms / 10);
    for (int i = 0; i < count; i++) {
        uint8_t *p = pkt[i];
        p[0] = 0x31;                 /* version 3, type 1 (advertisement) */
        p[1] = (uint8_t)(i + 1);     /* VRID */
        p[2] = (uint8_t)prio;
        p[3] = vip_base ? 1 : 0;     /* Count IPvX Addr */
        p[4] = (uint8_t)(cs >> 8 & 0x0f);
        p[5] = (uint8_t)cs;
        p[6] = p[7] = 0;
        if (vip_base) {
            uint32_t a = ntohl(vip.s_addr) + (uint32_t)i;
            p[8] = (uint8_t)(a >> 24); p[9] = (uint8_t)(a >> 16); p[10] = (uint8_t)(a >> 8); p[11] = (uint8_t)a;
        }
        /* RFC 5798 5.2.8: the pseudo-header's sum, then the packet's. */
        const uint8_t *s = (const uint8_t *)&src.s_addr, *d = (const uint8_t *)&grp.s_addr;
        uint32_t sum = (uint32_t)(s[0] << 8 | s[1]) + (uint32_t)(s[2] << 8 | s[3]) +
                       (uint32_t)(d[0] << 8 | d[1]) + (uint32_t)(d[2] << 8 | d[3]) + 112 + (uint32_t)len;
        uint16_t c = checksum(p, len, sum);
        p[6] = (uint8_t)(c >> 8);
        p[7] = (uint8_t)c;
        iov[i].iov_base = p;
        iov[i].iov_len = len;
        msgs[i].msg_hdr.msg_name = &dst;
        msgs[i].msg_hdr.msg_namelen = sizeof dst;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = ctl[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo info = { .ipi_ifindex = (int)ifindex, .ipi_spec_dst = src };
        memcpy(CMSG_DATA(cm), &info, sizeof info);
    }
    struct timespec next, end;
    clock_gettime(CLOCK_MONOTONIC, &next);
    end = next;
    end.tv_sec += seconds;
    unsigned long long rounds = 0, sent = 0, errors = 0;
    while (!stop) {
        int n = sendmmsg(fd, msgs, (unsigned)count, MSG_DONTWAIT);
        if (n < 0) errors++; else sent += (unsigned)n;
        rounds++;
        add_ns(&next, (long)interval_ms * 1000000L);
        if (next.tv_sec > end.tv_sec || (next.tv_sec == end.tv_sec && next.tv_nsec >= end.tv_nsec)) break;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stop) {}
    }
    printf("floor_send rounds=%llu sent=%llu errors=%llu\n", rounds, sent, errors);
    return 0;
}

static int run_sink(const char *iface, int seconds) {
    unsigned ifindex = if_nametoindex(iface);
    if (!ifindex) die(iface);
    int fd = raw_socket(iface);
    struct ip_mreqn mreq = { .imr_ifindex = (int)ifindex };
    inet_pton(AF_INET, "224.0.0.18", &mreq.imr_multiaddr);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) die("IP_ADD_MEMBERSHIP");
    int rcvbuf = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) die("SO_RCVBUFFORCE");
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) die("SO_TIMESTAMPNS");
    static uint8_t bufs[256][128];
    static struct iovec iov[256];
    static struct mmsghdr msgs[256];
    static union { char buf[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } ctl[256];
    double last = 0, max_gap = 0;
    unsigned long long quiet = 0;
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += seconds;
    unsigned long long received = 0, calls = 0;
    while (!stop) {
        if (restart) {
            restart = 0;
            received = calls = quiet = 0;
            max_gap = 0;
        }
        for (int i = 0; i < 256; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i].buf;
            msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
        }
        int n = recvmmsg(fd, msgs, 256, MSG_WAITFORONE, NULL);
        if (n > 0) { received += (unsigned)n; calls++; }
        for (int i = 0; i < n; i++) {
            /* The IPv4 header, then VRRP: its second octet is the VRID. */
            const uint8_t *b = bufs[i];
            size_t ihl = (size_t)(b[0] & 0x0f) * 4;
            if (msgs[i].msg_len < ihl + 2 || b[ihl + 1] != 1) continue;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS) continue;
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
                if (last > 0 && t - last > max_gap) max_gap = t - last;
                if (last > 0 && t - last > 0.02609375) quiet++;
                last = t;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) break;
    }
    printf("floor_sink received=%llu calls=%llu quiet_over_26ms=%llu max_gap_ms=%.2f\n", received,
           calls, quiet, max_gap * 1e3);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGUSR1, on_usr1);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((argc == 8 || argc == 9) && !strcmp(argv[1], "send")) {
        int count = atoi(argv[4]), prio = atoi(argv[5]), ms = atoi(argv[6]), secs = atoi(argv[7]);
        if (count < 1 || count > MAX || prio < 1 || prio > 255 || ms < 10 || ms % 10 || secs < 1) {
            fprintf(stderr, "vrrp_floor send: COUNT 1..255, PRIORITY 1..255, INTERVAL_MS multiple of 10, SECONDS >= 1\n");
            return 2;
        }
        return run_send(argv[2], argv[3], count, prio, ms, secs, argc == 9 ? argv[8] : NULL);
    }
    if (argc == 4 && !strcmp(argv[1], "sink")) return run_sink(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: vrrp_floor send IFACE SOURCE COUNT PRIORITY INTERVAL_MS SECONDS [VIP_BASE]\n"
                    "       vrrp_floor sink IFACE SECONDS\n");
    return 2;
}
