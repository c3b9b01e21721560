/* The receiving end of bench/engine.py: one UDP socket on loopback that takes RTP from any
 * number of streams, stamps every packet with the kernel's receive time (SO_TIMESTAMPNS)
 * and measures each stream's pacing: |inter-arrival - 20 ms| per packet, per stream
 * (a stream is a source address and port plus an SSRC). Kernel stamps keep the sink's
 * own scheduling out of the figure, and reading in C with recvmmsg keeps a sink taking
 * 200,000 packets a second from starving the sender it measures on a small machine.
 *
 *   rtp_sink PORT
 *
 * Control datagrams start with "CTRL" and arrive in the same queue as the media, so a
 * window starts and ends exactly between two packets:
 *   CTRLmark  forget the streams and start counting
 *   CTRLstop  stop counting and answer {"packets", "streams", "p50", "p99", "max", "drops"}
 *             (milliseconds; drops = datagrams the socket's full buffer lost meanwhile)
 *   CTRLexit  answer as for stop, then exit */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

#define PTIME_NS 20000000LL
#define BATCH 256
#define PACKET_MAX 2048
#define SLOTS 65536 /* open addressing, far above the ~4,000 streams a run holds */
#define BIN_NS 1000LL /* the error histogram's resolution: 1 us */
#define BINS 1000000 /* up to 1 s; larger errors land in the last bin */
#define RCVBUF (64 << 20)

struct stream {
    uint64_t key; /* 0: free slot */
    int64_t last_ns;
};

static struct stream slots[SLOTS];
static uint64_t histogram[BINS];
static uint64_t packets, streams;
static int64_t worst_ns;
static uint32_t drops_total, drops_at_mark;

static uint64_t stream_key(const struct sockaddr_in *from, const unsigned char *rtp) {
    uint32_t ssrc;
    memcpy(&ssrc, rtp + 8, 4);
    /* +1 keeps a key from ever being 0, the free-slot mark. */
    return (((uint64_t)ntohs(from->sin_port) << 32) | ntohl(ssrc)) ^
           ((uint64_t)ntohl(from->sin_addr.s_addr) << 16) ^ 1;
}

static struct stream *find(uint64_t key) {
    uint64_t i = (key * 0x9E3779B97F4A7C15ULL) >> 48;
    while (slots[i].key != 0 && slots[i].key != key)
        i = (i + 1) % SLOTS;
    if (slots[i].key == 0) {
        if (streams >= SLOTS / 2)
            return NULL; /* full enough that probing would crawl: count no more streams */
        slots[i].key = key;
        slots[i].last_ns = -1;
        streams++;
    }
    return &slots[i];
}

static void measure(uint64_t key, int64_t at_ns) {
    struct stream *s = find(key);
    if (s == NULL)
        return;
    if (s->last_ns >= 0) {
        int64_t error = at_ns - s->last_ns - PTIME_NS;
        if (error < 0)
            error = -error;
        int64_t bin = error / BIN_NS;
        histogram[bin < BINS ? bin : BINS - 1]++;
        if (error > worst_ns)
            worst_ns = error;
        packets++;
    }
    s->last_ns = at_ns;
}

static double quantile_ms(double q) {
    if (packets == 0)
        return -1.0;
    uint64_t rank = (uint64_t)(q * (double)packets), seen = 0;
    if (rank >= packets)
        rank = packets - 1;
    for (int64_t bin = 0; bin < BINS; bin++) {
        seen += histogram[bin];
        if (seen > rank)
            return (double)(bin * BIN_NS) / 1e6;
    }
    return (double)worst_ns / 1e6;
}

static void reset(void) {
    memset(slots, 0, sizeof slots);
    memset(histogram, 0, sizeof histogram);
    packets = streams = 0;
    worst_ns = 0;
    drops_at_mark = drops_total;
}

static void answer(int fd, const struct sockaddr_in *to) {
    char reply[256];
    int n = snprintf(reply, sizeof reply,
                     "{\"packets\": %llu, \"streams\": %llu, \"p50\": %.3f, \"p99\": %.3f, "
                     "\"max\": %.3f, \"drops\": %u}",
                     (unsigned long long)packets, (unsigned long long)streams, quantile_ms(0.5),
                     quantile_ms(0.99), (double)worst_ns / 1e6, drops_total - drops_at_mark);
    sendto(fd, reply, (size_t)n, 0, (const struct sockaddr *)to, sizeof *to);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: rtp_sink PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0), on = 1, size = RCVBUF;
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* FORCE passes net.core.rmem_max when root; otherwise the kernel caps the size. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        perror("bind");
        return 1;
    }
    static unsigned char data[BATCH][PACKET_MAX];
    static char control[BATCH][128];
    struct sockaddr_in from[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    int counting = 0;
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = data[i], .iov_len = PACKET_MAX};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                              .msg_namelen = sizeof from[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1,
                                              .msg_control = control[i],
                                              .msg_controllen = sizeof control[i]};
        }
        int got = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (got < 0) {
            perror("recvmmsg");
            return 1;
        }
        for (int i = 0; i < got; i++) {
            unsigned char *packet = data[i];
            unsigned len = msgs[i].msg_len;
            int64_t at_ns = -1;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
                 c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                    continue;
                if (c->cmsg_type == SO_TIMESTAMPNS) {
                    struct timespec t;
                    memcpy(&t, CMSG_DATA(c), sizeof t);
                    at_ns = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
                } else if (c->cmsg_type == SO_RXQ_OVFL) {
                    memcpy(&drops_total, CMSG_DATA(c), sizeof drops_total);
                }
            }
            if (len >= 8 && memcmp(packet, "CTRL", 4) == 0) {
                if (len == 8 && memcmp(packet + 4, "mark", 4) == 0) {
                    reset();
                    counting = 1;
                } else if (len == 8 && (memcmp(packet + 4, "stop", 4) == 0 ||
                                        memcmp(packet + 4, "exit", 4) == 0)) {
                    answer(fd, &from[i]);
                    counting = 0;
                    if (memcmp(packet + 4, "exit", 4) == 0)
                        return 0;
                }
                continue;
            }
            if (counting && len >= 12 && at_ns >= 0)
                measure(stream_key(&from[i], packet), at_ns);
        }
    }
}
