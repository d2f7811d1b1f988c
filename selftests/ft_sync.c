// SPDX-License-Identifier: GPL-2.0
/*
 * Lock-step synchronisation: duplicates take the primary's results.  The
 * bytes a call wrote into the primary's memory (file data, stat buffers,
 * time, random bytes) appear at the same addresses in every duplicate, and
 * identity calls give the primary's ids, as read back through
 * /proc/<pid>/mem.  A duplicate that sends other bytes than the primary
 * diverged: it is counted and replaced, and the output stays the
 * primary's alone.
 */
#include "ft_test.h"

#include <elf.h>
#include <signal.h>
#include <sys/auxv.h>
#include <ucontext.h>
#include <sys/random.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <x86intrin.h>

struct shared {
	char data[8192];
	struct stat st;
	struct timespec ts;
	unsigned char rnd[32];
	pid_t pid, ppid;
	int done;
};

static void workload(int ctl)
{
	static struct shared s;
	struct shared *p = &s;
	int fd;

	write(ctl, &p, sizeof(p));
	/* Until told to go, make calls so that duplicates get created. */
	while (recv(ctl, &fd, 1, MSG_DONTWAIT) != 1)
		usleep(5000);
	fd = open("/mnt/disk/data.bin", O_RDONLY);
	lseek(fd, 12345, SEEK_SET);
	read(fd, s.data, sizeof(s.data));
	fstat(fd, &s.st);
	close(fd);
	clock_gettime(CLOCK_REALTIME, &s.ts);
	syscall(__NR_clock_gettime, CLOCK_MONOTONIC, &s.ts);
	getrandom(s.rnd, sizeof(s.rnd), 0);
	s.pid = syscall(__NR_getpid);
	s.ppid = syscall(__NR_getppid);
	s.done = 1;
	write(ctl, "d", 1);
	for (;;)
		usleep(5000);
}

/*
 * Runs this program in mode @mode under `ftctl run -l @level`, its output
 * in @text; fills its wait status and the number of lines it printed.
 * Returns its pid.
 */
static pid_t run_self(const char *self, const char *level, const char *mode, char *text,
		      size_t len, int *status, int *lines)
{
	int out[2];
	size_t got = 0;
	pid_t pid;

	if (pipe(out))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		execl("/bin/ftctl", "ftctl", "run", "-l", level, "--", self, mode, NULL);
		_exit(127);
	}
	close(out[1]);
	read_to_eof(out[0], text, len, &got);
	close(out[0]);
	waitpid(pid, status, 0);
	*lines = 0;
	for (char *p = text; *p; p++)
		*lines += *p == '\n';
	return pid;
}

#define CLOCKSOURCE "/sys/devices/system/clocksource/clocksource0/"

/* Reads sysfs file @name of the clocksource device into @buf (no newline). */
static int clocksource_read(const char *name, char *buf, size_t len)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), CLOCKSOURCE "%s", name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	ok = fgets(buf, len, f) != NULL;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static int clocksource_set(const char *name)
{
	char cur[64];

	return run_cmd("echo %s > " CLOCKSOURCE "current_clocksource", name) == 0 &&
	       clocksource_read("current_clocksource", cur, sizeof(cur)) && !strcmp(cur, name);
}

/*
 * Computes with the C library's clock while the kernel's clocksource
 * changes under it: on one the vDSO cannot read (it then makes its reads
 * as system calls) and back.  The program was protected while running:
 * its vDSO time functions are system calls by default (see
 * clock_while_running()); with hide_vdso=0 it reads the vDSO, and each
 * replica's reads stay its own either way.
 */
