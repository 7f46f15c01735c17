/* The engine's ceiling for bench/distributed/run.mjs: Open MPI's own MPI_Allreduce (sum of
 * float32) on buffers of 1 KB to 64 MB, timed like the Kiln side (allreduce.mjs). Rank 0 prints
 * one JSON line per size: {"bytes": B, "seconds": t}, t the slowest rank's mean time per call. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (long bytes = 1024; bytes <= 64L << 20; bytes *= 4) {
    long n = bytes / 4;
    float *send = malloc(bytes), *recv = malloc(bytes);
    for (long i = 0; i < n; i++) send[i] = (float)(i % 7);
    for (int w = 0; w < 3; w++) MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    /* As many calls as fit in ~0.5 s (agreed by all ranks), at least 5. */
    double t0 = MPI_Wtime();
    MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double once = MPI_Wtime() - t0, slowest;
    MPI_Allreduce(&once, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int iters = (int)(0.5 / slowest);
    if (iters < 5) iters = 5;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double mean = (MPI_Wtime() - t0) / iters;
    MPI_Reduce(&mean, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("{\"bytes\": %ld, \"seconds\": %.9g}\n", bytes, slowest);
    free(send);
    free(recv);
  }
  MPI_Finalize();
  return 0;
}
