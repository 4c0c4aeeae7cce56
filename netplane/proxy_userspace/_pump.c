/* The relay's hot loop in C: epoll batches, and for every socket whose direction is in
 * the plain copy state (netplane/proxy_userspace/relay.py), recv and send without
 * returning to Python.
 *
 * Written by hand because bench/proxy_userspace.py showed it must be: per relayed message
 * the Python loop makes the same syscalls as HAProxy (recv, send, a share of one
 * epoll_wait) but spends about a microsecond of interpreter time on top, which left the
 * kept-alive figure at 0.86-0.99x HAProxy. Here a batch costs one GIL release and no
 * Python objects unless something needs Python: every other case (a socket not in the
 * table, readiness other than plain EPOLLIN, end of stream, an error, a destination that
 * did not take everything, a read that filled the buffer) goes back to the Python relay,
 * which has the whole state machine; this file only has its most common step.
 *
 * pump(epfd, peers, buf, maxevents) -> list of (fd, events, outcome)
 *   peers: array('i') indexed by fd: the destination fd for a source in the copy state,
 *          -1 otherwise.
 *   buf:   the relay's shared copy buffer (writable).
 *   outcome is None for an event C did not touch (Python handles it as before), or for
 *   the one event whose copy needs Python, (n, sent, errno, leftover): n bytes were read
 *   (0 at end of stream, -1 if recv failed with errno), sent of them were sent (-1 if
 *   send failed with errno), leftover the bytes read but not sent. After such an event C
 *   stops copying: the events after it come back untouched, so Python sees them in order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define MAX_EVENTS 512
/* Batches taken per call while all were plain copies: bench/proxy_userspace.py, five
 * rounds each, kept-alive requests/s against HAProxy: 1 batch 0.85-1.20x (median 0.94x),
 * 4 batches 0.95-1.12x (median 1.08x). */
#define SPINS 4

typedef struct {
    int fd;
    uint32_t events;
    int touched; /* 0: untouched, 1: outcome */
    ssize_t n;
    ssize_t sent;
    int err;
} item_t;

static PyObject *
pump(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "pump(epfd, peers, buf, maxevents)");
        return NULL;
    }
    int epfd = (int)PyLong_AsLong(args[0]);
    int maxevents = (int)PyLong_AsLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (maxevents < 1 || maxevents > MAX_EVENTS)
        maxevents = MAX_EVENTS;

    Py_buffer peers, buf;
    if (PyObject_GetBuffer(args[1], &peers, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &buf, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&peers);
        return NULL;
    }
    const int *peer = (const int *)peers.buf;
    Py_ssize_t npeers = peers.len / (Py_ssize_t)sizeof(int);
    char *data = (char *)buf.buf;
    size_t cap = (size_t)buf.len;

    struct epoll_event events[MAX_EVENTS];
    item_t items[MAX_EVENTS];
    int nitems = 0, count = 0, err = 0, stopped = 0;
    ssize_t leftover_from = 0, leftover_to = 0;

    Py_BEGIN_ALLOW_THREADS
    /* While every event of a batch was a plain copy, look again at once: the next batch
     * is often there already, and taking it here saves the event loop's round trip (its
     * own epoll_wait on this epoll set, then this call). */
    for (int spin = 0; spin < SPINS && nitems == 0; spin++) {
        do {
            count = epoll_wait(epfd, events, maxevents, 0);
        } while (count < 0 && errno == EINTR);
        if (count <= 0) {
            err = count < 0 ? errno : 0;
            break;
        }
        for (int i = 0; i < count; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            int dst = (fd >= 0 && fd < npeers) ? peer[fd] : -1;
            if (stopped || dst < 0 || ev != EPOLLIN) {
                items[nitems++] = (item_t){fd, ev, 0, 0, 0, 0};
                continue;
            }
            ssize_t n = recv(fd, data, cap, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue; /* spurious readiness: nothing to do, as in Python */
            if (n <= 0) {
                items[nitems++] = (item_t){fd, ev, 1, n, 0, n < 0 ? errno : 0};
                stopped = 1;
                continue;
            }
            ssize_t sent = send(dst, data, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
            int serr = 0;
            if (sent < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    sent = 0;
                } else {
                    serr = errno;
                    sent = -1;
                }
            }
            if (sent == n && (size_t)n < cap)
                continue; /* the common case, done */
            items[nitems++] = (item_t){fd, ev, 1, n, sent, serr};
            if (sent >= 0) {
                leftover_from = sent;
                leftover_to = n;
            }
            stopped = 1;
        }
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&peers);
    if (err) {
        PyBuffer_Release(&buf);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(nitems);
    if (out == NULL)
        goto fail;
    for (int i = 0; i < nitems; i++) {
        item_t *it = &items[i];
        PyObject *outcome;
        if (!it->touched) {
            outcome = Py_NewRef(Py_None);
        } else {
            PyObject *left = (it->n > 0 && it->sent >= 0)
                ? PyBytes_FromStringAndSize(data + leftover_from, leftover_to - leftover_from)
                : PyBytes_FromStringAndSize(NULL, 0);
            if (left == NULL)
                goto fail;
            outcome = Py_BuildValue("(nniN)", it->n, it->sent, it->err, left);
            if (outcome == NULL)
                goto fail;
        }
        PyObject *tuple = Py_BuildValue("(iIN)", it->fd, it->events, outcome);
        if (tuple == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, tuple);
    }
    PyBuffer_Release(&buf);
    return out;

fail:
    Py_XDECREF(out);
    PyBuffer_Release(&buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"pump", (PyCFunction)(void (*)(void))pump, METH_FASTCALL,
     "pump(epfd, peers, buf, maxevents) -> [(fd, events, outcome)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pump", "The userspace relay's copy loop (see _pump.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__pump(void)
{
    return PyModule_Create(&module);
}
