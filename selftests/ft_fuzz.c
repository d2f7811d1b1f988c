// SPDX-License-Identifier: GPL-2.0
/*
 * procft's own fuzzer.
 *
 * Inside: two protected processes (levels 1 and 2, changing) make random
 * x86-64 system calls with random and boundary arguments (0, -1, 1 << 40,
 * NULL, kernel and non-canonical addresses, huge lengths, page-aligned and
 * unaligned pointers into their own buffers, random descriptors among the
 * pipes, files on /tmp and /mnt/disk, sockets and others they have open).
 * Only calls that would end the VM or the test are left out or tamed (see
 * the table); memory calls are confined to a fuzz arena; a periodic timer
 * interrupts calls that would block.  Each fuzzed process makes a bounded
 * number of calls, then exits and is replaced.  A call procft cannot
 * replicate ends protection (a log line); the driver protects it again.
 *
 * Outside, at random times, the driver changes levels (ioctl and
 * /proc/<pid>/ft_level), injects replica failures (PROCFT_IOC_FAIL: lose
 * the primary or a duplicate, flip a byte), stops and continues
 * duplicates, and raises real machine checks (through the VM host) on
 * random pages of the arena of random replicas.  A third process makes
 * random ioctls on /dev/procft (numbers around procft's, random sizes,
 * bad pointers, pointers ending at an unmapped page), writes garbage to
 * /proc/<pid>/ft_level and reads /proc/procft and the event log.
 *
 * Passing: every fuzzed process ends when killed (none stays stuck), none
 * and none of its duplicates or children outlives the run, /proc/procft
 * is empty, the module unloads and loads again, and the kernel log has no
 * report (the VM harness also fails the run on one, and on a hung task).
 *
 * Usage: ft_fuzz [-s seed] [-t seconds]
 * The duration defaults to $ftfuzz (the kernel command line's ftfuzz=,
 * from PROCFT_FUZZ_SECS, as `make soak` sets it), else 75 s; the seed to
 * $ftfuzzseed (PROCFT_FUZZ_SEED), else one from the clock, printed so that
 * a run can be replayed (timing aside).
 */
#include "ft_test.h"

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <netinet/in.h>
#include <linux/sched.h>

#define ARENA		((char *)0x200000000000UL)
#define ARENA_PAGES	64
#define ARENA_SIZE	(ARENA_PAGES * 4096UL)
#define REPORT_FD	1000
#define CALLS_PER_CHILD	3000
#define NFUZZ		2
#define MAXPOOL		48
#ifndef SYS_map_shadow_stack
#define SYS_map_shadow_stack 453
#endif
#define KADDR		0xffffffff81000000UL
#define NONCANON	0x8000000000000000UL

/* ---- random numbers: splitmix64, replayable from the seed ------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int below(unsigned int n)
{
	return n ? rnd() % n : 0;
}

#define PICK(a) ((a)[below(ARRAY_SIZE(a))])

/* ---- the system-call table --------------------------------------------------- */

enum kind { K_FS, K_MEM, K_PROC, K_SIG, K_NET, K_TIME, K_IPC, K_MISC, NKINDS };
static const char * const kind_name[NKINDS] = {
	"files", "memory", "processes", "signals", "network", "time", "ipc", "other"
};

/*
 * Argument letters: f descriptor, o directory descriptor or AT_FDCWD,
 * p pointer, s path, l length, i flags, x any boundary value, a arena
 * address, m length within the arena, P pid (the caller's own, 0, gone),
 * u id, n small count, t timespec pointer (short), T milliseconds (short),
 * q iovec pointer, e signal set without SIGALRM, g signal.
 * S: a special case (see special()); F: returns a descriptor.
 */
struct call {
	int nr;
	const char *args;
	unsigned char kind;
	unsigned char flags;
};

#define SPECIAL	1
#define FDRET	2

