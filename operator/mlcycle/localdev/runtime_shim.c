/* LD_PRELOAD shim for processes of the mlcycle local runtime (mlcycle/localdev/runtime.py).
 *
 * Every pod has its own loopback address ($MLCYCLE_POD_IP, e.g. 127.0.0.5), but its processes share
 * the host's network. So that two pods can both listen on :8000 and a server is reached at its pod's
 * address, bind() to the wildcard address is turned into bind() to the pod address:
 *   AF_INET  0.0.0.0 -> MLCYCLE_POD_IP
 *   AF_INET6 ::      -> ::ffff:MLCYCLE_POD_IP (only on dual-stack sockets; v6-only ones are left alone)
 * And since localhost inside a pod is the pod itself, a TCP connect() to 127.0.0.1 / 0.0.0.0 / ::1 goes to
 * the pod address when the pod listens on that port (looked up in /proc/net/tcp{,6}); otherwise it goes
 * to the host as asked (the API server, MinIO). A connect() to another pod's address on a Service port
 * whose targetPort differs goes to the targetPort ($MLCYCLE_SERVICE_PORTS lists `<ip> <port> <target>`).
 * Programs read and write some files at fixed container paths: the termination message (/dev/termination-log)
 * and the files of secret, configMap, downwardAPI and projected volumes (the service account token, ca.crt and
 * namespace of in-cluster config). open()/fopen()/stat()/access() of a path under one of the container paths
 * in $MLCYCLE_FILE_MOUNTS (lines `<container path>\t<host path>`, longest first) use the host path instead.
 * getaddrinfo() adds what nss_wrapper (the cluster DNS stand-in) lacks: AI_V4MAPPED, i.e. an AF_INET6
 * lookup of a name with only an IPv4 address answers ::ffff:a.b.c.d (torch's TCPStore asks exactly that).
 * The process started by the runtime itself (its pid's parent is $MLCYCLE_RUNTIME_PID) also asks to be
 * killed when the runtime dies, so no pod process outlives a crashed runtime (the signal comes when the
 * thread that started it ends: the runtime starts a pod's processes from the pod's long-lived thread).
 *
 * Built by the runtime with: cc -shared -fPIC -O2 -o runtime_shim.so runtime_shim.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*sockaddr_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
typedef void (*freeaddrinfo_fn)(struct addrinfo *);

__attribute__((constructor)) static void die_with_runtime(void) {
    const char *runtime_pid = getenv("MLCYCLE_RUNTIME_PID");
    if (runtime_pid != NULL && atoi(runtime_pid) == (int)getppid()) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != atoi(runtime_pid)) /* the runtime died before prctl */
            _exit(137);
    }
}

static int pod_ip(struct in_addr *ip) {
    const char *value = getenv("MLCYCLE_POD_IP");
    return value != NULL && inet_pton(AF_INET, value, ip) == 1;
}

static int dual_stack(int fd) {
    int v6only = 1;
    socklen_t optlen = sizeof(v6only);
    return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && !v6only;
}

static void v4_mapped(struct in6_addr *out, struct in_addr ip) {
    memset(out, 0, sizeof(*out));
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], &ip, 4);
}

/* Does a TCP socket listen on ip:port (port in host order)? /proc/net/tcp prints the address as the
 * in-memory u32 in hex; /proc/net/tcp6 as four such words (v4-mapped: 0..0 FFFF0000 <ip>). */
static int listening(struct in_addr ip, unsigned port) {
    char want[2][64], local[64], line[512];
    unsigned state;
    snprintf(want[0], sizeof(want[0]), "%08X:%04X", ip.s_addr, port);
    snprintf(want[1], sizeof(want[1]), "0000000000000000FFFF0000%08X:%04X", ip.s_addr, port);
    const char *files[2] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "re");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, " %*d: %63s %*s %x", local, &state) == 2 && state == 0x0A
                && strcmp(local, want[i]) == 0) {
                fclose(f);
                return 1;
            }
        }
        fclose(f);
    }
    return 0;
}

/* 127.0.0.1 or 0.0.0.0: "this host", which for a pod means the pod. */
static int local_v4(struct in_addr a) {
    return a.s_addr == htonl(INADDR_LOOPBACK) || a.s_addr == htonl(INADDR_ANY);
}

