/* The VM's network before the process starts: lo, and eth0 as the NETWORK frame says. */
#ifndef AGENT_NETWORK_H
#define AGENT_NETWORK_H

#include "spec.h"

/* Brings lo up and, with NETWORK, eth0 with its addresses and the default routes through the
 * gateways (IPv4, and IPv6 when the frame has it; no router advertisements are followed). 0, or
 * -1 with agent_error set. */
int network_up(const struct spec *s);

#endif
