/* The native media pump: the per-packet work of every call's RTP stream, in C.
 *
 * One `Pump` holds, per stream, a slot with the hot state that `rtp/stream.py` keeps in
 * Python attributes: the socket, where to send, the header fields, the position in the
 * shared frames (held by reference, never copied), the receive statistics of RFC 3550
 * A.1, the latched source, the RFC 4733 de-duplication and the counters. Python calls
 * it twice per 20 ms for all streams together: `tick()` sends one packet per ticking
 * slot, and `drain()` reads every ready socket of the pump's epoll set. Both hand back
 * only what Python has to act on (a voice that ended, a key, a rejected source, audio
 * for a tap), so a call with nothing to report costs no Python object per packet.
 *
 * The rules are those of `rtp/stream.py`, `rtp/stats.py` and `rtp/dtmf.py`, which stay
 * the reference and the fallback; the unit tests run against both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_SIZE 12      /* RFC 3550 §5.1, no CSRC or extension */
#define FIRST_BYTE 0x80     /* version 2, no padding, extension or CSRC */
#define FRAME_SAMPLES 160   /* 20 ms of 8 kHz G.711 */
#define RECV_SIZE 2048
#define RECV_BATCH 16       /* datagrams read from one socket per recvmmsg */
#define MAX_BATCHES 4       /* so at most 64 datagrams per socket and drain */
/* Ready sockets per drain; level-triggered, the rest wait for the next. Small, because
 * asyncio runs an iteration's I/O callbacks before its timers: a drain of 1,024 sockets
 * held the media clock's tick back, and with 2,000 echoed streams the receiver's p99
 * pacing error was 8.5-8.9 ms against 3.7-4.6 ms with 128 (bench/engine.py). */
#define MAX_EVENTS 128
#define MAX_DROPOUT 3000    /* RFC 3550 A.1 */
#define MAX_MISORDER 100    /* RFC 3550 A.1 */
#define SEQ_MOD 65536

static const char DTMF_KEYS[] = "0123456789*#ABCD"; /* RFC 4733 §3.2 */

/* What tick() and drain() report, the first item of each event tuple. */
enum { EV_SENT = 0, EV_VOICE_DONE = 1, EV_KEY = 2, EV_AUDIO = 3, EV_REJECTED = 4, EV_LATCHED = 5 };

typedef struct {
    int in_use;
    int fd;
    int family;           /* the socket's */
    PyObject *owner;      /* handed back in events; a strong reference while in use */
    /* send side */
    int started;
    int ticking;          /* on the media clock */
    int tapped;           /* a tap wants the frames and the far end's audio */
    int remote_set;       /* set_remote() was called: the slot ticks */
    int has_remote;       /* ... with an address it can send to */
    int remote_port;
    struct sockaddr_storage remote;
    socklen_t remote_len;
    PyObject *frames;     /* tuple of bytes/memoryview, or NULL */
    PyObject *held;       /* the voice held back until release_voice(), or NULL */
    Py_ssize_t next_frame;
    PyObject *silence;    /* bytes, or NULL */
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    uint8_t payload_type;
    uint8_t second_byte;  /* of the next header: the marker is set on the first */
    int dtmf_payload_type; /* -1: none */
    unsigned long long packets_sent, send_errors, rejected;
    /* whose packets count */
    int expect_any;       /* the SDP named a host, not an address: latch the first */
    int expected_len;     /* 4 or 16 */
    unsigned char expected[16];
    int latched;
    struct sockaddr_storage source;
    socklen_t source_len;
    /* receive statistics, RFC 3550 A.1 */
    unsigned long long received, expected_before, cycles;
    int has_ssrc;
    uint32_t stats_ssrc;
    long base_seq, max_seq;
    /* RFC 4733 */
    int has_event_ts;
    uint32_t event_ts;
    /* no-RTP timer */
    double timeout;       /* < 0: off */
    double last_received;
    unsigned long long received_at_check;
    int timed_out;
} Slot;