/* The targetPort for a Service port at the pod address its name resolves to (the port itself if none). */
static unsigned service_target_port(struct in_addr ip, unsigned port) {
    const char *path = getenv("MLCYCLE_SERVICE_PORTS");
    FILE *f = path != NULL ? fopen(path, "re") : NULL;
    if (f == NULL)
        return port;
    char want[INET_ADDRSTRLEN], addr[64];
    unsigned from, to, target = port;
    inet_ntop(AF_INET, &ip, want, sizeof(want));
    while (fscanf(f, "%63s %u %u", addr, &from, &to) == 3) {
        if (from == port && strcmp(addr, want) == 0) {
            target = to;
            break;
        }
    }
    fclose(f);
    return target;
}

static int is_stream(int fd) {
    int type = 0;
    socklen_t optlen = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) == 0 && type == SOCK_STREAM;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static sockaddr_fn real_connect = NULL;
    if (real_connect == NULL)
        real_connect = (sockaddr_fn)dlsym(RTLD_NEXT, "connect");
    struct in_addr ip;
    if (addr == NULL || !pod_ip(&ip))
        return real_connect(fd, addr, len);

    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof(in4));
        if (local_v4(in4.sin_addr) && is_stream(fd)
            && listening(ip, ntohs(in4.sin_port))) {
            in4.sin_addr = ip;
            return real_connect(fd, (const struct sockaddr *)&in4, sizeof(in4));
        }
        if ((ntohl(in4.sin_addr.s_addr) >> 24) == 127 && is_stream(fd)) {
            in4.sin_port = htons(service_target_port(in4.sin_addr, ntohs(in4.sin_port)));
            return real_connect(fd, (const struct sockaddr *)&in4, sizeof(in4));
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof(in6));
        struct in_addr mapped;
        memcpy(&mapped, &in6.sin6_addr.s6_addr[12], 4);
        int local = IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)
                    || (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && local_v4(mapped));
        if (local && is_stream(fd) && dual_stack(fd) && listening(ip, ntohs(in6.sin6_port))) {
            v4_mapped(&in6.sin6_addr, ip);
            return real_connect(fd, (const struct sockaddr *)&in6, sizeof(in6));
        }
        if (!local && IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && (ntohl(mapped.s_addr) >> 24) == 127
            && is_stream(fd)) {
            in6.sin6_port = htons(service_target_port(mapped, ntohs(in6.sin6_port)));
            return real_connect(fd, (const struct sockaddr *)&in6, sizeof(in6));
        }
    }
    return real_connect(fd, addr, len);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static sockaddr_fn real_bind = NULL;
    if (real_bind == NULL)
        real_bind = (sockaddr_fn)dlsym(RTLD_NEXT, "bind");
    struct in_addr ip;
    if (addr == NULL || !pod_ip(&ip))
        return real_bind(fd, addr, len);

    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof(in4));
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr = ip;
            return real_bind(fd, (const struct sockaddr *)&in4, sizeof(in4));
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof(in6));
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr) && dual_stack(fd)) {
            v4_mapped(&in6.sin6_addr, ip);
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof(in6));
        }
    }
    return real_bind(fd, addr, len);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
    static getaddrinfo_fn real_getaddrinfo = NULL;
    static freeaddrinfo_fn real_freeaddrinfo = NULL;
    if (real_getaddrinfo == NULL) {
        real_getaddrinfo = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        real_freeaddrinfo = (freeaddrinfo_fn)dlsym(RTLD_NEXT, "freeaddrinfo");
    }
    int rc = real_getaddrinfo(node, service, hints, res);
    if (rc == 0 || node == NULL || hints == NULL || hints->ai_family != AF_INET6
        || !(hints->ai_flags & AI_V4MAPPED))
        return rc;
    struct addrinfo v4_hints = *hints, *v4 = NULL;
    v4_hints.ai_family = AF_INET;
    v4_hints.ai_flags &= ~(AI_V4MAPPED | AI_ALL);
    if (real_getaddrinfo(node, service, &v4_hints, &v4) != 0)
        return rc;
    /* Look the mapped address up as a numeric host, so the result is freed by the same freeaddrinfo. */
    char mapped[INET6_ADDRSTRLEN] = "::ffff:";
    inet_ntop(AF_INET, &((struct sockaddr_in *)v4->ai_addr)->sin_addr, mapped + 7, INET_ADDRSTRLEN);
    real_freeaddrinfo(v4);
    struct addrinfo v6_hints = *hints;
    v6_hints.ai_flags = (hints->ai_flags & ~(AI_V4MAPPED | AI_ALL | AI_CANONNAME)) | AI_NUMERICHOST;
    return real_getaddrinfo(mapped, service, &v6_hints, res);
}

