/* The POSIX port's pieces shared by main.c and hal_host.c. */
#ifndef QIHE_HOST_H
#define QIHE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Log one line to stderr, prefixed "qihe-board [seconds since start]: ". */
void host_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The link: a pty pair whose slave is symlinked at a path, like /dev/serial/by-id/... */
typedef struct {
    const char *link;    /* where the slave's name is linked; NULL: none (print it instead) */
    int master, slave;   /* -1 while unplugged */
    char slave_name[64];
    bool trace;          /* log every frame written and every chunk read, in hex */
} host_link_t;

extern host_link_t host_link;

/* Create a pair and point the link at its slave; false (logged) on failure. */
bool host_link_plug(void);
/* The cable is pulled: both ends closed, the link removed (if it still points at us). */
void host_link_unplug(void);
/* Log bytes in hex as one line: "<what> 00 03 ..." */
void host_log_hex(const char *what, const uint8_t *data, size_t len);

/* Boot numbers: --boot N gives N, N+1, ... at each boot; otherwise random ones. */
void host_set_boot_base(uint32_t base);
/* A REBOOT was carried out (hal_reboot); cleared by reading it. */
bool host_take_reboot(void);

#endif