static void clocksource_change(void)
{
	/* Clocksources the vDSO cannot read, the usual fallbacks first. */
	static const char *const fallbacks[] = { "acpi_pm", "hpet", "jiffies" };
	char avail[256], orig[64], other[64] = "", text[512], expect[512], c;
	int ctl[2], out[2], i, st, ok, n = 0;
	pid_t pid, reps[8] = { 0 };
	size_t got = 0;

	if (!clocksource_read("available_clocksource", avail, sizeof(avail)) ||
	    !clocksource_read("current_clocksource", orig, sizeof(orig)))
		die("clocksource");
	for (i = ARRAY_SIZE(fallbacks) - 1; i >= 0; i--)
		if (strstr(avail, fallbacks[i]) && strcmp(orig, fallbacks[i]))
			snprintf(other, sizeof(other), "%s", fallbacks[i]);
	tap_diag("clocksources: %s now, %s without a vDSO reader", orig, other);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		struct timespec a, b;

		dup2(out[1], 1);
		close(out[0]);
		close(ctl[0]);
		ioctl_set(0, 2);
		read(ctl[1], &c, 1);
		for (i = 0; i < 6; i++) {
			clock_gettime(CLOCK_MONOTONIC, &a);
			do
				clock_gettime(CLOCK_MONOTONIC, &b);
			while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 200);
			printf("step %d\n", i);
			fflush(stdout);
			write(ctl[1], "s", 1);
		}
		read(ctl[1], &c, 1);
		_exit(0);
	}
	close(out[1]);
	close(ctl[1]);
	ok = wait_duplicates(pid, 2, reps);
	write(ctl[0], "g", 1);
	for (i = 0; i < 6; i++) {
		if (read(ctl[0], &c, 1) != 1)
			break;
		if (i == 0)
			ok = ok && other[0] && clocksource_set(other);
		if (i == 3)
			ok = ok && clocksource_set(orig);
		n += snprintf(expect + n, sizeof(expect) - n, "step %d\n", i);
	}
	clocksource_set(orig);
	ok = ok && wait_caught_up(pid);
	tap_ok(ok && procft_field(pid, "divergences=") == 0 && procft_field(pid, "respawns=") == 0,
	       "protected while running, the clocksource changes to %s and back: no divergence, no respawn (divergences=%ld respawns=%ld)",
	       other, procft_field(pid, "divergences="), procft_field(pid, "respawns="));
	write(ctl[0], "q", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	tap_ok(!strcmp(text, expect) && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "its output once, exit status 0");
	if (strcmp(text, expect))
		tap_diag("got '%s'", text);
}

/* The address of dynamic symbol @name in the vDSO, or 0. */
static unsigned long vdso_sym(const char *name)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
	const Elf64_Shdr *sh;
	int i;

	if (!eh)
		return 0;
	sh = (const Elf64_Shdr *)((const char *)eh + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *sym = (const Elf64_Sym *)((const char *)eh + sh[i].sh_offset);
		const char *str = (const char *)eh + sh[sh[i].sh_link].sh_offset;
		size_t n;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		for (n = 0; n < sh[i].sh_size / sizeof(*sym); n++)
			if (!strcmp(str + sym[n].st_name, name))
				return (unsigned long)eh + sym[n].st_value;
	}
	return 0;
}

static struct timespec resume_ts;
static unsigned long resume_fn;
static int resume_k;

/*
 * SIGUSR1, on the return of the kill() that sent it: makes the interrupted
 * context a call of clock_gettime(CLOCK_MONOTONIC, &resume_ts) from there,
 * stopped after the first resume_k bytes of its instructions (push %rbp;
 * mov %rsp,%rbp; push %r15), as if the signal had come right there; then
 * sets its own level 2 and waits for the duplicates, made in this handler,
 * where the vDSO's time functions are rewritten.  The handler's return
 * then resumes inside the rewritten bytes.
 */
static void resume_handler(int sig, siginfo_t *si, void *ctx)
{
	greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
	unsigned long *sp = (unsigned long *)g[REG_RSP];
	char line[512];
	int i;

	*--sp = g[REG_RIP];
	*--sp = g[REG_RBP];
	if (resume_k >= 4)
		g[REG_RBP] = (greg_t)sp;
	if (resume_k >= 6)
		*--sp = g[REG_R15];
	g[REG_RSP] = (greg_t)sp;
	g[REG_RDI] = CLOCK_MONOTONIC;
	g[REG_RSI] = (greg_t)&resume_ts;
	g[REG_RIP] = resume_fn + resume_k;
	ioctl_set(0, 2);
	for (i = 0; i < 3000; i++) {
		if (procft_line(getpid(), line, sizeof(line)) == 1 && strstr(line, "duplicates=2/2"))
			break;
		usleep(10000);
	}
}

