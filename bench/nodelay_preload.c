/*
 * LD_PRELOAD shim for sl-mock: sets TCP_NODELAY on every socket the
 * process accept()s.
 *
 * Why: librdkafka's mock brokers never set TCP_NODELAY, so Nagle holds
 * each small Produce answer until the client ACKs the previous one, and a
 * client with delayed ACKs then sees one extra request interval (or the
 * delayed-ACK timer) of latency: ~0.8 ms at 1,250 requests/s where the
 * mock really answers in ~50 us. Real Kafka brokers set TCP_NODELAY on
 * every connection (SocketServer's Acceptor), so bench/run preloads this
 * into the mock to make both paths, direct and through Sluice (whose
 * librdkafka connects to the same mock), see a broker that behaves like
 * Kafka. bench/run --mock-nagle turns it off.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static void nodelay(int fd)
{
    int one = 1;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int accept(int s, struct sockaddr *addr, socklen_t *len)
{
    static accept_fn real;
    int fd;

    if (!real)
        real = (accept_fn)dlsym(RTLD_NEXT, "accept");
    fd = real(s, addr, len);
    nodelay(fd);
    return fd;
}

int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
    static accept4_fn real;
    int fd;

    if (!real)
        real = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    fd = real(s, addr, len, flags);
    nodelay(fd);
    return fd;
}
