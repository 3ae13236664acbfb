/* Interface configuration with the classic ioctls: no netlink library for three settings. */
#define _GNU_SOURCE
#include "network.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define NET_INTERFACE "eth0"

static void set_ipv4(struct sockaddr *sa, uint32_t address) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = address};
  memcpy(sa, &sin, sizeof sin);
}

static int interface_up(int fd, const char *name) {
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, name);
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return fail_errno("reading the flags of %s", name);
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) return fail_errno("bringing up %s", name);
  return 0;
}

static int configure_eth0(int fd, const struct spec *s) {
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, NET_INTERFACE);
  set_ipv4(&ifr.ifr_addr, s->net_address);
  if (ioctl(fd, SIOCSIFADDR, &ifr) != 0) return fail_errno("setting the address of " NET_INTERFACE);
  set_ipv4(&ifr.ifr_netmask, htonl(~0u << (32 - s->net_prefix)));
  if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0) return fail_errno("setting the netmask of " NET_INTERFACE);
  if (interface_up(fd, NET_INTERFACE) != 0) return -1;
  struct rtentry route = {0};
  set_ipv4(&route.rt_dst, INADDR_ANY);
  set_ipv4(&route.rt_genmask, INADDR_ANY);
  set_ipv4(&route.rt_gateway, s->net_gateway);
  route.rt_flags = RTF_UP | RTF_GATEWAY;
  route.rt_dev = (char *)NET_INTERFACE;
  if (ioctl(fd, SIOCADDRT, &route) != 0) return fail_errno("adding the default route through " NET_INTERFACE);
  return 0;
}

int network_up(const struct spec *s) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("creating a socket to configure the network");
  /* lo: the kernel gives it 127.0.0.1/8, which /etc/hosts promises. */
  int rc = interface_up(fd, "lo");
  if (rc == 0 && s->network) rc = configure_eth0(fd, s);
  close(fd);
  return rc;
}
