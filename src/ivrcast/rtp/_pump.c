/* The native media pump: the per-packet work of every call's RTP stream, in C.
 *
 * One `Pump` holds, per stream, a slot with the hot state that `rtp/stream.py` keeps in
 * Python attributes: the socket, where to send, the header fields, the position in the
 * shared frames (held by reference, never copied), the receive statistics of RFC 3550
 * A.1, the latched source, the RFC 4733 de-duplication and the counters.
 *
 * The pump runs in one of two modes. With `run()`, a media thread of its own ticks every
 * slot on absolute CLOCK_MONOTONIC times and drains the sockets between ticks; it never
 * takes the GIL, so neither the event loop nor the garbage collector can hold a tick
 * back. Without it, Python drives the same code synchronously: `tick()` from the media
 * clock and `drain()` when the epoll set is readable (the unit tests use this mode, as
 * it is deterministic). Either way only what Python has to act on (a voice that ended, a
 * key, a rejected source, audio for a tap) goes up, as plain C records that Python turns
 * into event tuples, so a call with nothing to report costs no Python object per packet.
 *
 * Locking: one mutex guards the slot table. The media thread holds it for a batch of
 * slots at a time and never touches a Python object: frame bytes are read through
 * buffers taken (with the GIL) when a voice is started, and kept while a slot uses them.
 * Python-side calls hold the GIL and take the mutex for the fields the thread reads or
 * writes; they drop references only after releasing it, since a deallocation can run
 * Python code that calls the pump again. Fields only Python writes (`in_use`, `owner`,
 * `generation`, the voice and silence references, the table itself) are written under
 * both, so Python may read them with the GIL alone.
 *
 * The rules are those of `rtp/stream.py`, `rtp/stats.py` and `rtp/dtmf.py`, which stay
 * the reference and the fallback; the unit tests run against both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HEADER_SIZE 12      /* RFC 3550 §5.1, no CSRC or extension */
#define FIRST_BYTE 0x80     /* version 2, no padding, extension or CSRC */
#define FRAME_SAMPLES 160   /* 20 ms of 8 kHz G.711 */
#define RECV_SIZE 2048
#define RECV_BATCH 16       /* datagrams read from one socket per recvmmsg */
#define MAX_BATCHES 4       /* so at most 64 datagrams per socket and drain */
/* Ready sockets per epoll_wait. In the synchronous mode a drain runs as an I/O callback
 * before the loop's timers, and a drain of 1,024 sockets held the media clock's tick
 * back (bench/engine.py, 2,000 echoed streams: p99 pacing 8.5-8.9 ms against 3.7-4.6
 * ms with 128). The media thread ticks first whenever both are due. */
#define MAX_EVENTS 128
/* Slots ticked, and sockets drained, per hold of the lock: a Python call waits at most
 * one batch (some 100 us of sendmsg/recvmmsg), never a whole tick. */
#define TICK_BATCH 64
#define DRAIN_BATCH 32
#define MAX_DROPOUT 3000    /* RFC 3550 A.1 */
#define MAX_MISORDER 100    /* RFC 3550 A.1 */
#define SEQ_MOD 65536
/* The queue of records for Python. Bounded, so a stalled loop cannot make the thread
 * eat memory: at the bounds a record is dropped and counted by kind (`dropped()`). Bulk
 * records (tap frames and audio, rejections) stop at three quarters of it, so the rest
 * stays for those that change a call's course (a voice's end, a key, a latch). With
 * 4,000 tapped calls (8,000 records and 1.3 MB each 20 ms) that is some 120 ms of a
 * loop that does not come back. */
#define QUEUE_RECORDS_MAX (1 << 18)
#define QUEUE_BYTES_MAX ((size_t)64 << 20)
#define TAG_TIMER UINT64_MAX        /* epoll data of the media thread's timerfd */
#define TAG_STOP (UINT64_MAX - 1)   /* ... and of its stop eventfd */

static const char DTMF_KEYS[] = "0123456789*#ABCD"; /* RFC 4733 §3.2 */

/* What tick() and drain() report, the first item of each event tuple. */
enum { EV_SENT = 0, EV_VOICE_DONE = 1, EV_KEY = 2, EV_AUDIO = 3, EV_REJECTED = 4, EV_LATCHED = 5,
       EV_KINDS = 6 };

/* One event for Python; its bytes (a frame, a payload, an address) are in the queue's. */
typedef struct {
    uint8_t kind;
    char key;
    uint32_t slot;
    uint32_t generation; /* of the slot when recorded: a slot reused since is not it */
    uint32_t ssrc, ts;
    uint32_t length;
    size_t offset;
} Record;

typedef struct {
    Record *records;
    size_t count, records_cap;
    unsigned char *bytes;
    size_t used, bytes_cap;
} Queue;

/* A voice's frames, shared by every slot that plays it: the buffers are taken once with
 * the GIL, so the media thread reads bytes and memoryviews alike through plain pointers,
 * and a memoryview cannot be released while a slot may still send from it. */
typedef struct Voice {
    PyObject *frames; /* the tuple */
    Py_ssize_t count;
    Py_ssize_t users; /* slots holding it, as their voice or their held voice */
    Py_buffer *views;
    struct Voice *next;
} Voice;

