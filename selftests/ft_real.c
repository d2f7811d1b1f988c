// SPDX-License-Identifier: GPL-2.0
/*
 * Real programs under real machine checks: Debian's sqlite3 (a SQL
 * workload on a database file on the ext4 disk, with a 16 MiB page cache),
 * lighttpd (serving files to a loop of busybox wget clients) and
 * python3.11 (JSON, zlib and SHA-256), each started with `ftctl run -l 2`.
 *
 * For each program:
 * - without errors, its output equals an unprotected run's, byte for
 *   byte, and its duplicates never diverge (the event log has no
 *   divergence for it);
 * - under machine checks (QEMU's `mce`, action-optional) fired at random
 *   times into random anonymous pages (heap, stack, anonymous mappings,
 *   written data of its libraries) of random replicas, one at a time with
 *   two duplicates in step, it lives, exits with its own status, its
 *   output equals the unprotected run's and nothing diverges.
 * - sqlite3 also takes machine checks on its primary's heap only, at
 *   random times: the pages it uses all the time, which it touches within
 *   a few milliseconds of the error (it must then fail over, not die).
 *
 * The counts (errors, hits on primaries and duplicates, deaths, wrong
 * outputs, divergences) are in the TAP diagnostics.
 *
 * Usage: ft_real                 (the short run of `make check`)
 *        ft_real --soak N        (at least N machine checks in all)
 *        ft_real --lighttpd N    (N lighttpd runs under machine checks)
 */
#include "ft_test.h"

#include <time.h>

#define DIR "/tmp/real"
#define DB "/mnt/disk/real.db"
#define PORT 8080

static int soak;

/* ---- running programs ------------------------------------------------------- */

/*
 * Starts the command given as the NULL-terminated list after @out (at
 * @level through `ftctl run`, or unprotected) with stdin from @in and
 * stdout and stderr to @out (NULL: /dev/null).
 */
