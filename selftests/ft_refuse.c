// SPDX-License-Identifier: GPL-2.0
/*
 * What procft cannot replicate is refused: a process that is
 * multi-threaded, traced, maps shared memory writably or has memory fork()
 * does not copy cannot be protected (EOPNOTSUPP), and a protected process that starts doing any of
 * it (threads, writable MAP_SHARED, System V shared memory, ptrace,
 * io_uring, mprotect making shared memory writable, letting KSM merge its
 * pages, MADV_DONTFORK, a 32-bit or x32 system call) loses its protection with one log line before the call
 * runs, and no duplicate makes the call. Everything else keeps it.
 */
#include "ft_test.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE	67
#endif

#define DATA "/mnt/disk/data.bin"
#define FTCTL "/bin/ftctl"

/* ia32 and x32 call numbers: none of them means the same in x86-64. */
#define IA32_WRITE	4	/* x86-64 4: stat */
#define IA32_UNLINK	10	/* x86-64 10: mprotect, run by every replica */
#define IA32_SENDTO	369	/* no x86-64 call: "runs" in every replica */
#define X32_WRITE	(0x40000000 | 1)
#define MSG "sent once through a 32-bit entry\n"
#define AFTER "and after it\n"
#define GONE "/tmp/ft_refuse.unlink"

/* A page below 4 GiB, for the 32-bit pointers of int $0x80. */
static char *low;

