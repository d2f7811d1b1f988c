// SPDX-License-Identifier: GPL-2.0
/*
 * Protected-process records are released when the process exits, however
 * it exits, and when protection ends, and then freed: thousands of cycles
 * leave the module's record counts where they started.
 */
#include "ft_test.h"

#define CYCLES 2000
/*
 * On a process that makes calls all along; every other one waits for a
 * duplicate first.
 */
#define BUSY_CYCLES 400

static struct procft_info info0;

/*
 * Whether @made records were created, released and freed since the start,
 * and no more: a released record is freed once its duplicates are gone
 * and a grace period has passed (10 s at most here).
 */
static int records_back_to_baseline(unsigned long long made)
{
	struct procft_info now;
	int i;

	for (i = 0; i < 1000; i++) {
		if (ioctl_info(&now) || now.size < PROCFT_INFO_SIZE_VER2)
			return 0;
		if (now.groups_freed - info0.groups_freed >= made)
			break;
		usleep(10000);
	}
	if (now.nr_groups != info0.nr_groups ||
	    now.groups_created - info0.groups_created != made ||
	    now.groups_released - info0.groups_released != made ||
	    now.groups_freed - info0.groups_freed != made) {
		tap_diag("records: live %u (was %u), created +%llu, released +%llu, freed +%llu, want +%llu",
			 now.nr_groups, info0.nr_groups,
			 (unsigned long long)(now.groups_created - info0.groups_created),
			 (unsigned long long)(now.groups_released - info0.groups_released),
			 (unsigned long long)(now.groups_freed - info0.groups_freed), made);
		return 0;
	}
	return 1;
}

static int procft_is_empty(void)
{
	char buf[256];
	FILE *f = fopen("/proc/procft", "re");
	int empty = 1;

	if (!f)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		tap_diag("left over: %s", buf);
		empty = 0;
	}
	fclose(f);
	return empty;
}

int main(void)
{
	int i, st, ok;
	pid_t pid, busy;

	tap_plan(6);
	if (ioctl_info(&info0))
		die("PROCFT_IOC_GET_INFO");
	if (!procft_is_empty())
		die("/proc/procft not empty at start");

	/* A process protects itself and exits normally. */
	ok = 1;
	for (i = 0; i < CYCLES && ok; i++) {
		pid = fork();
		if (pid == 0)
			_exit(ioctl_set(0, 1 + i % PROCFT_MAX_LEVEL) ? 1 : 0);
		waitpid(pid, &st, 0);
		ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	tap_ok(ok && records_back_to_baseline(CYCLES),
	       "%d protect-then-exit cycles: every record released", CYCLES);

	/* The parent protects a child, which is then killed. */
	ok = 1;
	for (i = 0; i < CYCLES && ok; i++) {
		pid = spawn_sleeper();
		ok = ioctl_set(pid, 2) == 0;
		reap(pid);
	}
	tap_ok(ok && records_back_to_baseline(2 * CYCLES),
	       "%d protect-then-SIGKILL cycles: every record released", CYCLES);

	/* Protection ended and restarted on a live process. */
	pid = spawn_sleeper();
	ok = 1;
	for (i = 0; i < CYCLES && ok; i++)
		ok = proc_write(pid, "3") == 0 && proc_write(pid, "0") == 0;
	tap_ok(ok && records_back_to_baseline(3 * CYCLES),
	       "%d protect/unprotect cycles on a live process: every record released", CYCLES);

	/*
	 * The same on a process inside procft's system-call hooks all along:
	 * a call in flight when protection ends still holds the group it
	 * began with, which the module frees a grace period later (a debug
	 * kernel's KASAN sees any use after that). Half the cycles end it
	 * before a duplicate exists, when nothing else holds the group.
	 */
	busy = fork();
	if (busy == 0) {
		for (;;)
			getppid();
	}
	ok = busy > 0;
	for (i = 0; i < BUSY_CYCLES && ok; i++) {
		int on, off = 0, dup, busy_tries = 0;

		/* EBUSY: the last protection is still ending (documented). */
		while ((on = proc_write(busy, "1")) == -EBUSY && busy_tries++ < 100)
			usleep(100000);
		dup = !on && (i % 2 || wait_field(busy, "duplicates=", 1, 30) >= 1);
		if (dup)
			off = proc_write(busy, "0");
		ok = dup && !off;
		if (!ok || busy_tries)
			tap_diag("cycle %d: protecting: %d (after %d EBUSY), a duplicate (within 30 s): %s, unprotecting: %d",
				 i, on, busy_tries, dup ? "yes" : "no", off);
		if (!ok) {
			/* Its state and its last log lines, before the log wraps. */
			run_cmd("grep 'pid=%d ' /proc/procft | sed 's/^/# /'", busy);
			run_cmd("dmesg | grep 'procft: pid %d:' | tail -n 20 | sed 's/^/# /'", busy);
		}
	}
	ok = ok && waitpid(busy, &st, WNOHANG) == 0;
	reap(busy);
	tap_ok(ok && records_back_to_baseline(3 * CYCLES + BUSY_CYCLES),
	       "%d protect/unprotect cycles on a process making calls meanwhile (half with a duplicate): it lives on, every record released and freed",
	       BUSY_CYCLES);

	/* Changing the level of a protected process reuses its record. */
	ok = proc_write(pid, "1") == 0;
	for (i = 0; i < CYCLES && ok; i++)
		ok = ioctl_set(pid, 1 + i % PROCFT_MAX_LEVEL) == 0;
	reap(pid);
	tap_ok(ok && records_back_to_baseline(3 * CYCLES + BUSY_CYCLES + 1),
	       "level changes reuse one record, released at exit");

	tap_ok(procft_is_empty(), "/proc/procft lists nothing afterwards");
	return tap_finish();
}