/* Most entries leave flags out (0). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct call calls[] = {
	{ 0, "fpl", K_FS }, { 1, "fpl", K_FS }, { 2, "sii", K_FS, FDRET }, { 3, "f", K_FS },
	{ 4, "sp", K_FS }, { 5, "fp", K_FS }, { 6, "sp", K_FS }, { 7, "pnT", K_FS },
	{ 8, "fxi", K_FS }, { 9, "", K_MEM, SPECIAL }, { 10, "ami", K_MEM }, { 11, "am", K_MEM },
	{ 12, "", K_MEM, SPECIAL }, { 13, "", K_SIG, SPECIAL }, { 14, "ipp", K_SIG, SPECIAL },
	{ 16, "fxp", K_FS, SPECIAL }, { 17, "fplx", K_FS }, { 18, "fplx", K_FS },
	{ 19, "fqn", K_FS }, { 20, "fqn", K_FS }, { 21, "si", K_FS }, { 22, "p", K_FS },
	{ 23, "nppp", K_FS, SPECIAL }, { 24, "", K_PROC }, { 25, "", K_MEM, SPECIAL },
	{ 26, "ami", K_MEM }, { 27, "amp", K_MEM }, { 28, "", K_MEM, SPECIAL },
	{ 29, "", K_IPC, SPECIAL }, { 32, "f", K_FS, FDRET }, { 33, "", K_FS, SPECIAL },
	{ 34, "", K_SIG }, { 35, "tp", K_TIME }, { 36, "ip", K_TIME }, { 37, "n", K_TIME },
	{ 38, "ipp", K_TIME, SPECIAL }, { 39, "", K_PROC }, { 40, "ffpl", K_FS },
	{ 41, "iii", K_NET, FDRET }, { 42, "fpl", K_NET }, { 43, "fpp", K_NET, FDRET },
	{ 44, "fplipl", K_NET }, { 45, "fplipp", K_NET }, { 46, "fpi", K_NET },
	{ 47, "fpi", K_NET }, { 48, "fi", K_NET }, { 49, "fpl", K_NET }, { 50, "fi", K_NET },
	{ 51, "fpp", K_NET }, { 52, "fpp", K_NET }, { 53, "iiip", K_NET },
	{ 54, "fiipl", K_NET }, { 55, "fiipp", K_NET }, { 56, "", K_PROC, SPECIAL },
	{ 57, "", K_PROC, SPECIAL }, { 58, "", K_PROC, SPECIAL }, { 59, "", K_PROC, SPECIAL },
	{ 61, "Ppip", K_PROC }, { 62, "", K_SIG, SPECIAL }, { 63, "p", K_MISC },
	{ 72, "fix", K_FS, FDRET }, { 73, "fi", K_FS }, { 74, "f", K_FS }, { 75, "f", K_FS },
	{ 76, "sx", K_FS }, { 77, "fx", K_FS }, { 78, "fpl", K_FS }, { 79, "pl", K_FS },
	{ 80, "s", K_FS }, { 81, "f", K_FS }, { 82, "ss", K_FS }, { 83, "si", K_FS },
	{ 84, "s", K_FS }, { 85, "si", K_FS, FDRET }, { 86, "ss", K_FS }, { 87, "s", K_FS },
	{ 88, "ss", K_FS }, { 89, "spl", K_FS }, { 90, "si", K_FS }, { 91, "fi", K_FS },
	{ 92, "suu", K_FS }, { 93, "fuu", K_FS }, { 94, "suu", K_FS }, { 95, "i", K_FS },
	{ 96, "pp", K_TIME }, { 97, "ip", K_PROC }, { 98, "ip", K_PROC }, { 99, "p", K_MISC },
	{ 100, "p", K_TIME }, { 102, "", K_PROC }, { 103, "", K_MISC, SPECIAL },
	{ 104, "", K_PROC }, { 105, "u", K_PROC }, { 106, "u", K_PROC }, { 107, "", K_PROC },
	{ 108, "", K_PROC }, { 109, "Px", K_PROC }, { 110, "", K_PROC }, { 111, "", K_PROC },
	{ 112, "", K_PROC }, { 113, "uu", K_PROC }, { 114, "uu", K_PROC }, { 115, "np", K_PROC },
	{ 116, "np", K_PROC }, { 117, "uuu", K_PROC }, { 118, "ppp", K_PROC },
	{ 119, "uuu", K_PROC }, { 120, "ppp", K_PROC }, { 121, "P", K_PROC },
	{ 122, "u", K_PROC }, { 123, "u", K_PROC }, { 124, "P", K_PROC }, { 125, "pp", K_PROC },
	{ 126, "pp", K_PROC }, { 127, "pl", K_SIG }, { 128, "eptl", K_SIG, SPECIAL },
	{ 129, "", K_SIG, SPECIAL }, { 130, "el", K_SIG, SPECIAL }, { 131, "pp", K_SIG },
	{ 132, "sp", K_FS }, { 133, "", K_FS, SPECIAL }, { 135, "x", K_PROC },
	{ 137, "sp", K_FS }, { 138, "fp", K_FS }, { 140, "", K_PROC, SPECIAL },
	{ 141, "", K_PROC, SPECIAL }, { 142, "Pp", K_PROC }, { 143, "Pp", K_PROC },
	{ 144, "", K_PROC, SPECIAL }, { 145, "P", K_PROC }, { 146, "i", K_PROC },
	{ 147, "i", K_PROC }, { 148, "Pp", K_PROC }, { 149, "am", K_MEM }, { 150, "am", K_MEM },
	{ 151, "i", K_MEM }, { 152, "", K_MEM }, { 154, "ipl", K_MISC }, { 157, "", K_PROC, SPECIAL },
	{ 158, "", K_PROC, SPECIAL }, { 160, "", K_PROC, SPECIAL }, { 161, "s", K_FS }, { 162, "", K_FS },
	{ 172, "i", K_MISC }, { 173, "xxi", K_MISC }, { 179, "isxp", K_FS }, { 186, "", K_PROC },
	{ 187, "fxl", K_FS }, { 188, "sspli", K_FS }, { 189, "sspli", K_FS },
	{ 190, "fspli", K_FS }, { 191, "sspl", K_FS }, { 192, "sspl", K_FS },
	{ 193, "fspl", K_FS }, { 194, "spl", K_FS }, { 195, "spl", K_FS }, { 196, "fpl", K_FS },
	{ 197, "ss", K_FS }, { 198, "ss", K_FS }, { 199, "fs", K_FS }, { 200, "", K_SIG, SPECIAL },
	{ 201, "p", K_TIME }, { 202, "pixtpx", K_IPC }, { 203, "Plp", K_PROC },
	{ 204, "Plp", K_PROC }, { 205, "p", K_PROC }, { 206, "np", K_IPC },
	{ 207, "x", K_IPC }, { 208, "xnnpt", K_IPC }, { 209, "xnp", K_IPC },
	{ 210, "xpp", K_IPC }, { 211, "p", K_PROC }, { 213, "n", K_FS, FDRET },
	{ 216, "amiii", K_MEM }, { 217, "fpl", K_FS }, { 218, "p", K_PROC },
	{ 219, "", K_PROC }, { 221, "fxxi", K_FS }, { 222, "ipp", K_TIME },
	{ 223, "xipp", K_TIME }, { 224, "xp", K_TIME }, { 225, "x", K_TIME }, { 226, "x", K_TIME },
	{ 228, "ip", K_TIME }, { 229, "ip", K_TIME }, { 230, "iitp", K_TIME },
	{ 232, "fpnT", K_FS }, { 233, "fifp", K_FS }, { 234, "", K_SIG, SPECIAL },
	{ 235, "sp", K_FS }, { 237, "amipxi", K_MEM }, { 238, "ipx", K_MEM },
	{ 239, "ppxai", K_MEM }, { 240, "sixp", K_IPC, FDRET }, { 241, "s", K_IPC },
	{ 247, "iPpip", K_PROC }, { 248, "sspli", K_MISC }, { 249, "ssspi", K_MISC },
	{ 250, "ixxxx", K_MISC }, { 251, "", K_PROC, SPECIAL }, { 252, "iP", K_PROC },
	{ 253, "", K_FS, FDRET }, { 254, "fsi", K_FS }, { 255, "fi", K_FS },
	{ 256, "PxPP", K_MEM, SPECIAL }, { 257, "osii", K_FS, FDRET }, { 258, "osi", K_FS },
	{ 259, "", K_FS, SPECIAL }, { 260, "osuui", K_FS }, { 261, "osp", K_FS },
	{ 262, "ospi", K_FS }, { 263, "osi", K_FS }, { 264, "osos", K_FS },
	{ 265, "ososi", K_FS }, { 266, "sos", K_FS }, { 267, "ospl", K_FS },
	{ 268, "osi", K_FS }, { 269, "osi", K_FS }, { 270, "npppt", K_FS, SPECIAL },
	{ 271, "pntel", K_FS }, { 272, "i", K_PROC }, { 273, "pl", K_PROC },
	{ 274, "Ppp", K_PROC }, { 275, "fpfpli", K_FS }, { 276, "ffli", K_FS },
	{ 277, "fxxi", K_FS }, { 278, "fqni", K_FS }, { 279, "Pnppp", K_MEM, SPECIAL },
	{ 280, "ospi", K_FS }, { 281, "fpnTel", K_FS }, { 282, "fel", K_SIG, FDRET },
	{ 283, "ii", K_TIME, FDRET }, { 284, "n", K_FS, FDRET }, { 285, "", K_FS, SPECIAL },
	{ 286, "fipp", K_TIME }, { 287, "fp", K_TIME }, { 288, "fppi", K_NET, FDRET },
	{ 289, "feli", K_SIG, FDRET }, { 290, "ni", K_FS, FDRET }, { 291, "i", K_FS, FDRET },
	{ 292, "", K_FS, SPECIAL }, { 293, "pi", K_FS }, { 294, "i", K_FS, FDRET },
	{ 295, "fqnx", K_FS }, { 296, "fqnx", K_FS }, { 297, "", K_SIG, SPECIAL },
	{ 298, "pPiii", K_MISC, FDRET }, { 299, "fpnit", K_NET }, { 302, "Pipp", K_PROC, SPECIAL },
	{ 303, "ospp", K_FS }, { 304, "fpi", K_FS, FDRET }, { 306, "f", K_FS },
	{ 307, "fpni", K_NET }, { 308, "fi", K_PROC }, { 309, "ppp", K_PROC },
	{ 310, "", K_MEM, SPECIAL }, { 311, "", K_MEM, SPECIAL }, { 312, "PPixx", K_PROC, SPECIAL },
	{ 314, "", K_PROC, SPECIAL }, { 315, "Ppii", K_PROC }, { 316, "ososi", K_FS },
	{ 317, "iip", K_MISC }, { 318, "pli", K_MISC }, { 319, "si", K_MEM, FDRET },
	{ 321, "ipl", K_MISC }, { 322, "", K_PROC, SPECIAL }, { 323, "i", K_MEM, FDRET },
	{ 324, "ii", K_MISC }, { 325, "ami", K_MEM }, { 326, "fpfpli", K_FS },
	{ 327, "fqnxi", K_FS }, { 328, "fqnxi", K_FS }, { 329, "amii", K_MEM },
	{ 330, "ii", K_MEM }, { 331, "i", K_MEM }, { 332, "osiip", K_FS },
	{ 333, "xnnptp", K_IPC }, { 334, "plii", K_MISC }, { 424, "fgpi", K_SIG },
	{ 425, "np", K_IPC, FDRET }, { 426, "fiiipl", K_IPC }, { 427, "fipn", K_IPC },
	{ 428, "osi", K_FS, FDRET }, { 434, "Pi", K_PROC, FDRET }, { 435, "", K_PROC, SPECIAL },
	{ 436, "", K_FS, SPECIAL }, { 437, "ospl", K_FS, FDRET }, { 438, "fii", K_PROC, FDRET },
	{ 439, "osii", K_FS }, { 440, "fqnii", K_MEM }, { 441, "fpntel", K_FS },
	{ 443, "ifpi", K_FS }, { 444, "pli", K_MISC, FDRET }, { 445, "fpi", K_MISC },
	{ 446, "ii", K_MISC }, { 447, "i", K_MEM, FDRET }, { 448, "fi", K_MEM },
	{ 449, "pnitl", K_IPC }, { 450, "amii", K_MEM }, { 451, "fppi", K_FS },
	{ 452, "osii", K_FS }, { 453, "xli", K_MEM, SPECIAL }, { 454, "pxxi", K_IPC },
	{ 455, "pxxitl", K_IPC }, { 456, "pixx", K_IPC }, { 457, "plpi", K_FS },
	{ 458, "pplii", K_FS }, { 459, "ipli", K_MISC }, { 460, "ipli", K_MISC },
	{ 461, "pli", K_MISC }, { 462, "ami", K_MEM }, { 463, "osipl", K_FS },
	{ 464, "osipl", K_FS }, { 465, "osipl", K_FS }, { 466, "osis", K_FS },
	{ 468, "ospli", K_FS }, { 469, "ospli", K_FS },
};

/*
 * Left out, as they would end the VM or the test, or change the whole
 * machine: rt_sigreturn (15), exit (60), exit_group (231), ptrace (101),
 * syslog (103: only the reading actions are tried), vhangup (153),
 * pivot_root (155), adjtimex (159), settimeofday/clock_settime/
 * clock_adjtime (164, 227, 305), acct (163), mount/umount (165, 166),
 * swapon/off (167, 168), reboot (169), sethostname/setdomainname (170, 171),
 * init/delete/finit_module (175, 176, 313), kexec (246, 320),
 * fanotify_init/mark (300, 301: a permission event would hold every open
 * in the VM), uretprobe (335), the mount API (428-433 but open_tree,
 * 442), kill/tkill/tgkill of others (only the caller and its own group).
 */