/* `path` with its container-path prefix replaced by the host path ($MLCYCLE_FILE_MOUNTS), written into `buf`;
 * `path` itself when no entry matches. */
static const char *file_mount(const char *path, char *buf, size_t size) {
    const char *map = getenv("MLCYCLE_FILE_MOUNTS");
    if (path == NULL || map == NULL || path[0] != '/')
        return path;
    while (*map != '\0') {
        const char *tab = strchr(map, '\t');
        const char *end = strchr(map, '\n');
        if (end == NULL)
            end = map + strlen(map);
        if (tab == NULL || tab > end)
            return path;
        size_t n = (size_t)(tab - map);
        if (strncmp(path, map, n) == 0 && (path[n] == '/' || path[n] == '\0')) {
            int len = snprintf(buf, size, "%.*s%s", (int)(end - tab - 1), tab + 1, path + n);
            return len > 0 && (size_t)len < size ? buf : path;
        }
        map = *end == '\0' ? end : end + 1;
    }
    return path;
}
#define MAPPED(path) file_mount(path, mapped_buf, sizeof mapped_buf)

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* open, open64, openat, openat64, fopen, fopen64: the same wrapper around the next definition. */
#define WRAP_OPEN(name)                                                               \
    int name(const char *path, int flags, ...) {                                      \
        static int (*real)(const char *, int, ...) = NULL;                            \
        if (real == NULL)                                                             \
            real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);          \
        va_list ap;                                                                   \
        va_start(ap, flags);                                                          \
        mode_t mode = mode_arg(flags, ap);                                            \
        va_end(ap);                                                                   \
        char mapped_buf[4096];                                                        \
        return real(MAPPED(path), flags, mode);                                       \
    }
#define WRAP_OPENAT(name)                                                             \
    int name(int dirfd, const char *path, int flags, ...) {                           \
        static int (*real)(int, const char *, int, ...) = NULL;                       \
        if (real == NULL)                                                             \
            real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name);     \
        va_list ap;                                                                   \
        va_start(ap, flags);                                                          \
        mode_t mode = mode_arg(flags, ap);                                            \
        va_end(ap);                                                                   \
        char mapped_buf[4096];                                                        \
        return real(dirfd, MAPPED(path), flags, mode);                                \
    }
#define WRAP_FOPEN(name)                                                              \
    FILE *name(const char *path, const char *mode) {                                  \
        static FILE *(*real)(const char *, const char *) = NULL;                      \
        if (real == NULL)                                                             \
            real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, #name);  \
        char mapped_buf[4096];                                                        \
        return real(MAPPED(path), mode);                                              \
    }
WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
WRAP_FOPEN(fopen)
WRAP_FOPEN(fopen64)

/* stat, lstat, fstatat and access of the same paths, so a program that checks a file exists finds it. The stat
 * buffer is passed through untouched (`void *`: struct stat and struct stat64 alike, without <sys/stat.h>). */
#define WRAP_STAT(name)                                                               \
    int name(const char *path, void *st) {                                            \
        static int (*real)(const char *, void *) = NULL;                              \
        if (real == NULL)                                                             \
            real = (int (*)(const char *, void *))dlsym(RTLD_NEXT, #name);            \
        char mapped_buf[4096];                                                        \
        return real(MAPPED(path), st);                                                \
    }
#define WRAP_FSTATAT(name)                                                            \
    int name(int dirfd, const char *path, void *st, int flags) {                      \
        static int (*real)(int, const char *, void *, int) = NULL;                    \
        if (real == NULL)                                                             \
            real = (int (*)(int, const char *, void *, int))dlsym(RTLD_NEXT, #name);  \
        char mapped_buf[4096];                                                        \
        return real(dirfd, MAPPED(path), st, flags);                                  \
    }
WRAP_STAT(stat)
WRAP_STAT(stat64)
WRAP_STAT(lstat)
WRAP_STAT(lstat64)
WRAP_FSTATAT(fstatat)
WRAP_FSTATAT(fstatat64)

int access(const char *path, int mode) {
    static int (*real)(const char *, int) = NULL;
    if (real == NULL)
        real = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
    char mapped_buf[4096];
    return real(MAPPED(path), mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags) {
    static int (*real)(int, const char *, int, int) = NULL;
    if (real == NULL)
        real = (int (*)(int, const char *, int, int))dlsym(RTLD_NEXT, "faccessat");
    char mapped_buf[4096];
    return real(dirfd, MAPPED(path), mode, flags);
}