static pid_t start(int level, const char *in, const char *out, ...)
{
	char lvl[8];
	char *args[32];
	va_list ap;
	pid_t pid;
	int n = 0;

	snprintf(lvl, sizeof(lvl), "%d", level);
	if (level) {
		args[n++] = "ftctl";
		args[n++] = "run";
		args[n++] = "-l";
		args[n++] = lvl;
		args[n++] = "--";
	}
	va_start(ap, out);
	while (n < 31 && (args[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(in ? in : "/dev/null", O_RDONLY);

		dup2(fd, 0);
		fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(args[0], args);
		_exit(127);
	}
	return pid;
}

/*
 * Whether files @a and @b have the same bytes (and are not empty); if not,
 * their first differing lines go to the TAP output, for the failure's
 * reader.
 */
static int same_file(const char *a, const char *b)
{
	if (run_cmd("test -s %s && cmp -s %s %s", a, a, b) == 0)
		return 1;
	fflush(stdout);
	run_cmd("diff %s %s | head -8 | sed 's/^/# # diff: /'", b, a);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- replicas and their frames ----------------------------------------------- */

/*
 * The replicas of @pid (primary first) and how many duplicates are ready;
 * returns the number of replicas, 0 if @pid is not protected.
 */
static int group_of(pid_t pid, pid_t *reps, int *ready)
{
	char line[256], *p;
	int n;

	if (procft_line(pid, line, sizeof(line)) != 1)
		return 0;
	p = strstr(line, "duplicates=");
	*ready = p ? atoi(p + 11) : 0;
	p = strstr(line, "replicas=");
	if (!p)
		return 0;
	p += 9;
	for (n = 0; n < 8; n++) {
		reps[n] = strtol(p, &p, 10);
		if (*p++ != ',')
			return n + 1;
	}
	return n;
}

/* ---- machine checks at random times --------------------------------------------- */

struct tally {
	int shots, on_primary, on_dup, deaths, wrong, divergences, runs;
};

static struct tally total;

/* Whether child @pid has exited (it is not reaped). */
static int exited(pid_t pid)
{
	siginfo_t info = { 0 };

	return waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) || info.si_pid == pid;
}

static long handled(pid_t pid)
{
	return procft_field(pid, "failovers=") + procft_field(pid, "respawns=");
}

/*
 * While @pid runs (and, if @until is not 0, until that process exits: its
 * status goes to @until_st and @until is then 0), fires machine checks at
 * it, one at a time: waits for two duplicates in step, sleeps a random
 * time (up to @gap_ms), hits a random page of a random replica (of the
 * primary's heap only, with @primary_heap) and waits until procft has
 * dealt with it. Stops after @max errors.
 */
static void shoot(pid_t pid, pid_t *until, int *until_st, int max, int gap_ms, int primary_heap,
		  struct tally *t)
{
	int shots = 0, i, n = 0, ready = 0, missed = 0;
	pid_t reps[8];

	while (shots < max) {
		uint64_t pfn;
		uintptr_t addr;
		long before;
		int r;

		if (*until && waitpid(*until, until_st, WNOHANG) == *until) {
			*until = 0;
			break;
		}
		n = 0;
		for (i = 0; i < 2000 && !exited(pid); i++) {
			n = group_of(pid, reps, &ready);
			if (n == 3 && ready == 2)
				break;
			usleep(10000);
		}
		if (n != 3 || ready != 2)
			break;
		usleep((rand() % (gap_ms + 1)) * 1000);
		if (group_of(pid, reps, &ready) != 3 || ready != 2)
			continue;
		r = primary_heap ? 0 : rand() % 3;
		pfn = pick_frame(reps[r], primary_heap, &addr);
		if (!pfn) {
			missed++;
			continue;
		}
		before = handled(pid);
		if (host_inject_mce(pfn * 4096)) {
			tap_diag("machine check on frame %#llx refused by the host",
				 (unsigned long long)pfn);
			break;
		}
		shots++;
		t->on_primary += r == 0;
		t->on_dup += r != 0;
		/* Dealt with: a duplicate replaced, or the primary mended. */
		for (i = 0; i < 1000 && handled(pid) == before; i++)
			usleep(10000);
		if (handled(pid) == before && procft_field(pid, "failovers=") >= 0)
			tap_diag("error %d (%s %d, address %#lx, frame %#llx) not dealt with in 10 s",
				 shots, r ? "duplicate" : "primary", reps[r], (unsigned long)addr,
				 (unsigned long long)pfn);
	}
	t->shots += shots;
	if (missed)
		tap_diag("pid %d: no page to hit found %d times (%d replicas, %d ready)", pid, missed,
			 n, ready);
}

/* ---- the event log ------------------------------------------------------------- */

static pid_t follower;

static void follow_events(void)
{
	follower = start(0, NULL, DIR "/events", "ftctl", "events", "-f", NULL);
}

/* ---- the programs ----------------------------------------------------------------- */

static int sqlite_rows(void)
{
	return soak ? 150000 : 40000;
}

static void write_sql(void)
{
	FILE *f = fopen(DIR "/work.sql", "we");

	if (!f)
		die("work.sql");
	fprintf(f,
		"PRAGMA cache_size = -16000;\n"
		"CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);\n"
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)\n"
		"  INSERT INTO t SELECT x, (x * 7919) %% 1000, printf('row %%d %%x', x, x * x) FROM c;\n"
		"CREATE INDEX ta ON t(a);\n"
		"SELECT a, count(*), sum(id), min(b), max(b) FROM t GROUP BY a ORDER BY a LIMIT 25;\n"
		"SELECT count(*), sum(length(b)), total(a) FROM t WHERE a BETWEEN 100 AND 300;\n"
		"SELECT a %% 10, count(*), avg(id) FROM t GROUP BY a %% 10 ORDER BY 1;\n"
		"SELECT b FROM t WHERE a = 777 ORDER BY id DESC LIMIT 10;\n",
		sqlite_rows());
	fclose(f);
}

/* One sqlite3 run at @level into @out; returns its wait status. */
static int run_sqlite(int level, const char *out, int max, int primary_heap, struct tally *t)
{
	pid_t pid, none = 0;
	int st = 0;

	unlink(DB);
	unlink(DB "-journal");
	double t0 = now();
	int before = t ? t->shots : 0;

	pid = start(level, DIR "/work.sql", out, "sqlite3", DB, NULL);
	if (level && max)
		shoot(pid, &none, NULL, max, 150, primary_heap, t);
	waitpid(pid, &st, 0);
	tap_diag("sqlite3 at level %d: %.1f s, %d machine checks, status %#x", level, now() - t0,
		 t ? t->shots - before : 0, st);
	return st;
}

/* The python3 workload's rounds. */
static int python_rounds(void)
{
	return soak ? 60 : 25;
}

static int run_python(int level, const char *out, int max, struct tally *t)
{
	char rounds[16];
	pid_t pid, none = 0;
	int st = 0;

	double t0 = now();
	int before = t ? t->shots : 0;

	snprintf(rounds, sizeof(rounds), "%d", python_rounds());
	pid = start(level, NULL, out, "/usr/bin/python3.11", "-I", "/selftests/ft_real_work.py",
		    rounds, NULL);
	if (level && max)
		shoot(pid, &none, NULL, max, 150, 0, t);
	waitpid(pid, &st, 0);
	tap_diag("python3 at level %d: %.1f s, %d machine checks, status %#x", level, now() - t0,
		 t ? t->shots - before : 0, st);
	return st;
}

static void write_site(void)
{
	FILE *f;
	int i, j;

	run_cmd("mkdir -p " DIR "/www");
	for (i = 0; i < 3; i++) {
		char path[64];

		snprintf(path, sizeof(path), DIR "/www/f%d", i);
		f = fopen(path, "we");
		if (!f)
			die("www");
		/* 1 KiB, 24 KiB and 96 KiB of numbered lines. */
		for (j = 0; j < (i == 0 ? 40 : i == 1 ? 1000 : 4000); j++)
			fprintf(f, "file %d line %06d %08x\n", i, j, j * 2654435761u);
		fclose(f);
	}
	f = fopen(DIR "/lighttpd.conf", "we");
	if (!f)
		die("lighttpd.conf");
	fprintf(f, "server.document-root = \"" DIR "/www\"\n"
		   "server.bind = \"127.0.0.1\"\n"
		   "server.port = %d\n"
		   "server.errorlog = \"" DIR "/lighttpd.log\"\n", PORT);
	fclose(f);
}

static int client_requests(void)
{
	return soak ? 300 : 60;
}

/*
 * Starts the client loop: busybox wget fetches the three files in turn,
 * @n requests, the bodies appended to @out.
 */
static pid_t start_client(const char *out, int n)
{
	pid_t pid = fork();

	if (pid == 0) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd),
			 "i=0; : > %s; while [ $i -lt %d ]; do wget -q -O - http://127.0.0.1:%d/f$((i %% 3)) >> %s || echo FAILED $i >> %s; i=$((i + 1)); done",
			 out, n, PORT, out, out);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* What the client should get: the three files in turn, @n times. */
