"""Make pypcap 1.3.0's pcap.pyx build on CPython 3.13: swap the removed old buffer API.

``bpf.filter()`` is the only user of ``PyObject_AsCharBuffer``, which CPython 3.13 removed
(the C compiler then fails with an implicit declaration). It becomes the new buffer protocol
(``PyObject_GetBuffer``/``PyBuffer_Release``, in every CPython 3), same behaviour: any object
with a contiguous buffer, ``TypeError`` otherwise. Idempotent; fails loudly when the source
does not look like 1.3.0. Usage: ``python pypcap_buffer_api.py path/to/pcap.pyx``.
"""
from __future__ import annotations

import sys
from pathlib import Path

OLD_DECL = "    int    PyObject_AsCharBuffer(object obj, char **buffer, Py_ssize_t *buffer_len)\n"
NEW_DECL = ("    int    PyObject_GetBuffer(object obj, Py_buffer *view, int flags) except -1\n"
            "    void   PyBuffer_Release(Py_buffer *view)\n"
            "    enum:  PyBUF_SIMPLE\n")
OLD_BODY = """        cdef u_char *p
        cdef Py_ssize_t n
        if PyObject_AsCharBuffer(buf, <const char**>&p, &n) < 0:
            raise TypeError
        return bpf_filter(self.fcode.bf_insns, p, <u_int>n, <u_int>n) != 0
"""
NEW_BODY = """        cdef Py_buffer view
        PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
        try:
            return bpf_filter(self.fcode.bf_insns, <u_char *>view.buf,
                              <u_int>view.len, <u_int>view.len) != 0
        finally:
            PyBuffer_Release(&view)
"""


def patch(text: str) -> str:
    """The pcap.pyx text with the new buffer API (unchanged when already patched)."""
    if NEW_DECL in text and NEW_BODY in text:
        return text
    if text.count(OLD_DECL) != 1 or text.count(OLD_BODY) != 1:
        raise SystemExit("pcap.pyx is not pypcap 1.3.0's: nothing patched")
    return text.replace(OLD_DECL, NEW_DECL).replace(OLD_BODY, NEW_BODY)


if __name__ == "__main__":
    pyx = Path(sys.argv[1])
    pyx.write_text(patch(pyx.read_text()))
