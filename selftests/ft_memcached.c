// SPDX-License-Identifier: GPL-2.0
/*
 * Debian's memcached with four worker threads (-t 4: ten threads in all,
 * with its listener, LRU maintainer and crawler, hash expander and
 * logger), started with `ftctl run -l N` for N = 1 and 2, with procft's
 * threads=1, under load from outside its group:
 * - memcslap (libmemcached-tools) sets and gets keys over 4 connections,
 *   and exits 0;
 * - 4 connections raise one counter with `incr`, each reply in order:
 *   the counter ends exactly at their sum;
 * - 50 keys set through one connection read back through another,
 *   byte-compared;
 * - its pid stays the same, its level and its duplicates are all still
 *   there, nothing diverged, and its protection did not end.
 * Then, at each level, machine checks on the primary's frames at random
 * times under the same load: each on the frame under the stack pointer
 * of one of its threads, chosen at random, that sleeps in a system call,
 * so a duplicate's state replaces the primary's each time. Every reply is
 * still right, the pid and the duplicates stay.
 * Then, at level 2, a machine check on a frame of one of its duplicates:
 * a new one replaces it, re-creating the server's ten threads.
 * Last, a memcached started unprotected is protected at level 1 from
 * outside (the ioctl on its pid), while its threads run, and takes the
 * same load and machine checks.
 */
#include "ft_server.h"

/*
 * Operations per memcslap connection and per counting connection: fewer
 * on a debug kernel (lockdep, KASAN), where each costs several times
 * more and the checks are the point, not the volume.
 */
static int ops = 500;

static pid_t start_memcached(int level, int port)
{
	char p[8], *argv[] = { "/bin/memcached", "-t", "4", "-p", p, "-U", "0",
			       "-l", "127.0.0.1", "-u", "root", NULL };

	snprintf(p, sizeof(p), "%d", port);
	return start_server(level, "/tmp/memcached.log", argv);
}

/* Whether it answers on @port now. */
static int answers_now(int port)
{
	return run_cmd("printf 'version\\r\\nquit\\r\\n' | nc 127.0.0.1 %d 2>/dev/null | grep -q '^VERSION'",
		       port) == 0;
}

/*
 * The load, in the background of the caller's shell: memcslap's sets then
 * gets (@n per connection), and 4 connections of @n `incr` each. Exits 0
 * if memcslap did and each counting connection got @n numbers back.
 */
static int run_load(int port, int n)
{
	return run_cmd("printf 'set ctr 0 0 1\\r\\n0\\r\\nquit\\r\\n' | nc 127.0.0.1 %d | grep -q '^STORED' || exit 1\n"
		       "for c in 1 2 3 4; do\n"
		       "  (i=0; while [ $i -lt %d ]; do echo 'incr ctr 1'; i=$((i + 1)); done; echo quit) |\n"
		       "    nc 127.0.0.1 %d > /tmp/incr.$c &\n"
		       "done\n"
		       "timeout 300 memcslap -s 127.0.0.1:%d -c 4 -e %d -t set > /tmp/slap.out 2>&1 &&\n"
		       "timeout 300 memcslap -s 127.0.0.1:%d -c 4 -e %d -t get >> /tmp/slap.out 2>&1\n"
		       "rc=$?\n"
		       "wait\n"
		       "for c in 1 2 3 4; do\n"
		       "  [ \"$(tr -d '\\r' < /tmp/incr.$c | grep -c '^[0-9][0-9]*$')\" = %d ] || rc=1\n"
		       "done\n"
		       "if [ $rc != 0 ]; then\n"
		       "  tail -5 /tmp/slap.out | sed 's/^/# memcslap: /'\n"
		       "  for c in 1 2 3 4; do\n"
		       "    echo \"# connection $c: $(tr -d '\\r' < /tmp/incr.$c | grep -c '^[0-9][0-9]*$') numbers, then: $(tr -d '\\r' < /tmp/incr.$c | grep -v '^[0-9][0-9]*$' | head -2 | tr '\\n' ' ')\"\n"
		       "  done\n"
		       "fi\n"
		       "exit $rc",
		       port, n, port, port, n, port, n, n);
}

/* Whether the counter the load raised is exactly @want. */
static int counter_is(int port, int want)
{
	return run_cmd("test \"$(printf 'get ctr\\r\\nquit\\r\\n' | nc 127.0.0.1 %d | sed -n 2p | tr -d '\\r')\" = %d",
		       port, want) == 0;
}