static void expected_bodies(const char *out, int n)
{
	run_cmd("i=0; : > %s; while [ $i -lt %d ]; do cat " DIR "/www/f$((i %% 3)) >> %s; "
		"i=$((i + 1)); done", out, n, out);
}

/*
 * lighttpd at @level serving the client loop; the client's bodies go to
 * @out. Returns lighttpd's wait status (it is stopped with SIGTERM once
 * the client is done); *@client gets the client's.
 */
static int run_lighttpd(int level, const char *out, int max, struct tally *t, int *client)
{
	int st = 0, i, before = t ? t->shots : 0;
	double t0 = now();
	pid_t pid, cl;

	pid = start(level, NULL, DIR "/lighttpd.out", "lighttpd", "-D", "-f", DIR "/lighttpd.conf",
		    NULL);
	for (i = 0; i < 1000; i++) {
		if (run_cmd("wget -q -O /dev/null http://127.0.0.1:%d/f0 2>/dev/null", PORT) == 0)
			break;
		usleep(20000);
	}
	cl = start_client(out, client_requests());
	if (level && max)
		shoot(pid, &cl, client, max, 150, 0, t);
	if (cl)
		waitpid(cl, client, 0);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	tap_diag("lighttpd at level %d: %.1f s, %d machine checks, status %#x", level, now() - t0,
		 t ? t->shots - before : 0, st);
	if (st)
		run_cmd("tail -5 " DIR "/lighttpd.out " DIR "/lighttpd.log | sed 's/^/# /'");
	return st;
}

/* 400 KiB of stack, more than a fresh process has: its stack mapping grows. */
static unsigned long deep(int n)
{
	char pad[4000];
	unsigned long r;

	if (!n)
		return 0;
	memset(pad, n, sizeof(pad));
	/* The frame must be there, with its bytes, at every level. */
	asm volatile("" : : "r"(pad) : "memory");
	r = deep(n - 1);
	asm volatile("" : : "r"(pad) : "memory");
	return r + pad[0] + pad[sizeof(pad) - 1];
}

/* ---- a primary behind its duplicate's layout ---------------------------------- */

/*
 * At level 1 (`ftctl run -l 1 -- ft_real --merge`): maps a region, waits
 * for its duplicate, maps another one right below it and grows the heap;
 * then consumes poison (MADV_HWPOISON) in the new region, uses 400 KiB of
 * stack and prints a checksum of it all.
 */