typedef struct {
    int in_use;
    uint32_t generation;
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
    Voice *voice;         /* or NULL */
    Voice *held;          /* the voice held back until release_voice(), or NULL */
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
    pthread_mutex_t lock;
    int python_waiting;   /* Python callers waiting for the lock (lock_for_python) */
    Slot *slots;
    Py_ssize_t capacity;
    Py_ssize_t used;      /* slots in use */
    uint32_t generations;
    Voice *voices;
    /* the media thread */
    int threaded;
    pthread_t thread;
    int timer_fd, stop_fd;
    int events_fd;        /* signalled when records wait in `pending` */
    int signalled;        /* ... and not taken since */
    int64_t interval_ns;
    size_t records_max;   /* the queue's bound, QUEUE_RECORDS_MAX unless a test says */
    Queue pending;
    unsigned long long late_ticks;
    unsigned long long dropped[EV_KINDS];
    /* receive buffers, used under the lock */
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iovs[RECV_BATCH];
    struct sockaddr_storage addrs[RECV_BATCH];
    unsigned char bufs[RECV_BATCH][RECV_SIZE];
} Pump;

/* References a Python-side call let go of, dropped once the lock is released. */
typedef struct {
    PyObject *objects[2];
    Voice *voices[2];
} Garbage;

/* Python's calls take the lock ahead of the media thread. A mutex is not fair: a media
 * thread with more work than time (4,000 streams on a busy core) let go of it between
 * batches and took it back before the waiting Python thread woke, and the event loop,
 * stuck in the call with the GIL held, set no call up: in bench/engine.py 65 of 4,000
 * calls failed and the rest took 81 s to come up. So a Python caller says it waits,
 * and the thread yields until it has had its turn. */
static void lock_for_python(Pump *p) {
    __atomic_add_fetch(&p->python_waiting, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&p->lock);
    __atomic_sub_fetch(&p->python_waiting, 1, __ATOMIC_SEQ_CST);
}

static void lock_for_media(Pump *p) {
    while (__atomic_load_n(&p->python_waiting, __ATOMIC_SEQ_CST))
        sched_yield();
    pthread_mutex_lock(&p->lock);
}

#define LOCK(p) lock_for_python(p)
#define MEDIA_LOCK(p) lock_for_media(p)
#define UNLOCK(p) pthread_mutex_unlock(&(p)->lock)

/* ---- the queue of records --------------------------------------------------------- */

static int is_bulk(int kind) {
    return kind == EV_SENT || kind == EV_AUDIO || kind == EV_REJECTED;
}

/* Append a record (and `size` bytes) to `q`; at its bounds, or out of memory, the record
 * is dropped and counted. Plain malloc: the media thread holds no GIL. */
static void push(Pump *self, Queue *q, Record r, const void *data, size_t size) {
    size_t records_max = self->records_max, bytes_max = QUEUE_BYTES_MAX;
    if (is_bulk(r.kind)) {
        records_max = records_max / 4 * 3;
        bytes_max = bytes_max / 4 * 3;
    }
    if (q->count >= records_max || q->used + size > bytes_max)
        goto dropped;
    if (q->count == q->records_cap) {
        size_t cap = q->records_cap ? q->records_cap * 2 : 256;
        Record *records = realloc(q->records, cap * sizeof *records);
        if (records == NULL)
            goto dropped;
        q->records = records;
        q->records_cap = cap;
    }
    if (q->used + size > q->bytes_cap) {
        size_t cap = q->bytes_cap ? q->bytes_cap : 16384;
        while (q->used + size > cap)
            cap *= 2;
        unsigned char *bytes = realloc(q->bytes, cap);
        if (bytes == NULL)
            goto dropped;
        q->bytes = bytes;
        q->bytes_cap = cap;
    }
    r.offset = q->used;
    r.length = (uint32_t)size;
    if (size)
        memcpy(q->bytes + q->used, data, size);
    q->used += size;
    q->records[q->count++] = r;
    return;
dropped:
    self->dropped[r.kind]++;
}

static void queue_free(Queue *q) {
    free(q->records);
    free(q->bytes);
    memset(q, 0, sizeof *q);
}

static Record record(int kind, Py_ssize_t index, const Slot *s) {
    Record r = {0};
    r.kind = (uint8_t)kind;
    r.slot = (uint32_t)index;
    r.generation = s->generation;
    return r;
}

/* ---- voices -------------------------------------------------------------------------- */

static Voice *voice_get(Pump *self, PyObject *frames) {
    for (Voice *v = self->voices; v != NULL; v = v->next) {
        if (v->frames == frames) {
            v->users++;
            return v;
        }
    }
    Py_ssize_t count = PyTuple_GET_SIZE(frames);
    Voice *v = PyMem_Calloc(1, sizeof *v);
    Py_buffer *views = PyMem_Calloc(count ? (size_t)count : 1, sizeof *views);
    if (v == NULL || views == NULL) {
        PyMem_Free(v);
        PyMem_Free(views);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *f = PyTuple_GET_ITEM(frames, i);
        if ((!PyBytes_CheckExact(f) && !PyMemoryView_Check(f)) ||
            PyObject_GetBuffer(f, &views[i], PyBUF_SIMPLE) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "frames must be bytes or memoryview");
            while (i-- > 0)
                PyBuffer_Release(&views[i]);
            PyMem_Free(views);
            PyMem_Free(v);
            return NULL;
        }
    }
    Py_INCREF(frames);
    v->frames = frames;
    v->count = count;
    v->users = 1;
    v->views = views;
    v->next = self->voices;
    self->voices = v;
    return v;
}

