// btf.h: read kernel struct fields at offsets taken from the running
// kernel's BTF (pytools/structs.py), with no kernel headers for the
// structs. A field NAME declared in Python as a path with k pointers
// followed comes as -DNAME_OFF0..NAME_OFF<k-1> and -DNAME_SIZE; see each
// program's `// btf:` line. A fault (a NULL pointer on the way) reads 0.
// Values of at most 8 bytes, little-endian (what pytools/btf.py reads).
#ifndef PYTOOLS_BTF_H
#define PYTOOLS_BTF_H
#define FIELD_AT(base, off, size) ({                                          \
    u64 _field = 0;                                                           \
    bpf_probe_read_kernel(&_field, (size), (const char *)(base) + (off));     \
    _field; })
#define PTR_AT(base, off) ((const void *)FIELD_AT(base, off, sizeof(void *)))
#endif