static int merge_child(void)
{
	size_t len = 64 * 4096;
	char *a, *b;
	unsigned long sum = 0, i;
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	a = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 91;
	munmap(a, len);
	a += len;
	memset(a, 1, len);
	/* Time for the duplicate to be created and separated. */
	for (i = 0; i < 10; i++)
		nanosleep(&ts, NULL);
	b = mmap(a - len, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (b != a - len)
		return 92;
	memset(b, 2, len);
	memset(sbrk(256 * 1024), 3, 256 * 1024);
	madvise(b + 4096, 4096, MADV_HWPOISON);
	/*
	 * The duplicate goes on to the next call (printf's write) and grows
	 * its stack on the way; the primary takes its state at once.
	 */
	sum += deep(100);
	for (i = 0; i < 2 * len; i++)
		sum += b[i] * (i + 1);
	printf("%lu\n", sum);
	return 0;
}

/*
 * A primary that consumes poison between two calls is behind its
 * duplicate, which stands at the next call: its stack may have grown
 * further, its new mappings may be merged otherwise. The duplicate takes
 * over all the same, and the program goes on.
 */
static void check_merge(const char *self)
{
	char line[64] = "";
	FILE *f;
	int st = 0;
	pid_t pid;

	pid = start(1, NULL, DIR "/merge.out", self, "--merge", NULL);
	waitpid(pid, &st, 0);
	f = fopen(DIR "/merge.out", "re");
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
	}
	line[strcspn(line, "\n")] = 0;
	tap_ok(WIFEXITED(st) && !WEXITSTATUS(st) && !strcmp(line, "171799095156"),
	       "a primary behind its duplicate's stack and mappings consumes poison: the duplicate takes over (status %#x, sum %s)",
	       st, line);
}

/* ---- checks ------------------------------------------------------------------------ */

static int died(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM;
}