typedef struct {
    PyObject_HEAD
    int epfd;
    Slot *slots;
    Py_ssize_t capacity;
    Py_ssize_t used;      /* slots in use */
    /* Set while tick() or drain() walk the slots: Python code that runs meanwhile (a
     * finaliser, when an allocation collects garbage) must not grow or free them. */
    int busy;
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iovs[RECV_BATCH];
    struct sockaddr_storage addrs[RECV_BATCH];
    unsigned char bufs[RECV_BATCH][RECV_SIZE];
} Pump;

static void slot_release(Slot *s) {
    Py_CLEAR(s->owner);
    Py_CLEAR(s->frames);
    Py_CLEAR(s->held);
    Py_CLEAR(s->silence);
}

static int usable(Pump *self) {
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "the pump is closed");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the pump is busy");
        return 0;
    }
    return 1;
}

static Slot *get_slot(Pump *self, Py_ssize_t index) {
    if (!usable(self))
        return NULL;
    if (index < 0 || index >= self->capacity || !self->slots[index].in_use) {
        PyErr_Format(PyExc_KeyError, "no stream in slot %zd", index);
        return NULL;
    }
    return &self->slots[index];
}

static int frames_ok(PyObject *frames) {
    Py_ssize_t n = PyTuple_GET_SIZE(frames);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(frames, i);
        if (!PyBytes_CheckExact(f) && !PyMemoryView_Check(f)) {
            PyErr_SetString(PyExc_TypeError, "frames must be bytes or memoryview");
            return 0;
        }
    }
    return 1;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static PyObject *Pump_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Pump", kwlist))
        return NULL;
    Pump *self = (Pump *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    for (int i = 0; i < RECV_BATCH; i++) {
        self->iovs[i].iov_base = self->bufs[i];
        self->iovs[i].iov_len = RECV_SIZE;
    }
    return (PyObject *)self;
}

static int Pump_traverse(Pump *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Slot *s = &self->slots[i];
        Py_VISIT(s->owner);
        Py_VISIT(s->frames);
        Py_VISIT(s->held);
        Py_VISIT(s->silence);
    }
    return 0;
}

static int Pump_clear(Pump *self) {
    for (Py_ssize_t i = 0; i < self->capacity; i++)
        slot_release(&self->slots[i]);
    return 0;
}

static void pump_close(Pump *self) {
    Pump_clear(self);
    PyMem_Free(self->slots);
    self->slots = NULL;
    self->capacity = 0;
    self->used = 0;
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
    }
}

static void Pump_dealloc(Pump *self) {
    PyObject_GC_UnTrack(self);
    pump_close(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Pump_close(Pump *self, PyObject *unused) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the pump is busy");
        return NULL;
    }
    pump_close(self);
    Py_RETURN_NONE;
}

static PyObject *Pump_fileno(Pump *self, PyObject *unused) {
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "the pump is closed");
        return NULL;
    }
    return PyLong_FromLong(self->epfd);
}

static PyObject *Pump_add(Pump *self, PyObject *args) {
    int fd;
    PyObject *owner;
    unsigned int ssrc, ts, seq;
    if (!PyArg_ParseTuple(args, "iOIII:add", &fd, &owner, &ssrc, &seq, &ts) || !usable(self))
        return NULL;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_ssize_t index = 0;
    while (index < self->capacity && self->slots[index].in_use)
        index++;
    if (index == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 64;
        Slot *slots = PyMem_Realloc(self->slots, (size_t)capacity * sizeof(Slot));
        if (slots == NULL)
            return PyErr_NoMemory();
        memset(slots + self->capacity, 0, (size_t)(capacity - self->capacity) * sizeof(Slot));
        self->slots = slots;
        self->capacity = capacity;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)index};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Slot *s = &self->slots[index];
    memset(s, 0, sizeof *s);
    s->in_use = 1;
    s->fd = fd;
    s->family = local.ss_family;
    Py_INCREF(owner);
    s->owner = owner;
    s->ssrc = ssrc;
    s->seq = (uint16_t)seq;
    s->ts = ts;
    s->dtmf_payload_type = -1;
    s->timeout = -1.0;
    self->used++;
    return PyLong_FromSsize_t(index);
}

static PyObject *Pump_remove(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:remove", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    /* The caller closes the socket after this; a failure here means it already did. */
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->in_use = 0;
    self->used--;
    slot_release(s);
    Py_RETURN_NONE;
}