/* With the GIL and without the lock: no slot points to `v` any more. */
static void voice_put(Pump *self, Voice *v) {
    if (v == NULL || --v->users > 0)
        return;
    for (Voice **at = &self->voices; *at != NULL; at = &(*at)->next) {
        if (*at == v) {
            *at = v->next;
            break;
        }
    }
    for (Py_ssize_t i = 0; i < v->count; i++)
        PyBuffer_Release(&v->views[i]);
    PyMem_Free(v->views);
    Py_DECREF(v->frames);
    PyMem_Free(v);
}

static void garbage_drop(Pump *self, Garbage *g) {
    for (int i = 0; i < 2; i++) {
        Py_XDECREF(g->objects[i]);
        voice_put(self, g->voices[i]);
    }
}

/* Under the lock: the slot lets go of its references, into `g`. */
static void slot_release(Slot *s, Garbage *g) {
    g->objects[0] = s->owner;
    g->objects[1] = s->silence;
    g->voices[0] = s->voice;
    g->voices[1] = s->held;
    s->owner = s->silence = NULL;
    s->voice = s->held = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int usable(Pump *self) {
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "the pump is closed");
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

static PyObject *Pump_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Pump", kwlist))
        return NULL;
    Pump *self = (Pump *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->timer_fd = self->stop_fd = self->events_fd = -1;
    self->records_max = QUEUE_RECORDS_MAX;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_init(&self->lock, NULL);
    for (int i = 0; i < RECV_BATCH; i++) {
        self->iovs[i].iov_base = self->bufs[i];
        self->iovs[i].iov_len = RECV_SIZE;
    }
    return (PyObject *)self;
}

static int Pump_traverse(Pump *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Py_VISIT(self->slots[i].owner);
        Py_VISIT(self->slots[i].silence);
    }
    for (Voice *v = self->voices; v != NULL; v = v->next)
        Py_VISIT(v->frames);
    return 0;
}

static void pump_stop(Pump *self);

static int Pump_clear(Pump *self) {
    /* The thread reads the slots' buffers: it stops before they go. */
    pump_stop(self);
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Garbage g = {{NULL}};
        LOCK(self);
        slot_release(&self->slots[i], &g);
        UNLOCK(self);
        garbage_drop(self, &g);
    }
    return 0;
}

static void pump_close(Pump *self) {
    Pump_clear(self);
    PyMem_Free(self->slots);
    self->slots = NULL;
    self->capacity = 0;
    self->used = 0;
    queue_free(&self->pending);
    if (self->events_fd >= 0) {
        close(self->events_fd);
        self->events_fd = -1;
    }
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
        pthread_mutex_destroy(&self->lock);
    }
}

static void Pump_dealloc(Pump *self) {
    PyObject_GC_UnTrack(self);
    pump_close(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Pump_close(Pump *self, PyObject *unused) {
    pump_close(self);
    Py_RETURN_NONE;
}

static PyObject *Pump_fileno(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
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
        /* Allocated and copied outside the lock; only the swap is under it. */
        Slot *slots = PyMem_Calloc((size_t)capacity, sizeof(Slot));
        if (slots == NULL)
            return PyErr_NoMemory();
        LOCK(self);
        if (self->capacity)
            memcpy(slots, self->slots, (size_t)self->capacity * sizeof(Slot));
        Slot *old = self->slots;
        self->slots = slots;
        self->capacity = capacity;
        UNLOCK(self);
        PyMem_Free(old);
    }
    Py_INCREF(owner);
    LOCK(self);
    Slot *s = &self->slots[index];
    memset(s, 0, sizeof *s);
    s->in_use = 1;
    s->generation = ++self->generations;
    s->fd = fd;
    s->family = local.ss_family;
    s->owner = owner;
    s->ssrc = ssrc;
    s->seq = (uint16_t)seq;
    s->ts = ts;
    s->dtmf_payload_type = -1;
    s->timeout = -1.0;
    UNLOCK(self);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)index};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        LOCK(self);
        s->in_use = 0;
        s->owner = NULL;
        UNLOCK(self);
        Py_DECREF(owner);
        return NULL;
    }
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
    Garbage g = {{NULL}};
    LOCK(self);
    /* The caller closes the socket after this; a failure here means it already did. */
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->in_use = 0;
    slot_release(s, &g);
    UNLOCK(self);
    self->used--;
    garbage_drop(self, &g);
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
    if (s == NULL)
        return NULL;
    if (payload_type < 0 || payload_type > 127 || dtmf_payload_type < -1 ||
        dtmf_payload_type > 127) {
        PyErr_SetString(PyExc_ValueError, "payload types are 0-127");
        return NULL;
    }
    Voice *voice = voice_get(self, frames);
    if (voice == NULL)
        return NULL;
    Py_INCREF(silence);
    Garbage g = {{NULL}};
    LOCK(self);
    g.objects[0] = s->silence;
    g.voices[0] = s->voice;
    g.voices[1] = s->held;
    s->voice = s->held = NULL;
    if (hold)
        s->held = voice;
    else
        s->voice = voice;
    s->next_frame = 0;
    s->silence = silence;
    s->payload_type = (uint8_t)payload_type;
    s->second_byte = (uint8_t)(payload_type | 0x80); /* RFC 3550 §5.1: talkspurt start */
    s->dtmf_payload_type = dtmf_payload_type;
    s->started = 1;
    UNLOCK(self);
    garbage_drop(self, &g);
    Py_RETURN_NONE;
}

