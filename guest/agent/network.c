/* Interface configuration with the classic ioctls: no netlink library for three settings. */
#define _GNU_SOURCE
#include "network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
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

/* The kernel's in6_ifreq (linux/ipv6.h, which clashes with glibc's netinet/in.h). */
struct ipv6_ifreq {
  struct in6_addr addr;
  uint32_t prefixlen;
  int ifindex;
};

static int write_sysctl(const char *name, const char *value) {
  char path[128];
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/" NET_INTERFACE "/%s", name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("opening %s", path);
  int rc = write_all(fd, value, strlen(value));
  close(fd);
  return rc == 0 ? 0 : fail_errno("writing %s", path);
}

/* What passt gives the guest, set as pasta sets it in a container: the address at once (no
 * duplicate detection to wait for: the link is passt's alone) and no autoconfiguration, so the
 * process starts with the network it will keep. */
static int prepare_ipv6(void) {
  return write_sysctl("accept_dad", "0") || write_sysctl("accept_ra", "0") || write_sysctl("autoconf", "0") ? -1 : 0;
}

static int configure_ipv6(const struct spec *s) {
  const int ifindex = (int)if_nametoindex(NET_INTERFACE);
  if (ifindex == 0) return fail_errno("finding " NET_INTERFACE);
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("creating an IPv6 socket (is IPv6 in the guest kernel?)");
  struct ipv6_ifreq ifr = {.prefixlen = s->net6_prefix, .ifindex = ifindex};
  memcpy(&ifr.addr, s->net6_address, 16);
  int rc = ioctl(fd, SIOCSIFADDR, &ifr) == 0 ? 0 : fail_errno("setting the IPv6 address of " NET_INTERFACE);
  struct in6_rtmsg route = {.rtmsg_flags = RTF_UP | RTF_GATEWAY, .rtmsg_metric = 1024, .rtmsg_ifindex = ifindex};
  memcpy(&route.rtmsg_gateway, s->net6_gateway, 16);
  if (rc == 0 && ioctl(fd, SIOCADDRT, &route) != 0) rc = fail_errno("adding the IPv6 default route through " NET_INTERFACE);
  close(fd);
  return rc;
}

int network_up(const struct spec *s) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("creating a socket to configure the network");
  /* lo: the kernel gives it 127.0.0.1/8, which /etc/hosts promises. */
  int rc = interface_up(fd, "lo");
  if (rc == 0 && s->network) rc = (s->net6 && prepare_ipv6()) || configure_eth0(fd, s) || (s->net6 && configure_ipv6(s)) ? -1 : 0;
  close(fd);
  return rc;
}