static PyObject *Pump_len(Pump *self, PyObject *unused) {
    return PyLong_FromSsize_t(self->used);
}

/* ---- configuration from Python (signalling pace, not packet pace) ---------------- */

static PyObject *Pump_start(Pump *self, PyObject *args) {
    Py_ssize_t index;
    PyObject *frames, *silence;
    int payload_type, dtmf_payload_type, hold;
    if (!PyArg_ParseTuple(args, "nO!O!iip:start", &index, &PyTuple_Type, &frames, &PyBytes_Type,
                          &silence, &payload_type, &dtmf_payload_type, &hold))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL || !frames_ok(frames))
        return NULL;
    if (payload_type < 0 || payload_type > 127 || dtmf_payload_type < -1 ||
        dtmf_payload_type > 127) {
        PyErr_SetString(PyExc_ValueError, "payload types are 0-127");
        return NULL;
    }
    Py_INCREF(frames);
    Py_INCREF(silence);
    Py_CLEAR(s->frames);
    Py_CLEAR(s->held);
    Py_CLEAR(s->silence);
    if (hold)
        s->held = frames;
    else
        s->frames = frames;
    s->silence = silence;
    s->payload_type = (uint8_t)payload_type;
    s->second_byte = (uint8_t)(payload_type | 0x80); /* RFC 3550 §5.1: talkspurt start */
    s->dtmf_payload_type = dtmf_payload_type;
    s->started = 1;
    Py_RETURN_NONE;
}

static PyObject *Pump_release_voice(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:release_voice", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    if (s->held != NULL) {
        Py_XSETREF(s->frames, s->held);
        s->held = NULL;
        s->next_frame = 0;
    }
    Py_RETURN_NONE;
}

/* An address as the bytes compared with a source: 4 for IPv4 (an IPv4-mapped IPv6
 * address too, as a dual-stack socket reports IPv4 peers), else 16. */
static int comparable(const struct sockaddr_storage *addr, unsigned char out[16]) {
    if (addr->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return 4;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(out, &a6->s6_addr[12], 4);
        return 4;
    }
    memcpy(out, a6->s6_addr, 16);
    return 16;
}

static PyObject *Pump_set_remote(Pump *self, PyObject *args) {
    Py_ssize_t index;
    Py_buffer ip;
    int port;
    if (!PyArg_ParseTuple(args, "ny*i:set_remote", &index, &ip, &port))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL || (ip.len != 0 && ip.len != 4 && ip.len != 16) || port < 0 || port > 65535) {
        if (s != NULL)
            PyErr_SetString(PyExc_ValueError, "an address is 0, 4 or 16 bytes, a port 0-65535");
        PyBuffer_Release(&ip);
        return NULL;
    }
    s->latched = 0;
    s->remote_set = 1;
    s->remote_port = port;
    s->has_remote = 0;
    memset(&s->remote, 0, sizeof s->remote);
    if (ip.len == 0) {
        /* A host name in the SDP: nothing to send to or hold packets to. */
        s->expect_any = 1;
    } else {
        s->expect_any = 0;
        if (ip.len == 4 && s->family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&s->remote;
            a->sin_family = AF_INET;
            a->sin_port = htons((uint16_t)port);
            memcpy(&a->sin_addr, ip.buf, 4);
            s->remote_len = sizeof *a;
            s->has_remote = 1;
        } else if (s->family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->remote;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons((uint16_t)port);
            if (ip.len == 4) {
                a->sin6_addr.s6_addr[10] = 0xff;
                a->sin6_addr.s6_addr[11] = 0xff;
                memcpy(&a->sin6_addr.s6_addr[12], ip.buf, 4);
            } else {
                memcpy(a->sin6_addr.s6_addr, ip.buf, 16);
            }
            s->remote_len = sizeof *a;
            s->has_remote = 1;
        }
        /* An IPv6 far end on an IPv4 socket: unreachable, every send counts an error. */
        s->expected_len = comparable(&s->remote, s->expected);
        if (!s->has_remote) {
            memcpy(s->expected, ip.buf, (size_t)ip.len);
            s->expected_len = (int)ip.len;
        }
    }
    PyBuffer_Release(&ip);
    Py_RETURN_NONE;
}

