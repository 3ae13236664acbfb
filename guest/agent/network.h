/* The VM's network before the process starts: lo, and eth0 as the NETWORK frame says. */
#ifndef AGENT_NETWORK_H
#define AGENT_NETWORK_H

#include "spec.h"

/* Brings lo up and, with NETWORK, eth0 with its address and the default route through the
 * gateway; IPv6 then configures itself from the router advertisements passt sends. 0, or -1
 * with agent_error set. */
int network_up(const struct spec *s);

#endif