static PyObject *Pump_release_voice(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:release_voice", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    Garbage g = {{NULL}};
    LOCK(self);
    if (s->held != NULL) {
        g.voices[0] = s->voice;
        s->voice = s->held;
        s->held = NULL;
        s->next_frame = 0;
    }
    UNLOCK(self);
    garbage_drop(self, &g);
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

static void set_remote(Slot *s, const unsigned char *ip, Py_ssize_t ip_len, int port) {
    s->latched = 0;
    s->remote_set = 1;
    s->remote_port = port;
    s->has_remote = 0;
    memset(&s->remote, 0, sizeof s->remote);
    if (ip_len == 0) {
        /* A host name in the SDP: nothing to send to or hold packets to. */
        s->expect_any = 1;
        return;
    }
    s->expect_any = 0;
    if (ip_len == 4 && s->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&s->remote;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        memcpy(&a->sin_addr, ip, 4);
        s->remote_len = sizeof *a;
        s->has_remote = 1;
    } else if (s->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->remote;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (ip_len == 4) {
            a->sin6_addr.s6_addr[10] = 0xff;
            a->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a->sin6_addr.s6_addr[12], ip, 4);
        } else {
            memcpy(a->sin6_addr.s6_addr, ip, 16);
        }
        s->remote_len = sizeof *a;
        s->has_remote = 1;
    }
    /* An IPv6 far end on an IPv4 socket: unreachable, every send counts an error. */
    s->expected_len = comparable(&s->remote, s->expected);
    if (!s->has_remote) {
        memcpy(s->expected, ip, (size_t)ip_len);
        s->expected_len = (int)ip_len;
    }
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
    LOCK(self);
    set_remote(s, ip.buf, ip.len, port);
    UNLOCK(self);
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
    LOCK(self);
    s->ticking = on;
    UNLOCK(self);
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
    LOCK(self);
    s->tapped = on;
    UNLOCK(self);
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
    LOCK(self);
    s->timeout = timeout;
    s->last_received = now;
    s->timed_out = 0;
    UNLOCK(self);
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
    LOCK(self);
    s->ts += samples;
    UNLOCK(self);
    Py_RETURN_NONE;
}

/* ---- sending (under the lock) ------------------------------------------------------ */

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

static void send_packet(Slot *s, unsigned char *header, const void *payload, size_t size) {
    if (!s->has_remote) {
        s->send_errors++;
        return;
    }
    struct iovec iov[2] = {{header, HEADER_SIZE}, {(void *)payload, size}};
    struct msghdr msg = {0};
    msg.msg_name = &s->remote;
    msg.msg_namelen = s->remote_len;
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    /* UDP: a full buffer or an ICMP error from an earlier packet. RTP tolerates loss;
     * the count shows in the outcome and the no-RTP timer ends dead calls. (Each slot
     * has a socket of its own, so sendmmsg, which batches on one socket, has nothing to
     * batch here.) */
    if (sendmsg(s->fd, &msg, MSG_DONTWAIT) < 0)
        s->send_errors++;
    else
        s->packets_sent++;
}

/* One frame of slot `index` (a stream with a remote), records for its tap and voice. */
static void tick_slot(Pump *self, Py_ssize_t index, Queue *q) {
    Slot *s = &self->slots[index];
    Voice *voice = s->voice;
    Py_ssize_t count = voice ? voice->count : 0;
    Py_ssize_t at = s->next_frame;
    const void *data = NULL;
    size_t size = 0;
    if (at < count) {
        data = voice->views[at].buf;
        size = (size_t)voice->views[at].len;
        s->next_frame = at + 1;
    } else if (s->silence != NULL) {
        data = PyBytes_AS_STRING(s->silence);
        size = (size_t)PyBytes_GET_SIZE(s->silence);
    }
    unsigned char header[HEADER_SIZE];
    pack_header(header, s->second_byte, s->seq, s->ts, s->ssrc);
    s->second_byte = s->payload_type;
    s->seq++;
    s->ts += FRAME_SAMPLES;
    if (data == NULL)
        s->send_errors++;
    else
        send_packet(s, header, data, size);
    if (s->tapped && data != NULL)
        push(self, q, record(EV_SENT, index, s), data, size);
    if (at + 1 == count)
        push(self, q, record(EV_VOICE_DONE, index, s), NULL, 0);
}