int main(int argc, char **argv)
{
	int st, st0, cst, i, want = 0, runs, dv;
	struct tally t;

	if (argc > 1 && !strcmp(argv[1], "--merge"))
		return merge_child();
	if (argc > 2 && !strcmp(argv[1], "--lighttpd")) {
		/* Experiments: lighttpd alone, N runs under machine checks. */
		memset(&t, 0, sizeof(t));
		run_cmd("rm -rf " DIR "; mkdir -p " DIR);
		write_site();
		expected_bodies(DIR "/lighttpd.ref", client_requests());
		for (i = 0; i < atoi(argv[2]); i++)
			run_lighttpd(2, DIR "/lighttpd.got", 40, &t, &cst);
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "--soak")) {
		soak = 1;
		want = atoi(argv[2]);
	}
	for (i = 0; i < 3; i++) {
		const char *p = i == 0 ? "/bin/sqlite3" : i == 1 ? "/bin/lighttpd" :
			"/usr/bin/python3.11";
		if (access(p, X_OK)) {
			printf("1..0 # SKIP %s is not in the VM (scripts/setup-host.sh installs it)\n",
			       p);
			return 4;
		}
	}
	srand(time(NULL) ^ getpid());
	run_cmd("rm -rf " DIR "; mkdir -p " DIR);
	write_sql();
	write_site();
	follow_events();
	tap_plan(soak ? 4 : 11);

	/* References, unprotected. */
	st0 = run_sqlite(0, DIR "/sqlite.ref", 0, 0, NULL);
	if (!WIFEXITED(st0) || WEXITSTATUS(st0))
		tap_diag("sqlite3 reference run: status %#x", st0);
	st0 = run_python(0, DIR "/python.ref", 0, NULL);
	if (!WIFEXITED(st0) || WEXITSTATUS(st0))
		tap_diag("python3 reference run: status %#x", st0);
	expected_bodies(DIR "/lighttpd.ref", client_requests());

	if (!soak) {
		/* Steady state: no errors, no divergence. */
		memset(&t, 0, sizeof(t));
		st = run_sqlite(2, DIR "/sqlite.out", 0, 0, &t);
		tap_ok(WIFEXITED(st) && !WEXITSTATUS(st) && same_file(DIR "/sqlite.out", DIR "/sqlite.ref"),
		       "sqlite3 at level 2: output equals the unprotected run's (status %#x)", st);
		st = run_python(2, DIR "/python.out", 0, &t);
		tap_ok(WIFEXITED(st) && !WEXITSTATUS(st) && same_file(DIR "/python.out", DIR "/python.ref"),
		       "python3 at level 2: output equals the unprotected run's (status %#x)", st);
		st = run_lighttpd(2, DIR "/lighttpd.got", 0, &t, &cst);
		tap_ok(WIFEXITED(cst) && !WEXITSTATUS(cst) && !died(st) &&
		       same_file(DIR "/lighttpd.got", DIR "/lighttpd.ref"),
		       "lighttpd at level 2: %d responses equal the files (client %#x, server %#x)",
		       client_requests(), cst, st);
		usleep(300000);
		dv = run_cmd("grep -q 'event=divergence' " DIR "/events");
		if (!dv)
			run_cmd("dmesg | grep diverged | head -5 | sed 's/^/# /'");
		tap_ok(dv != 0, "no divergence in the three programs (event log)");
		check_merge(argv[0]);
	}

	/*
	 * sqlite3's primary heap, at random times: the pages it touches all
	 * the time.
	 */
	memset(&t, 0, sizeof(t));
	runs = soak ? 4 : 3;
	for (i = 0; i < runs; i++) {
		st = run_sqlite(2, DIR "/sqlite.out", soak ? 40 : 6, 1, &t);
		t.runs++;
		t.deaths += died(st);
		t.wrong += !(WIFEXITED(st) && !WEXITSTATUS(st) &&
			     same_file(DIR "/sqlite.out", DIR "/sqlite.ref"));
	}
	total.shots += t.shots;
	tap_ok(t.shots > 0 && !t.deaths && !t.wrong,
	       "sqlite3, primary heap: %d machine checks in %d runs; %d deaths, %d wrong outputs",
	       t.shots, t.runs, t.deaths, t.wrong);

	/* Any replica, any anonymous page, each program in turn. */
	memset(&t, 0, sizeof(t));
	do {
		int per = soak ? 40 : 5;

		st = run_sqlite(2, DIR "/sqlite.out", per, 0, &t);
		t.runs++;
		t.deaths += died(st);
		t.wrong += !(WIFEXITED(st) && !WEXITSTATUS(st) &&
			     same_file(DIR "/sqlite.out", DIR "/sqlite.ref"));
		if (!soak)
			tap_ok(!died(st) && WIFEXITED(st) && !WEXITSTATUS(st) &&
			       same_file(DIR "/sqlite.out", DIR "/sqlite.ref"),
			       "sqlite3 under machine checks on any replica: same output (status %#x)", st);

		st = run_python(2, DIR "/python.out", per, &t);
		t.runs++;
		t.deaths += died(st);
		t.wrong += !(WIFEXITED(st) && !WEXITSTATUS(st) &&
			     same_file(DIR "/python.out", DIR "/python.ref"));
		if (!soak)
			tap_ok(!died(st) && WIFEXITED(st) && !WEXITSTATUS(st) &&
			       same_file(DIR "/python.out", DIR "/python.ref"),
			       "python3 under machine checks on any replica: same output (status %#x)", st);

		st = run_lighttpd(2, DIR "/lighttpd.got", per, &t, &cst);
		t.runs++;
		t.deaths += died(st);
		t.wrong += !(WIFEXITED(cst) && !WEXITSTATUS(cst) &&
			     same_file(DIR "/lighttpd.got", DIR "/lighttpd.ref"));
		if (!soak)
			tap_ok(!died(st) && WIFEXITED(cst) && !WEXITSTATUS(cst) &&
			       same_file(DIR "/lighttpd.got", DIR "/lighttpd.ref"),
			       "lighttpd under machine checks on any replica: every response right (client %#x, server %#x)",
			       cst, st);
	} while (soak && total.shots + t.shots < want);
	total.shots += t.shots;
	tap_ok(t.shots > 0 && !t.deaths && !t.wrong,
	       "any replica: %d machine checks (%d on primaries, %d on duplicates) in %d runs; %d deaths, %d wrong outputs",
	       t.shots, t.on_primary, t.on_dup, t.runs, t.deaths, t.wrong);

	usleep(300000);
	dv = -1;
	{
		FILE *p = popen("grep -c 'event=divergence' " DIR "/events", "r");

		if (p) {
			if (fscanf(p, "%d", &dv) != 1)
				dv = -1;
			pclose(p);
		}
	}
	tap_ok(dv == 0, "%d divergences in every run together (event log)", dv);
	if (soak)
		tap_ok(total.shots >= want, "%d machine checks in all (wanted %d)", total.shots, want);
	kill(follower, SIGTERM);
	waitpid(follower, NULL, 0);
	return tap_finish();
}
