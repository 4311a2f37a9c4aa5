/*
 * Exit statuses of build/worker: the contract between the worker and the
 * gateway's supervisor, which decides from them whether to respawn
 * (docs/HACKING.md "Process and module contracts").
 */
#ifndef CTRICKLE_PROTO_WORKER_EXIT_H
#define CTRICKLE_PROTO_WORKER_EXIT_H

#define WORKER_EXIT_OK       0 /* SHUTDOWN (or SIGTERM) served */
#define WORKER_EXIT_FAILED   1 /* gateway gone or unreachable: respawned */
#define WORKER_EXIT_CONFIG   2 /* bad CLI, plugin path, ABI, ring: not respawned */
#define WORKER_EXIT_INIT     3 /* the plugin's init failed */
#define WORKER_EXIT_PLUGIN   4 /* the plugin failed too often in a row: respawned */
#define WORKER_EXIT_GPU_RING 5 /* a CUDA ring could not be opened here (IPC refused,
                                  wrong device): the gateway gives the GPU a host
                                  ring and respawns */

#endif