/* ---- the fuzzed process --------------------------------------------------- */

struct report {
	uint64_t calls[NKINDS];
	uint64_t failed;
	uint64_t handled;
};

static struct report rep;
static int pool[MAXPOOL], npool, nbase;
/*
 * Buffers the kernel may write through random pointers and lengths: each
 * in its own mapping with nothing after it, so that an overlong write
 * stops there instead of running over the fuzzer's own variables.
 */
#define scratch	((char *)0x300000000000UL)	/* 64 KiB */
#define craft	((char *)0x300000100000UL)	/* 8 KiB: structures the fuzzer builds */
#define strings	((char *)0x300000200000UL)	/* 4 KiB: the paths */
#define SCRATCH_SIZE 65536

/* The call being made, for the driver to read if the process is stuck. */
static struct {
	long nr, args[6], n;
} cur;
static const char * const paths[] = {
	"f0", "f1", "d0", "d0/f2", "/tmp/fuzz/f3", "/mnt/disk/fuzz/f4", "/mnt/disk/fuzz/d1",
	"/proc/self/ft_level", "/proc/self/mem", "/proc/procft", "/nonexistent/x", "", ".",
	"/tmp/fuzz", "/proc/self/maps", "/tmp/fuzz/d2/../f5",
};
static uint64_t pathoff[ARRAY_SIZE(paths)];
static pid_t me, last_child;

static void on_signal(int sig)
{
	rep.handled++;
}

static void add_fd(long fd)
{
	if (fd < 0 || fd >= REPORT_FD)
		return;
	if (npool < MAXPOOL)
		pool[npool++] = fd;
	else
		pool[nbase + below(MAXPOOL - nbase)] = fd;
}

static long any(void)
{
	static const long v[] = {
		0, 1, -1, 2, 4095, 4096, 1L << 31, 0x7fffffff, 1L << 40, -4096, (long)KADDR,
		(long)NONCANON, 0xffffffffL, 64, 100000,
	};

	switch (below(8)) {
	case 0:
		return rnd();
	case 1:
		return below(256);
	case 2:
		return (long)(ARENA + below(ARENA_SIZE));
	default:
		return PICK(v);
	}
}

static long gen_ptr(void)
{
	switch (below(20)) {
	case 0:
		return 0;
	case 1:
		return KADDR + below(1 << 20);
	case 2:
		return NONCANON;
	case 3:
		return -1;
	case 4:
		return (long)(ARENA + ARENA_SIZE - 1 - below(16));
	case 5:
		return 1L << 40;
	case 6 ... 12:
		return (long)(ARENA + (below(2) ? below(ARENA_PAGES) * 4096 : below(ARENA_SIZE)));
	default:
		return (long)(scratch + (below(2) ? below(16) * 4096 : below(SCRATCH_SIZE)));
	}
}

static long gen_len(void)
{
	static const long v[] = {
		0, 1, 2, 8, 16, 64, 4095, 4096, 4097, 65536, 1 << 20, 1L << 31, -1, 1L << 40,
	};

	return below(3) ? PICK(v) : (long)below(8192);
}

static long gen_fd(void)
{
	static const long v[] = { -1, 0, 1, 2, 999, 1023, 65536, -100, 0x7fffffff };

	if (npool && below(8))
		return pool[below(npool)];
	return PICK(v);
}

static long gen_timespec(void)
{
	struct timespec *ts = (struct timespec *)(craft + 64 * below(8));

	switch (below(10)) {
	case 0:
		return 0;
	case 1:
		return gen_ptr();
	default:
		ts->tv_sec = below(10) ? 0 : -1;
		ts->tv_nsec = below(4) ? below(20000000) : (long)rnd();
		return (long)ts;
	}
}

/* A signal set without SIGALRM (the timer that breaks blocking calls). */
static long gen_sigset(void)
{
	uint64_t *set = (uint64_t *)(craft + 1024);

	if (!below(10))
		return 0;
	*set = rnd() & ~(1ULL << (SIGALRM - 1));
	return (long)set;
}

static long gen_iovec(void)
{
	struct iovec *iov = (struct iovec *)(craft + 2048);
	int i;

	if (!below(5))
		return gen_ptr();
	for (i = 0; i < 16; i++) {
		iov[i].iov_base = below(8) ? (void *)gen_ptr() : NULL;
		iov[i].iov_len = below(4) ? below(4097) : gen_len();
	}
	return (long)iov;
}

static long gen_arena(void)
{
	switch (below(20)) {
	case 0:
		return 0;
	case 1:
		return (long)(ARENA - 4096);
	case 2:
		return (long)(ARENA + below(ARENA_SIZE));
	default:
		return (long)(ARENA + below(ARENA_PAGES) * 4096);
	}
}

/* A length from @addr to at most the arena's end (or a boundary value). */
static long gen_mlen(long addr, int strict)
{
	long room = (long)(ARENA + ARENA_SIZE) - addr;

	if (!strict && !below(20))
		return PICK(((const long[]){ 0, 1, 1L << 40, -1, -4096 }));
	if (room <= 0 || room > (long)ARENA_SIZE)
		room = 4096;
	return below(4) ? (below(room / 4096) + 1) * 4096 : below(room) + 1;
}

static long gen_pid(void)
{
	switch (below(6)) {
	case 0:
		return 0;
	case 1:
		return last_child ? last_child : 999999;
	case 2:
		return PICK(((const long[]){ 999999, 0x7fffffff, -12345 }));
	default:
		return me;
	}
}

static long gen_sig(void)
{
	static const int v[] = {
		0, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGURG, SIGWINCH, SIGCONT, 34, 35, 40,
	};
	int s = PICK(v);

	/* Rarely one that kills: the driver then starts another process. */
	if (!below(400))
		s = PICK(((const int[]){ SIGKILL, SIGTERM, SIGSEGV, SIGBUS }));
	return s;
}

static long gen(char c, long prev)
{
	switch (c) {
	case 'f':
		return gen_fd();
	case 'o':
		return below(3) ? gen_fd() : AT_FDCWD;
	case 'p':
		return gen_ptr();
	case 's':
		if (below(12))
			return (long)(strings + pathoff[below(ARRAY_SIZE(paths))]);
		return below(2) ? gen_ptr() : (long)(scratch + below(4096));
	case 'l':
		return gen_len();
	case 'i':
		switch (below(6)) {
		case 0:
			return 0;
		case 1:
			return -1;
		case 2:
			return 1L << below(32);
		case 3:
			return below(16);
		default:
			return (unsigned int)rnd();
		}
	case 'x':
		return any();
	case 'a':
		return gen_arena();
	case 'm':
		return gen_mlen(prev, 0);
	case 'P':
		return gen_pid();
	case 'u':
		return PICK(((const long[]){ 0, 0, 0, 65534, -1, 1000 }));
	case 'n':
		return below(10) ? (long)below(17) : PICK(((const long[]){ 1024, -1, 1L << 31 }));
	case 't':
		return gen_timespec();
	case 'T':
		return PICK(((const long[]){ 0, 0, 1, 10, -1 }));
	case 'q':
		return gen_iovec();
	case 'e':
		return gen_sigset();
	case 'g':
		return gen_sig();
	}
	return 0;
}

