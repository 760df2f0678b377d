/*
 * qihe-board on a POSIX host: the firmware core on a pty, inputs from event lines on stdin.
 *
 *   qihe-board --link PATH --device NAME --seats N [--presence-seats N] [--no-counter]
 *              [--no-door] [--interval S] [--retransmit MS] [--window N] [--debounce MS] [--boot N]
 *              [--trace]
 *
 * One poll() loop: bytes from the pty go to board_rx, stdin lines to the simulator, and
 * board_tick runs every millisecond. docs/firmware.md describes the options and the lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "board.h"
#include "board_state.h"
#include "events.h"
#include "hal.h"
#include "host.h"

static board_t board;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *to)
{
    fprintf(to,
            "用法 usage: qihe-board --link PATH [--device NAME] [--seats N] [--presence-seats N]\n"
            "            [--no-counter] [--no-door] [--interval S] [--retransmit MS] [--window N]\n"
            "            [--debounce MS] [--boot N] [--trace]\n"
            "  --link PATH        create a pty and keep a symlink to its slave here\n"
            "  --device NAME      board id in HELLO (alias --device-id; default qihe-board)\n"
            "  --seats N          seat sensors 1..N, N in 0..%d (default 4)\n"
            "  --presence-seats N seats 1..N also have a presence channel (default 0)\n"
            "  --no-counter       no entrance beam pair: no PEOPLE reports\n"
            "  --no-door          no door contact: no DOOR reports\n"
            "  --interval S       heartbeat period, %d..%d s (alias --report-interval; default 60)\n"
            "  --retransmit MS    hold reports until REPORT_ACK, resend after MS (default 3000;\n"
            "                     0: hold nothing)\n"
            "  --window N         held reports at most, 1..%d (default %d)\n"
            "  --debounce MS      input debounce (default 50)\n"
            "  --boot N           boot number of the first boot (then N+1, ...; default random)\n"
            "  --trace            log every frame written and every chunk read, in hex\n"
            "stdin, one event a line: seat I 1|0, beam in|out, beam outer|inner 1|0,\n"
            "  door open|closed, supply MV, wait MS, unplug, plug, status\n",
            BOARD_MAX_SEATS, BOARD_MIN_INTERVAL_S, BOARD_MAX_INTERVAL_S, BOARD_WINDOW,
            BOARD_WINDOW);
}

static bool number_arg(const char *name, const char *text, unsigned long min, unsigned long max,
                       unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "qihe-board: 参数错误 bad argument: %s %s (expected %lu..%lu)\n", name,
                text, min, max);
        return false;
    }
    *out = v;
    return true;
}

/* -- stdin lines the simulator does not know ------------------------------------------------ */

static bool is_line(const char *line, size_t len, const char *word)
{
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r' || line[len - 1] == '\t'))
        len--;
    while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        len--;
    }
    return len == strlen(word) && memcmp(line, word, len) == 0;
}

static void log_status(void)
{
    const board_stats_t *st = board_stats(&board);
    host_log("状态 status: boot %u, held %u, dropped %u, owes_window %s, sent %u, resent %u, "
             "bursts %u, rx %u, malformed %u, interval_s %u",
             board_boot(&board), board_held(&board), board_dropped(&board),
             board_owes_window(&board) ? "yes" : "no", st->frames_sent, st->resent, st->bursts,
             st->rx_frames, st->rx_malformed, board_report_interval(&board));
}

static bool host_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (is_line(line, len, "unplug")) {
        host_link_unplug();
        host_log("拔出串口 unplugged");
        return true;
    }
    if (is_line(line, len, "plug")) {
        if (host_link_plug())
            host_log("重新插入 plugged in: %s -> %s", host_link.link ? host_link.link : "-",
                     host_link.slave_name);
        return true;
    }
    if (is_line(line, len, "status")) {
        log_status();
        return true;
    }
    return false;
}

static void bad_line(void *ctx, const char *line, size_t len, const char *why)
{
    (void)ctx;
    host_log("输入行无效 bad input line \"%.*s\": %s", (int)(len > 80 ? 80 : len), line, why);
}