/* System call @nr of the ia32 table, from this 64-bit program. */
static long int80(long nr, long a, long b, long c, long d, long e)
{
	long ret;

	asm volatile("int $0x80"
		     : "=a"(ret)
		     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
		     : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

static int ia32_write(int fd)
{
	memcpy(low, MSG, sizeof(MSG));
	return int80(IA32_WRITE, fd, (long)low, strlen(MSG), 0, 0) != (long)strlen(MSG);
}

static int ia32_sendto(int fd)
{
	memcpy(low, MSG, sizeof(MSG));
	return int80(IA32_SENDTO, fd, (long)low, strlen(MSG), 0, 0) != (long)strlen(MSG);
}

static int ia32_unlink(int fd)
{
	int f = open(GONE, O_CREAT | O_WRONLY | O_TRUNC, 0600);

	if (f < 0)
		return 1;
	close(f);
	memcpy(low, GONE, sizeof(GONE));
	if (int80(IA32_UNLINK, (long)low, 0, 0, 0, 0) != 0)
		return 2;
	return access(GONE, F_OK) == 0 || errno != ENOENT ? 3 : 0;
}

/*
 * What an unprotected x32 write on a bad descriptor fails with: EBADF if
 * the kernel runs x32 calls, else what it gives for a call it lacks.
 */
static int x32_errno;

/* Protected, it gives what it would unprotected. */
static int x32_write(int fd)
{
	long r;

	memcpy(low, MSG, sizeof(MSG));
	r = syscall(X32_WRITE, fd, low, strlen(MSG));
	if (x32_errno == EBADF)
		return r != (long)strlen(MSG);
	return r != -1 || errno != x32_errno;
}

/*
 * Runs @fn in a child at level 2 with both duplicates in step, handing it
 * a stream socket whose peer this process reads into @out to the end
 * (every replica's end). The child then writes AFTER. Returns the child's
 * exit status: 10 * @fn's result + its level afterwards, or 100+ if it
 * could not get there; its pid in @who.
 */
static int protected_run(int (*fn)(int), char *out, size_t len, pid_t *who)
{
	size_t got = 0;
	int sv[2], st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	pid = fork();
	if (pid == 0) {
		unsigned int l = 99;
		pid_t reps[8];
		int r;

		close(sv[0]);
		if (ioctl_set(0, 2) || !wait_duplicates(getpid(), 2, reps))
			_exit(100);
		r = fn(sv[1]);
		if (write(sv[1], AFTER, strlen(AFTER)) != (ssize_t)strlen(AFTER) ||
		    ioctl_get(0, &l))
			_exit(101);
		_exit(r * 10 + l);
	}
	close(sv[1]);
	read_to_eof(sv[0], out, len, &got);
	close(sv[0]);
	waitpid(pid, &st, 0);
	*who = pid;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

/* Whether process @pid's protection ended once, for @why, in the event log. */
static int ended_once(pid_t pid, const char *why)
{
	return run_cmd(FTCTL " events | grep -cF 'pid=%d event=protection_ended why=\"%s\"' | grep -qx 1",
		       pid, why) == 0;
}

/* A 32-bit or x32 call: protection ends before it, it is made once. */
static void entry_case(int (*fn)(int), const char *want, const char *why, const char *what)
{
	char out[256];
	pid_t pid = 0;
	int r;

	r = protected_run(fn, out, sizeof(out), &pid);
	if (strcmp(out, want))
		tap_diag("%s: read '%s'", what, out);
	tap_ok(r == 0 && !strcmp(out, want) && ended_once(pid, why),
	       "%s: protection ends first, the call is made once (status %d)", what, r);
}

static void *idle_thread(void *arg)
{
	return arg;
}

/* Protects itself, runs @fn, and returns its own level afterwards (or 100+). */
static int level_after(void (*fn)(void))
{
	unsigned int l = 99;
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		if (ioctl_set(0, 1))
			_exit(100);
		fn();
		if (ioctl_get(0, &l))
			_exit(101);
		_exit(l);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

static int logged_refusal(const char *what)
{
	return run_cmd("dmesg | grep -q 'procft: pid [0-9]*: %s cannot be replicated; protection ended (level 1 -> 0)'",
		       what) == 0;
}

/* @fn, run protected, ends protection with the log line for @why: TAP line @what. */
static void ends_case(void (*fn)(void), const char *why, const char *what)
{
	int r = level_after(fn);

	tap_ok(r == 0 && logged_refusal(why), "%s (level %d)", what, r);
}

static void do_thread(void)
{
	pthread_t t;

	pthread_create(&t, NULL, idle_thread, NULL);
	pthread_join(t, NULL);
}

static void do_shared_anon(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
}

static void do_sysv_shm(void)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);

	if (id >= 0) {
		shmat(id, NULL, 0);
		shmctl(id, IPC_RMID, NULL);
	}
}

static void do_traceme(void)
{
	ptrace(PTRACE_TRACEME, 0, 0, 0);
}

static void do_io_uring(void)
{
	syscall(425, 1, NULL);
}

static void do_mprotect_shared(void)
{
	int fd = open(DATA, O_RDWR);
	void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

	/* A read-only shared mapping is fine ... */
	if (ioctl_set(0, 1) == 0 && proc_read(getpid()) == 1)
		mprotect(p, 4096, PROT_READ | PROT_WRITE);	/* ... this is not */
	close(fd);
}

static void do_ksm_madvise(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	madvise(p, 4096, MADV_MERGEABLE);
}

static void do_ksm_prctl(void)
{
	prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);
}

static void do_dontfork(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	madvise(p, 4096, MADV_DONTFORK);
}

static void do_allowed(void)
{
	char buf[64];
	pid_t c;
	int fd;
	void *p;

	p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 1, 65536);
	mprotect(p, 4096, PROT_READ);
	/* Asking KSM *not* to merge is fine. */
	madvise(p, 65536, MADV_UNMERGEABLE);
	prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	munmap(p, 65536);
	fd = open(DATA, O_RDONLY);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	munmap(p, 4096);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	munmap(p, 4096);
	read(fd, buf, sizeof(buf));
	close(fd);
	getpid();
	c = fork();
	if (c == 0)
		_exit(0);
	waitpid(c, NULL, 0);
	c = vfork();
	if (c == 0) {
		execl("/bin/true", "true", NULL);
		_exit(1);
	}
	waitpid(c, NULL, 0);
}

/* The other process of a clone(CLONE_VM): it only waits to be killed. */
static int share_and_sleep(void *arg)
{
	for (;;)
		pause();
	return 0;
}