/* Safe clone flags: never CLONE_VM, CLONE_THREAD, CLONE_SIGHAND, CLONE_PARENT, CLONE_SETTLS. */
static unsigned long clone_flags(void)
{
	static const unsigned long ok[] = {
		CLONE_FS, CLONE_FILES, CLONE_SYSVSEM, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
		CLONE_NEWPID, CLONE_NEWNS, CLONE_UNTRACED, CLONE_IO, CLONE_VFORK, CLONE_PIDFD,
		CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID,
	};
	unsigned long f = 0;
	int i;

	for (i = 0; i < 3; i++)
		if (below(3) == 0)
			f |= PICK(ok);
	return f;
}

static long fork_result(long r)
{
	if (r == 0)
		_exit(0);
	if (r > 0)
		last_child = r;
	return r;
}

/* The calls that need arguments shaped so as not to end the test. */
static long special(const struct call *c, long *a)
{
	long r, addr, len;

	switch (c->nr) {
	case SYS_mmap:
		/*
		 * No MAP_GROWSDOWN: the kernel answers a remote access next to
		 * such a mapping (process_vm_writev() of the arena) with a stack
		 * dump of its own ("GUP no longer grows the stack"), which the
		 * harness would take for a report.
		 */
		addr = below(8) ? gen_arena() : 0;
		len = gen_mlen(addr ? addr : (long)ARENA, 1);
		a[2] = below(8);
		a[3] = PICK(((const long[]){ MAP_PRIVATE, MAP_SHARED, 3, 0 })) |
		       (below(2) ? MAP_ANONYMOUS : 0) | (below(2) ? MAP_FIXED : 0) |
		       (below(8) ? 0 : MAP_FIXED_NOREPLACE) | (below(6) ? 0 : MAP_POPULATE) |
		       (below(8) ? 0 : MAP_NORESERVE) |
		       (below(10) ? 0 : MAP_LOCKED) | (below(12) ? 0 : MAP_HUGETLB) |
		       (below(12) ? 0 : MAP_32BIT) | (below(12) ? 0 : 0x80000 /* MAP_SYNC */);
		a[4] = gen_fd();
		a[5] = below(4) ? below(16) * 4096 : any();
		r = syscall(c->nr, addr, len, a[2], a[3], a[4], a[5]);
		if (r != -1 && (r < (long)ARENA || r >= (long)(ARENA + ARENA_SIZE)))
			munmap((void *)r, len);
		return r;
	case SYS_mremap:
		addr = gen_arena();
		a[1] = gen_mlen(addr, 1);
		a[4] = gen_arena();
		a[2] = gen_mlen(a[4] ? a[4] : (long)ARENA, 1);
		a[3] = below(4) ? MREMAP_MAYMOVE : below(8);
		if (a[3] & MREMAP_FIXED && !a[4])
			a[4] = (long)ARENA;
		r = syscall(c->nr, addr, a[1], a[2], a[3], a[4]);
		if (r != -1 && (r < (long)ARENA || r >= (long)(ARENA + ARENA_SIZE)))
			munmap((void *)r, a[2]);
		return r;
	case SYS_brk:
		return syscall(c->nr, below(2) ? 0 : gen_ptr());
	case SYS_rt_sigaction:
		a[0] = below(65);
		if (a[0] == SIGALRM)
			a[0] = SIGUSR1;
		return syscall(c->nr, a[0], gen_ptr(), gen_ptr(), below(4) ? 8 : gen_len());
	case SYS_rt_sigprocmask:
		return syscall(c->nr, below(4), gen_sigset(), gen_ptr(), below(4) ? 8 : gen_len());
	case SYS_ioctl:
		a[1] = PICK(((const long[]){ FIONREAD, FIONBIO, TCGETS, FIOCLEX, FIONCLEX, FIOASYNC,
			PROCFT_IOC_GET_LEVEL, PROCFT_IOC_GET_STATUS, PROCFT_IOC_GET_INFO,
			0x541b, 0x5421, (long)rnd() }));
		return syscall(c->nr, gen_fd(), a[1], gen_ptr());
	case SYS_select:
	case SYS_pselect6: {
		struct timeval *tv = (struct timeval *)(craft + 4096);

		tv->tv_sec = 0;
		tv->tv_usec = below(20000);
		return syscall(c->nr, gen('n', 0), gen_ptr(), gen_ptr(), gen_ptr(),
			       c->nr == SYS_select ? (long)tv : gen_timespec(), gen_ptr());
	}
	case SYS_madvise: {
		/*
		 * Not MADV_DONTFORK: it ends protection, and the mapping it
		 * marks keeps the process from being protected again
		 * (ft_refuse tests both), so every process would soon run
		 * unprotected.
		 */
		static const long adv[] = {
			MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED,
			MADV_FREE, MADV_REMOVE, MADV_DOFORK, MADV_MERGEABLE,
			MADV_UNMERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP,
			MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT,
			22 /* POPULATE_READ */, 23 /* POPULATE_WRITE */, 25 /* COLLAPSE */,
			26 /* GUARD_INSTALL */, 27 /* GUARD_REMOVE */, 0x7fff,
		};

		addr = gen_arena();
		/* A poisoned frame is lost for good: one page, rarely. */
		if (!below(60))
			return syscall(c->nr, (long)(ARENA + below(ARENA_PAGES) * 4096), 4096,
				       below(2) ? MADV_HWPOISON : 101 /* SOFT_OFFLINE */);
		return syscall(c->nr, addr, gen_mlen(addr, 0), PICK(adv));
	}
	case SYS_shmget: {
		long id = syscall(c->nr, IPC_PRIVATE, gen_mlen((long)ARENA, 1), IPC_CREAT | 0600);

		if (id < 0)
			return id;
		addr = below(2) ? gen_arena() : 0;
		r = syscall(SYS_shmat, id, addr, below(2) ? SHM_RDONLY : (below(2) ? SHM_REMAP : 0));
		syscall(SYS_shmctl, id, IPC_RMID, 0);
		if (r != -1 && (r < (long)ARENA || r >= (long)(ARENA + ARENA_SIZE)))
			syscall(SYS_shmdt, r);
		return r;
	}
	case SYS_dup2:
	case SYS_dup3:
		a[1] = gen_fd();
		if (a[1] == REPORT_FD || !below(10))
			a[1] = 3 + below(60);
		r = syscall(c->nr, gen_fd(), a[1], below(2) ? O_CLOEXEC : gen('i', 0));
		add_fd(r);
		return r;
	case SYS_setitimer: {
		struct itimerval *it = (struct itimerval *)(craft + 4096 + 64);

		it->it_interval.tv_sec = 0;
		it->it_interval.tv_usec = below(200000);
		it->it_value = it->it_interval;
		return syscall(c->nr, below(3), below(8) ? (long)it : gen_ptr(), gen_ptr());
	}
	case SYS_clone:
		return fork_result(syscall(c->nr, SIGCHLD | clone_flags(), 0, scratch, scratch + 8, 0));
	case SYS_fork:
		return fork_result(syscall(c->nr));
	case SYS_vfork:
		r = vfork();
		if (r == 0)
			_exit(0);
		return fork_result(r);
	case SYS_clone3: {
		struct clone_args *ca = (struct clone_args *)(craft + 4096 + 256);

		memset(ca, 0, sizeof(*ca) + 64);
		ca->flags = clone_flags() & ~(unsigned long)CLONE_PARENT_SETTID;
		/* Not a stop signal: the process would stop when the child exits. */
		ca->exit_signal = below(8) ? SIGCHLD : gen_sig();
		ca->pidfd = (uint64_t)(uintptr_t)scratch;
		ca->child_tid = (uint64_t)(uintptr_t)(scratch + 8);
		return fork_result(syscall(c->nr, ca, PICK(((const long[]){ 64, 80, 88, 96, 8 }))));
	}
	case SYS_execve:
	case SYS_execveat: {
		static const long bad[] = { 0, (long)KADDR, -1 };
		long path = below(2) ? PICK(bad) : (long)(strings + pathoff[below(4)]);

		/* Only ever a path that cannot run: f0/f1/d0/d0/f2 hold garbage. */
		if (c->nr == SYS_execve)
			return syscall(c->nr, path, gen_ptr(), gen_ptr());
		return syscall(c->nr, gen('o', 0), path, gen_ptr(), gen_ptr(), below(2) ? 0 : 0x1000);
	}
	case SYS_kill:
		return syscall(c->nr, below(4) ? me : (below(2) ? 0 : -me), gen_sig());
	case SYS_tkill:
		return syscall(c->nr, me, gen_sig());
	case SYS_tgkill:
		return syscall(c->nr, me, me, gen_sig());
	case SYS_rt_sigqueueinfo:
		return syscall(c->nr, me, gen_sig(), gen_ptr());
	case SYS_rt_tgsigqueueinfo:
		return syscall(c->nr, me, me, gen_sig(), gen_ptr());
	case SYS_rt_sigtimedwait:
		return syscall(c->nr, gen_sigset(), gen_ptr(), gen_timespec(), 8);
	case SYS_rt_sigsuspend:
		return syscall(c->nr, gen_sigset(), 8);
	case SYS_syslog:
		return syscall(c->nr, PICK(((const long[]){ 3, 9, 10 })), gen_ptr(), gen_len());
	case SYS_mknod:
	case SYS_mknodat:
		/* Regular files, fifos and sockets only: no device nodes. */
		a[0] = (below(4) ? S_IFREG : below(2) ? S_IFIFO : S_IFSOCK) | (rnd() & 07777);
		if (c->nr == SYS_mknod)
			return syscall(c->nr, gen('s', 0), a[0], any());
		return syscall(c->nr, gen('o', 0), gen('s', 0), a[0], any());
	case SYS_getpriority:
	case SYS_setpriority:
		return syscall(c->nr, PRIO_PROCESS, gen_pid(), (long)below(40) - 20);
	case SYS_sched_setscheduler:
		return syscall(c->nr, gen_pid(), PICK(((const long[]){ 0, 3, 5, 0x40000000 })),
			       gen_ptr());
	case SYS_sched_setattr: {
		uint32_t *sa = (uint32_t *)(craft + 4096 + 512);

		memset(sa, 0, 64);
		sa[0] = below(2) ? 48 : 56;
		sa[1] = PICK(((const uint32_t[]){ 0, 3, 5 }));
		sa[4] = below(40) - 20;
		return syscall(c->nr, gen_pid(), sa, 0);
	}
	case SYS_arch_prctl:
		return syscall(c->nr, PICK(((const long[]){ 0x1003, 0x1004, 0x1011, 0x3001 })),
			       gen_ptr());
	case SYS_prctl:
		a[0] = below(80);
		if (a[0] == PR_SET_NAME || a[0] == PR_SET_MM || a[0] == PR_SET_CHILD_SUBREAPER ||
		    a[0] == PR_SET_SECCOMP)
			a[0] = PR_GET_DUMPABLE;
		return syscall(c->nr, a[0], any(), any(), any(), any());
	case SYS_setrlimit:
	case SYS_prlimit64: {
		uint64_t *rl = (uint64_t *)(craft + 4096 + 1024);

		a[0] = below(16);
		/* No RLIMIT_CPU or RLIMIT_NOFILE below what the fuzzer holds. */
		rl[0] = below(2) ? ~0ULL : 1ULL << below(40);
		rl[1] = below(2) ? ~0ULL : rl[0];
		if (a[0] == RLIMIT_CPU || a[0] == RLIMIT_NOFILE || a[0] == RLIMIT_AS ||
		    a[0] == RLIMIT_DATA || a[0] == RLIMIT_STACK)
			rl[0] = rl[1] = ~0ULL;
		if (c->nr == SYS_setrlimit)
			return syscall(c->nr, a[0], below(8) ? (long)rl : gen_ptr());
		return syscall(c->nr, below(2) ? 0 : me, a[0], below(8) ? (long)rl : gen_ptr(),
			       gen_ptr());
	}
	case SYS_ioprio_set:
		return syscall(c->nr, 1 /* IOPRIO_WHO_PROCESS */, gen_pid(), any());
	case SYS_move_pages:
	case SYS_migrate_pages:
		a[0] = below(2) ? 0 : me;
		if (c->nr == SYS_migrate_pages)
			return syscall(c->nr, a[0], 64, gen_ptr(), gen_ptr());
		return syscall(c->nr, a[0], gen('n', 0), gen_ptr(), gen_ptr(), gen_ptr(),
			       below(2) ? 2 /* MPOL_MF_MOVE */ : any());
	case SYS_process_vm_readv:
	case SYS_process_vm_writev:
		return syscall(c->nr, me, gen_iovec(), gen('n', 0), gen_iovec(), gen('n', 0), 0);
	case SYS_kcmp:
		return syscall(c->nr, me, below(2) ? me : gen_pid(), below(9), gen_fd(), gen_fd());
	case SYS_close_range:
		a[0] = gen_fd();
		a[1] = gen_fd();
		if (a[1] < 0 || a[1] >= REPORT_FD)
			a[1] = REPORT_FD - 1;
		return syscall(c->nr, a[0], a[1], below(8));
	case SYS_fallocate:
		return syscall(c->nr, gen_fd(), below(8), below(1 << 20), below(1 << 20));
	case SYS_map_shadow_stack:
		r = syscall(c->nr, 0, gen_mlen((long)ARENA, 1), below(2));
		if (r > 0)
			munmap((void *)r, 4096);
		return r;
	}
	return -1;
}