static int ticks(const Slot *s) {
    return s->in_use && s->ticking && s->remote_set;
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
    LOCK(self);
    if (s->remote_set && s->dtmf_payload_type >= 0) {
        unsigned char header[HEADER_SIZE];
        uint8_t second = (uint8_t)(s->dtmf_payload_type | (marker ? 0x80 : 0));
        pack_header(header, second, s->seq, timestamp, s->ssrc);
        s->seq++;
        send_packet(s, header, payload.buf, (size_t)payload.len);
    }
    UNLOCK(self);
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
    Py_ssize_t *found = PyMem_Malloc((self->capacity ? (size_t)self->capacity : 1) * sizeof *found);
    if (found == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = 0;
    LOCK(self);
    for (Py_ssize_t i = 0; i < self->capacity; i++) {
        Slot *s = &self->slots[i];
        if (s->in_use && s->ticking && timed_out(s, now))
            found[n++] = i;
    }
    UNLOCK(self);
    PyObject *owners = PyList_New(0);
    for (Py_ssize_t i = 0; i < n && owners != NULL; i++) {
        /* Building the list may run Python code that closes a stream: check each. */
        Slot *s = found[i] < self->capacity ? &self->slots[found[i]] : NULL;
        if (s != NULL && s->in_use && PyList_Append(owners, s->owner) < 0)
            Py_CLEAR(owners);
    }
    PyMem_Free(found);
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
    LOCK(self);
    int expired = timed_out(s, now);
    UNLOCK(self);
    return PyBool_FromLong(expired);
}

/* ---- receiving (under the lock) ----------------------------------------------------- */

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
 * throttles the log line). 1: accepted, 0: dropped. */
