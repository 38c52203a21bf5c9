/* Embedded Kafka-protocol broker: librdkafka's mock cluster behind a line protocol.
 *
 * usage: mock-broker [--brokers N] [--topic name:partitions]...
 * stdout: "READY <bootstrap servers>", then one "OK" / "ERR <reason>" per stdin command:
 *   topic <name> <partitions> | down <id> | up <id> | rtt <id> <ms>
 *   error <apiKey> <errorCode> [count] | clear [apiKey] | quit
 * EOF on stdin, SIGTERM or SIGINT destroy the cluster and exit 0.
 * Broker id -1 means every broker (librdkafka's convention). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_API_KEY 128 /* above every Kafka ApiKey; used by "clear" without an argument */
#define MAX_ERRORS 1024

static rd_kafka_mock_cluster_t *mc;
static int broker_cnt = 3;

static rd_kafka_resp_err_t create_topic(const char *name, int partitions) {
    /* The mock refuses a replication factor above the broker count. */
    return rd_kafka_mock_topic_create(mc, name, partitions, broker_cnt < 3 ? broker_cnt : 3);
}

static void reply(rd_kafka_resp_err_t err) {
    if (err) printf("ERR %s\n", rd_kafka_err2str(err));
    else puts("OK");
    fflush(stdout);
}

/* Runs one command line; returns 0 when the launcher should exit. */
static int run(char *line) {
    char name[256];
    int a, b, c = 1, n;
    if (sscanf(line, "topic %255s %d %n", name, &a, &n) == 2 && !line[n]) {
        if (a < 1) { puts("ERR partitions must be >= 1"); fflush(stdout); }
        else reply(create_topic(name, a));
    } else if (sscanf(line, "down %d %n", &a, &n) == 1 && !line[n]) {
        reply(rd_kafka_mock_broker_set_down(mc, a));
    } else if (sscanf(line, "up %d %n", &a, &n) == 1 && !line[n]) {
        reply(rd_kafka_mock_broker_set_up(mc, a));
    } else if (sscanf(line, "rtt %d %d %n", &a, &b, &n) == 2 && !line[n]) {
        reply(rd_kafka_mock_broker_set_rtt(mc, a, b));
    } else if ((sscanf(line, "error %d %d %d %n", &a, &b, &c, &n) == 3 && !line[n]) ||
               (c = 1, sscanf(line, "error %d %d %n", &a, &b, &n) == 2 && !line[n])) {
        if (c < 1 || c > MAX_ERRORS) { printf("ERR count must be 1..%d\n", MAX_ERRORS); fflush(stdout); return 1; }
        rd_kafka_resp_err_t errs[MAX_ERRORS];
        for (int i = 0; i < c; i++) errs[i] = (rd_kafka_resp_err_t)b;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)c, errs);
        reply(0);
    } else if (sscanf(line, "clear %d %n", &a, &n) == 1 && !line[n]) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
        reply(0);
    } else if (strcmp(line, "clear") == 0) {
        for (int k = 0; k < MAX_API_KEY; k++) rd_kafka_mock_clear_request_errors(mc, (int16_t)k);
        reply(0);
    } else if (strcmp(line, "quit") == 0) {
        reply(0);
        return 0;
    } else {
        printf("ERR unknown command: %s\n", line);
        fflush(stdout);
    }
    return 1;
}

int main(int argc, char **argv) {
    char errstr[512];
    sigset_t sigs;
    /* Blocked before librdkafka starts its threads, so only the signalfd sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, 0);

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) broker_cnt = atoi(argv[++i]);
    if (broker_cnt < 1) { fprintf(stderr, "--brokers must be >= 1\n"); return 2; }

    /* The mock cluster needs an rd_kafka_t for bookkeeping; this one never connects anywhere. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) { fprintf(stderr, "rd_kafka_new: %s\n", errstr); return 1; }
    mc = rd_kafka_mock_cluster_new(rk, broker_cnt);
    if (!mc) { fprintf(stderr, "rd_kafka_mock_cluster_new failed\n"); return 1; }

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") != 0 || i + 1 >= argc) continue;
        char *spec = argv[++i], *colon = strrchr(spec, ':');
        int parts = colon ? atoi(colon + 1) : 0;
        if (!colon || parts < 1) { fprintf(stderr, "bad --topic %s (want name:partitions)\n", spec); return 2; }
        *colon = '\0';
        rd_kafka_resp_err_t err = create_topic(spec, parts);
        if (err) { fprintf(stderr, "topic %s: %s\n", spec, rd_kafka_err2str(err)); return 1; }
    }
    printf("READY %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    char buf[4096];
    size_t len = 0;
    int running = 1;
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    while (running) {
        if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
        if (fds[1].revents) break; /* SIGTERM / SIGINT */
        if (!fds[0].revents) continue;
        ssize_t r = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (r <= 0) break; /* EOF: the parent is gone or closed our stdin */
        len += (size_t)r;
        char *start = buf, *nl;
        while (running && (nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *nl = '\0';
            if (nl > start && nl[-1] == '\r') nl[-1] = '\0';
            if (*start) running = run(start);
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf - 1) len = 0; /* an over-long line is dropped, not fatal */
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
