/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The scenarios the server tests (ft_redis, ft_memcached) run on a real
 * multi-threaded server, with procft reloaded with threads=1:
 * - at levels 1 and 2, the server started with `ftctl run -l N`: it gets
 *   its duplicates and answers; its load is answered rightly (the test's
 *   own checks); the group is intact and its protection did not end;
 *   machine checks on the primary's frames under load each end in a
 *   takeover; the group and the answers are still right afterwards;
 * - at level 2, then, a machine check on a frame only its first
 *   duplicate maps ends that duplicate only, and a new one, re-creating
 *   the server's threads, replaces it; the load is answered rightly
 *   again, one respawn counted;
 * - last, the server started unprotected, protected from outside at
 *   level 1 (the ioctl on its pid) while its threads run, takes the same
 *   load and machine checks.
 * That is 19 results, and @load's 6 times and @under_fire's 3 times
 * (server_tests()).
 */
#ifndef _FT_SERVER_H
#define _FT_SERVER_H

#include "ft_test.h"
#include <dirent.h>

struct server {
	/* Its name, in the results. */
	const char *name;
	/* Its port at level N is port + N; unprotected, then protected: port + 3. */
	int port;
	/* How many threads it has once it answers (0: not checked). */
	int threads;
	/* Starts it on @port, with `ftctl run -l @level` unless @level is 0. */
	pid_t (*start)(int level, int port);
	/* Whether it answers on @port now. */
	int (*answers_now)(int port);
	/* Its load on @port, and the checks of its answers (@when: where). */
	void (*load)(int level, int port, const char *when);
	/*
	 * Machine checks on @pid's primary under load, and the checks of the
	 * load's answers (the takeovers' log lines are checked after it).
	 */
	void (*under_fire)(int level, pid_t pid, int port, int shots);
	/* Ends it, and reaps it. */
	void (*stop)(pid_t pid, int port);
};

/*
 * Starts @argv (a NULL-terminated list of at most 24, the program's path
 * first) with its output appended to @log, through `ftctl run -l @level`
 * unless @level is 0.
 */
static inline pid_t start_server(int level, const char *log, char *const argv[])
{
	char lvl[8], *run[32] = { "/bin/ftctl", "run", "-l", lvl, "--" };
	pid_t pid;
	int i;

	snprintf(lvl, sizeof(lvl), "%d", level);
	for (i = 0; argv[i] && i < 24; i++)
		run[5 + i] = argv[i];
	run[5 + i] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		if (level)
			execv(run[0], run);
		else
			execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Whether @srv answers on @port, waiting 30 s at most. */
static inline int answers(const struct server *srv, int port)
{
	int i;

	for (i = 0; i < 300; i++, usleep(100000))
		if (srv->answers_now(port))
			return 1;
	return 0;
}

/* Machine checks on @pid under @srv's load, and their checks. */
static inline void under_fire(const struct server *srv, int level, pid_t pid, int port, int shots)
{
	srv->under_fire(level, pid, port, shots);
	tap_ok(logged(pid, "primary consumed poisoned memory at 0x[0-9a-f]*; took over duplicate"),
	       "level %d: the kernel logged the takeovers", level);
}

/* How many threads process @pid has (0 if it is gone). */
static inline int threads_of(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Whether @pid has the threads @srv is to have. */
static inline int has_its_threads(const struct server *srv, pid_t pid)
{
	return !srv->threads || threads_of(pid) == srv->threads;
}

/*
 * Reloads procft with threads=1, runs the scenarios on @srv (FT_SHOTS
 * machine checks under each load under fire, 3 by default), reloads
 * procft as it was; the test's exit status. 1 result more.
 */
static inline int server_tests(const struct server *srv)
{
	int level, shots = getenv("FT_SHOTS") ? atoi(getenv("FT_SHOTS")) : 3;

	srand(time(NULL) ^ getpid());
	if (!tap_ok(reload_procft("threads=1") == 0 && ft_open() >= 0,
		    "procft reloaded with threads=1"))
		return tap_finish();

	for (level = 1; level <= 2; level++) {
		int port = srv->port + level;
		pid_t pid = srv->start(level, port), reps[8] = { 0 };
		/*
		 * (Its duplicates' pids again once it answers: those of the
		 * process before its exec may be the first seen.)
		 */
		int up = wait_duplicates(pid, level, reps) && answers(srv, port) &&
			 wait_duplicates(pid, level, reps);

		if (!tap_ok(up && has_its_threads(srv, pid) && has_its_threads(srv, reps[1]),
			    "level %d: %s %d answers, with %d duplicate(s), %d threads in the primary and %d in a duplicate",
			    level, srv->name, pid, level, threads_of(pid), threads_of(reps[1]))) {
			srv->stop(pid, port);
			continue;
		}
		srv->load(level, port, "");
		check_group(level, pid, level, "");
		tap_ok(!logged(pid, ".*protection ended"), "level %d: protection did not end", level);
		under_fire(srv, level, pid, port, shots);
		check_group(level, pid, level, ", after the machine checks on its primary");
		srv->load(level, port, ", after them");
		tap_ok(!logged(pid, ".*protection ended"), "level %d: protection did not end", level);
		if (level == 2) {
			uintptr_t addr = 0;
			uint64_t pfn = pick_frame(reps[1], 0, &addr);
			pid_t lost = reps[1];

			/*
			 * A machine check on a frame only the first duplicate
			 * maps: it is replaced by a new duplicate, which
			 * re-creates the server's threads.
			 */
			tap_ok(pfn && host_inject_mce(pfn * 4096) == 0 && wait_gone(lost) &&
			       logged(pid, "duplicate [0-9]* lost; replacing it") &&
			       wait_duplicates(pid, 2, reps) && has_its_threads(srv, reps[1]),
			       "level 2: a machine check on frame %#llx of duplicate %d ends it, and only it; a new duplicate of the multi-threaded server replaces it",
			       (unsigned long long)pfn, lost);
			srv->load(level, port, ", after it");
			check_group(level, pid, 2, ", after it");
			tap_ok(procft_field(pid, "respawns=") == 1,
			       "level 2, after it: 1 respawn (%ld)", procft_field(pid, "respawns="));
		}
		srv->stop(pid, port);
	}
	{
		/*
		 * A server already running, its threads started: protected
		 * from outside, at level 1, then the same load and machine
		 * checks.
		 */
		int port = srv->port + 3;
		pid_t pid = srv->start(0, port), reps[8];

		if (tap_ok(answers(srv, port) && ioctl_set(pid, 1) == 0 &&
			   wait_duplicates(pid, 1, reps),
			   "%s %d started unprotected, then protected at level 1 from outside: 1 duplicate",
			   srv->name, pid)) {
			srv->load(1, port, ", protected while running");
			under_fire(srv, 1, pid, port, shots);
			check_group(1, pid, 1, ", protected while running, after the machine checks");
			tap_ok(!logged(pid, ".*protection ended"),
			       "level 1, protected while running: protection did not end");
		}
		srv->stop(pid, port);
	}
	close(ft_dev);
	ft_dev = -1;
	reload_procft("");
	return tap_finish();
}

#endif /* _FT_SERVER_H */
