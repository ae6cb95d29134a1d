// task.h: where a struct task_struct's pid, tgid, comm and cgroup v2 are,
// for the programs that read a task_struct itself (runqlat.c, oomkill.c,
// raw tracepoint mode). From this kernel's BTF where the headers are not its
// own (STRUCTS_BTF: -D offsets, pytools/structs.py, from each tool's FIELDS),
// else from the headers, here. TASK_CGROUP here is the path's first two
// steps, task_struct->cgroups->dfl_cgrp (the task's cgroup v2): oomkill.c
// stops there (a pointer to walk up from), runqlat.c goes on to ->kn->id.
#ifndef PYTOOLS_TASK_H
#define PYTOOLS_TASK_H
#include "btf.h"          // FIELD_AT(), PTR_AT()
// btf: TASK_PID TASK_TGID TASK_COMM TASK_CGROUP
#ifndef STRUCTS_BTF
#include <linux/sched.h>
#include <linux/cgroup-defs.h>
#define TASK_PID_OFF0 offsetof(struct task_struct, pid)
#define TASK_PID_SIZE sizeof(pid_t)
#define TASK_TGID_OFF0 offsetof(struct task_struct, tgid)
#define TASK_TGID_SIZE sizeof(pid_t)
#define TASK_COMM_OFF0 offsetof(struct task_struct, comm)
#define TASK_CGROUP_OFF0 offsetof(struct task_struct, cgroups)
#define TASK_CGROUP_OFF1 offsetof(struct css_set, dfl_cgrp)
#endif
#endif
