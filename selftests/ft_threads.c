// SPDX-License-Identifier: GPL-2.0
/*
 * Threads created under protection (module parameter threads=1): a pthread
 * battery (mutexes, condition variables, rwlocks, barriers, atomics,
 * thread-local storage, a racy counter, thread exit and join, a thread
 * spinning on a flag with sched_yield()) gives byte-identical output at
 * levels 0, 1 and 2, with every duplicate still there at the end and no
 * divergence.  Lines starting with "varying:" (thread ids, the racy
 * counter) may differ between runs, but not between replicas: each is
 * written by the primary and compared by every duplicate.
 *
 * Under poison consumed by the primary's threads (MADV_HWPOISON at five
 * points of the battery: a critical section, a condition-variable
 * consumer, a barrier round, a thread among sleeping ones, the main thread
 * before a join), the output stays byte-identical at levels 1 and 2, with
 * one takeover per error and every duplicate still there.
 *
 * When the primary kills one of its duplicates at those five points
 * instead, procft makes a new one each time, re-creating the process's
 * threads where the primary's stand: same output, every duplicate there.
 *
 * A process at level 1 raised to level 2 in the middle of the battery
 * gets its second duplicate, with its threads: same output.
 *
 * A thread spinning without any system call on a flag another thread is
 * to set (once it has the run token) is preempted after thread_wait_ms:
 * the duplicates are re-created from the primary, and the battery that
 * follows gives the same output, with every duplicate there.
 *
 * Usage: ft_threads              (the test)
 *        ft_threads --battery    (the battery alone, to stdout: the
 *                                 benchmark's workload; protected, it
 *                                 first waits for its duplicates)
 */
#include "ft_test.h"
#include <pthread.h>
#include <sys/syscall.h>

#define NTHREADS 4

static int out_fd;

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(out_fd, line, n) != n)
		_exit(3);
}

/* ---- the battery ---- */

/*
 * With --poisoned, the battery consumes poison at five points
 * (MADV_HWPOISON, which procft carries out in the primary only): inside
 * a critical section while other threads wait for the mutex, in a
 * consumer while the producer may wait on a condition variable, in a
 * barrier round while the others wait at the barrier, in a thread while
 * others sleep, and in the main thread before it joins.  Each time a
 * duplicate's state replaces the primary's.
 */
static int poisoned;

/*
 * With --respawn (at level 1 or 2), the primary kills one of its
 * duplicates at those five points instead: procft makes a new one of the
 * multi-threaded process, its threads re-created where the primary's
 * stand, before the next point.
 */
static int respawning;
static unsigned int battery_level;

/*
 * With --raise (at level 1), the first of those points raises the
 * process's level to 2 instead, once it has threads.
 */
static int raising;
/* Protection begins in late_protect(), at this level, not in child(). */
static unsigned int late_level;

