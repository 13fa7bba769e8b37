/* The serial transport (one process) and the choice of transport (mr_transport.h). */
#include "mr_transport.h"

#include <stdlib.h>

#include "../analysis/mr_error.h"

#ifdef MR_WITH_MPI
extern const mr_transport_type mr_transport_mpi;
#endif

static int serial_init(mr_transport *t)
{
    t->rank = 0;
    t->size = 1;
    return MR_OK;
}

static void serial_finish(mr_transport *t) { (void)t; }

static int serial_status(mr_transport *t, int status)
{
    (void)t;
    return status;
}

static int serial_move(mr_transport *t, int from, const char *path, int keep)
{
    (void)t;
    (void)keep;
    return mr_error_set(MR_EFAILED, "%s: no rank %d in a single process", path, from);
}

const mr_transport_type mr_transport_serial = {
    .name = "serial",
    .init = serial_init,
    .finish = serial_finish,
    .bcast_status = serial_status,
    .reduce_status = serial_status,
    .move_file = serial_move,
};

int mr_transport_open(mr_transport *t)
{
    t->type = &mr_transport_serial;
#ifdef MR_WITH_MPI
    /* MPI only when launched by mpirun/srun: a plain `moe-robust run` stays a single
     * process that needs no MPI runtime */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK"))
        t->type = &mr_transport_mpi;
#endif
    return t->type->init(t);
}

void mr_transport_close(mr_transport *t)
{
    if (t->type) t->type->finish(t);
    t->type = NULL;
}
