/*
 * The HAL on a POSIX host: a pty for the link (the gateway opens its slave like a USB
 * serial adapter), the monotonic clock, /dev/urandom for boot numbers, the LED as log lines.
 * The inputs come from the event-line simulator (port/sim).
 */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */

#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hal.h"

host_link_t host_link = {.master = -1, .slave = -1};

static struct timespec started;
static bool boot_fixed;
static uint32_t boot_next;
static bool reboot_requested;

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t since_start_ms(void)
{
    if (started.tv_sec == 0 && started.tv_nsec == 0)
        clock_gettime(CLOCK_MONOTONIC, &started);
    uint64_t start = (uint64_t)started.tv_sec * 1000u + (uint64_t)started.tv_nsec / 1000000u;
    return monotonic_ms() - start;
}

void host_log(const char *fmt, ...)
{
    uint64_t ms = since_start_ms();
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qihe-board [%llu.%03llu]: %s\n", (unsigned long long)(ms / 1000u),
            (unsigned long long)(ms % 1000u), text);
    fflush(stderr);
}

void host_log_hex(const char *what, const uint8_t *data, size_t len)
{
    /* One line however long: a test decodes these with the Python codec. */
    size_t size = strlen(what) + 3 * len + 2;
    char *line = malloc(size);
    if (line == NULL)
        return;
    size_t at = (size_t)snprintf(line, size, "%s", what);
    for (size_t i = 0; i < len; i++)
        at += (size_t)snprintf(line + at, size - at, " %02X", data[i]);
    host_log("%s", line);
    free(line);
}

/* -- the HAL ------------------------------------------------------------------------------ */

uint32_t hal_millis(void) { return (uint32_t)since_start_ms(); }

size_t hal_link_write(const uint8_t *data, size_t len)
{
    if (host_link.trace)
        host_log_hex("tx", data, len);
    if (host_link.master < 0)
        return len; /* unplugged: the UART sends into thin air */
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(host_link.master, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break; /* EAGAIN: the pty's buffer is full (no one reads); the rest is lost */
    }
    return done;
}

void host_set_boot_base(uint32_t base)
{
    boot_fixed = true;
    boot_next = base;
}

uint32_t hal_boot_number(void)
{
    if (boot_fixed)
        return boot_next++;
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
            v = 0;
        close(fd);
    }
    if (v == 0) /* no urandom: the clock will do */
        v = (uint32_t)monotonic_ms() ^ ((uint32_t)getpid() << 16);
    return v;
}

void hal_led(bool on)
{
    static int last = 0; /* off at power-up */
    if (last == (int)on)
        return;
    last = (int)on;
    host_log("识别灯 LED %s", on ? "on" : "off");
}

void hal_reboot(void)
{
    /* A process cannot reset itself: main.c starts the core again in place. */
    reboot_requested = true;
}

bool host_take_reboot(void)
{
    bool r = reboot_requested;
    reboot_requested = false;
    return r;
}

/* -- the link ----------------------------------------------------------------------------- */

static bool point_link(const char *link, const char *target)
{
    struct stat st;
    if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode)) {
        host_log("%s 已存在且不是符号链接 exists and is not a symlink; not replacing it", link);
        return false;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        host_log("无法创建链接 cannot link %s -> %s: %s", link, target, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

bool host_link_plug(void)
{
    if (host_link.master >= 0)
        return true;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        host_log("无法创建 pty cannot create a pty: %s", strerror(errno));
        if (master >= 0)
            close(master);
        return false;
    }
    const char *name = ptsname(master);
    int slave = name == NULL ? -1 : open(name, O_RDWR | O_NOCTTY);
    if (slave < 0) {
        host_log("无法打开 pty cannot open the pty's slave: %s", strerror(errno));
        close(master);
        return false;
    }
    /* Raw, like a serial adapter: no echo, no line editing, no CR/LF translation. The board
     * keeps the slave open itself, so bytes written before the gateway opens it wait in the
     * kernel (as in a USB adapter's buffer) and the master never reads EIO meanwhile. */
    struct termios tio;
    if (tcgetattr(slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(slave, TCSANOW, &tio);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    snprintf(host_link.slave_name, sizeof host_link.slave_name, "%s", name);
    if (host_link.link != NULL && !point_link(host_link.link, host_link.slave_name)) {
        close(master);
        close(slave);
        return false;
    }
    host_link.master = master;
    host_link.slave = slave;
    return true;
}

void host_link_unplug(void)
{
    if (host_link.master < 0)
        return;
    if (host_link.link != NULL) {
        char target[sizeof host_link.slave_name];
        ssize_t n = readlink(host_link.link, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = '\0';
            if (strcmp(target, host_link.slave_name) == 0)
                unlink(host_link.link);
        }
    }
    close(host_link.master);
    close(host_link.slave);
    host_link.master = host_link.slave = -1;
}
