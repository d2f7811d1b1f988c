// SPDX-License-Identifier: GPL-2.0
/*
 * What procft cannot replicate is refused: a process that is
 * multi-threaded, traced or maps shared memory writably cannot be
 * protected (EOPNOTSUPP), and a protected process that starts doing any of
 * it (threads, writable MAP_SHARED, System V shared memory, ptrace,
 * io_uring, mprotect making shared memory writable) loses its protection
 * with one log line before the call runs. Everything else keeps it.
 */
#include "ft_test.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#define DATA "/mnt/disk/data.bin"

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

static int logged(const char *what)
{
	return run_cmd("dmesg | grep -q 'procft: pid [0-9]*: %s cannot be replicated; protection ended (level 1 -> 0)'",
		       what) == 0;
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

static void do_allowed(void)
{
	char buf[64];
	pid_t c;
	int fd;
	void *p;

	p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 1, 65536);
	mprotect(p, 4096, PROT_READ);
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

int main(void)
{
	pid_t c;
	void *p;
	int r;

	tap_plan(11);

	r = level_after(do_thread);
	tap_ok(r == 0 && logged("creating a thread (clone with CLONE_VM)"),
	       "creating a thread ends protection, with a log line (level %d)", r);
	r = level_after(do_shared_anon);
	tap_ok(r == 0 && logged("a writable MAP_SHARED mapping"),
	       "a writable MAP_SHARED mapping ends protection (level %d)", r);
	r = level_after(do_sysv_shm);
	tap_ok(r == 0 && logged("shmget"), "System V shared memory ends protection (level %d)", r);
	r = level_after(do_traceme);
	tap_ok(r == 0 && logged("ptrace"), "ptrace ends protection (level %d)", r);
	r = level_after(do_io_uring);
	tap_ok(r == 0 && logged("io_uring_setup"), "io_uring ends protection (level %d)", r);
	r = level_after(do_mprotect_shared);
	tap_ok(r == 0 && logged("making shared memory writable (mprotect)"),
	       "mprotect making a shared file mapping writable ends protection (level %d)", r);

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
	tap_ok(r == 0 && proc_read(c) == 0 && logged("being traced"),
	       "attaching a tracer to a protected process ends its protection");
	reap(c);

	tap_ok(run_cmd("dmesg | grep -q 'refusing protection: it maps shared memory writably'") == 0 &&
	       run_cmd("dmesg | grep -q 'refusing protection: it is being traced'") == 0,
	       "refusals at protection time are logged");
	return tap_finish();
}