/* -- the loop ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    board_config_t cfg = board_default_config();
    unsigned long v;
    enum { O_DEVICE = 256, O_SEATS, O_PRESENCE_SEATS, O_NO_COUNTER, O_NO_DOOR, O_INTERVAL, O_RETRANSMIT, O_WINDOW,
           O_DEBOUNCE, O_BOOT, O_TRACE, O_LINK, O_HELP };
    static const struct option options[] = {
        {"link", required_argument, NULL, O_LINK},
        {"device", required_argument, NULL, O_DEVICE},
        {"device-id", required_argument, NULL, O_DEVICE},
        {"seats", required_argument, NULL, O_SEATS},
        {"presence-seats", required_argument, NULL, O_PRESENCE_SEATS},
        {"no-counter", no_argument, NULL, O_NO_COUNTER},
        {"no-door", no_argument, NULL, O_NO_DOOR},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"report-interval", required_argument, NULL, O_INTERVAL},
        {"retransmit", required_argument, NULL, O_RETRANSMIT},
        {"window", required_argument, NULL, O_WINDOW},
        {"debounce", required_argument, NULL, O_DEBOUNCE},
        {"boot", required_argument, NULL, O_BOOT},
        {"trace", no_argument, NULL, O_TRACE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case O_LINK: host_link.link = optarg; break;
        case O_DEVICE: cfg.device_id = optarg; break;
        case O_SEATS:
            if (!number_arg("--seats", optarg, 0, BOARD_MAX_SEATS, &v))
                return 2;
            cfg.seats = (uint16_t)v;
            break;
        case O_PRESENCE_SEATS:
            if (!number_arg("--presence-seats", optarg, 0, BOARD_MAX_SEATS, &v))
                return 2;
            cfg.presence_seats = (uint16_t)v;
            break;
        case O_NO_COUNTER: cfg.counter = false; break;
        case O_NO_DOOR: cfg.door = false; break;
        case O_INTERVAL:
            if (!number_arg("--interval", optarg, BOARD_MIN_INTERVAL_S, BOARD_MAX_INTERVAL_S, &v))
                return 2;
            cfg.report_interval_s = (uint16_t)v;
            break;
        case O_RETRANSMIT:
            if (!number_arg("--retransmit", optarg, 0, 3600000, &v))
                return 2;
            cfg.retransmit_ms = (uint32_t)v;
            break;
        case O_WINDOW:
            if (!number_arg("--window", optarg, 1, BOARD_WINDOW, &v))
                return 2;
            cfg.window = (uint16_t)v;
            break;
        case O_DEBOUNCE:
            if (!number_arg("--debounce", optarg, 0, 60000, &v))
                return 2;
            cfg.debounce_ms = (uint16_t)v;
            break;
        case O_BOOT:
            if (!number_arg("--boot", optarg, 0, UINT32_MAX, &v))
                return 2;
            host_set_boot_base((uint32_t)v);
            break;
        case O_TRACE: host_link.trace = true; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qihe-board: 多余的参数 unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (host_link.link == NULL) {
        fprintf(stderr, "qihe-board: 需要 --link PATH / --link PATH is required\n");
        usage(stderr);
        return 2;
    }
    size_t id_len = strlen(cfg.device_id);
    bool id_ok = id_len >= 1 && id_len <= QP_MAX_ID;
    for (size_t i = 0; id_ok && i < id_len; i++) {
        char c = cfg.device_id[i];
        id_ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                (i > 0 && (c == '-' || c == '_'));
    }
    if (!id_ok) {
        fprintf(stderr, "qihe-board: 参数错误 bad argument: --device %s (expected "
                        "^[a-z0-9][a-z0-9_-]{0,31}$)\n", cfg.device_id);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!host_link_plug())
        return 1;
    sim_t *sim = sim_instance();
    sim_init(sim, cfg.seats);
    sim->other = host_line;
    sim->error = bad_line;

    board_init(&board, &cfg, hal_millis());
    host_log("模拟板已启动 board started: %s -> %s, device %s, %u seats%s%s, boot %u, "
             "interval %u s, retransmit %u ms, window %u",
             host_link.link, host_link.slave_name, cfg.device_id, cfg.seats,
             cfg.counter ? " + counter" : "", cfg.door ? " + door" : "", board_boot(&board),
             board_report_interval(&board), cfg.retransmit_ms, cfg.window);

    int in_fd = STDIN_FILENO;
    fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    bool in_open = true;
    static uint8_t in_buf[4096];
    size_t in_len = 0;
    uint8_t rx[512];

    while (!stop_signal) {
        struct pollfd fds[2];
        nfds_t n = 0;
        int in_at = -1, link_at = -1;
        if (in_open && in_len < sizeof in_buf) {
            fds[n] = (struct pollfd){.fd = in_fd, .events = POLLIN};
            in_at = (int)n++;
        }
        if (host_link.master >= 0) {
            fds[n] = (struct pollfd){.fd = host_link.master, .events = POLLIN};
            link_at = (int)n++;
        }
        if (poll(fds, n, 1) < 0 && errno != EINTR) {
            host_log("poll: %s", strerror(errno));
            break;
        }
        if (link_at >= 0 && (fds[link_at].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t got = read(host_link.master, rx, sizeof rx);
            if (got > 0) {
                if (host_link.trace)
                    host_log_hex("rx", rx, (size_t)got);
                board_rx(&board, rx, (size_t)got, hal_millis());
            }
        }
        if (in_at >= 0 && (fds[in_at].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t got = read(in_fd, in_buf + in_len, sizeof in_buf - in_len);
            if (got > 0) {
                in_len += (size_t)got;
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                in_open = false; /* the board runs on: a test may close stdin at any time */
                if (in_len < sizeof in_buf)
                    in_buf[in_len++] = '\n'; /* a last line without its newline still counts */
                host_log("标准输入已关闭，继续运行 stdin closed; running on");
            }
        }
        /* The tick samples the levels before the next lines change them: a level held
         * until a wait's end is seen at that end, even after a stall of the process. */
        uint32_t now = hal_millis();
        if (!board_halted(&board))
            board_tick(&board, now);
        size_t used = sim_feed(sim, in_buf, in_len, now);
        if (used > 0) {
            memmove(in_buf, in_buf + used, in_len - used);
            in_len -= used;
        }
        if (host_take_reboot()) {
            /* A process cannot reset: start the core again in place, keeping the interval
             * SET_REPORT_INTERVAL set (the next HELLO reports it). The inputs go on. */
            cfg.report_interval_s = board_report_interval(&board);
            host_log("重启 rebooting (REBOOT)");
            board_init(&board, &cfg, hal_millis());
            host_log("新启动 new boot %u, interval %u s", board_boot(&board),
                     board_report_interval(&board));
        }
    }

    host_log("模拟板已停止 board stopped (signal %d)", (int)stop_signal);
    log_status();
    host_link_unplug();
    return 0;
}