static void set_strings(void)
{
	size_t off = 0, i;

	for (i = 0; i < ARRAY_SIZE(paths); i++) {
		pathoff[i] = off;
		memcpy(strings + off, paths[i], strlen(paths[i]) + 1);
		off += strlen(paths[i]) + 1;
	}
}

/* Breaks a blocking call every 50 ms. */
static void arm_timer(void)
{
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

static void fuzz_child(uint64_t seed, int report, int slot)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	int i, n, sv[2], p[2], dn;
	long args[6], r;

	rng = seed;
	me = getpid();
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Nothing it writes to 0, 1 or 2 may reach the test's output. */
	dn = open("/dev/null", O_RDWR);
	dup2(dn, 0);
	dup2(dn, 1);
	dup2(dn, 2);
	if (dup2(report, REPORT_FD) < 0)
		_exit(70);
	close(report);
	fcntl(REPORT_FD, F_SETFL, O_NONBLOCK);
	for (i = 3; i < REPORT_FD; i++)
		if (i != dn)
			close(i);
	mkdir("/tmp/fuzz", 0755);
	mkdir("/mnt/disk/fuzz", 0755);
	if (chdir(slot ? "/mnt/disk/fuzz" : "/tmp/fuzz"))
		chdir("/tmp/fuzz");
	add_fd(dn);
	if (!pipe2(p, O_NONBLOCK)) {
		add_fd(p[0]);
		add_fd(p[1]);
	}
	if (!socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) {
		add_fd(sv[0]);
		add_fd(sv[1]);
	}
	add_fd(open("/tmp/fuzz/f3", O_RDWR | O_CREAT, 0644));
	add_fd(open("/mnt/disk/fuzz/f4", O_RDWR | O_CREAT, 0644));
	add_fd(open("/mnt/disk/data.bin", O_RDONLY));
	add_fd(open("/dev/procft", O_RDWR | O_NONBLOCK));
	add_fd(open("/tmp/fuzz", O_RDONLY | O_DIRECTORY));
	r = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (r >= 0 && !bind(r, (struct sockaddr *)&in, sizeof(in)))
		add_fd(r);
	r = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (r >= 0 && !bind(r, (struct sockaddr *)&in, sizeof(in)) && !listen(r, 4))
		add_fd(r);
	add_fd(eventfd(0, EFD_NONBLOCK));
	add_fd(syscall(SYS_memfd_create, "fuzz", 0));
	add_fd(syscall(SYS_pidfd_open, me, 0));
	nbase = npool;
	if (mmap(scratch, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != scratch ||
	    mmap(craft, 8192, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != craft ||
	    mmap(strings, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != strings)
		_exit(72);
	for (i = 0; i < (int)SCRATCH_SIZE; i++)
		scratch[i] = rnd();
	if (mmap(ARENA, ARENA_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != ARENA)
		_exit(71);
	for (i = 0; i < (int)(ARENA_SIZE / 8); i++)
		((uint64_t *)ARENA)[i] = rnd();
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	sigaction(SIGVTALRM, &sa, NULL);
	for (i = 34; i <= 64; i++)
		sigaction(i, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	arm_timer();
	/* Tell the driver it may protect us now. */
	write(REPORT_FD, &rep, sizeof(rep));

	for (n = 0; n < CALLS_PER_CHILD; n++) {
		const struct call *c = &calls[below(ARRAY_SIZE(calls))];

		set_strings();
		cur.n = n;
		cur.nr = c->nr;
		if (c->flags & SPECIAL) {
			memset(cur.args, 0, sizeof(cur.args));
			r = special(c, args);
		} else {
			int len = strlen(c->args);

			for (i = 0; i < 6; i++)
				args[i] = i < len ? gen(c->args[i], i ? args[i - 1] : 0) : any();
			if (c->nr == SYS_close && args[0] == REPORT_FD)
				args[0] = -1;
			memcpy(cur.args, args, sizeof(cur.args));
			r = syscall(c->nr, args[0], args[1], args[2], args[3], args[4], args[5]);
		}
		/* alarm() and setitimer() may have stopped the timer. */
		if (c->nr == SYS_alarm || c->nr == SYS_setitimer)
			arm_timer();
		rep.calls[c->kind]++;
		if (r == -1)
			rep.failed++;
		else if (c->flags & FDRET)
			add_fd(r);
		if (n % 16 == 15) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			write(REPORT_FD, &rep, sizeof(rep));
		}
		if (n % 256 == 255) {
			/* Bound what it holds: descriptors made since the start. */
			syscall(SYS_close_range, 3 + nbase + 8, REPORT_FD - 1, 0);
			npool = nbase;
		}
	}
	write(REPORT_FD, &rep, sizeof(rep));
	_exit(0);
}

/* ---- the ioctl and procfs writer ------------------------------------------- */

static pid_t targets[16];
static int ntargets;

static long ctl_pid(void)
{
	static const long v[] = { 0, -1, 1L << 31, 0x7fffffff, 999999, -100 };

	if (ntargets && below(3))
		return targets[below(ntargets)];
	return below(3) ? PICK(v) : getpid();
}

static void ioctl_child(uint64_t seed, int report, int targets_fd)
{
	static const char * const texts[] = {
		"abc", "-1", "99999999999999999999999", "3\n", "", "0", "1", "2", "1\n", "2 ",
		" 1", "+1", "0x1", "\n", "4", "5", "18446744073709551617", "1\n2\n", "0\0002",
	};
	static const uint32_t cmds[] = {
		PROCFT_IOC_SET_LEVEL, PROCFT_IOC_GET_LEVEL, PROCFT_IOC_GET_STATUS,
		PROCFT_IOC_GET_INFO, PROCFT_IOC_FAIL,
	};
	static char big[4097];
	struct report r = { 0 };
	char *buf, path[64], rd[4096];
	int fd, i, n, pfd;

	rng = seed;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fcntl(targets_fd, F_SETFL, O_NONBLOCK);
	memset(big, '1', 4096);
	/* A page, then an unmapped one: structures that cross into it. */
	buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(buf + 4096, 4096);
	fd = open("/dev/procft", O_RDWR | O_NONBLOCK);
	for (n = 0; n < 20000; n++) {
		uint32_t cmd;
		long arg;
		int k = below(10);

		while (read(targets_fd, targets, sizeof(targets)) > 0)
			ntargets = 16;
		while (ntargets && !targets[ntargets - 1])
			ntargets--;
		if (k < 6) {
			cmd = PICK(cmds);
			switch (below(5)) {
			case 0:
				cmd = _IOC(below(4), PROCFT_IOC_MAGIC, below(16), below(256));
				break;
			case 1:
				cmd ^= 1U << below(32);
				break;
			}
			for (i = 0; i < 4096; i += 8)
				*(uint64_t *)(buf + i) = below(4) ? 0 : rnd();
			arg = (long)(buf + PICK(((const int[]){ 0, 0, 0, 1, 4096 - 80, 4096 - 8,
								  4096 - 4, 4096 - 39 })));
			if (!below(8))
				arg = PICK(((const long[]){ 0, (long)KADDR, -1, (long)NONCANON }));
			if (arg > (long)buf && arg < (long)buf + 4096) {
				char *s = (char *)arg;
				long room = buf + 4096 - s;
				int32_t v;

				/* The pid where each structure has it; a plausible size. */
				if (room >= 4) {
					v = ctl_pid();
					memcpy(s, &v, 4);
				}
				if (room >= 8) {
					v = below(2) ? ctl_pid() :
						PICK(((const int32_t[]){ 0, 4, 79, 80, 88, 4096, -1 }));
					/* GET_STATUS and GET_INFO: size first, pid second. */
					if ((cmd == PROCFT_IOC_GET_STATUS || cmd == PROCFT_IOC_GET_INFO) &&
					    below(4)) {
						memcpy(s + 4, &v, 4);
						v = PICK(((const int32_t[]){ 80, 88, 40, 48, 4096, 0 }));
						memcpy(s, &v, 4);
					} else {
						v = below(4) ? (int32_t)below(4) : (int32_t)rnd();
						memcpy(s + 4, &v, 4);
					}
				}
				if (room >= 24 && cmd == PROCFT_IOC_FAIL && below(2)) {
					v = below(2);
					memcpy(s + 8, &v, 4);
					if (below(2))
						memset(s + 12, 0, 4);
					*(uint64_t *)(s + 16) = (uint64_t)(uintptr_t)
						(ARENA + below(ARENA_SIZE));
				}
			}
			/* No random pid from random bytes ever reaches SET_LEVEL or FAIL. */
			if ((cmd == PROCFT_IOC_SET_LEVEL || cmd == PROCFT_IOC_FAIL) &&
			    arg > (long)buf && arg < (long)buf + 4096 - 4) {
				int32_t v = ctl_pid();

				memcpy((char *)arg, &v, 4);
			}
			ioctl(fd, cmd, arg);
			r.calls[K_IPC]++;
		} else if (k < 8) {
			pid_t pid = ctl_pid();

			snprintf(path, sizeof(path), "/proc/%d/ft_level", pid ? pid : getpid());
			pfd = open(path, below(4) ? O_WRONLY : O_RDWR);
			if (pfd >= 0) {
				if (below(6)) {
					const char *t = PICK(texts);

					/* "0\0002": a NUL inside. */
					write(pfd, t, t == texts[ARRAY_SIZE(texts) - 1] ? 3 : strlen(t));
				} else {
					write(pfd, big, below(2) ? 4096 : 4097);
				}
				if (below(3))
					pread(pfd, rd, below(64), below(4));
				close(pfd);
			}
			r.calls[K_FS]++;
		} else if (k < 9) {
			pfd = open("/proc/procft", O_RDONLY);
			if (pfd >= 0) {
				lseek(pfd, below(4) ? 0 : below(512), SEEK_SET);
				while (read(pfd, rd, below(2) ? sizeof(rd) : 1 + below(64)) > 0)
					;
				close(pfd);
			}
			r.calls[K_FS]++;
		} else {
			/* The event log: odd sizes, odd positions, non-blocking. */
			lseek(fd, PICK(((const long[]){ 0, 1, 1L << 40, -1, 5 })), SEEK_SET);
			read(fd, rd, PICK(((const int[]){ 0, 1, 16, 4096 })));
			if (!below(20)) {
				close(fd);
				fd = open("/dev/procft", O_RDWR | O_NONBLOCK);
			}
			r.calls[K_FS]++;
		}
		if (n % 16 == 15)
			write(report, &r, sizeof(r));
		usleep(below(3000));
	}
	write(report, &r, sizeof(r));
	_exit(0);
}

/* ---- the driver ------------------------------------------------------------ */

struct proc {
	pid_t pid;
	int rfd;
	int want;		/* level the driver wants it at */
	int started;
	struct report last;
	struct timespec seen;	/* last report */
};

static struct proc fz[NFUZZ], ictl;
static int targets_pipe[2];
static struct report total, ctl_total;
static long n_level_ioctl, n_level_proc, n_reprotect, n_lose0, n_losek, n_corrupt, n_stops;
static long n_mce, n_mce_skip, n_children, n_watchdog, n_ioctl_runs;
static long deaths[65], exits_clean, exits_other;
static pid_t stopped[8];
static struct timespec stopped_until[8];
static pid_t dup_seen[4096];
static int ndup_seen, stuck;
static char stuck_msg[256];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double secs(struct timespec *t)
{
	return t->tv_sec + t->tv_nsec / 1e9;
}

static void stamp(struct timespec *t)
{
	clock_gettime(CLOCK_MONOTONIC, t);
}

static void note_dup(pid_t pid)
{
	int i;

	for (i = 0; i < ndup_seen; i++)
		if (dup_seen[i] == pid)
			return;
	if (ndup_seen < (int)ARRAY_SIZE(dup_seen))
		dup_seen[ndup_seen++] = pid;
}

/* Replicas of @pid now (primary first), ready or not; their number. */
static int group_pids(pid_t pid, pid_t *reps)
{
	char line[256], *p;
	int n = 0;

	if (procft_line(pid, line, sizeof(line)) != 1)
		return 0;
	p = strstr(line, "replicas=");
	if (!p)
		return 0;
	for (p += 9; n < 8;) {
		reps[n] = strtol(p, &p, 10);
		if (n)
			note_dup(reps[n]);
		n++;
		if (*p++ != ',')
			break;
	}
	return n;
}

static void publish_targets(void)
{
	pid_t t[16] = { 0 };
	pid_t reps[8];
	int i, j, k, n = 0;

	for (i = 0; i < NFUZZ; i++) {
		if (!fz[i].pid)
			continue;
		t[n++] = fz[i].pid;
		k = group_pids(fz[i].pid, reps);
		for (j = 1; j < k && n < 16; j++)
			t[n++] = reps[j];
	}
	write(targets_pipe[1], t, sizeof(t));
}

static void drain(struct proc *p)
{
	struct report r;
	int got = 0;

	while (read(p->rfd, &r, sizeof(r)) == sizeof(r)) {
		uint64_t sum = 0;
		int k;

		for (k = 0; k < NKINDS; k++)
			sum += r.calls[k];
		/* Counts from a process that wrote over its own memory are no counts. */
		if (sum <= 100000)
			p->last = r;
		got = 1;
	}
	if (got) {
		stamp(&p->seen);
		p->started = 1;
	}
}

static void account(struct proc *p, int st)
{
	struct report *to = p == &ictl ? &ctl_total : &total;
	int k;

	drain(p);
	for (k = 0; k < NKINDS; k++)
		to->calls[k] += p->last.calls[k];
	to->failed += p->last.failed;
	to->handled += p->last.handled;
	if (p == &ictl)
		;
	else if (WIFSIGNALED(st))
		deaths[WTERMSIG(st) & 63]++;
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		exits_clean++;
	else
		exits_other++;
	close(p->rfd);
	memset(p, 0, sizeof(*p));
}

static pid_t start_proc(struct proc *p, int which)
{
	uint64_t seed = rnd();
	int r[2];

	if (pipe(r))
		die("pipe");
	fcntl(r[0], F_SETFL, O_NONBLOCK);
	p->pid = fork();
	if (p->pid == 0) {
		close(r[0]);
		if (which < 0)
			ioctl_child(seed, r[1], targets_pipe[0]);
		fuzz_child(seed, r[1], which);
	}
	close(r[1]);
	p->rfd = r[0];
	p->want = which < 0 ? 0 : 1 + which;
	stamp(&p->seen);
	if (which < 0)
		n_ioctl_runs++;
	else
		n_children++;
	return p->pid;
}

/* Kills @p (it is stuck, or the run is over); 0, or -1 if it does not die. */
static void dump_task(pid_t pid);

static int finish(struct proc *p)
{
	int st, i;

	kill(p->pid, SIGKILL);
	for (i = 0; i < 2000; i++) {
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			account(p, st);
			return 0;
		}
		usleep(10000);
	}
	snprintf(stuck_msg, sizeof(stuck_msg), "pid %d does not die of SIGKILL in 20 s", p->pid);
	dump_task(p->pid);
	return -1;
}

static void dump_task(pid_t pid)
{
	char path[64];
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0 && pread(fd, &cur, sizeof(cur), (off_t)(uintptr_t)&cur) == sizeof(cur))
		tap_diag("pid %d: call #%ld: %ld (%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)", pid, cur.n,
			 cur.nr, cur.args[0], cur.args[1], cur.args[2], cur.args[3], cur.args[4],
			 cur.args[5]);
	if (fd >= 0)
		close(fd);
	for (i = 0; i < 5; i++, usleep(200000))
		run_cmd("echo \"# $(cat /proc/%d/syscall 2>&1)\"; sed 's/^/#   /' /proc/%d/stack",
			pid, pid);
	run_cmd("for f in stat wchan stack; do echo \"# %d $f: $(cat /proc/%d/$f 2>&1)\"; done",
		pid, pid);
}

static void continue_stopped(int all)
{
	struct timespec t;
	int i;

	stamp(&t);
	for (i = 0; i < (int)ARRAY_SIZE(stopped); i++) {
		if (stopped[i] && (all || secs(&t) >= secs(&stopped_until[i]))) {
			kill(stopped[i], SIGCONT);
			stopped[i] = 0;
		}
	}
}

static void machine_check(struct proc *p)
{
	pid_t reps[8];
	int n = group_pids(p->pid, reps);
	pid_t victim = n ? reps[below(n)] : p->pid;
	uint64_t pfn = pfn_of(victim, ARENA + below(ARENA_PAGES) * 4096), fl;

	fl = pfn ? kpage_flags(pfn) : 0;
	/* Not the zero page (bit 24), not a frame already retired. */
	if (!pfn || !fl || (fl >> 24 & 1) || (fl >> KPF_HWPOISON & 1)) {
		n_mce_skip++;
		return;
	}
	if (host_inject_mce(pfn * 4096) == 0)
		n_mce++;
	else
		n_mce_skip++;
}

static void poke(struct proc *p)
{
	struct procft_fail f = { .pid = p->pid };
	char text[8];
	pid_t reps[8];
	int n, k, lvl;

	switch (below(20)) {
	case 0 ... 3:
		lvl = PICK(((const int[]){ 0, 1, 1, 2, 2, 2, 3 }));
		p->want = lvl ? lvl : 0;
		if (below(2)) {
			n_level_ioctl += ioctl_set(p->pid, lvl) == 0;
		} else {
			snprintf(text, sizeof(text), below(2) ? "%d" : "%d\n", lvl);
			n_level_proc += proc_write(p->pid, text) == 0;
		}
		break;
	case 4 ... 5:
		f.replica = below(2) ? 0 : 1 + below(2);
		f.how = PROCFT_FAIL_LOSE;
		if (!ioctl(ft_open(), PROCFT_IOC_FAIL, &f))
			*(f.replica ? &n_losek : &n_lose0) += 1;
		break;
	case 7 ... 8:
		f.replica = below(3);
		f.how = PROCFT_FAIL_CORRUPT;
		f.addr = (uint64_t)(uintptr_t)(ARENA + below(ARENA_SIZE));
		n_corrupt += !ioctl(ft_open(), PROCFT_IOC_FAIL, &f);
		break;
	case 9 ... 11:
		n = group_pids(p->pid, reps);
		if (n < 2)
			break;
		for (k = 0; k < (int)ARRAY_SIZE(stopped) && stopped[k]; k++)
			;
		if (k == ARRAY_SIZE(stopped))
			break;
		stopped[k] = reps[1 + below(n - 1)];
		if (kill(stopped[k], SIGSTOP)) {
			stopped[k] = 0;
			break;
		}
		n_stops++;
		stamp(&stopped_until[k]);
		stopped_until[k].tv_nsec += below(1000) * 1000000L;
		stopped_until[k].tv_sec += below(3) + stopped_until[k].tv_nsec / 1000000000L;
		stopped_until[k].tv_nsec %= 1000000000L;
		break;
	}
}

static int own_children_left(void)
{
	char path[64], buf[512], *p;
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int n = 0;
	FILE *f;

	while (dir && (d = readdir(dir))) {
		pid_t pid = atoi(d->d_name);

		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			p = strrchr(buf, ')');
			/* Our child, or a process named ft_fuzz that is not us. */
			if (p && (atoi(p + 4) == getpid() || strstr(buf, "(ft_fuzz)"))) {
				tap_diag("left: %.120s", buf);
				n++;
			}
		}
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return n;
}

int main(int argc, char **argv)
{
	uint64_t seed = 0;
	double dur = getenv("ftfuzz") ? atof(getenv("ftfuzz")) : 75, t0, next_mce;
	const char *env_seed = getenv("ftfuzzseed");
	int i, k, st, opt, left, dups_left = 0, trace;
	long calls_total = 0;
	pid_t pid;

	while ((opt = getopt(argc, argv, "s:t:")) != -1) {
		if (opt == 's')
			seed = strtoull(optarg, NULL, 0);
		else if (opt == 't')
			dur = atof(optarg);
	}
	if (!seed && env_seed)
		seed = strtoull(env_seed, NULL, 0);
	if (!seed)
		seed = (uint64_t)time(NULL) * 2654435761ULL ^ getpid();
	rng = seed;
	tap_plan(5);
	tap_diag("seed %#llx, %.0f s (replay: ft_fuzz -s %#llx -t %.0f)",
		 (unsigned long long)seed, dur, (unsigned long long)seed, dur);
	/* PROCFT_IOC_FAIL needs fault_injection=1 (module_load.sh sets it too). */
	if (run_cmd("test -z \"$(cat /proc/procft)\"") == 0 && reload_procft("fault_injection=1"))
		tap_diag("could not reload procft with fault_injection=1");
	if (ft_open() < 0)
		die("/dev/procft");
	/* A fuzzed process's own crash (a random signal handler) is no kernel report. */
	trace = run_cmd("exit $(cat /proc/sys/debug/exception-trace)");
	run_cmd("echo 0 > /proc/sys/debug/exception-trace");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	if (pipe(targets_pipe))
		die("pipe");
	fcntl(targets_pipe[1], F_SETFL, O_NONBLOCK);
	t0 = now();
	next_mce = t0 + 3 + below(8);
	while (now() - t0 < dur && !stuck) {
		for (i = 0; i < NFUZZ; i++) {
			struct proc *p = &fz[i];

			if (!p->pid) {
				start_proc(p, i);
				publish_targets();
				continue;
			}
			drain(p);
			if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
				account(p, st);
				continue;
			}
			if (now() - secs(&p->seen) > 20) {
				/* No report for 20 s: stuck in a call; kill it. */
				tap_diag("pid %d: no progress in 20 s; killing it", p->pid);
				dump_task(p->pid);
				continue_stopped(1);
				n_watchdog++;
				if (finish(p)) {
					stuck = 1;
					break;
				}
				continue;
			}
			if (!p->started)
				continue;
			/* Protection ended by a call procft cannot replicate: again. */
			if (p->want) {
				unsigned int lvl = 0;

				if (!ioctl_get(p->pid, &lvl) && lvl == 0)
					n_reprotect += ioctl_set(p->pid, p->want) == 0;
			}
			if (!below(10))
				poke(p);
			if (now() >= next_mce) {
				machine_check(p);
				next_mce = now() + 4 + below(8);
			}
		}
		if (!ictl.pid) {
			start_proc(&ictl, -1);
		} else {
			drain(&ictl);
			if (waitpid(ictl.pid, &st, WNOHANG) == ictl.pid) {
				account(&ictl, st);
			} else if (now() - secs(&ictl.seen) > 30) {
				tap_diag("ioctl writer %d: no progress in 30 s", ictl.pid);
				dump_task(ictl.pid);
				n_watchdog++;
				if (finish(&ictl))
					stuck = 1;
			}
		}
		if (!below(8))
			publish_targets();
		continue_stopped(0);
		/* Grandchildren reparented to us (we are their subreaper). */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < NFUZZ; i++)
				if (pid == fz[i].pid)
					account(&fz[i], st);
			if (pid == ictl.pid)
				account(&ictl, st);
		}
		usleep(2000 + below(30000));
	}
	continue_stopped(1);
	/* The end: unprotect, kill, reap. */
	for (i = 0; i < NFUZZ; i++) {
		if (fz[i].pid) {
			pid_t reps[8];

			group_pids(fz[i].pid, reps);
			ioctl_set(fz[i].pid, 0);
			if (finish(&fz[i]))
				stuck = 1;
		}
	}
	if (ictl.pid && finish(&ictl))
		stuck = 1;
	for (k = 0; k < NKINDS; k++)
		calls_total += total.calls[k];
	tap_diag("%.0f s: %ld calls (%llu failed, %llu signals handled); fuzzed processes %ld",
		 now() - t0, calls_total, (unsigned long long)total.failed,
		 (unsigned long long)total.handled, n_children);
	for (k = 0; k < NKINDS; k++)
		tap_diag("  %-9s %llu", kind_name[k], (unsigned long long)total.calls[k]);
	tap_diag("level changes: %ld ioctl, %ld /proc/<pid>/ft_level; re-protected %ld times",
		 n_level_ioctl, n_level_proc, n_reprotect);
	tap_diag("failures injected: %ld primary lost, %ld duplicate lost, %ld bytes flipped; %ld duplicates stopped and continued",
		 n_lose0, n_losek, n_corrupt, n_stops);
	tap_diag("machine checks: %ld raised (%ld skipped: page absent or not anonymous)",
		 n_mce, n_mce_skip);
	tap_diag("ioctl/procfs writer: %llu ioctls, %llu procfs and event-log requests (%ld runs)",
		 (unsigned long long)ctl_total.calls[K_IPC],
		 (unsigned long long)ctl_total.calls[K_FS],
		 n_ioctl_runs);
	tap_diag("ends: %ld exited after their calls, %ld other exits, watchdog kills %ld",
		 exits_clean, exits_other, n_watchdog);
	for (k = 1; k < 65; k++)
		if (deaths[k])
			tap_diag("  killed by signal %d (%s): %ld", k, strsignal(k), deaths[k]);
	tap_ok(!stuck && calls_total > 0, "fuzzed for %.0f s, %ld calls%s%s", now() - t0,
	       calls_total, stuck ? ": " : "", stuck ? stuck_msg : "");

	/* Nothing left: no child, no duplicate, nothing listed. */
	for (i = 0; i < 1000 && own_children_left(); i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		usleep(10000);
	}
	left = own_children_left();
	for (i = 0; i < ndup_seen; i++) {
		char path[64], comm[32] = "";
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/comm", dup_seen[i]);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			read(fd, comm, sizeof(comm) - 1);
			close(fd);
			dups_left += !strncmp(comm, "ft_fuzz", 7);
		}
	}
	tap_ok(!left && !dups_left, "no fuzzed process, child or duplicate is left (%d duplicates seen)",
	       ndup_seen);
	for (i = 0; i < 1000 && run_cmd("test -z \"$(cat /proc/procft)\""); i++)
		usleep(10000);
	if (!tap_ok(run_cmd("test -z \"$(cat /proc/procft)\"") == 0, "/proc/procft is empty"))
		run_cmd("sed 's/^/# /' /proc/procft");
	close(ft_dev);
	ft_dev = -1;
	tap_ok(reload_procft("fault_injection=1") == 0 && ft_open() >= 0,
	       "the module unloads and loads again");
	tap_ok(run_cmd("! dmesg | grep -E 'BUG:|WARNING:|Oops|general protection|Call Trace:|UBSAN|KASAN|blocked for more than|stall'") == 0,
	       "the kernel log has no report");
	run_cmd("rm -rf /tmp/fuzz /mnt/disk/fuzz; echo %d > /proc/sys/debug/exception-trace", trace);
	return tap_finish();
}