static PyObject *Pump_set_ticking(Pump *self, PyObject *args) {
    Py_ssize_t index;
    int on;
    if (!PyArg_ParseTuple(args, "np:set_ticking", &index, &on))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    s->ticking = on;
    Py_RETURN_NONE;
}

static PyObject *Pump_set_tapped(Pump *self, PyObject *args) {
    Py_ssize_t index;
    int on;
    if (!PyArg_ParseTuple(args, "np:set_tapped", &index, &on))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    s->tapped = on;
    Py_RETURN_NONE;
}

static PyObject *Pump_watch(Pump *self, PyObject *args) {
    Py_ssize_t index;
    double timeout, now;
    if (!PyArg_ParseTuple(args, "ndd:watch", &index, &timeout, &now))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    s->timeout = timeout;
    s->last_received = now;
    s->timed_out = 0;
    Py_RETURN_NONE;
}

static PyObject *Pump_skip(Pump *self, PyObject *args) {
    Py_ssize_t index;
    unsigned int samples;
    if (!PyArg_ParseTuple(args, "nI:skip", &index, &samples))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    s->ts += samples;
    Py_RETURN_NONE;
}

/* ---- sending --------------------------------------------------------------------- */

static void pack_header(unsigned char *h, uint8_t second, uint16_t seq, uint32_t ts,
                        uint32_t ssrc) {
    h[0] = FIRST_BYTE;
    h[1] = second;
    h[2] = (unsigned char)(seq >> 8);
    h[3] = (unsigned char)seq;
    h[4] = (unsigned char)(ts >> 24);
    h[5] = (unsigned char)(ts >> 16);
    h[6] = (unsigned char)(ts >> 8);
    h[7] = (unsigned char)ts;
    h[8] = (unsigned char)(ssrc >> 24);
    h[9] = (unsigned char)(ssrc >> 16);
    h[10] = (unsigned char)(ssrc >> 8);
    h[11] = (unsigned char)ssrc;
}

static void send_packet(Slot *s, unsigned char *header, const void *payload, Py_ssize_t size) {
    if (!s->has_remote) {
        s->send_errors++;
        return;
    }
    struct iovec iov[2] = {{header, HEADER_SIZE}, {(void *)payload, (size_t)size}};
    struct msghdr msg = {0};
    msg.msg_name = &s->remote;
    msg.msg_namelen = s->remote_len;
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    /* UDP: a full buffer or an ICMP error from an earlier packet. RTP tolerates loss;
     * the count shows in the outcome and the no-RTP timer ends dead calls. */
    if (sendmsg(s->fd, &msg, MSG_DONTWAIT) < 0)
        s->send_errors++;
    else
        s->packets_sent++;
}

static int append_event(PyObject *events, int kind, PyObject *owner, PyObject *value) {
    PyObject *event = Py_BuildValue("(iOO)", kind, owner, value);
    if (event == NULL)
        return -1;
    int rc = PyList_Append(events, event);
    Py_DECREF(event);
    return rc;
}

/* One frame of `s` (a stream with a remote), events appended for its tap and its voice. */
static int tick_slot(Slot *s, PyObject *events) {
    PyObject *frames = s->frames;
    Py_ssize_t count = frames ? PyTuple_GET_SIZE(frames) : 0;
    Py_ssize_t index = s->next_frame;
    PyObject *frame;
    if (index < count) {
        frame = PyTuple_GET_ITEM(frames, index);
        s->next_frame = index + 1;
    } else {
        frame = s->silence;
    }
    unsigned char header[HEADER_SIZE];
    pack_header(header, s->second_byte, s->seq, s->ts, s->ssrc);
    s->second_byte = s->payload_type;
    s->seq++;
    s->ts += FRAME_SAMPLES;
    if (frame == NULL) {
        s->send_errors++;
    } else {
        /* A view's buffer is taken for the send only: a released view raises here. */
        Py_buffer view;
        if (PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            s->send_errors++;
        } else {
            send_packet(s, header, view.buf, view.len);
            PyBuffer_Release(&view);
        }
    }
    /* The owner and frames stay referenced by the event, whatever Python does next. */
    PyObject *owner = s->owner;
    int done = index + 1 == count;
    if (s->tapped && frame != NULL && append_event(events, EV_SENT, owner, frame) < 0)
        return -1;
    if (done && append_event(events, EV_VOICE_DONE, owner, Py_None) < 0)
        return -1;
    return 0;
}

