/*
 * Listeners bound to one address instead of every interface.
 *
 * Ray's gRPC servers (GCS, raylets, object managers, workers) and several of its
 * Python servers bind the wildcard address, whatever --node-ip-address says, so
 * on a host with a network every one of them is open to it. Preloaded into those
 * processes (LD_PRELOAD), this bind() turns a TCP bind to 0.0.0.0 or :: into a
 * bind to AUTOTELIC_BIND_ADDRESS, the node's own address; every other bind passes
 * through unchanged. A dual-stack IPv6 socket gets the IPv4-mapped form of an
 * IPv4 address; an IPv6-only socket asked for :: is refused (EADDRNOTAVAIL) when
 * the address is IPv4, so the caller falls back to its IPv4 listener.
 *
 * Built and loaded by autotelic/distributed/bind_shim.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int is_stream(int fd) {
    int type = 0;
    socklen_t size = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM;
}

static int bind_v4(bind_fn real, int fd, const struct sockaddr_in *asked, struct in_addr own) {
    struct sockaddr_in addr = *asked;
    addr.sin_addr = own;
    return real(fd, (const struct sockaddr *)&addr, sizeof addr);
}

static int bind_v6(bind_fn real, int fd, const struct sockaddr_in6 *asked,
                   const struct in6_addr *own) {
    struct sockaddr_in6 addr = *asked;
    addr.sin6_addr = *own;
    return real(fd, (const struct sockaddr *)&addr, sizeof addr);
}

static int bind_v6_to_v4(bind_fn real, int fd, const struct sockaddr_in6 *asked,
                         struct in_addr own) {
    int v6only = 0;
    socklen_t size = sizeof v6only;
    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &size);
    if (v6only) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    struct in6_addr mapped;
    memset(&mapped, 0, sizeof mapped);
    mapped.s6_addr[10] = 0xff;
    mapped.s6_addr[11] = 0xff;
    memcpy(&mapped.s6_addr[12], &own, sizeof own);
    return bind_v6(real, fd, asked, &mapped);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real = NULL;
    if (real == NULL) {
        real = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    const char *own = getenv("AUTOTELIC_BIND_ADDRESS");
    if (own == NULL || addr == NULL || !is_stream(fd)) {
        return real(fd, addr, len);
    }
    struct in_addr own4;
    struct in6_addr own6;
    int is_v4 = inet_pton(AF_INET, own, &own4) == 1;
    int is_v6 = !is_v4 && inet_pton(AF_INET6, own, &own6) == 1;
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY) && is_v4) {
            return bind_v4(real, fd, in, own4);
        }
        if (in->sin_addr.s_addr == htonl(INADDR_ANY) && is_v6) {
            errno = EADDRNOTAVAIL;
            return -1;
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && is_v4) {
            return bind_v6_to_v4(real, fd, in6, own4);
        }
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && is_v6) {
            return bind_v6(real, fd, in6, &own6);
        }
    }
    return real(fd, addr, len);
}
