/* mr_transport.h — how the processes of one `moe-robust run` cooperate: one process
 * (serial), or the ranks of an MPI job (mr_transport_mpi.c, built with MR_WITH_MPI).
 * The grid driver (cmd_run.c) only asks which rank it is, agrees on statuses with the
 * others, and has rank 0 collect the cell files the others computed — as bytes, so a run
 * needs no shared filesystem. A plain `moe-robust run` is serial and needs no MPI
 * runtime; MPI is used only when the process was launched by mpirun/srun.
 * Ownership: mr_transport is a caller-owned struct; mr_transport_close ends it.
 */
#ifndef MR_TRANSPORT_H
#define MR_TRANSPORT_H

typedef struct mr_transport mr_transport;

/* One implementation: a const type struct like routers and corruptions. */
typedef struct mr_transport_type {
    const char *name;
    int (*init)(mr_transport *t);
    void (*finish)(mr_transport *t);
    /* rank 0's status, on every rank */
    int (*bcast_status)(mr_transport *t, int status);
    /* the largest status over all ranks, on every rank */
    int (*reduce_status)(mr_transport *t, int status);
    /* the file at `path` of rank `from` (> 0) to rank 0, which writes it atomically unless
     * `keep` (its own copy is complete); other ranks do nothing. Every rank calls it for
     * the same paths in the same order. */
    int (*move_file)(mr_transport *t, int from, const char *path, int keep);
} mr_transport_type;

struct mr_transport {
    const mr_transport_type *type;
    int rank, size;
};

extern const mr_transport_type mr_transport_serial;

/* The transport of this process: MPI when built with it and launched by an MPI launcher,
 * serial otherwise. */
int mr_transport_open(mr_transport *t);
void mr_transport_close(mr_transport *t);

#endif