/*
 * Started unprotected, the program is interrupted by a signal in the
 * first instructions of the vDSO's clock_gettime() (see resume_handler()),
 * and its handler protects it: it goes on correctly, with the time the
 * primary read in every replica.
 */
static int vdso_resume(int k)
{
	struct sigaction sa = { .sa_sigaction = resume_handler, .sa_flags = SA_SIGINFO };
	struct timespec ts;
	long r;
	int i;

	resume_k = k;
	resume_fn = vdso_sym("__vdso_clock_gettime");
	if (!resume_fn || sigaction(SIGUSR1, &sa, NULL))
		return 2;
	r = syscall(SYS_kill, getpid(), SIGUSR1);
	printf("resumed %ld %d\n", r, resume_ts.tv_sec > 0 || resume_ts.tv_nsec > 0);
	printf("%lld.%09ld\n", (long long)resume_ts.tv_sec, resume_ts.tv_nsec);
	for (i = 0; i < 5; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
		fflush(stdout);
		usleep(20000);
	}
	return 0;
}

/* vdso_resume() at each of the first instructions of clock_gettime(). */
static void resume_in_stub(const char *self)
{
	static const int ks[] = { 1, 4, 6 };
	char text[4096], arg[8];
	int out[2], st, k, ok, lines;
	size_t got;
	pid_t pid;

	for (k = 0; k < 3; k++) {
		if (pipe(out))
			die("pipe");
		snprintf(arg, sizeof(arg), "%d", ks[k]);
		pid = fork();
		if (pid == 0) {
			dup2(out[1], 1);
			execl(self, self, "--vdso-resume", arg, NULL);
			_exit(127);
		}
		close(out[1]);
		got = 0;
		read_to_eof(out[0], text, sizeof(text), &got);
		close(out[0]);
		waitpid(pid, &st, 0);
		for (lines = 0, ok = 0; ok < (int)got; ok++)
			lines += text[ok] == '\n';
		ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && lines == 7 &&
		     !strncmp(text, "resumed 0 1\n", 12) && run_cmd("ftctl events > /tmp/ev") == 0 &&
		     run_cmd("grep -q ' pid=%d event=divergence' /tmp/ev", pid) != 0 &&
		     run_cmd("dmesg | grep -q 'procft: pid %d: [0-9]* vDSO time functions now make system calls'",
			     pid) == 0;
		tap_ok(ok,
		       "a signal handler that protects its process, returning into clock_gettime()'s first %d bytes, now rewritten: the call goes on through the stub, no divergence",
		       ks[k]);
		if (!ok)
			tap_diag("status %#x, %d lines: '%s'", st, lines, text);
	}
}

/*
 * Protected while running, the program found the vDSO at start: procft
 * makes its time functions system calls, so the time it sends out is the
 * primary's in every replica.
 */
static void clock_while_running(void)
{
	int ctl[2], out[2], i, st, ok, lines = 0;
	char text[8192], maps[64], c;
	pid_t pid, reps[8] = { 0 };
	size_t got = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) || pipe(out))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		struct timespec ts;
		struct timeval tv;

		dup2(out[1], 1);
		close(out[0]);
		close(ctl[0]);
		printf("vdso %s\n", getauxval(AT_SYSINFO_EHDR) ? "visible" : "hidden");
		fflush(stdout);
		ioctl_set(0, 2);
		read(ctl[1], &c, 1);
		for (i = 0; i < 20; i++) {
			struct timespec res;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			gettimeofday(&tv, NULL);
			clock_getres(CLOCK_MONOTONIC, &res);
			printf("%lld.%09ld %lld.%06ld %lld %ld\n", (long long)ts.tv_sec, ts.tv_nsec,
			       (long long)tv.tv_sec, (long)tv.tv_usec, (long long)time(NULL),
			       res.tv_nsec);
			fflush(stdout);
			usleep(20000);
		}
		_exit(0);
	}
	close(out[1]);
	close(ctl[1]);
	ok = wait_duplicates(pid, 2, reps);
	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	ok = ok && run_cmd("grep -q '\\[vdso\\]' %s", maps) == 0;
	write(ctl[0], "g", 1);
	read_to_eof(out[0], text, sizeof(text), &got);
	waitpid(pid, &st, 0);
	for (i = 0; i < (int)got; i++)
		lines += text[i] == '\n';
	tap_ok(ok && WIFEXITED(st) && WEXITSTATUS(st) == 0 && lines == 21 &&
	       !strncmp(text, "vdso visible\n", 13) && run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep -q ' pid=%d event=divergence' /tmp/ev", pid) != 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: [0-9]* vDSO time functions now make system calls'",
		       pid) == 0,
	       "protected while running, with the vDSO found at start: its time functions become system calls, the 20 time lines appear once, no divergence");
	if (lines != 21)
		tap_diag("got %d lines: '%s'", lines, text);
}

