/* The C floor of bench/engine.py (--c-floor): N + M UDP sockets on loopback, each sending
 * a 172-byte RTP packet (PCMA, 20 ms) per tick, N of them to the echoing SIPp UAS and M to
 * the timestamping sink (rtp_sink.c), reading the echoes back through epoll. No SIP, no
 * Python: what the machine and the peers allow any implementation.
 *
 *   rtp_floor N MEDIA_PORT M SINK_PORT SECONDS sleep|spin
 *
 * "sleep" waits in epoll_wait until the next tick, as an event loop does; "spin" polls
 * without sleeping, spending a whole core to remove the kernel's timer wake-up jitter. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PTIME 0.020
#define PACKET 172 /* 12-byte RTP header + 160 G.711 samples */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: rtp_floor N MEDIA_PORT M SINK_PORT SECONDS sleep|spin\n");
        return 2;
    }
    int n = atoi(argv[1]), media_port = atoi(argv[2]), m = atoi(argv[3]);
    int sink_port = atoi(argv[4]), total = n + m;
    double seconds = atof(argv[5]);
    int spin = strcmp(argv[6], "spin") == 0;
    int *fds = calloc(total, sizeof *fds);
    struct sockaddr_in *to = calloc(total, sizeof *to);
    uint16_t *seq = calloc(total, sizeof *seq);
    uint32_t *ts = calloc(total, sizeof *ts);
    int ep = epoll_create1(0);
    for (int i = 0; i < total; i++) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&local, sizeof local) < 0) {
            perror("socket");
            return 1;
        }
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        to[i] = local;
        to[i].sin_port = htons(i < n ? media_port : sink_port);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        seq[i] = (uint16_t)rand();
        ts[i] = (uint32_t)rand();
    }
    unsigned char packet[PACKET] = {0x80, 8};
    char buffer[2048];
    struct epoll_event events[512];
    double start = now(), next = start;
    while (now() - start < seconds) {
        if (now() >= next) {
            for (int i = 0; i < total; i++) {
                uint16_t s = htons(seq[i]++);
                uint32_t t = htonl(ts[i] += 160), ssrc = htonl((uint32_t)i);
                memcpy(packet + 2, &s, 2);
                memcpy(packet + 4, &t, 4);
                memcpy(packet + 8, &ssrc, 4);
                sendto(fds[i], packet, PACKET, 0, (struct sockaddr *)&to[i], sizeof to[i]);
            }
            next += PTIME;
            continue;
        }
        int wait_ms = spin ? 0 : (int)((next - now()) * 1000);
        int ready = epoll_wait(ep, events, 512, wait_ms);
        for (int j = 0; j < ready; j++)
            while (recv(events[j].data.fd, buffer, sizeof buffer, 0) > 0) {
            }
    }
    return 0;
}
