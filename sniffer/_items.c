/* sniffer._items: the capture's PACKETS item header for the common frame, in one call.
 *
 * Strategy: for a plain TCP/IPv4 frame (``workers.decode.plain_tcp4``) the item header is
 * ``PACKET_V4_RAW`` (``!BQQ22sI``, sniffer/codec.py): the IP version, the packet index and
 * time, 22 bytes of the frame as they are (addresses, ports, seq, ack, data offset, flags)
 * and the payload length. ``struct.Struct.pack`` through a bound method costs the capture
 * about 1,000 instructions per packet on CPython 3.11 plus a slice of the frame; this writes
 * the 43 bytes straight from the frame and costs a few hundred. ``codec.item_v4_py`` is the
 * definition (the fallback of a pure install); tests/sniffer/test_codec.py checks the two
 * agree. Reads only inside the frame's bytes (checked); keeps no state. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define ITEM_V4_SIZE 43

static void
put_u64(unsigned char *p, unsigned long long v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xFF);
        v >>= 8;
    }
}

/* item_v4(index, ts_ns, frame, at, n) -> bytes: see codec.item_v4_py. */
static PyObject *
item_v4(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "item_v4() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    unsigned long long index = PyLong_AsUnsignedLongLong(args[0]);
    if (index == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long ts_ns = PyLong_AsUnsignedLongLong(args[1]);
    if (ts_ns == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_Check(args[2])) {
        PyErr_Format(PyExc_TypeError, "item_v4() takes the frame as bytes, not %.100s",
                     Py_TYPE(args[2])->tp_name);
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[3]);
    if (at == -1 && PyErr_Occurred())
        return NULL;
    unsigned long n = PyLong_AsUnsignedLong(args[4]);
    if (n == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (n > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_OverflowError, "item_v4() payload length above u32");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[2]);
    if (at < 0 || at > size - 22) {
        PyErr_Format(PyExc_ValueError, "item_v4() needs 22 frame bytes at %zd of %zd", at,
                     size);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, ITEM_V4_SIZE);
    if (out == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    p[0] = 4;
    put_u64(p + 1, index);
    put_u64(p + 9, ts_ns);
    memcpy(p + 17, PyBytes_AS_STRING(args[2]) + at, 22);
    p[39] = (unsigned char)(n >> 24);
    p[40] = (unsigned char)(n >> 16);
    p[41] = (unsigned char)(n >> 8);
    p[42] = (unsigned char)n;
    return out;
}

static PyMethodDef items_methods[] = {
    {"item_v4", (PyCFunction)(void (*)(void))item_v4, METH_FASTCALL,
     "item_v4(index, ts_ns, frame, at, n) -> bytes: the PACKET_V4_RAW item header with the\n"
     "22 frame bytes from offset at (see sniffer/codec.py item_v4_py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef items_module = {
    PyModuleDef_HEAD_INIT, "_items", "The capture's PACKETS item header (see sniffer/codec.py).",
    -1, items_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__items(void)
{
    return PyModule_Create(&items_module);
}
