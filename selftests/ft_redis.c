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
#include "ft_test.h"
#include <time.h>

/*
 * Requests per redis-benchmark test: fewer on a debug kernel (lockdep,
 * KASAN), where each costs several times more and the checks are the
 * point, not the volume.
 */
static int requests = 1000;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static pid_t start_redis(int level, int port)
{
	char lvl[8], p[8];
	pid_t pid;

	snprintf(lvl, sizeof(lvl), "%d", level);
	snprintf(p, sizeof(p), "%d", port);
	pid = fork();
	if (pid == 0) {
		int fd = open("/tmp/redis.log", O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		if (level)
			execl("/bin/ftctl", "ftctl", "run", "-l", lvl, "--", "/bin/redis-server",
			      "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly",
			      "no", "--daemonize", "no", NULL);
		else
			execl("/bin/redis-server", "redis-server", "--port", p, "--bind",
			      "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
			      NULL);
		_exit(127);
	}
	return pid;
}

static int answers(int port)
{
	int i;

	for (i = 0; i < 300; i++, usleep(100000))
		if (run_cmd("redis-cli -p %d ping 2>/dev/null | grep -q PONG", port) == 0)
			return 1;
	return 0;
}

/* The load, and the checks of its answers. */
static void load(int level, int port, const char *when)
{
	double t0 = now_s();

	tap_ok(run_cmd("timeout 300 redis-benchmark -p %d -q -n %d -c 4 -t set,get,incr,lpush,lpop > /tmp/bench.out 2>&1",
		       port, requests) == 0 &&
	       run_cmd("test \"$(redis-cli -p %d get counter:__rand_int__)\" = %d", port, requests) == 0,
	       "level %d%s: redis-benchmark answered, the INCR counter is exactly %d",
	       level, when, requests);
	tap_diag("level %d%s: redis-benchmark took %.1f s", level, when, now_s() - t0);
	run_cmd("redis-cli -p %d set counter:__rand_int__ 0 > /dev/null", port);
	/* One connection sets them, another reads them back, byte-compared. */
	tap_ok(run_cmd("for i in $(seq 1 50); do echo \"value $i of $RANDOM\"; done > /tmp/vals &&\n"
		       "test \"$(i=0; while read v; do i=$((i + 1)); echo \"set key$i '$v'\"; done < /tmp/vals |\n"
		       "redis-cli -p %d | grep -c '^OK$')\" = 50 &&\n"
		       "for i in $(seq 1 50); do echo \"get key$i\"; done | redis-cli -p %d | cmp -s - /tmp/vals",
		       port, port) == 0,
	       "level %d%s: 50 keys set from outside read back", level, when);
}

/*
 * Up to @shots machine checks on the primary's frames (under its main
 * thread's stack pointer) at random times while redis-benchmark loads the
 * server; each waits for the takeover it causes. Checks the load's answers.
 */
static void load_under_fire(int level, pid_t pid, int port, int shots)
{
	long before = procft_field(pid, "failovers="), now = before;
	int fired = 0, tries, status = -1;
	double t0 = now_s();
	pid_t bg = fork();

	if (bg == 0)
		_exit(run_cmd("timeout 300 redis-benchmark -p %d -q -n %d -c 4 -t set,get,incr,lpush,lpop > /tmp/bench.out 2>&1",
			      port, requests * 4) != 0);
	for (tries = 0; fired < shots && tries < 400 && waitpid(bg, &status, WNOHANG) == 0; tries++) {
		uintptr_t addr = 0;
		uint64_t pfn;
		int t;

		usleep(20000 + rand() % 200000);
		pfn = stack_frame(pid, pid, &addr);
		if (!pfn || host_inject_mce(pfn * 4096))
			continue;
		fired++;
		for (t = 0; t < 100 && (now = procft_field(pid, "failovers=")) < before + fired; t++)
			usleep(50000);
		tap_diag("machine check %d on frame %#llx (stack page %#lx of %d): %ld takeover(s) so far",
			 fired, (unsigned long long)pfn, (unsigned long)addr, pid, now - before);
	}
	if (status == -1)
		waitpid(bg, &status, 0);
	tap_diag("level %d: redis-benchmark under fire took %.1f s", level, now_s() - t0);
	tap_ok(fired == shots && now - before == shots && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0 &&
	       run_cmd("test \"$(redis-cli -p %d get counter:__rand_int__)\" = %d", port,
		       requests * 4) == 0,
	       "level %d: %d machine checks on the primary's frames under load, %ld takeovers; redis-benchmark answered, the INCR counter is exactly %d",
	       level, fired, now - before, requests * 4);
	if (now - before != shots)
		run_cmd("dmesg | grep 'procft: pid %d' | tail -20 | sed 's/^/# /'", pid);
	run_cmd("redis-cli -p %d set counter:__rand_int__ 0 > /dev/null", port);
	tap_ok(logged(pid, "primary consumed poisoned memory at 0x[0-9a-f]*; took over duplicate"),
	       "level %d: the kernel logged the takeovers", level);
}

int main(void)
{
	int level, shots = getenv("FT_SHOTS") ? atoi(getenv("FT_SHOTS")) : 3;

	srand(time(NULL) ^ getpid());
	tap_plan(35);
	if (access("/proc/lockdep", F_OK) == 0) {
		requests = 300;
		tap_diag("a debug kernel: %d requests per redis-benchmark test", requests);
	}
	if (!tap_ok(reload_procft("threads=1") == 0 && ft_open() >= 0,
		    "procft reloaded with threads=1"))
		return tap_finish();
	for (level = 1; level <= 2; level++) {
		int port = 6380 + level;
		pid_t pid = start_redis(level, port), reps[8];

		if (!tap_ok(wait_duplicates(pid, level, reps) && answers(port),
			    "level %d: redis-server %d answers, with %d duplicate(s)", level, pid, level)) {
			run_cmd("cat /tmp/redis.log");
			reap(pid);
			continue;
		}
		load(level, port, "");
		check_group(level, pid, level, "");
		tap_ok(!logged(pid, ".*protection ended"), "level %d: protection did not end", level);
		load_under_fire(level, pid, port, shots);
		check_group(level, pid, level, ", after the machine checks on its primary");
		load(level, port, ", after them");
		tap_ok(!logged(pid, ".*protection ended"), "level %d: protection did not end", level);
		if (level == 2) {
			uintptr_t addr = 0;
			uint64_t pfn = pick_frame(reps[1], 0, &addr);

			/*
			 * A machine check on a frame only the first duplicate
			 * maps: it is replaced by a new duplicate, which
			 * re-creates the server's threads.
			 */
			tap_ok(pfn && host_inject_mce(pfn * 4096) == 0 && wait_gone(reps[1]) &&
			       logged(pid, "duplicate [0-9]* lost; replacing it") &&
			       wait_duplicates(pid, 2, reps),
			       "level 2: a machine check on frame %#llx of duplicate %d ends it, and only it; a new duplicate of the multi-threaded server replaces it",
			       (unsigned long long)pfn, reps[1]);
			load(level, port, ", after it");
			check_group(level, pid, 2, ", after it");
			tap_ok(procft_field(pid, "respawns=") == 1,
			       "level 2, after it: 1 respawn (%ld)", procft_field(pid, "respawns="));
		}
		run_cmd("redis-cli -p %d shutdown nosave > /dev/null 2>&1", port);
		waitpid(pid, NULL, 0);
	}
	{
		/*
		 * A server already running, its threads started: protected
		 * from outside, at level 1, then the same load and machine
		 * checks.
		 */
		int port = 6383;
		pid_t pid = start_redis(0, port), reps[8];

		if (tap_ok(answers(port) && ioctl_set(pid, 1) == 0 && wait_duplicates(pid, 1, reps),
			   "redis-server %d started unprotected, then protected at level 1 from outside: 1 duplicate",
			   pid)) {
			load(1, port, ", protected while running");
			load_under_fire(1, pid, port, shots);
			check_group(1, pid, 1, ", protected while running, after the machine checks");
			tap_ok(!logged(pid, ".*protection ended"),
			       "level 1, protected while running: protection did not end");
		}
		run_cmd("redis-cli -p %d shutdown nosave > /dev/null 2>&1", port);
		waitpid(pid, NULL, 0);
	}
	close(ft_dev);
	ft_dev = -1;
	reload_procft("");
	return tap_finish();
}