/* The load, and the checks of its answers. */
static void check_load(int level, int port, const char *when)
{
	double t0 = monotonic_s();

	tap_ok(run_load(port, ops) == 0,
	       "level %d%s: memcslap answered %d sets and %d gets, 4 counting connections %d replies each",
	       level, when, 4 * ops, 4 * ops, ops);
	tap_diag("level %d%s: the load took %.1f s", level, when, monotonic_s() - t0);
	tap_ok(counter_is(port, 4 * ops), "level %d%s: the counter is exactly %d", level, when,
	       4 * ops);
	/* One connection sets them, another reads them back, byte-compared. */
	tap_ok(run_cmd("for i in $(seq 1 50); do echo \"value $i of $RANDOM\"; done > /tmp/vals &&\n"
		       "test \"$( (i=0; while read v; do i=$((i + 1));\n"
		       "  printf 'set key%%d 0 0 %%d\\r\\n%%s\\r\\n' $i ${#v} \"$v\"; done < /tmp/vals;\n"
		       "  printf 'quit\\r\\n') | nc 127.0.0.1 %d | grep -c '^STORED')\" = 50 &&\n"
		       "(for i in $(seq 1 50); do printf 'get key%%d\\r\\n' $i; done; printf 'quit\\r\\n') |\n"
		       "  nc 127.0.0.1 %d | tr -d '\\r' | grep -v '^VALUE \\|^END$' | cmp -s - /tmp/vals",
		       port, port) == 0,
	       "level %d%s: 50 keys set from outside read back", level, when);
}

/*
 * A random thread of @pid sleeping in a call other than a futex wait:
 * its stack frame. (The threads that wait in a futex, the LRU crawler and
 * the hash expander, may not run again during the test; the listener,
 * the workers, the LRU maintainer and the logger wake at least once a
 * second.)
 */
static uint64_t some_stack_frame(pid_t pid, uintptr_t *addr)
{
	char path[64], line[32];
	pid_t tids[64];
	struct dirent *e;
	int n = 0;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (n < 64 && (e = readdir(d))) {
		pid_t tid = atoi(e->d_name);

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
		f = fopen(path, "re");
		if (!f)
			continue;
		/* 202: futex. */
		if (fgets(line, sizeof(line), f) && atoi(line) != 202)
			tids[n++] = tid;
		fclose(f);
	}
	closedir(d);
	return n ? stack_frame(pid, tids[rand() % n], addr) : 0;
}

/*
 * Up to @shots machine checks on the primary's frames (under one of its
 * threads' stack pointer) at random times while the load runs; each waits
 * for the takeover it causes. Checks the load's answers.
 */
static void load_under_fire(int level, pid_t pid, int port, int shots)
{
	double t0 = monotonic_s();
	long takeovers;
	int fired, rounds;

	fired = fire_under_load(pid, shots, some_stack_frame, run_load, port, ops, &takeovers,
				&rounds);
	tap_diag("level %d: %d rounds of the load under fire took %.1f s", level, rounds,
		 monotonic_s() - t0);
	tap_ok(fired == shots && takeovers == shots && rounds > 0 && counter_is(port, 4 * ops),
	       "level %d: %d machine checks on the primary's frames under load, %ld takeovers; every reply of %d rounds came, the counter is exactly %d",
	       level, fired, takeovers, rounds, 4 * ops);
}

static void stop(pid_t pid, int port)
{
	if (!answers_now(port))
		run_cmd("cat /tmp/memcached.log");
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	static const struct server memcached = {
		.name = "memcached",
		.port = 11300,
		.threads = 10,
		.start = start_memcached,
		.answers_now = answers_now,
		.load = check_load,
		.under_fire = load_under_fire,
		.stop = stop,
	};

	tap_plan(42);
	if (!tap_ok(access("/bin/memcached", X_OK) == 0 && access("/bin/memcslap", X_OK) == 0,
		    "memcached and memcslap are in the VM (scripts/setup-host.sh installs them)"))
		return tap_finish();
	if (access("/proc/lockdep", F_OK) == 0) {
		ops = 150;
		tap_diag("a debug kernel: %d operations per connection", ops);
	}
	return server_tests(&memcached);
}
