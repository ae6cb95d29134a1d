// cgroup.h: count only one cgroup's subtree (--cgroup PATH), decided in the
// kernel. FILTER_CGROUP_ID is that cgroup's id (its directory's inode in the
// cgroup2 mount) and FILTER_CGROUP_LEVEL its depth (the root is 0): the
// current task is in the subtree exactly when its ancestor at that depth is
// that cgroup (bpf_get_current_ancestor_cgroup_id, 5.6+). Nothing to keep
// current as cgroups come and go below it.
#ifdef FILTER_CGROUP_ID
#define CGROUP_ALLOWED() \
    (bpf_get_current_ancestor_cgroup_id(FILTER_CGROUP_LEVEL) == FILTER_CGROUP_ID)
#else
#define CGROUP_ALLOWED() 1
#endif