static PyObject *Pump_tick(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
    PyObject *events = PyList_New(0);
    if (events == NULL)
        return NULL;
    self->busy = 1;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Slot *s = &self->slots[i];
        if (s->in_use && s->ticking && s->remote_set && tick_slot(s, events) < 0) {
            Py_CLEAR(events);
            break;
        }
    }
    self->busy = 0;
    return events;
}

static PyObject *Pump_tick_one(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:tick_one", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    PyObject *events = PyList_New(0);
    if (events == NULL)
        return NULL;
    self->busy = 1;
    if (s->remote_set && tick_slot(s, events) < 0)
        Py_CLEAR(events);
    self->busy = 0;
    return events;
}

static PyObject *Pump_send_event(Pump *self, PyObject *args) {
    Py_ssize_t index;
    Py_buffer payload;
    unsigned int timestamp;
    int marker;
    if (!PyArg_ParseTuple(args, "ny*Ip:send_event", &index, &payload, &timestamp, &marker))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    if (s->remote_set && s->dtmf_payload_type >= 0) {
        unsigned char header[HEADER_SIZE];
        uint8_t second = (uint8_t)(s->dtmf_payload_type | (marker ? 0x80 : 0));
        pack_header(header, second, s->seq, timestamp, s->ssrc);
        s->seq++;
        send_packet(s, header, payload.buf, payload.len);
    }
    PyBuffer_Release(&payload);
    Py_RETURN_NONE;
}

/* ---- the no-RTP timer ------------------------------------------------------------ */

static int timed_out(Slot *s, double now) {
    if (s->received != s->received_at_check) {
        s->received_at_check = s->received;
        s->last_received = now;
    }
    if (s->timeout >= 0 && !s->timed_out && now - s->last_received > s->timeout) {
        s->timed_out = 1;
        return 1;
    }
    return 0;
}

static PyObject *Pump_check_timeouts(Pump *self, PyObject *args) {
    double now;
    if (!PyArg_ParseTuple(args, "d:check_timeouts", &now) || !usable(self))
        return NULL;
    PyObject *owners = PyList_New(0);
    if (owners == NULL)
        return NULL;
    self->busy = 1;
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Slot *s = &self->slots[i];
        if (s->in_use && s->ticking && timed_out(s, now) && PyList_Append(owners, s->owner) < 0) {
            Py_CLEAR(owners);
            break;
        }
    }
    self->busy = 0;
    return owners;
}

static PyObject *Pump_check_timeout(Pump *self, PyObject *args) {
    Py_ssize_t index;
    double now;
    if (!PyArg_ParseTuple(args, "nd:check_timeout", &index, &now))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    return PyBool_FromLong(timed_out(s, now));
}

/* ---- receiving ------------------------------------------------------------------- */

static PyObject *address_tuple(const struct sockaddr_storage *addr) {
    char host[INET6_ADDRSTRLEN];
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

static int same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_flowinfo == y->sin6_flowinfo &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return 0;
}

