// SPDX-License-Identifier: GPL-2.0
/*
 * Debian's redis-server (three background threads of its own) started
 * with `ftctl run -l N` for N = 1 and 2, with procft's threads=1, under
 * load from outside its group (redis-benchmark and redis-cli):
 * - every request is answered: redis-benchmark exits 0, and the counter
 *   its INCR requests raise is exact;
 * - 50 keys set through one redis-cli connection read back through
 *   another, byte-compared;
 * - its pid stays the same, its level and its duplicates are all still
 *   there, nothing diverged, and its protection did not end.
 * Then, at each level, machine checks on the primary's frames at random
 * times under load (redis-benchmark running): each on the frame under the
 * main thread's stack pointer, which it touches as soon as it runs, so a
 * duplicate's state replaces the primary's each time. Every reply is still
 * right (the INCR counter exact), the pid and the duplicates stay.
 * Then, at level 2, a machine check on a frame of one of its duplicates:
 * the duplicate is gone and a new one replaces it, re-creating the
 * server's threads where the primary's stand; the server goes on
 * answering rightly.
 */
#include "ft_server.h"

/*
 * Requests per redis-benchmark test: fewer on a debug kernel (lockdep,
 * KASAN), where each costs several times more and the checks are the
 * point, not the volume.
 */
static int requests = 1000;

static pid_t start_redis(int level, int port)
{
	char p[8], *argv[] = { "/bin/redis-server", "--port", p, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--daemonize", "no", NULL };

	snprintf(p, sizeof(p), "%d", port);
	return start_server(level, "/tmp/redis.log", argv);
}

/* Whether it answers on @port now. */
static int answers_now(int port)
{
	return run_cmd("redis-cli -p %d ping 2>/dev/null | grep -q PONG", port) == 0;
}

/* The load, and the checks of its answers. */
static void load(int level, int port, const char *when)
{
	double t0 = monotonic_s();

	tap_ok(run_cmd("timeout 300 redis-benchmark -p %d -q -n %d -c 4 -t set,get,incr,lpush,lpop > /tmp/bench.out 2>&1",
		       port, requests) == 0 &&
	       run_cmd("test \"$(redis-cli -p %d get counter:__rand_int__)\" = %d", port, requests) == 0,
	       "level %d%s: redis-benchmark answered, the INCR counter is exactly %d",
	       level, when, requests);
	tap_diag("level %d%s: redis-benchmark took %.1f s", level, when, monotonic_s() - t0);
	run_cmd("redis-cli -p %d set counter:__rand_int__ 0 > /dev/null", port);
	/* One connection sets them, another reads them back, byte-compared. */
	tap_ok(run_cmd("for i in $(seq 1 50); do echo \"value $i of $RANDOM\"; done > /tmp/vals &&\n"
		       "test \"$(i=0; while read v; do i=$((i + 1)); echo \"set key$i '$v'\"; done < /tmp/vals |\n"
		       "redis-cli -p %d | grep -c '^OK$')\" = 50 &&\n"
		       "for i in $(seq 1 50); do echo \"get key$i\"; done | redis-cli -p %d | cmp -s - /tmp/vals",
		       port, port) == 0,
	       "level %d%s: 50 keys set from outside read back", level, when);
}

/* The frame under the stack pointer of @pid's main thread (stack_frame()). */
static uint64_t main_stack_frame(pid_t pid, uintptr_t *addr)
{
	return stack_frame(pid, pid, addr);
}

/* One round of the load under fire: @n requests of each kind. */
static int bench_round(int port, int n)
{
	return run_cmd("timeout 300 redis-benchmark -p %d -q -n %d -c 4 -t set,get,incr,lpush,lpop > /tmp/bench.out 2>&1",
		       port, n);
}

/*
 * Up to @shots machine checks on the primary's frames (under its main
 * thread's stack pointer) at random times while redis-benchmark loads the
 * server; each waits for the takeover it causes. Checks the load's answers.
 */
static void load_under_fire(int level, pid_t pid, int port, int shots)
{
	double t0 = monotonic_s();
	long takeovers;
	int fired, rounds;

	fired = fire_under_load(pid, shots, main_stack_frame, bench_round, port, requests,
				&takeovers, &rounds);
	tap_diag("level %d: %d rounds of redis-benchmark under fire took %.1f s", level, rounds,
		 monotonic_s() - t0);
	tap_ok(fired == shots && takeovers == shots && rounds > 0 &&
	       run_cmd("test \"$(redis-cli -p %d get counter:__rand_int__)\" = %d", port,
		       rounds * requests) == 0,
	       "level %d: %d machine checks on the primary's frames under load, %ld takeovers; redis-benchmark answered, the INCR counter is exactly %d x %d",
	       level, fired, takeovers, rounds, requests);
	run_cmd("redis-cli -p %d set counter:__rand_int__ 0 > /dev/null", port);
}

static void stop(pid_t pid, int port)
{
	int i;

	run_cmd("redis-cli -p %d shutdown nosave > /dev/null 2>&1", port);
	for (i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(50000);
	if (i == 100) {
		run_cmd("cat /tmp/redis.log");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

int main(void)
{
	static const struct server redis = {
		.name = "redis-server",
		.port = 6380,
		.start = start_redis,
		.answers_now = answers_now,
		.load = load,
		.under_fire = load_under_fire,
		.stop = stop,
	};

	tap_plan(35);
	if (access("/proc/lockdep", F_OK) == 0) {
		requests = 300;
		tap_diag("a debug kernel: %d requests per redis-benchmark test", requests);
	}
	return server_tests(&redis);
}
