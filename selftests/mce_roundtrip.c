// SPDX-License-Identifier: GPL-2.0
/*
 * The machine-check injection path of the test harness, end to end: a
 * process (unprotected) asks the VM host to raise a real machine check on
 * one of its own page frames through QEMU's monitor, and dies of SIGBUS
 * with si_code BUS_MCEERR_AO at that page; the frame is then hwpoisoned.
 */
#include "ft_test.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#define KPF_HWPOISON 19

struct report {
	int code;
	void *addr;
	short lsb;
};

static int report_fd;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct report r = { si->si_code, si->si_addr, si->si_addr_lsb };

	write(report_fd, &r, sizeof(r));
	/* Die of it, as a process without a handler would. */
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);
}

static int kpageflag(uint64_t pfn, int bit)
{
	uint64_t flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0 || pread(fd, &flags, 8, pfn * 8) != 8)
		flags = 0;
	if (fd >= 0)
		close(fd);
	return (flags >> bit) & 1;
}

static int dmesg_mentions(uint64_t pfn)
{
	return run_cmd("dmesg | grep -q 'Memory failure: %#llx'", (unsigned long long)pfn) == 0;
}

int main(void)
{
	int page_pipe[2], report_pipe[2], st;
	struct report rep = { 0 };
	char *page = NULL;
	uint64_t pfn = 0;
	pid_t child;

	tap_plan(6);
	if (pipe(page_pipe) || pipe(report_pipe))
		die("pipe");

	child = fork();
	if (child == 0) {
		struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
		char *p;

		report_fd = report_pipe[1];
		sigaction(SIGBUS, &sa, NULL);
		/* Early kill: be told at once, not when touching the page. */
		prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0);
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memset(p, 0xab, 4096);
		write(page_pipe[1], &p, sizeof(p));
		for (;;)
			pause();
	}
	close(page_pipe[1]);
	close(report_pipe[1]);
	if (read(page_pipe[0], &page, sizeof(page)) != sizeof(page))
		die("child setup");
	pfn = pfn_of(child, page);
	tap_ok(pfn != 0, "victim page %p is on frame %#llx", page, (unsigned long long)pfn);

	tap_ok(host_inject_mce(pfn * 4096) == 0, "host raised a machine check at %#llx",
	       (unsigned long long)(pfn * 4096));

	alarm(120);
	waitpid(child, &st, 0);
	alarm(0);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "the process died of SIGBUS (status %#x)", st);
	if (read(report_pipe[0], &rep, sizeof(rep)) != sizeof(rep))
		rep.code = -1;
	tap_ok(rep.code == BUS_MCEERR_AO && rep.addr == page && rep.lsb == 12,
	       "si_code BUS_MCEERR_AO (got %d), si_addr %p (want %p), si_addr_lsb %d",
	       rep.code, rep.addr, page, rep.lsb);
	tap_ok(kpageflag(pfn, KPF_HWPOISON), "frame %#llx is marked hwpoison",
	       (unsigned long long)pfn);
	tap_ok(dmesg_mentions(pfn), "the kernel logged the memory failure at that frame");
	return tap_finish();
}