static int port_of(const struct sockaddr_storage *addr) {
    if (addr->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return -1;
}

/* A packet from a source other than the latched one: latch it if nothing is latched
 * and it comes from the SDP's address; otherwise count it and tell Python (which
 * throttles the log line). 1: accepted, 0: dropped, -1: error. */
static int latch(Slot *s, const struct sockaddr_storage *source, socklen_t len, PyObject *events) {
    if (!s->latched && (source->ss_family == AF_INET || source->ss_family == AF_INET6)) {
        unsigned char ip[16];
        int ip_len = comparable(source, ip);
        if (s->expect_any || (ip_len == s->expected_len && memcmp(ip, s->expected, ip_len) == 0)) {
            memcpy(&s->source, source, len);
            s->source_len = len;
            s->latched = 1;
            if (port_of(source) != s->remote_port) {
                PyObject *where = address_tuple(source);
                if (where == NULL)
                    return -1;
                int rc = append_event(events, EV_LATCHED, s->owner, where);
                Py_DECREF(where);
                if (rc < 0)
                    return -1;
            }
            return 1;
        }
    }
    s->rejected++;
    PyObject *where = address_tuple(source);
    if (where == NULL)
        return -1;
    int rc = append_event(events, EV_REJECTED, s->owner, where);
    Py_DECREF(where);
    return rc < 0 ? -1 : 0;
}

static void count_packet(Slot *s, uint32_t ssrc, long seq) {
    s->received++;
    if (s->has_ssrc && ssrc == s->stats_ssrc && seq == s->max_seq + 1) {
        s->max_seq = seq; /* in order, no wrap: the common case */
        return;
    }
    int restart = 0;
    if (!s->has_ssrc || ssrc != s->stats_ssrc) {
        restart = 1;
    } else {
        long delta = ((seq - s->max_seq) % SEQ_MOD + SEQ_MOD) % SEQ_MOD;
        if (delta < MAX_DROPOUT) {
            if (seq < s->max_seq)
                s->cycles += SEQ_MOD;
            s->max_seq = seq;
        } else if (delta <= SEQ_MOD - MAX_MISORDER) {
            restart = 1; /* a big jump: the sender restarted its sequence */
        }
    }
    if (restart) {
        if (s->has_ssrc)
            s->expected_before += s->cycles + (unsigned long long)(s->max_seq - s->base_seq + 1);
        s->has_ssrc = 1;
        s->stats_ssrc = ssrc;
        s->base_seq = seq;
        s->max_seq = seq;
        s->cycles = 0;
    }
}

static unsigned long long packets_expected(const Slot *s) {
    if (!s->has_ssrc)
        return 0;
    return s->expected_before + s->cycles + (unsigned long long)(s->max_seq - s->base_seq + 1);
}

static int on_telephone_event(Slot *s, const unsigned char *data, Py_ssize_t size, uint32_t ts,
                              PyObject *events) {
    Py_ssize_t offset = HEADER_SIZE + 4 * (data[0] & 0x0F);
    if ((data[0] & 0x10) && size >= offset + 4)
        offset += 4 + 4 * (((Py_ssize_t)data[offset + 2] << 8) | data[offset + 3]);
    if (size - offset < 4)
        return 0; /* too short to be an event (RFC 4733 §2.3) */
    if (s->has_event_ts && ts == s->event_ts)
        return 0; /* a repeat or an end retransmission of the last event */
    s->has_event_ts = 1;
    s->event_ts = ts;
    unsigned event = data[offset];
    if (event >= sizeof DTMF_KEYS - 1)
        return 0;
    PyObject *key = PyUnicode_FromStringAndSize(&DTMF_KEYS[event], 1);
    if (key == NULL)
        return -1;
    int rc = append_event(events, EV_KEY, s->owner, key);
    Py_DECREF(key);
    return rc;
}

static int on_datagram(Slot *s, const unsigned char *data, Py_ssize_t size,
                       const struct sockaddr_storage *source, socklen_t source_len,
                       PyObject *events) {
    /* Packets before start() (early media, a 183's stream) are read and dropped so the
     * kernel buffer holds no stale audio when the call is answered. */
    if (!s->started || size < HEADER_SIZE)
        return 0;
    if (!(s->latched && same_source(source, &s->source))) {
        int accepted = latch(s, source, source_len, events);
        if (accepted <= 0)
            return accepted;
    }
    if (data[0] >> 6 != 2)
        return 0;
    uint32_t ts = ((uint32_t)data[4] << 24) | ((uint32_t)data[5] << 16) |
                  ((uint32_t)data[6] << 8) | data[7];
    uint32_t ssrc = ((uint32_t)data[8] << 24) | ((uint32_t)data[9] << 16) |
                    ((uint32_t)data[10] << 8) | data[11];
    count_packet(s, ssrc, ((long)data[2] << 8) | data[3]);
    int payload_type = data[1] & 0x7F;
    if (payload_type == s->dtmf_payload_type)
        return on_telephone_event(s, data, size, ts, events);
    if (s->tapped && payload_type == s->payload_type) {
        Py_ssize_t offset = HEADER_SIZE + 4 * (data[0] & 0x0F);
        Py_ssize_t length = size > offset ? size - offset : 0;
        PyObject *audio = Py_BuildValue("(kky#)", (unsigned long)ssrc, (unsigned long)ts,
                                        (const char *)data + (length ? offset : 0), length);
        if (audio == NULL)
            return -1;
        int rc = append_event(events, EV_AUDIO, s->owner, audio);
        Py_DECREF(audio);
        return rc;
    }
    return 0;
}

#ifdef PUMP_EXACT_COPIES
/* The sanitized build of the tests: each datagram is parsed from a heap copy of exactly
 * its size, so AddressSanitizer reports a read past its end; in the shared receive
 * buffer that read would return stale bytes and go unnoticed. */
static int parse_datagram(Slot *s, const unsigned char *data, Py_ssize_t size,
                          const struct sockaddr_storage *source, socklen_t source_len,
                          PyObject *events) {
    unsigned char *copy = malloc(size > 0 ? (size_t)size : 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, data, (size_t)size);
    int rc = on_datagram(s, copy, size, source, source_len, events);
    free(copy);
    return rc;
}
#else
#define parse_datagram on_datagram
#endif

/* drain(reads): read every ready socket, at most `reads` datagrams from each (the
 * intervals the loop was away: one when it is on time, so the common case is a single
 * datagram per socket and a recvmmsg that does not try for a second). */
static PyObject *Pump_drain(Pump *self, PyObject *args) {
    int reads;
    if (!PyArg_ParseTuple(args, "i:drain", &reads) || !usable(self))
        return NULL;
    if (reads < 1)
        reads = 1;
    if (reads > RECV_BATCH * MAX_BATCHES)
        reads = RECV_BATCH * MAX_BATCHES;
    struct epoll_event ready[MAX_EVENTS];
    int n = epoll_wait(self->epfd, ready, MAX_EVENTS, 0);
    if (n < 0) {
        if (errno == EINTR)
            return Py_BuildValue("(iN)", 0, PyList_New(0));
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *events = PyList_New(0);
    if (events == NULL)
        return NULL;
    self->busy = 1;
    long datagrams = 0;
    for (int i = 0; i < n && events != NULL; i++) {
        Py_ssize_t index = (Py_ssize_t)ready[i].data.u64;
        if (index >= self->capacity || !self->slots[index].in_use)
            continue;
        Slot *s = &self->slots[index];
        for (int left = reads; left > 0 && events != NULL;) {
            int want = left < RECV_BATCH ? left : RECV_BATCH;
            for (int j = 0; j < want; j++) {
                struct msghdr *h = &self->msgs[j].msg_hdr;
                memset(h, 0, sizeof *h);
                h->msg_name = &self->addrs[j];
                h->msg_namelen = sizeof self->addrs[j];
                h->msg_iov = &self->iovs[j];
                h->msg_iovlen = 1;
            }
            int got = recvmmsg(s->fd, self->msgs, (unsigned)want, MSG_DONTWAIT, NULL);
            /* < 0: nothing after all, or an ICMP error for an earlier send: not a packet. */
            for (int j = 0; j < got; j++) {
                Py_ssize_t size = (Py_ssize_t)self->msgs[j].msg_len;
                if (size > RECV_SIZE)
                    size = RECV_SIZE;
                datagrams++;
                if (parse_datagram(s, self->bufs[j], size, &self->addrs[j],
                                   self->msgs[j].msg_hdr.msg_namelen, events) < 0) {
                    Py_CLEAR(events);
                    break;
                }
            }
            if (got < want)
                break;
            left -= got;
        }
    }
    self->busy = 0;
    if (events == NULL)
        return NULL;
    PyObject *result = Py_BuildValue("(lN)", datagrams, events);
    return result;
}

/* ---- what Python reads back ------------------------------------------------------ */

static PyObject *Pump_counters(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:counters", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    return Py_BuildValue("(KKKKK)", s->packets_sent, s->send_errors, s->received,
                         packets_expected(s), s->rejected);
}

static PyObject *Pump_source(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:source", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    if (!s->latched)
        Py_RETURN_NONE;
    return address_tuple(&s->source);
}

static PyObject *Pump_timestamp(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:timestamp", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(s->ts);
}

static PyMethodDef Pump_methods[] = {
    {"fileno", (PyCFunction)Pump_fileno, METH_NOARGS, "The epoll descriptor to wait on."},
    {"close", (PyCFunction)Pump_close, METH_NOARGS, "Release every slot and the epoll set."},
    {"add", (PyCFunction)Pump_add, METH_VARARGS, "add(fd, owner, ssrc, seq, ts) -> slot"},
    {"remove", (PyCFunction)Pump_remove, METH_VARARGS, "remove(slot): before closing its fd"},
    {"size", (PyCFunction)Pump_len, METH_NOARGS, "Slots in use."},
    {"start", (PyCFunction)Pump_start, METH_VARARGS,
     "start(slot, frames, silence, payload_type, dtmf_payload_type, hold)"},
    {"release_voice", (PyCFunction)Pump_release_voice, METH_VARARGS, "release_voice(slot)"},
    {"set_remote", (PyCFunction)Pump_set_remote, METH_VARARGS, "set_remote(slot, ip, port)"},
    {"set_ticking", (PyCFunction)Pump_set_ticking, METH_VARARGS, "set_ticking(slot, on)"},
    {"set_tapped", (PyCFunction)Pump_set_tapped, METH_VARARGS, "set_tapped(slot, on)"},
    {"watch", (PyCFunction)Pump_watch, METH_VARARGS, "watch(slot, timeout, now)"},
    {"skip", (PyCFunction)Pump_skip, METH_VARARGS, "skip(slot, samples)"},
    {"tick", (PyCFunction)Pump_tick, METH_NOARGS, "One frame for every ticking slot."},
    {"tick_one", (PyCFunction)Pump_tick_one, METH_VARARGS, "tick_one(slot)"},
    {"send_event", (PyCFunction)Pump_send_event, METH_VARARGS,
     "send_event(slot, payload, timestamp, marker)"},
    {"check_timeouts", (PyCFunction)Pump_check_timeouts, METH_VARARGS, "check_timeouts(now)"},
    {"check_timeout", (PyCFunction)Pump_check_timeout, METH_VARARGS, "check_timeout(slot, now)"},
    {"drain", (PyCFunction)Pump_drain, METH_VARARGS,
     "drain(reads): read every ready socket -> (datagrams, events)."},
    {"counters", (PyCFunction)Pump_counters, METH_VARARGS,
     "counters(slot) -> (sent, send_errors, received, expected, rejected)"},
    {"source", (PyCFunction)Pump_source, METH_VARARGS, "source(slot) -> latched address"},
    {"timestamp", (PyCFunction)Pump_timestamp, METH_VARARGS, "timestamp(slot)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ivrcast.rtp._pump.Pump",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-packet work of many RTP streams.",
    .tp_new = Pump_new,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_traverse = (traverseproc)Pump_traverse,
    .tp_clear = (inquiry)Pump_clear,
    .tp_methods = Pump_methods,
};

static struct PyModuleDef pump_module = {
    PyModuleDef_HEAD_INIT, "_pump", "The native media pump (see rtp/pump.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit__pump(void) {
    if (PyType_Ready(&PumpType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&pump_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(module, "Pump", (PyObject *)&PumpType) < 0 ||
        PyModule_AddIntConstant(module, "SENT", EV_SENT) < 0 ||
        PyModule_AddIntConstant(module, "VOICE_DONE", EV_VOICE_DONE) < 0 ||
        PyModule_AddIntConstant(module, "KEY", EV_KEY) < 0 ||
        PyModule_AddIntConstant(module, "AUDIO", EV_AUDIO) < 0 ||
        PyModule_AddIntConstant(module, "REJECTED", EV_REJECTED) < 0 ||
        PyModule_AddIntConstant(module, "LATCHED", EV_LATCHED) < 0) {
        Py_DECREF(&PumpType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
