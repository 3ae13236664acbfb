/* The two modes of PROTOCOL.md, from a checked spec to a result. */
#ifndef AGENT_RUN_H
#define AGENT_RUN_H

#include "channel.h"
#include "spec.h"

/* unpack: each LAYER into its empty partition, on top of the layers before it (in container
 * mode: into the directory the host mounted on the unpack root, the blobs being files on
 * /dev/<device>), then PHASE unpacked. 0, or -1 with agent_error. */
int unpack_mode(const struct spec *spec, int control);
/* run: assembles the container's root and runs the process; returns as process_run does. */
int run_mode(const struct spec *spec, struct frame_reader *control, int *exit_code);
/* run under runc, which made the root: runs the process with stdio on FD_STDIN..FD_STDERR;
 * returns as process_run does. */
int container_mode(const struct spec *spec, struct frame_reader *control, int *exit_code);

#endif