static int latch(Pump *self, Py_ssize_t index, const struct sockaddr_storage *source,
                 socklen_t len, Queue *q) {
    Slot *s = &self->slots[index];
    if (!s->latched && (source->ss_family == AF_INET || source->ss_family == AF_INET6)) {
        unsigned char ip[16];
        int ip_len = comparable(source, ip);
        if (s->expect_any || (ip_len == s->expected_len && memcmp(ip, s->expected, ip_len) == 0)) {
            memcpy(&s->source, source, len);
            s->source_len = len;
            s->latched = 1;
            if (port_of(source) != s->remote_port)
                push(self, q, record(EV_LATCHED, index, s), source, sizeof *source);
            return 1;
        }
    }
    s->rejected++;
    push(self, q, record(EV_REJECTED, index, s), source, sizeof *source);
    return 0;
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

static void on_telephone_event(Pump *self, Py_ssize_t index, const unsigned char *data,
                               Py_ssize_t size, uint32_t ts, Queue *q) {
    Slot *s = &self->slots[index];
    Py_ssize_t offset = HEADER_SIZE + 4 * (data[0] & 0x0F);
    if ((data[0] & 0x10) && size >= offset + 4)
        offset += 4 + 4 * (((Py_ssize_t)data[offset + 2] << 8) | data[offset + 3]);
    if (size - offset < 4)
        return; /* too short to be an event (RFC 4733 §2.3) */
    if (s->has_event_ts && ts == s->event_ts)
        return; /* a repeat or an end retransmission of the last event */
    s->has_event_ts = 1;
    s->event_ts = ts;
    unsigned event = data[offset];
    if (event >= sizeof DTMF_KEYS - 1)
        return;
    Record r = record(EV_KEY, index, s);
    r.key = DTMF_KEYS[event];
    push(self, q, r, NULL, 0);
}

static void on_datagram(Pump *self, Py_ssize_t index, const unsigned char *data, Py_ssize_t size,
                        const struct sockaddr_storage *source, socklen_t source_len, Queue *q) {
    Slot *s = &self->slots[index];
    /* Packets before start() (early media, a 183's stream) are read and dropped so the
     * kernel buffer holds no stale audio when the call is answered. */
    if (!s->started || size < HEADER_SIZE)
        return;
    if (!(s->latched && same_source(source, &s->source)) &&
        !latch(self, index, source, source_len, q))
        return;
    if (data[0] >> 6 != 2)
        return;
    uint32_t ts = ((uint32_t)data[4] << 24) | ((uint32_t)data[5] << 16) |
                  ((uint32_t)data[6] << 8) | data[7];
    uint32_t ssrc = ((uint32_t)data[8] << 24) | ((uint32_t)data[9] << 16) |
                    ((uint32_t)data[10] << 8) | data[11];
    count_packet(s, ssrc, ((long)data[2] << 8) | data[3]);
    int payload_type = data[1] & 0x7F;
    if (payload_type == s->dtmf_payload_type) {
        on_telephone_event(self, index, data, size, ts, q);
    } else if (s->tapped && payload_type == s->payload_type) {
        Py_ssize_t offset = HEADER_SIZE + 4 * (data[0] & 0x0F);
        Py_ssize_t length = size > offset ? size - offset : 0;
        Record r = record(EV_AUDIO, index, s);
        r.ssrc = ssrc;
        r.ts = ts;
        push(self, q, r, data + (length ? offset : 0), (size_t)length);
    }
}

#ifdef PUMP_EXACT_COPIES
/* The sanitized build of the tests: each datagram is parsed from a heap copy of exactly
 * its size, so AddressSanitizer reports a read past its end; in the shared receive
 * buffer that read would return stale bytes and go unnoticed. */
static void parse_datagram(Pump *self, Py_ssize_t index, const unsigned char *data,
                           Py_ssize_t size, const struct sockaddr_storage *source,
                           socklen_t source_len, Queue *q) {
    unsigned char *copy = malloc(size > 0 ? (size_t)size : 1);
    if (copy == NULL)
        return;
    memcpy(copy, data, (size_t)size);
    on_datagram(self, index, copy, size, source, source_len, q);
    free(copy);
}
#else
#define parse_datagram on_datagram
#endif

/* Read at most `reads` datagrams from slot `index`'s socket; how many came. */
static long drain_slot(Pump *self, Py_ssize_t index, int reads, Queue *q) {
    long datagrams = 0;
    for (int left = reads; left > 0;) {
        int want = left < RECV_BATCH ? left : RECV_BATCH;
        for (int j = 0; j < want; j++) {
            struct msghdr *h = &self->msgs[j].msg_hdr;
            memset(h, 0, sizeof *h);
            h->msg_name = &self->addrs[j];
            h->msg_namelen = sizeof self->addrs[j];
            h->msg_iov = &self->iovs[j];
            h->msg_iovlen = 1;
        }
        int got = recvmmsg(self->slots[index].fd, self->msgs, (unsigned)want, MSG_DONTWAIT, NULL);
        /* < 0: nothing after all, or an ICMP error for an earlier send: not a packet. */
        for (int j = 0; j < got; j++) {
            Py_ssize_t size = (Py_ssize_t)self->msgs[j].msg_len;
            if (size > RECV_SIZE)
                size = RECV_SIZE;
            datagrams++;
            parse_datagram(self, index, self->bufs[j], size, &self->addrs[j],
                           self->msgs[j].msg_hdr.msg_namelen, q);
        }
        if (got < want)
            break;
        left -= got;
    }
    return datagrams;
}

static int clamp_reads(long reads) {
    if (reads < 1)
        return 1;
    return reads > RECV_BATCH * MAX_BATCHES ? RECV_BATCH * MAX_BATCHES : (int)reads;
}

/* ---- records into Python events (with the GIL, without the lock) -------------------- */

static PyObject *event_value(const Record *r, const unsigned char *bytes) {
    /* An empty payload may have no bytes behind it at all: y# would make it None. */
    const unsigned char *data = r->length ? bytes + r->offset : (const unsigned char *)"";
    switch (r->kind) {
    case EV_SENT:
        return PyBytes_FromStringAndSize((const char *)data, r->length);
    case EV_KEY:
        return PyUnicode_FromStringAndSize(&r->key, 1);
    case EV_AUDIO:
        return Py_BuildValue("(kky#)", (unsigned long)r->ssrc, (unsigned long)r->ts,
                             (const char *)data, (Py_ssize_t)r->length);
    case EV_REJECTED:
    case EV_LATCHED: {
        struct sockaddr_storage where;
        memcpy(&where, data, sizeof where);
        return address_tuple(&where);
    }
    default:
        Py_RETURN_NONE;
    }
}

/* The events of `q`, in order, for the slots still holding the stream they were for;
 * frees `q`, which belongs to this call alone (Python code run meanwhile, a finaliser,
 * may call the pump again). */
static PyObject *events_from(Pump *self, Queue *q) {
    PyObject *events = PyList_New(0);
    for (size_t i = 0; i < q->count && events != NULL; i++) {
        const Record *r = &q->records[i];
        Slot *s = (Py_ssize_t)r->slot < self->capacity ? &self->slots[r->slot] : NULL;
        if (s == NULL || !s->in_use || s->generation != r->generation)
            continue; /* removed since: its stream has closed */
        PyObject *owner = s->owner;
        Py_INCREF(owner);
        PyObject *value = event_value(r, q->bytes);
        PyObject *event = value ? Py_BuildValue("(iON)", r->kind, owner, value) : NULL;
        Py_DECREF(owner);
        if (event == NULL || PyList_Append(events, event) < 0)
            Py_CLEAR(events);
        Py_XDECREF(event);
    }
    queue_free(q);
    return events;
}

/* Under the lock: take what waits for Python. */
static Queue take_pending(Pump *self) {
    Queue taken = self->pending;
    memset(&self->pending, 0, sizeof self->pending);
    self->signalled = 0;
    return taken;
}

/* Under the lock, from the media thread: wake Python's reader once per batch taken. */
static void signal_pending(Pump *self) {
    if (self->pending.count && !self->signalled) {
        uint64_t one = 1;
        if (write(self->events_fd, &one, sizeof one) == sizeof one)
            self->signalled = 1;
    }
}

/* ---- the synchronous mode (Python drives) ------------------------------------------ */

static PyObject *Pump_tick(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
    if (self->threaded) {
        PyErr_SetString(PyExc_RuntimeError, "the pump's media thread ticks it");
        return NULL;
    }
    Queue q = {0};
    LOCK(self);
    for (Py_ssize_t i = 0; i < self->capacity; i++)
        if (ticks(&self->slots[i]))
            tick_slot(self, i, &q);
    UNLOCK(self);
    return events_from(self, &q);
}

/* A Python-side batch goes through `pending` when the thread runs, so that one stream's
 * events stay in the order they happened whoever read them. */
static PyObject *take_with(Pump *self, Queue *q) {
    if (self->threaded) {
        *q = take_pending(self);
    }
    UNLOCK(self);
    return events_from(self, q);
}

static PyObject *Pump_tick_one(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:tick_one", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    Queue q = {0};
    LOCK(self);
    if (s->remote_set)
        tick_slot(self, index, self->threaded ? &self->pending : &q);
    return take_with(self, &q);
}

/* drain(reads): read every ready socket, at most `reads` datagrams from each (the
 * intervals the loop was away: one when it is on time, so the common case is a single
 * datagram per socket and a recvmmsg that does not try for a second). With the media
 * thread running, this also hands back what the thread read before. */
static PyObject *Pump_drain(Pump *self, PyObject *args) {
    int reads;
    if (!PyArg_ParseTuple(args, "i:drain", &reads) || !usable(self))
        return NULL;
    reads = clamp_reads(reads);
    struct epoll_event ready[MAX_EVENTS];
    int n = epoll_wait(self->epfd, ready, MAX_EVENTS, 0);
    if (n < 0) {
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        n = 0;
    }
    Queue q = {0};
    Queue *into = self->threaded ? &self->pending : &q;
    long datagrams = 0;
    LOCK(self);
    for (int i = 0; i < n; i++) {
        uint64_t index = ready[i].data.u64;
        if (index < (uint64_t)self->capacity && self->slots[index].in_use)
            datagrams += drain_slot(self, (Py_ssize_t)index, reads, into);
    }
    PyObject *events = take_with(self, &q);
    if (events == NULL)
        return NULL;
    return Py_BuildValue("(lN)", datagrams, events);
}

/* ---- the media thread -------------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void arm(int timer_fd, int64_t at) {
    struct itimerspec spec = {{0, 0}, {(time_t)(at / 1000000000), (long)(at % 1000000000)}};
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, NULL);
}

static void tick_all(Pump *self) {
    for (Py_ssize_t i = 0;;) {
        MEDIA_LOCK(self);
        if (i >= self->capacity) {
            signal_pending(self);
            UNLOCK(self);
            return;
        }
        Py_ssize_t end = i + TICK_BATCH < self->capacity ? i + TICK_BATCH : self->capacity;
        for (; i < end; i++)
            if (ticks(&self->slots[i]))
                tick_slot(self, i, &self->pending);
        signal_pending(self);
        UNLOCK(self);
    }
}

static void drain_ready(Pump *self, const uint64_t *ready, int n, int reads) {
    for (int i = 0; i < n;) {
        int end = i + DRAIN_BATCH < n ? i + DRAIN_BATCH : n;
        MEDIA_LOCK(self);
        for (; i < end; i++)
            if (ready[i] < (uint64_t)self->capacity && self->slots[ready[i]].in_use)
                drain_slot(self, (Py_ssize_t)ready[i], reads, &self->pending);
        signal_pending(self);
        UNLOCK(self);
    }
}

/* Ticks on absolute times, start + n x interval, with the late-tick rule of
 * `clock.tick_time`: a tick a whole interval late sends one frame and restarts the
 * schedule from now, no burst. Between ticks it waits in epoll_wait on the sockets, the
 * timerfd and the stop eventfd, and drains what is ready. */
static void *media_thread(void *arg) {
    Pump *self = arg;
    const int64_t interval = self->interval_ns;
    struct epoll_event ready[MAX_EVENTS];
    uint64_t sockets[MAX_EVENTS];
    int64_t scheduled = now_ns() + interval;
    int64_t last_read = now_ns();
    arm(self->timer_fd, scheduled);
    for (;;) {
        int n = epoll_wait(self->epfd, ready, MAX_EVENTS, -1);
        if (n < 0)
            continue; /* EINTR: the descriptors stay open until this thread is joined */
        int due = 0, count = 0;
        for (int i = 0; i < n; i++) {
            uint64_t tag = ready[i].data.u64;
            if (tag == TAG_STOP)
                return NULL;
            if (tag == TAG_TIMER) {
                uint64_t expirations;
                due = read(self->timer_fd, &expirations, sizeof expirations) > 0;
            } else {
                sockets[count++] = tag;
            }
        }
        if (due) {
            int64_t now = now_ns();
            if (now - scheduled >= interval) {
                MEDIA_LOCK(self);
                self->late_ticks++;
                UNLOCK(self);
                scheduled = now;
            }
            tick_all(self);
            scheduled += interval;
            arm(self->timer_fd, scheduled);
        }
        if (count) {
            int64_t now = now_ns();
            drain_ready(self, sockets, count, clamp_reads(1 + (now - last_read) / interval));
            last_read = now;
        }
    }
}

static int watch_fd(Pump *self, int fd, uint64_t tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void close_fd(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static PyObject *Pump_run(Pump *self, PyObject *args) {
    double interval;
    Py_ssize_t records = QUEUE_RECORDS_MAX;
    if (!PyArg_ParseTuple(args, "d|n:run", &interval, &records) || !usable(self))
        return NULL;
    if (self->threaded) {
        PyErr_SetString(PyExc_RuntimeError, "the pump's media thread runs already");
        return NULL;
    }
    if (!(interval >= 0.001 && interval <= 1.0) || records < 4 || records > QUEUE_RECORDS_MAX) {
        PyErr_SetString(PyExc_ValueError, "the interval is 0.001-1 s, the records 4-262144");
        return NULL;
    }
    self->records_max = (size_t)records;
    if (self->events_fd < 0)
        self->events_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    self->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    self->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->events_fd < 0 || self->timer_fd < 0 || self->stop_fd < 0 ||
        watch_fd(self, self->timer_fd, TAG_TIMER) < 0 || watch_fd(self, self->stop_fd, TAG_STOP) < 0)
        goto failed;
    self->interval_ns = (int64_t)(interval * 1e9);
    /* Signals go to Python's thread: the media thread starts with all of them blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&self->thread, NULL, media_thread, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        goto failed;
    }
    self->threaded = 1;
    Py_RETURN_NONE;
failed:
    PyErr_SetFromErrno(PyExc_OSError);
    close_fd(&self->timer_fd); /* closing removes them from the epoll set */
    close_fd(&self->stop_fd);
    return NULL;
}

static void pump_stop(Pump *self) {
    if (!self->threaded)
        return;
    uint64_t one = 1;
    /* Cannot fail short of a closed descriptor, which only this function closes. */
    if (write(self->stop_fd, &one, sizeof one) == sizeof one)
        pthread_join(self->thread, NULL);
    self->threaded = 0;
    close_fd(&self->timer_fd);
    close_fd(&self->stop_fd);
}

static PyObject *Pump_stop(Pump *self, PyObject *unused) {
    pump_stop(self);
    Py_RETURN_NONE;
}

static PyObject *Pump_events_fd(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
    if (self->events_fd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the media thread was never run");
        return NULL;
    }
    return PyLong_FromLong(self->events_fd);
}

static PyObject *Pump_take_events(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
    uint64_t count;
    /* Reset the eventfd before taking: a record pushed after the take signals again. */
    if (self->events_fd >= 0 && read(self->events_fd, &count, sizeof count) < 0 &&
        errno != EAGAIN)
        return PyErr_SetFromErrno(PyExc_OSError);
    LOCK(self);
    Queue q = take_pending(self);
    UNLOCK(self);
    return events_from(self, &q);
}

static PyObject *Pump_late_ticks(Pump *self, PyObject *unused) {
    if (!usable(self))
        return NULL;
    LOCK(self);
    unsigned long long late = self->late_ticks;
    UNLOCK(self);
    return PyLong_FromUnsignedLongLong(late);
}

static PyObject *Pump_dropped(Pump *self, PyObject *unused) {
    unsigned long long d[EV_KINDS];
    if (!usable(self))
        return NULL;
    LOCK(self);
    memcpy(d, self->dropped, sizeof d);
    UNLOCK(self);
    return Py_BuildValue("(KKKKKK)", d[0], d[1], d[2], d[3], d[4], d[5]);
}

/* ---- what Python reads back ------------------------------------------------------ */

static PyObject *Pump_counters(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:counters", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    LOCK(self);
    unsigned long long c[5] = {s->packets_sent, s->send_errors, s->received, packets_expected(s),
                               s->rejected};
    UNLOCK(self);
    return Py_BuildValue("(KKKKK)", c[0], c[1], c[2], c[3], c[4]);
}

static PyObject *Pump_source(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:source", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    LOCK(self);
    int latched = s->latched;
    struct sockaddr_storage source = s->source;
    UNLOCK(self);
    if (!latched)
        Py_RETURN_NONE;
    return address_tuple(&source);
}

static PyObject *Pump_timestamp(Pump *self, PyObject *args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n:timestamp", &index))
        return NULL;
    Slot *s = get_slot(self, index);
    if (s == NULL)
        return NULL;
    LOCK(self);
    uint32_t ts = s->ts;
    UNLOCK(self);
    return PyLong_FromUnsignedLong(ts);
}

static PyMethodDef Pump_methods[] = {
    {"fileno", (PyCFunction)Pump_fileno, METH_NOARGS, "The epoll descriptor to wait on."},
    {"close", (PyCFunction)Pump_close, METH_NOARGS,
     "Stop the media thread; release every slot and the epoll set."},
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
    {"run", (PyCFunction)Pump_run, METH_VARARGS,
     "run(interval, records=262144): start the media thread, which ticks and drains on "
     "its own; `records` bounds the queue of events for Python."},
    {"stop", (PyCFunction)Pump_stop, METH_NOARGS, "Stop and join the media thread."},
    {"events_fd", (PyCFunction)Pump_events_fd, METH_NOARGS,
     "The eventfd the media thread signals when events wait."},
    {"take_events", (PyCFunction)Pump_take_events, METH_NOARGS,
     "The events the media thread recorded since the last take."},
    {"late_ticks", (PyCFunction)Pump_late_ticks, METH_NOARGS,
     "Media thread ticks a whole interval late (each restarted the schedule)."},
    {"dropped", (PyCFunction)Pump_dropped, METH_NOARGS,
     "Events dropped at the queue's bounds, by kind (SENT, VOICE_DONE, ...)."},
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
