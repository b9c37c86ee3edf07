/*
 * pi from the integral of 4 / (1 + x^2) over [0, 1], midpoint rule, the intervals shared out
 * among the ranks: rank 0 broadcasts the interval count, every rank sums its share, a reduction
 * adds the shares up on rank 0, and a gather tells rank 0 where each rank ran.
 *
 *   mpicc -O2 -o mpi-pi mpi-pi.c
 *   (copy mpi-pi to the same path on every node, or build it in a shared directory)
 *   mpirun -np 8 $PWD/mpi-pi [intervals]
 *
 * Exits 1 when the result is off by more than 1e-6 (with the default 10^8 intervals it is
 * within 1e-12).
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI_REFERENCE 3.14159265358979323846

int main(int argc, char **argv)
{
    int rank, size, namelen;
    long long intervals = 100000000LL;
    char name[MPI_MAX_PROCESSOR_NAME];
    char *names = NULL;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    memset(name, 0, sizeof(name));
    MPI_Get_processor_name(name, &namelen);

    if (rank == 0 && argc > 1) {
        intervals = atoll(argv[1]);
        if (intervals < 1) {
            fprintf(stderr, "intervals=%s: give a positive integer\n", argv[1]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    double start = MPI_Wtime();
    MPI_Bcast(&intervals, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);

    double width = 1.0 / (double)intervals, share = 0.0, pi = 0.0;
    for (long long i = rank; i < intervals; i += size) {
        double x = ((double)i + 0.5) * width;
        share += 4.0 / (1.0 + x * x);
    }
    share *= width;
    MPI_Reduce(&share, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);

    if (rank == 0)
        names = malloc((size_t)size * MPI_MAX_PROCESSOR_NAME);
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    double elapsed = MPI_Wtime() - start;

    int status = 0;
    if (rank == 0) {
        for (int r = 0; r < size; r++)
            printf("rank %d on %s\n", r, names + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        double error = fabs(pi - PI_REFERENCE);
        printf("pi = %.15f (error %.3g) from %lld intervals on %d ranks in %.3f s\n",
               pi, error, intervals, size, elapsed);
        status = error > 1e-6;
        free(names);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}
