/* workers._scan: where an HTTP/1.x head ends, in one pass of memchr (the workers' hot path).
 *
 * Strategy: ``framing.plain_head`` needs two positions in the bytes a message starts with:
 * the first CRLF (the end of the start line) and the first CRLFCRLF (the end of the head).
 * Two ``bytes.find`` calls cost about 1,400 instructions each on CPython 3.11, most of it
 * the method call (a name look-up, an argument tuple, format-string argument parsing); this
 * walks the line feeds once with memchr and costs a few hundred in all. ``workers/scan.py``
 * holds the definition in Python (the fallback of a pure install) and the test that the two
 * agree on every input. Reads only inside the object's bytes; keeps no state. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
pair(Py_ssize_t a, Py_ssize_t b)
{
    PyObject *x = PyLong_FromSsize_t(a);
    PyObject *y = PyLong_FromSsize_t(b);
    PyObject *t = (x != NULL && y != NULL) ? PyTuple_New(2) : NULL;
    if (t == NULL) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, x);
    PyTuple_SET_ITEM(t, 1, y);
    return t;
}

/* head_bounds(chunk) -> (eol, end): see scan.head_bounds_py for the definition. */
static PyObject *
head_bounds(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "head_bounds() takes bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    const char *q = memchr(p, '\n', (size_t)n);
    if (q == NULL || q == p || q[-1] != '\r')
        return pair(-1, -1); /* no line feed, or the first one is bare */
    Py_ssize_t eol = (q - p) - 1;
    for (;;) {
        Py_ssize_t j = q - p; /* a line feed; q[-1] exists (j >= 1) */
        if (j + 2 < n && q[-1] == '\r' && q[1] == '\r' && q[2] == '\n')
            return pair(j - 1 == eol ? -1 : eol, j - 1);
        q = memchr(q + 1, '\n', (size_t)(n - j - 1));
        if (q == NULL)
            return pair(-1, -1);
    }
}

static PyMethodDef scan_methods[] = {
    {"head_bounds", head_bounds, METH_O,
     "head_bounds(chunk: bytes) -> (eol, end): the first CRLF before the first CRLFCRLF\n"
     "(-1 when the start line ends there) and that CRLFCRLF; (-1, -1) when there is none\n"
     "or the first line feed is not preceded by CR."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT, "_scan", "Where an HTTP/1.x head ends (see workers/scan.py).", -1,
    scan_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&scan_module);
}