/*
 * Sends what each replica reads itself unless procft replays it: the time
 * stamp counter, by rdtsc and rdtscp (with its TSC_AUX, the CPU). Then a
 * child forked from the protected process (unprotected, but it inherits
 * the trapping) reads the counter too.
 */
static int tsc_lines(void)
{
	unsigned int aux;
	int i, st;
	pid_t child;

	for (i = 0; i < 20; i++) {
		unsigned long long a = __rdtsc(), b = __rdtscp(&aux);

		printf("%llu %llu %u\n", a, b, aux);
		fflush(stdout);
		usleep(20000);
	}
	child = fork();
	if (child == 0) {
		unsigned long long last = 0, now;

		for (i = 0; i < 1000; i++, last = now) {
			now = __rdtsc();
			if (now < last)
				_exit(1);
		}
		_exit(0);
	}
	st = -1;
	waitpid(child, &st, 0);
	printf("child %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

/*
 * Whether @text holds 20 lines "A B AUX" with A < B, each pair after the
 * last, then "child 0".
 */
static int tsc_lines_ok(const char *text)
{
	unsigned long long a, b, last = 0;
	unsigned int aux;
	int i, n;

	for (i = 0; i < 20; i++) {
		if (sscanf(text, "%llu %llu %u%n", &a, &b, &aux, &n) != 3 || a <= last || b <= a)
			return 0;
		last = b;
		text = strchr(text + n, '\n');
		if (!text++)
			return 0;
	}
	return !strcmp(text, "child 0\n");
}

/*
 * Level 1 at start: once the duplicate is in step, the primary loses a page
 * (MADV_HWPOISON, then a read of it), right before an rdtsc. The duplicate,
 * whose page is good, stands at that rdtsc waiting for the primary's value,
 * and takes over there: the primary's task goes on from the instruction,
 * which it now executes as the primary.
 */
static int tsc_poison(void)
{
	unsigned long long t, last = 0;
	char *page;
	int n;

	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return 90;
	page[0] = 1;
	if (wait_field(getpid(), "duplicates=", 1, 30) < 1)
		return 91;
	for (n = 0; n < 10; n++) {
		if (n == 5) {
			madvise(page, 4096, MADV_HWPOISON);
			n += __atomic_load_n(page, __ATOMIC_RELAXED) - 1;
		}
		t = __rdtsc();
		printf("round %d %s\n", n, t > last ? "later" : "earlier");
		fflush(stdout);
		last = t;
	}
	return 0;
}

static int alarms;

/* The alarms after which tsc_signals() stops its timer. */
#define MAX_ALARMS 64

static void on_alarm(int sig)
{
	__atomic_fetch_add(&alarms, 1, __ATOMIC_RELAXED);
}

/*
 * Reads the counter in a tight loop while SIGALRM comes every 2 ms: most
 * signals are taken on the way back from a trapped read, whose record
 * carries them to the duplicates; the others come while it computes, and
 * the duplicates are re-created. Prints how many it handled and how many
 * of its reads came after the last one: the duplicates must send the same.
 * The timer stops after MAX_ALARMS alarms, so that the loop ends however
 * long a re-creation takes.
 */
static int tsc_signals(void)
{
	struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
	unsigned long long t, last = 0;
	long later = 0;
	int i;

	signal(SIGALRM, on_alarm);
	if (setitimer(ITIMER_REAL, &it, NULL))
		return 90;
	for (i = 0; i < 3000; i++) {
		t = __rdtsc();
		later += t > last;
		last = t;
		/*
		 * Enough alarms: each one taken outside a call's return
		 * re-creates the duplicate, and on a slow machine (a debug
		 * kernel under emulation) a re-creation outlasts 2 ms, so
		 * that the loop would make no progress between alarms.
		 */
		if (it.it_interval.tv_usec &&
		    __atomic_load_n(&alarms, __ATOMIC_RELAXED) >= MAX_ALARMS) {
			memset(&it, 0, sizeof(it));
			setitimer(ITIMER_REAL, &it, NULL);
		}
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	printf("alarms %d later %ld\n", __atomic_load_n(&alarms, __ATOMIC_RELAXED), later);
	return 0;
}

int main(int argc, char **argv)
{
	static struct shared a, b;
	struct shared *addr = NULL;
	int ctl, i, ok, lines, traps, c_count;
	pid_t pid, reps[8] = { 0 };
	char c, text[65536];

	if (argc > 2 && !strcmp(argv[1], "--vdso-resume"))
		return vdso_resume(atoi(argv[2]));

	if (argc > 1 && !strcmp(argv[1], "--tsc"))
		return tsc_lines();
	if (argc > 1 && !strcmp(argv[1], "--tsc-poison"))
		return tsc_poison();
	if (argc > 1 && !strcmp(argv[1], "--tsc-signals"))
		return tsc_signals();

	if (argc > 1 && !strcmp(argv[1], "--clock")) {
		/* The C library's time calls, which a visible vDSO answers. */
		struct timespec ts;
		struct timeval tv;

		printf("vdso %s\n", getauxval(AT_SYSINFO_EHDR) ? "visible" : "hidden");
		for (i = 0; i < 20; i++) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			gettimeofday(&tv, NULL);
			printf("%lld.%09ld %lld.%06ld %lld\n", (long long)ts.tv_sec, ts.tv_nsec,
			       (long long)tv.tv_sec, (long)tv.tv_usec, (long long)time(NULL));
			fflush(stdout);
			usleep(20000);
		}
		return 0;
	}

	tap_plan(17);
	pid = spawn_with_ctl(workload, &ctl);
	read(ctl, &addr, sizeof(addr));
	ok = ioctl_set(pid, 2) == 0 && wait_duplicates(pid, 2, reps);
	tap_ok(ok, "level 2: duplicates %d and %d", reps[1], reps[2]);
	write(ctl, "g", 1);
	read(ctl, &c, 1);

	/*
	 * The duplicates follow at their own pace (a loaded host may hold a
	 * vCPU back for long): wait until each has made the calls, a minute
	 * at most.
	 */
	for (lines = 0; lines < 600; lines++) {
		ok = read_mem(reps[0], addr, &a, sizeof(a)) && a.done;
		for (i = 1; i <= 2 && ok; i++)
			ok = read_mem(reps[i], addr, &b, sizeof(b)) && b.done;
		if (ok)
			break;
		usleep(100000);
	}
	tap_ok(ok, "every replica finished the calls");
	ok = 1;
	for (i = 1; i <= 2; i++) {
		read_mem(reps[i], addr, &b, sizeof(b));
		ok = ok && !memcmp(a.data, b.data, sizeof(a.data));
	}
	tap_ok(ok && a.data[0] == (char)(12345 % 256),
	       "read(): the file's bytes are in every replica's memory");
	ok = 1;
	for (i = 1; i <= 2; i++) {
		read_mem(reps[i], addr, &b, sizeof(b));
		ok = ok && !memcmp(&a.st, &b.st, sizeof(a.st)) && !memcmp(&a.ts, &b.ts, sizeof(a.ts)) &&
		     !memcmp(a.rnd, b.rnd, sizeof(a.rnd));
	}
	tap_ok(ok && a.st.st_size == 4 << 20,
	       "fstat(), clock_gettime() and getrandom() results are the primary's, byte for byte");
	ok = 1;
	for (i = 1; i <= 2; i++) {
		read_mem(reps[i], addr, &b, sizeof(b));
		ok = ok && b.pid == pid && b.ppid == getpid();
	}
	tap_ok(ok && a.pid == pid, "getpid() and getppid() give the primary's ids in every replica");
	tap_ok(procft_field(pid, "divergences=") == 0, "no divergence");
	reap(pid);

	/*
	 * The counter: the primary's rdtsc and rdtscp trap and are recorded,
	 * the duplicates' are replayed, so what they send is the primary's.
	 * Where procft cannot trap them (the tracepoint boot, a kernel without
	 * the patch), the duplicates read their own, diverge and are replaced.
	 */
	traps = traps_tsc();
	/* (At level 2 without trapping, the vote would outvote the primary.) */
	pid = run_self(argv[0], traps ? "2" : "1", "--tsc", text, sizeof(text), &i, &lines);
	tap_ok(WIFEXITED(i) && WEXITSTATUS(i) == 0 && lines == 21 && tsc_lines_ok(text) &&
	       run_cmd("ftctl events > /tmp/ev") == 0 &&
	       (run_cmd("grep -q ' pid=%d event=divergence' /tmp/ev", pid) != 0) == traps &&
	       (run_cmd("dmesg | grep -q 'procft: pid %d: duplicate [0-9]* diverged (.*write('", pid) != 0) ==
		       traps,
	       "writing rdtsc and rdtscp values at level %s, the 20 lines appear once, increasing; an unprotected child reads the counter natively",
	       traps ? "2: the duplicates replay the primary's, no divergence" :
		       "1: procft cannot trap them, the duplicate diverges and is replaced");
	if (lines != 21 || !tsc_lines_ok(text))
		tap_diag("got %d lines: '%.600s'", lines, text);
	pid = run_self(argv[0], "1", "--tsc-poison", text, sizeof(text), &i, &lines);
	tap_ok(WIFEXITED(i) && WEXITSTATUS(i) == 0 && lines == 10 &&
	       !strcmp(text, "round 0 later\nround 1 later\nround 2 later\nround 3 later\nround 4 later\n"
			     "round 5 later\nround 6 later\nround 7 later\nround 8 later\nround 9 later\n") &&
	       run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep -q ' pid=%d event=promotion' /tmp/ev", pid) == 0 &&
	       run_cmd("dmesg | grep -q 'procft: pid %d: primary consumed poisoned memory .* state at call #[0-9]* (%s)'",
		       pid, traps ? "rdtsc" : "write") == 0,
	       "a primary that loses a page right before an rdtsc: the duplicate takes over %s, the 10 rounds appear once",
	       traps ? "at the instruction" : "at its next call");
	if (!WIFEXITED(i) || WEXITSTATUS(i) || lines != 10)
		tap_diag("status %#x, %d lines: '%.600s'", i, lines, text);
	pid = run_self(argv[0], "1", "--tsc-signals", text, sizeof(text), &i, &lines);
	tap_ok(WIFEXITED(i) && WEXITSTATUS(i) == 0 && lines == 1 &&
	       sscanf(text, "alarms %d later %d", &ok, &c_count) == 2 && c_count == 3000 &&
	       (ok > 0 || !traps) &&
	       run_cmd("ftctl events > /tmp/ev") == 0 &&
	       (!traps || run_cmd("grep -q ' pid=%d event=divergence' /tmp/ev", pid) != 0),
	       "SIGALRM every 2 ms while reading the counter at level 1: %s, its line once (%.40s)",
	       traps ? "a signal taken on the way back from a read reaches the duplicate with it, no divergence" :
		       "(procft cannot trap the reads)",
	       text);

	/*
	 * Started under protection, the program is not shown the vDSO: its
	 * time reads are system calls, which the duplicates replay, so they
	 * send the primary's bytes and nothing diverges.
	 */
	tap_ok(run_cmd("%s --clock | head -1 | grep -qx 'vdso visible'", argv[0]) == 0,
	       "unprotected, the program finds the vDSO");
	pid = run_self(argv[0], "2", "--clock", text, sizeof(text), &i, &lines);
	tap_ok(WIFEXITED(i) && WEXITSTATUS(i) == 0 && lines == 21 &&
	       !strncmp(text, "vdso hidden\n", 12) && run_cmd("ftctl events > /tmp/ev") == 0 &&
	       run_cmd("grep -q ' pid=%d event=level old=0 new=2' /tmp/ev", pid) == 0 &&
	       run_cmd("grep -q ' pid=%d event=divergence' /tmp/ev", pid) != 0,
	       "exec'd at level 2, the vDSO is hidden: clock_gettime(), gettimeofday() and time() are replayed, no divergence");
	clock_while_running();
	resume_in_stub(argv[0]);
	clocksource_change();
	return tap_finish();
}