int main(void)
{
	pid_t c;
	void *p;
	int r;

	tap_plan(20);

	ends_case(do_thread, "creating a thread (clone with CLONE_VM)",
		  "creating a thread ends protection, with a log line");
	ends_case(do_shared_anon, "a writable MAP_SHARED mapping",
		  "a writable MAP_SHARED mapping ends protection");
	ends_case(do_sysv_shm, "shmget",
		  "System V shared memory ends protection");
	ends_case(do_traceme, "ptrace",
		  "ptrace ends protection");
	ends_case(do_io_uring, "io_uring_setup",
		  "io_uring ends protection");
	ends_case(do_mprotect_shared, "making shared memory writable (mprotect)",
		  "mprotect making a shared file mapping writable ends protection");
	ends_case(do_ksm_madvise, "letting KSM merge identical pages (madvise MADV_MERGEABLE)",
		  "madvise(MADV_MERGEABLE) ends protection: KSM would merge the duplicates' pages with the primary's");
	ends_case(do_ksm_prctl, "letting KSM merge identical pages (prctl PR_SET_MEMORY_MERGE)",
		  "prctl(PR_SET_MEMORY_MERGE, 1) ends protection");
	ends_case(do_dontfork, "memory that fork() does not copy (madvise MADV_DONTFORK)",
		  "madvise(MADV_DONTFORK) ends protection: a duplicate made by fork() would lack it");

	low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		die("mmap MAP_32BIT");
	entry_case(ia32_write, MSG AFTER, "a 32-bit system call (int $0x80)",
		   "int $0x80 write (ia32 4, x86-64 stat)");
	entry_case(ia32_sendto, MSG AFTER, "a 32-bit system call (int $0x80)",
		   "int $0x80 sendto (ia32 369, no x86-64 call)");
	entry_case(ia32_unlink, AFTER, "a 32-bit system call (int $0x80)",
		   "int $0x80 unlink (ia32 10, x86-64 mprotect)");
	if (syscall(X32_WRITE, -1, NULL, 0) == -1)
		x32_errno = errno;
	if (x32_errno == EBADF)
		entry_case(x32_write, MSG AFTER, "an x32 system call", "x32 write");
	else
		entry_case(x32_write, AFTER, "an x32 system call",
			   "x32 write (this kernel has no x32 ABI: the same error, nothing sent)");

	r = level_after(do_allowed);
	tap_ok(r == 1, "private mmaps, read-only shared mmaps, file I/O, fork and vfork+exec keep it (level %d)", r);

	/* Refused at protection time. */
	c = fork();
	if (c == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		_exit(p != MAP_FAILED && ioctl_set(0, 1) == -EOPNOTSUPP && proc_read(getpid()) == 0 ? 0 : 1);
	}
	waitpid(c, &r, 0);
	tap_ok(WIFEXITED(r) && WEXITSTATUS(r) == 0,
	       "a process with writable shared memory cannot be protected: EOPNOTSUPP");
	c = fork();
	if (c == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		_exit(p != MAP_FAILED && !madvise(p, 4096, MADV_DONTFORK) &&
		      ioctl_set(0, 1) == -EOPNOTSUPP && proc_read(getpid()) == 0 &&
		      !madvise(p, 4096, MADV_DOFORK) && ioctl_set(0, 1) == 0 ? 0 : 1);
	}
	waitpid(c, &r, 0);
	tap_ok(WIFEXITED(r) && WEXITSTATUS(r) == 0,
	       "a process with MADV_DONTFORK memory cannot be protected (EOPNOTSUPP); after MADV_DOFORK it can");

	c = fork();
	if (c == 0) {
		/* A process on the same memory: clone(CLONE_VM), not a thread. */
		static char stack[64 << 10];
		pid_t other = clone(share_and_sleep, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);

		r = other > 0 && ioctl_set(0, 1) == -EOPNOTSUPP && proc_read(getpid()) == 0;
		if (other > 0)
			kill(other, SIGKILL);
		_exit(r ? 0 : 1);
	}
	waitpid(c, &r, 0);
	tap_ok(WIFEXITED(r) && WEXITSTATUS(r) == 0,
	       "a process sharing its memory with another (clone with CLONE_VM) cannot be protected: EOPNOTSUPP");

	c = spawn_sleeper();
	r = ptrace(PTRACE_SEIZE, c, 0, 0);
	tap_ok(r == 0 && ioctl_set(c, 1) == -EOPNOTSUPP && proc_read(c) == 0,
	       "a traced process cannot be protected: EOPNOTSUPP");
	reap(c);

	/* A tracer arriving later: the next system call ends protection. */
	c = fork();
	if (c == 0) {
		for (;;)
			usleep(10000);
	}
	r = ioctl_set(c, 1);
	if (!r)
		r = ptrace(PTRACE_SEIZE, c, 0, 0);
	usleep(300000);
	tap_ok(r == 0 && proc_read(c) == 0 && logged_refusal("being traced"),
	       "attaching a tracer to a protected process ends its protection");
	reap(c);

	tap_ok(run_cmd("dmesg | grep -q 'refusing protection: it maps shared memory writably'") == 0 &&
	       run_cmd("dmesg | grep -q 'refusing protection: it is being traced'") == 0 &&
	       run_cmd("dmesg | grep -q 'refusing protection: it maps memory that fork() does not copy'") == 0 &&
	       run_cmd("dmesg | grep -q 'refusing protection: it shares its memory with another process'") == 0,
	       "refusals at protection time are logged");
	return tap_finish();
}
