/* The MPI transport (mr_transport.h): ranks of MPI_COMM_WORLD; cell files travel to rank 0
 * as bytes, so a run works without a shared filesystem. Built with MR_WITH_MPI only. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "../analysis/mr_error.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "mr_transport.h"

static int mpi_init(mr_transport *t)
{
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &t->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t->size);
    return MR_OK;
}

static void mpi_finish(mr_transport *t)
{
    (void)t;
    MPI_Finalize();
}

static int mpi_bcast(mr_transport *t, int status)
{
    (void)t;
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return status;
}

static int mpi_reduce(mr_transport *t, int status)
{
    (void)t;
    MPI_Allreduce(MPI_IN_PLACE, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return status;
}

static int mpi_move(mr_transport *t, int from, const char *path, int keep)
{
    long len = -1;
    if (t->rank == from) {
        char *buf = NULL;
        size_t n = 0;
        /* a regular file, bounded (io/mr_fs.h); len = -1 tells rank 0 it could not be read */
        if (mr_fs_read_input(path, (size_t)1 << 31, "cell file", &buf, &n) == MR_OK) len = (long)n;
        MPI_Send(&len, 1, MPI_LONG, 0, 1, MPI_COMM_WORLD);
        if (len >= 0) MPI_Send(buf, (int)len, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        free(buf);
        return MR_OK;
    }
    if (t->rank != 0) return MR_OK;
    MPI_Recv(&len, 1, MPI_LONG, from, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MR_REQUIRE(len >= 0, MR_EIO, "rank %d could not send %s", from, path);
    char *buf = malloc((size_t)len + 1);
    MPI_Recv(buf, (int)len, MPI_BYTE, from, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int st = keep ? MR_OK : mr_file_write(path, buf, (size_t)len);
    free(buf);
    return st;
}

const mr_transport_type mr_transport_mpi = {
    .name = "mpi",
    .init = mpi_init,
    .finish = mpi_finish,
    .bcast_status = mpi_bcast,
    .reduce_status = mpi_reduce,
    .move_file = mpi_move,
};