static void shot(void)
{
	pid_t reps[8];
	char *p;

	if (raising && battery_level == 1 && ioctl_set(0, 2) == 0 &&
	    wait_duplicates(getpid(), 2, reps))
		battery_level = 2;
	if (respawning && wait_duplicates(getpid(), battery_level, reps))
		kill(reps[1], SIGKILL);
	if (!poisoned)
		return;
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	p[0] = 1;
	madvise(p, 4096, MADV_HWPOISON);
	if (p[0] != 1)
		_exit(4);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *mutex_worker(void *arg)
{
	int i;

	for (i = 0; i < 2000; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		if (counter == 3000)
			shot();
		if (i % 500 == 0)
			getppid();	/* a call inside the critical section */
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

#define QLEN 8
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static int queue[QLEN], q_head, q_len;

static void *producer(void *arg)
{
	int i;

	for (i = 1; i <= 500; i++) {
		pthread_mutex_lock(&lock);
		while (q_len == QLEN)
			pthread_cond_wait(&not_full, &lock);
		queue[(q_head + q_len++) % QLEN] = i;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	long sum = 0, n;

	for (n = 0; n < 500; n++) {
		pthread_mutex_lock(&lock);
		while (q_len == 0)
			pthread_cond_wait(&not_empty, &lock);
		sum += queue[q_head] * (n % 7 + 1);
		if (n == 250)
			shot();
		q_head = (q_head + 1) % QLEN;
		q_len--;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&lock);
	}
	return (void *)sum;
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long pair[2];

static void *reader(void *arg)
{
	long bad = 0;
	int i;

	for (i = 0; i < 300; i++) {
		pthread_rwlock_rdlock(&rw);
		bad += pair[0] != pair[1];
		pthread_rwlock_unlock(&rw);
		if (i % 50 == 0)
			sched_yield();
	}
	return (void *)bad;
}

static void *writer(void *arg)
{
	int i;

	for (i = 0; i < 200; i++) {
		pthread_rwlock_wrlock(&rw);
		pair[0]++;
		getppid();
		pair[1]++;
		pthread_rwlock_unlock(&rw);
	}
	return NULL;
}

static pthread_barrier_t barrier;
static long rounds[50][NTHREADS];

static void *barrier_worker(void *arg)
{
	long id = (long)arg;
	int r;

	for (r = 0; r < 50; r++) {
		rounds[r][id] = r * 10 + id + (r ? rounds[r - 1][(id + 1) % NTHREADS] : 0);
		if (r == 25 && id == 2)
			shot();
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

static long atomic_count;

static void *atomic_worker(void *arg)
{
	int i;

	for (i = 0; i < 5000; i++)
		__atomic_fetch_add(&atomic_count, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static __thread long tls_value;

static void *tls_worker(void *arg)
{
	long id = (long)arg;
	struct timespec ts = { 0, 1000000 };

	tls_value = id * 7 + 1;
	nanosleep(&ts, NULL);
	if (id == 1)
		shot();
	say("varying: thread %ld has tid %ld\n", id, (long)syscall(SYS_gettid));
	return (void *)(tls_value == id * 7 + 1 ? tls_value : -1);
}

static long racy;

static void *racy_worker(void *arg)
{
	int i;

	for (i = 0; i < 20000; i++)
		__atomic_store_n(&racy, __atomic_load_n(&racy, __ATOMIC_RELAXED) + 1,
				 __ATOMIC_RELAXED);
	return NULL;
}

static void *square(void *arg)
{
	long i = (long)arg;

	return (void *)(i * i);
}

static int flag;

static void *flag_setter(void *arg)
{
	struct timespec ts = { 0, 2000000 };

	nanosleep(&ts, NULL);
	__atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Spins on a flag the other thread sets; @yield: with sched_yield(). */
static long spin_on_flag(int yield)
{
	long spins = 0;
	pthread_t t;

	__atomic_store_n(&flag, 0, __ATOMIC_RELEASE);
	pthread_create(&t, NULL, flag_setter, NULL);
	while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE)) {
		spins++;
		if (yield)
			sched_yield();
	}
	pthread_join(t, NULL);
	return spins;
}

static void battery(void)
{
	pthread_t t[8];
	void *ret;
	long i, sum;

	counter = 0;
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, mutex_worker, NULL);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	say("mutex: counter %ld\n", counter);

	pthread_create(&t[0], NULL, producer, NULL);
	pthread_create(&t[1], NULL, consumer, NULL);
	pthread_join(t[0], NULL);
	pthread_join(t[1], &ret);
	say("condvar: weighted sum %ld\n", (long)ret);

	pthread_create(&t[0], NULL, writer, NULL);
	for (i = 1; i < 4; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	pthread_join(t[0], NULL);
	for (sum = 0, i = 1; i < 4; i++) {
		pthread_join(t[i], &ret);
		sum += (long)ret;
	}
	say("rwlock: %ld torn reads, pair %ld %ld\n", sum, pair[0], pair[1]);

	pthread_barrier_init(&barrier, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, barrier_worker, (void *)i);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	for (sum = 0, i = 0; i < NTHREADS; i++)
		sum += rounds[49][i];
	say("barrier: last round %ld\n", sum);

	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, atomic_worker, NULL);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	say("atomics: %ld\n", atomic_count);

	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, tls_worker, (void *)i);
	for (sum = 0, i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], &ret);
		sum += (long)ret;
	}
	say("tls: sum %ld, main's own %ld\n", sum, tls_value);

	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, racy_worker, NULL);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	say("varying: racy counter %ld\n", racy);

	for (i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, square, (void *)i);
	shot();
	for (sum = 0, i = 0; i < 8; i++) {
		pthread_join(t[i], &ret);
		sum += (long)ret;
	}
	say("join: sum of squares %ld\n", sum);

	say("varying: spun %ld times with sched_yield\n", spin_on_flag(1));
	say("flag: seen\n");
}

/* ---- the harness ---- */

/*
 * The child: protects itself at @level and waits for its duplicates (its
 * calls bring it to where procft creates them), runs @what, then waits to
 * be let go.
 */
static void child(int ctl, int out, unsigned int level, void (*what)(void))
{
	pid_t reps[8];
	char c;

	out_fd = out;
	battery_level = level;
	if (level && !late_level && (ioctl_set(0, level) || !wait_duplicates(getpid(), level, reps)))
		_exit(2);
	what();
	say("done\n");
	if (write(ctl, "d", 1) != 1 || read(ctl, &c, 1) != 1)
		_exit(2);
	_exit(0);
}

static void battery_poisoned(void)
{
	poisoned = 1;
	battery();
}

static void battery_respawn(void)
{
	respawning = 1;
	battery();
}

static void battery_raise(void)
{
	raising = 1;
	battery();
}

static pthread_mutex_t late_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t late_cond = PTHREAD_COND_INITIALIZER;
static int late_go, late_pipe[2];
static long late_counter;

/* Counts under a lock, with a yield now and then, until told to stop. */
static void *late_counter_thread(void *arg)
{
	long i, n = 0;

	for (i = 0; i < 200000 || !__atomic_load_n(&late_go, __ATOMIC_ACQUIRE); i++) {
		if (i < 200000) {
			pthread_mutex_lock(&late_lock);
			late_counter++;
			pthread_mutex_unlock(&late_lock);
			n++;
		}
		if (i % 1000 == 0)
			sched_yield();
	}
	return (void *)n;
}

/* Sleeps in pthread_cond_wait() until told to go. */
static void *late_cond_thread(void *arg)
{
	pthread_mutex_lock(&late_lock);
	while (!late_go)
		pthread_cond_wait(&late_cond, &late_lock);
	pthread_mutex_unlock(&late_lock);
	return (void *)1L;
}

/* Sleeps in read() on a pipe until a byte comes. */
static void *late_read_thread(void *arg)
{
	char c = 0;

	return (void *)(long)(read(late_pipe[0], &c, 1) == 1 && c == 'g');
}

/*
 * Protection begins while the process is multi-threaded already: two
 * threads count under a lock, one sleeps in a condition variable, one in
 * read() on a pipe. Then the battery runs, and the threads are let go and
 * joined.
 */
static void late_protect(void)
{
	pthread_t t[4];
	void *r[4];
	pid_t reps[8];
	int i;

	if (pipe(late_pipe))
		die("pipe");
	pthread_create(&t[0], NULL, late_counter_thread, NULL);
	pthread_create(&t[1], NULL, late_counter_thread, NULL);
	pthread_create(&t[2], NULL, late_cond_thread, NULL);
	pthread_create(&t[3], NULL, late_read_thread, NULL);
	usleep(20000);
	if (late_level && (ioctl_set(0, late_level) || !wait_duplicates(getpid(), late_level, reps)))
		say("protection did not begin\n");
	battery();
	pthread_mutex_lock(&late_lock);
	__atomic_store_n(&late_go, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&late_cond);
	pthread_mutex_unlock(&late_lock);
	if (write(late_pipe[1], "g", 1) != 1)
		die("write");
	for (i = 0; i < 4; i++)
		pthread_join(t[i], &r[i]);
	say("late: counted %ld and %ld, total %ld; cond %ld, read %ld\n", (long)r[0], (long)r[1],
	    late_counter, (long)r[2], (long)r[3]);
}

/*
 * A thread spins without a call on a flag another sets once it has the
 * run token: the spinning thread is preempted. Then the battery runs.
 */
static void spin_then_battery(void)
{
	say("varying: spun %ld times without a call\n", spin_on_flag(0));
	say("flag: seen\n");
	battery();
}

/*
 * Two threads that take turns with the run token until the parent creates
 * STOP_GO: one computes between calls, the other sleeps 1 ms at a time.
 * The parent stops the process (SIGSTOP) meanwhile, with one of them
 * holding the token and the other waiting for it.
 */
#define STOP_GO "/tmp/ft_threads.go"

static void *stop_sleeper(void *arg)
{
	struct timespec ms = { 0, 1000000 };

	while (access(STOP_GO, F_OK))
		nanosleep(&ms, NULL);
	return arg;
}

static unsigned long burnt;

static void stop_while_waiting(void)
{
	pthread_t t;
	int i;

	pthread_create(&t, NULL, stop_sleeper, NULL);
	while (access(STOP_GO, F_OK))
		for (i = 0; i < 20000; i++)
			__atomic_add_fetch(&burnt, i, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	say("stop: both threads done\n");
}

struct run {
	char out[4096];
	size_t len;
	int status;
	unsigned int level, replicas;
	unsigned long long divergences;
	long failovers, respawns, preemptions;
	pid_t pid;
};

/*
 * Starts @what in a child at @level (@r->pid); @ctl and @out are the
 * parent's ends of its control socket and output pipe, for run_end().
 */
static void run_start(unsigned int level, void (*what)(void), struct run *r, int *ctl, int *out)
{
	int c[2], o[2];

	memset(r, 0, sizeof(*r));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, c) || pipe(o))
		die("socketpair");
	r->pid = fork();
	if (r->pid == 0) {
		close(c[0]);
		close(o[0]);
		child(c[1], o[1], level, what);
	}
	close(c[1]);
	close(o[1]);
	*ctl = c[0];
	*out = o[0];
}

/* Waits for the child run_start() started to finish; fills @r. */
static void run_end(unsigned int level, struct run *r, int ctl, int out)
{
	struct procft_status s = { .size = sizeof(s) };
	char c;

	if (read(ctl, &c, 1) != 1)
		tap_diag("the child did not finish");
	if (level) {
		if (procft_field(r->pid, "lag=") >= 0)
			wait_caught_up(r->pid);
		s.pid = r->pid;
		if (ioctl_status(r->pid, &s) == 0) {
			r->level = s.level;
			r->replicas = s.nr_replicas;
			r->divergences = s.divergences;
		}
		r->failovers = procft_field(r->pid, "failovers=");
		r->respawns = procft_field(r->pid, "respawns=");
		r->preemptions = procft_field(r->pid, "preemptions=");
	}
	if (write(ctl, "x", 1) != 1)
		tap_diag("could not let the child go");
	read_to_eof(out, r->out, sizeof(r->out), &r->len);
	waitpid(r->pid, &r->status, 0);
	close(ctl);
	close(out);
}

/* Runs @what in a child at @level; fills @r. */
static void run_at(unsigned int level, void (*what)(void), struct run *r)
{
	int ctl, out;

	run_start(level, what, r, &ctl, &out);
	run_end(level, r, ctl, out);
}

/* @text without its "varying:" lines, in @buf. */
static const char *steady(const char *text, char *buf, size_t len)
{
	const char *p = text;
	size_t n = 0;

	buf[0] = 0;
	while (*p) {
		const char *e = strchrnul(p, '\n');
		size_t l = e - p + (*e == '\n');

		if (strncmp(p, "varying:", 8) && n + l < len) {
			memcpy(buf + n, p, l);
			n += l;
			buf[n] = 0;
		}
		p += l;
	}
	return buf;
}

/*
 * Whether @r exited with status 0 and its output without its "varying:"
 * lines is @want; if that output differs, the whole of it (a run at
 * @level) goes to the log.
 */
static int same_output(const struct run *r, const char *want, unsigned int level)
{
	char out[4096];
	int same = !strcmp(steady(r->out, out, sizeof(out)), want);

	if (!same)
		tap_diag("level %u output: %s", level, r->out);
	return same && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* The battery alone (bench/bench.sh runs it unprotected and through ftctl run). */
static int battery_alone(void)
{
	unsigned int level = 0;
	pid_t reps[8];

	out_fd = 1;
	/* Its threads must come after its duplicates: none is made after. */
	if (ft_open() >= 0 && ioctl_get(0, &level) == 0 && level &&
	    !wait_duplicates(getpid(), level, reps))
		return 2;
	battery();
	return 0;
}

/* The unprotected battery's output, without its "varying:" lines. */
static char base[4096], late_base[4096];

/*
 * Runs @what (five faults in the battery) at @level: the output must be
 * @base's, with five takeovers (or respawns, for the battery that kills
 * duplicates), every duplicate there at the end and no divergence.
 */
static void faults_at(unsigned int level, void (*what)(void), const char *faults,
		      const char *recoveries)
{
	static struct run r;
	long n;

	run_at(level, what, &r);
	tap_ok(same_output(&r, base, level),
	       "level %u, %s: byte-identical output, exit status 0 (status %#x)",
	       level, faults, r.status);
	n = what == battery_respawn ? r.respawns : r.failovers;
	tap_ok(n == 5 && r.level == level && r.replicas == level + 1 && r.divergences == 0 &&
	       !logged(r.pid, ".*protection ended"),
	       "... 5 %s (%ld), %u replicas at the end, no divergence (%llu)",
	       recoveries, n, r.replicas, r.divergences);
}

int main(int argc, char **argv)
{
	static const char expect[] =
		"mutex: counter 8000\n"
		"condvar: weighted sum 499996\n"
		"rwlock: 0 torn reads, pair 200 200\n";
	static struct run runs[3], spin;
	unsigned int level;

	if (argc > 1 && !strcmp(argv[1], "--battery"))
		return battery_alone();
	tap_plan(32);
	if (!tap_ok(reload_procft("threads=1") == 0 && ft_open() >= 0,
		    "procft reloaded with threads=1"))
		return tap_finish();
	for (level = 0; level <= 2; level++)
		run_at(level, battery, &runs[level]);
	steady(runs[0].out, base, sizeof(base));
	tap_ok(WIFEXITED(runs[0].status) && WEXITSTATUS(runs[0].status) == 0 &&
	       !strncmp(base, expect, strlen(expect)) && strstr(base, "join: sum of squares 140\n") &&
	       strstr(base, "atomics: 20000\n") && strstr(base, "tls: sum 46, main's own 0\n") &&
	       strstr(base, "flag: seen\ndone\n"),
	       "unprotected, the battery gives the expected results");
	if (!strstr(base, "done\n"))
		tap_diag("level 0 output: %s", runs[0].out);
	for (level = 1; level <= 2; level++) {
		struct run *r = &runs[level];

		tap_ok(same_output(r, base, level), "level %u: byte-identical output, exit status 0",
		       level);
		tap_ok(r->level == level && r->replicas == level + 1,
		       "level %u: still protected at the end, with %u duplicate(s) (level %u, %u replicas)",
		       level, level, r->level, r->replicas);
		tap_ok(r->divergences == 0 && !logged(r->pid, "duplicate [0-9]* diverged"),
		       "level %u: no divergence (%llu)", level, r->divergences);
		tap_ok(!logged(r->pid, ".*protection ended"),
		       "level %u: protection did not end", level);
		tap_ok(strstr(r->out, "varying: racy counter 80000\n") != NULL,
		       "level %u: the racy counter is exact: threads take turns between calls",
		       level);
	}

	for (level = 1; level <= 2; level++) {
		faults_at(level, battery_poisoned, "poison consumed 5 times by the primary's threads",
			  "takeovers");
		faults_at(level, battery_respawn, "a duplicate killed at five points of the battery",
			  "duplicates re-created with the process's threads");
	}

	run_at(1, battery_raise, &spin);
	tap_ok(same_output(&spin, base, 1) && spin.level == 2 &&
	       spin.replicas == 3 && spin.divergences == 0,
	       "level 1 raised to 2 while threads run: byte-identical output, level %u with %u replicas, no divergence (%llu)",
	       spin.level, spin.replicas, spin.divergences);

	for (level = 1; level <= 2; level++) {
		char want[sizeof(base) + 16];

		snprintf(want, sizeof(want), "flag: seen\n%s", base);
		run_at(level, spin_then_battery, &spin);
		tap_ok(same_output(&spin, want, level) &&
		       strstr(spin.out, "varying: racy counter 80000\n"),
		       "level %u: a thread spinning without calls on another's flag, then the battery: byte-identical output",
		       level);
		tap_ok(spin.preemptions >= 1 && spin.level == level && spin.replicas == level + 1 &&
		       spin.divergences == 0 && !logged(spin.pid, ".*protection ended") &&
		       logged(spin.pid, "thread [0-9]* ran [0-9]* ms without a system call while another waited to run: preempted"),
		       "level %u: the spinning thread preempted (%ld), duplicates re-created: level %u with %u replicas, %llu divergences, protection kept",
		       level, spin.preemptions, spin.level, spin.replicas, spin.divergences);
	}
	/* The late battery unprotected, then protected late at levels 1, 2. */
	late_level = 0;
	run_at(0, late_protect, &spin);
	steady(spin.out, late_base, sizeof(late_base));
	tap_ok(WIFEXITED(spin.status) && WEXITSTATUS(spin.status) == 0 &&
	       strstr(late_base, "late: counted 200000 and 200000, total 400000; cond 1, read 1\n"),
	       "unprotected, threads started before protection give the expected results");
	for (level = 1; level <= 2; level++) {
		late_level = level;
		run_at(level, late_protect, &spin);
		tap_ok(same_output(&spin, late_base, level) &&
		       strstr(spin.out, "varying: racy counter 80000\n"),
		       "level %u set while 4 threads run (counting, in a condvar, in read()): byte-identical output, the racy counter exact",
		       level);
		tap_ok(spin.level == level && spin.replicas == level + 1 && spin.divergences == 0 &&
		       !logged(spin.pid, ".*protection ended"),
		       "level %u, protected late: level %u with %u replicas at the end, %llu divergences, protection kept",
		       level, spin.level, spin.replicas, spin.divergences);
	}
	late_level = 0;
	/*
	 * A process stopped (SIGSTOP) for 8 times thread_wait_ms while one
	 * of its threads holds the run token and the other waits for it:
	 * the stopped holder does not count as running on, so it is neither
	 * preempted nor its process unprotected.
	 */
	close(ft_dev);
	ft_dev = -1;
	if (tap_ok(reload_procft("threads=1 thread_wait_ms=300") == 0 && ft_open() >= 0,
		   "procft reloaded with threads=1 thread_wait_ms=300")) {
		int ctl, out, stopped = 0, i;
		pid_t reps[8];

		unlink(STOP_GO);
		run_start(1, stop_while_waiting, &spin, &ctl, &out);
		if (wait_duplicates(spin.pid, 1, reps)) {
			usleep(300000);
			kill(spin.pid, SIGSTOP);
			/*
			 * One thread stopped (T), the other in procft's wait
			 * for the token (D: a killable sleep).
			 */
			for (i = 0; i < 100 && !stopped; i++, usleep(20000))
				stopped = run_cmd("s=$(grep -h '^State:' /proc/%d/task/*/status) &&\n"
						  "echo \"$s\" | grep -q 'T (stopped)' &&\n"
						  "echo \"$s\" | grep -q 'D (disk sleep)'",
						  spin.pid) == 0;
			usleep(2400000);
			kill(spin.pid, SIGCONT);
			usleep(300000);
		}
		close(open(STOP_GO, O_WRONLY | O_CREAT, 0644));
		run_end(1, &spin, ctl, out);
		unlink(STOP_GO);
		tap_ok(stopped && WIFEXITED(spin.status) && WEXITSTATUS(spin.status) == 0 &&
		       strstr(spin.out, "stop: both threads done\n") && spin.preemptions == 0 &&
		       spin.level == 1 && spin.replicas == 2 && spin.divergences == 0 &&
		       !logged(spin.pid, ".*protection ended"),
		       "level 1, stopped for 2.4 s (8 x thread_wait_ms) while a thread waits for the token: %s, %ld preemptions, level %u with %u replicas, %llu divergences, protection kept",
		       stopped ? "one thread stopped, one waiting" : "NOT SO", spin.preemptions,
		       spin.level, spin.replicas, spin.divergences);
	}
	close(ft_dev);
	ft_dev = -1;
	reload_procft("");
	return tap_finish();
}
