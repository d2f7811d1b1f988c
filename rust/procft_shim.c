// SPDX-License-Identifier: GPL-2.0
/*
 * procft C shim.  Only what rust/kernel/ offers no abstraction for lives
 * here, each function a trampoline into Rust (rust/hooks.rs) or one
 * mechanism the Rust side decides to use:
 *
 * - glue: /proc/procft and /proc/<pid>/ft_level, the kernel's system-call
 *   hook (kernel/patches/0003) or else the sys_enter/sys_exit tracepoint
 *   probes, the other probes (sched_process_fork/exit, signal_deliver,
 *   signal_generate, memory_failure_event), the two machine-check
 *   decode-chain notifiers, procft's own tracepoints;
 * - questions about a task: pid lookup, the ptrace-attach permission
 *   check (the kernel's own, with kernel/patches/0002), threads, shared
 *   mappings, where a frame is mapped, whether a page is lost to memory
 *   failure;
 * - mechanisms on the calling task: system-call suppression, result and
 *   restart, clone injection, breaking copy-on-write, restoring one page,
 *   adopting another replica's memory, registers, FPU and signal state,
 *   task_work queueing and waiting (with the unload drain), the tgid
 *   filter the syscall probes use.
 *
 * Why each is still C (rust/kernel/ of this kernel):
 *
 * - procfs entries, foreign tracepoints (found by name, not exported),
 *   the decode chain and procft's own TRACE_EVENTs have no Rust binding.
 * - mm: the kernel crate has mmap_read_lock() and vma_lookup() of one
 *   address, but no VMA iteration, page-table walk, get_user_pages,
 *   swap/poison entry test or page-table-entry zap: every walk here
 *   (shared mappings, finding a frame or a poisoned entry, unsharing,
 *   repair, adoption, read_stop) stays C.
 * - pt_regs, the FPU, sighand/siginfo, task flags, task_work and the
 *   tgid filter's XArray (value entries, read by the C probes): no
 *   abstraction.  Task::signal_pending() is signal_pending(), also true
 *   for TIF_NOTIFY_SIGNAL (a task_work, not a signal the task handles),
 *   where procft_signal_pending() is task_sigpending(); and
 *   Task::group_leader() is for current only, procft_get_leader() takes
 *   any task.
 *
 * The decisions (group state, the synchronisation protocol, voting,
 * failover and respawn, the clone flags of a duplicate) and the
 * memory-failure queue and its worker are in Rust.
 */

#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/topology.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/prctl.h>
#include <linux/proc_fs.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/jobctl.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/page-flags.h>
#include <linux/slab.h>
#include <linux/task_work.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>
#include <linux/wait.h>
#include <linux/leafops.h>
#include <linux/rcupdate.h>
#include <linux/rcupdate_trace.h>
#include <uapi/linux/sched.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/xarray.h>
#include <linux/percpu.h>
#include <linux/pid_namespace.h>
#ifdef PROCFT_HAVE_SYSCALL_HOOK
#include <linux/syscall_hook.h>
#endif

#include <linux/highmem.h>
#include <linux/vmalloc.h>
#include <linux/regset.h>
#include <linux/elf.h>
#include <trace/events/signal.h>

#include <asm/fpu/api.h>
#include <asm/mce.h>
#include <asm/tsc.h>
#include <asm/vdso.h>
#include <asm/sigframe.h>
#include <asm/syscall.h>

#include "procft_shim.h"

#define CREATE_TRACE_POINTS
#include "procft_trace.h"

/* ---- tracepoints of procft's own (include/procft_trace.h) --------------- */

/** procft_trace_memory_error - fire procft:procft_memory_error */
void procft_trace_memory_error(pid_t pid, pid_t replica, bool primary, unsigned long pfn)
{
	trace_procft_memory_error(pid, replica, primary, pfn);
}

/** procft_trace_replica - fire procft:procft_replica_lost, _respawn or _divergence (@what 0, 1, 2) */
void procft_trace_replica(int what, pid_t pid, pid_t replica)
{
	if (what == 0)
		trace_procft_replica_lost(pid, replica);
	else if (what == 1)
		trace_procft_respawn(pid, replica);
	else
		trace_procft_divergence(pid, replica);
}

/** procft_trace_promotion - fire procft:procft_promotion (@cause: PROCFT_CAUSE_*) */
void procft_trace_promotion(pid_t pid, pid_t from, int cause, unsigned long pages,
			    unsigned long us)
{
	trace_procft_promotion(pid, from, cause, pages, us);
}

/* ---- task helpers ------------------------------------------------------ */

/**
 * procft_get_task - find a process by pid, as the caller sees pids
 * @nr: pid in the caller's active pid namespace
 *
 * Return: the task with a reference held (release with put_task_struct),
 * or NULL if no such task exists.
 */
struct task_struct *procft_get_task(pid_t nr)
{
	struct pid *pid = find_get_pid(nr);
	struct task_struct *task;

	if (!pid)
		return NULL;
	task = get_pid_task(pid, PIDTYPE_PID);
	put_pid(pid);
	return task;
}

/**
 * procft_get_thread - a thread of @task's process, by its global id
 * @task: any thread of the process
 * @tid: the thread's id in the initial pid namespace (task->pid)
 *
 * Return: the thread with a reference held (release with
 * put_task_struct), or NULL if the process has no such thread.
 */
struct task_struct *procft_get_thread(struct task_struct *task, pid_t tid)
{
	struct task_struct *t, *found = NULL;

	rcu_read_lock();
	for_each_thread(task, t) {
		if (t->pid == tid) {
			found = get_task_struct(t);
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

/**
 * procft_get_leader - the thread-group leader of @task
 * @task: any task
 *
 * Return: the leader, with a reference held (release with put_task_struct).
 */
struct task_struct *procft_get_leader(struct task_struct *task)
{
	struct task_struct *leader;

	rcu_read_lock();
	leader = READ_ONCE(task->group_leader);
	get_task_struct(leader);
	rcu_read_unlock();
	return leader;
}

/**
 * procft_may_attach - may the caller change @task's level?
 * @task: target task
 *
 * Changing a level replicates the target and reads its memory, so it
 * follows ptrace-attach rules: the same thread group always may; otherwise
 * the kernel's own ptrace_may_access(PTRACE_MODE_ATTACH_REALCREDS) decides,
 * LSM hooks (Yama's ptrace_scope, SELinux) included.  It is exported to
 * modules only with kernel/patches/0002 (Kbuild defines
 * PROCFT_HAVE_PTRACE_MAY_ACCESS then); without it a change to another
 * process needs CAP_SYS_PTRACE in the initial user namespace, which no
 * uid match or LSM can widen.
 */
bool procft_may_attach(struct task_struct *task)
{
	if (same_thread_group(task, current))
		return true;
#ifdef PROCFT_HAVE_PTRACE_MAY_ACCESS
	return ptrace_may_access(task, PTRACE_MODE_ATTACH_REALCREDS);
#else
	return capable(CAP_SYS_PTRACE);
#endif
}

/** procft_have_ptrace_may_access - does procft_may_attach() use ptrace_may_access()? */
bool procft_have_ptrace_may_access(void)
{
#ifdef PROCFT_HAVE_PTRACE_MAY_ACCESS
	return true;
#else
	return false;
#endif
}

/**
 * procft_have_replace_mm - can a promotion take over a duplicate's address
 * space (replace_mm(), kernel/patches/0004) instead of copying its pages?
 */
bool procft_have_replace_mm(void)
{
#ifdef PROCFT_HAVE_REPLACE_MM
	return true;
#else
	return false;
#endif
}

/** procft_is_kthread - is @task a kernel thread? */
bool procft_is_kthread(struct task_struct *task)
{
	return task->flags & PF_KTHREAD;
}

/** procft_is_exiting - has @task entered do_exit()? */
bool procft_is_exiting(struct task_struct *task)
{
	return task->flags & PF_EXITING;
}

/**
 * procft_is_stopped - is @task stopped (SIGSTOP, a tracer's stop) or frozen
 * (suspend and the cgroup v1 freezer: TASK_FROZEN; the cgroup v2 freezer:
 * its trap in the task's job control)? Such a task runs no user code until
 * it is let go, however long that takes. (frozen() is not exported where
 * the freezer is built, so the state is read here.)
 */
bool procft_is_stopped(struct task_struct *task)
{
	return task_is_stopped_or_traced(task) || (READ_ONCE(task->__state) & TASK_FROZEN) ||
	       (READ_ONCE(task->jobctl) & JOBCTL_TRAP_FREEZE);
}

/** procft_nr_threads - number of live threads in @task's thread group */
int procft_nr_threads(struct task_struct *task)
{
	return get_nr_threads(task);
}

/**
 * procft_task_layout - struct task_struct as this kernel's C compiler lays it out
 * @size: sizeof(struct task_struct)
 * @tgid_offset: offsetof(struct task_struct, tgid)
 *
 * The Rust side compares these with its bindings before using any task
 * field: a kernel configuration that bindgen mislays (see the SCHEDSTATS
 * note in kernel/procft.config) must make the module refuse to load, not
 * read the wrong fields.
 */
void procft_task_layout(size_t *size, size_t *tgid_offset)
{
	*size = sizeof(struct task_struct);
	*tgid_offset = offsetof(struct task_struct, tgid);
}

/** procft_is_ptraced - is @task being traced? */
bool procft_is_ptraced(struct task_struct *task)
{
	return READ_ONCE(task->ptrace) != 0;
}

/* Whether any of @task's mappings has every flag of @all. */
static bool procft_any_vma(struct task_struct *task, vm_flags_t all)
{
	struct mm_struct *mm = get_task_mm(task);
	struct vm_area_struct *vma;
	bool found = false;

	if (!mm)
		return false;
	mmap_read_lock(mm);
	for (vma = find_vma(mm, 0); vma && !found; vma = find_vma(mm, vma->vm_end))
		found = (vma->vm_flags & all) == all;
	mmap_read_unlock(mm);
	mmput(mm);
	return found;
}

/**
 * procft_has_shared_writable - does @task map shared memory writably?
 * @task: any user task
 *
 * Return: true if any of its VMAs is VM_SHARED and VM_WRITE (writable
 * MAP_SHARED file or anonymous mappings, System V or POSIX shared memory).
 */
bool procft_has_shared_writable(struct task_struct *task)
{
	return procft_any_vma(task, VM_SHARED | VM_WRITE);
}

/**
 * procft_merges_pages - may KSM merge @task's pages with identical ones?
 * @task: any user task
 *
 * Return: true if it asked for that for its whole address space
 * (prctl(PR_SET_MEMORY_MERGE): MMF_VM_MERGE_ANY, which fork() passes on) or
 * for one of its mappings (madvise(MADV_MERGEABLE): VM_MERGEABLE).
 */
/* Whether @task has an address space with flag @flag (MMF_*) set. */
static bool procft_mm_flag(struct task_struct *task, int flag)
{
	struct mm_struct *mm = get_task_mm(task);
	bool set;

	if (!mm)
		return false;
	set = mm_flags_test(flag, mm);
	mmput(mm);
	return set;
}

bool procft_merges_pages(struct task_struct *task)
{
	return procft_mm_flag(task, MMF_VM_MERGE_ANY) || procft_any_vma(task, VM_MERGEABLE);
}

/**
 * procft_shares_memory - does @task share its memory with another process?
 * @task: any user task
 *
 * Return: true if a clone with CLONE_VM but neither CLONE_THREAD nor
 * CLONE_VFORK ever made another process on its address space
 * (MMF_MULTIPROCESS, which the kernel sets then and never clears): that
 * process writes the primary's memory, which no duplicate sees.  A
 * vfork() child does not count: its parent waits until it execs or exits.
 */
bool procft_shares_memory(struct task_struct *task)
{
	return procft_mm_flag(task, MMF_MULTIPROCESS);
}

/**
 * procft_has_dontfork - does @task map memory that fork() does not copy?
 * @task: any user task
 *
 * Return: true if any of its VMAs is VM_DONTCOPY (madvise(MADV_DONTFORK),
 * or a driver's mapping that must not be inherited): a duplicate made by
 * fork() would lack it.
 */
bool procft_has_dontfork(struct task_struct *task)
{
	return procft_any_vma(task, VM_DONTCOPY);
}

/**
 * procft_range_is_shared - does [@start, @start + @len) of the caller's
 * address space overlap a VM_SHARED mapping?
 */
bool procft_range_is_shared(unsigned long start, unsigned long len)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long end;
	bool found = false;

	if (!mm || check_add_overflow(start, len, &end))
		return false;
	mmap_read_lock(mm);
	for (vma = find_vma(mm, start); vma && vma->vm_start < end && !found;
	     vma = find_vma(mm, vma->vm_end))
		found = vma->vm_flags & VM_SHARED;
	mmap_read_unlock(mm);
	return found;
}

/* ---- replicas ------------------------------------------------------------ */

/**
 * procft_regs_size - sizeof(struct pt_regs), for the Rust side's opaque copy
 */
size_t procft_regs_size(void)
{
	return sizeof(struct pt_regs);
}

/**
 * procft_inject_clone - turn the system call being entered into the
 * creation of a duplicate
 * @regs: the primary's registers at sys_enter
 * @args: the clone3() arguments (flags and exit signal are the Rust side's)
 * @saved: where to keep @regs (procft_regs_size() bytes) for the restart
 *
 * The call becomes clone3(@args).  @args is written below the primary's
 * red zone, which is scratch space to any interrupting code.  Both parent
 * and child then undo the substitution at sys_exit with
 * procft_regs_restart(), so the original call is made afresh.
 *
 * Return: 0, or -EFAULT if the stack is not writable (nothing changed).
 */
int procft_inject_clone(struct pt_regs *regs, const struct clone_args *args, void *saved)
{
	unsigned long uargs = (regs->sp - 128 - sizeof(*args)) & ~15UL;

	if (copy_to_user((void __user *)uargs, args, sizeof(*args)))
		return -EFAULT;
	memcpy(saved, regs, sizeof(*regs));
	regs->orig_ax = __NR_clone3;
	regs->di = uargs;
	regs->si = sizeof(*args);
	return 0;
}

/**
 * procft_inject_thread_clone - make the caller, a new duplicate on its way
 * to user space, create a thread with clone3(@args) first
 * @args: the clone3() arguments
 * @rewind: the caller is at the exit of a system call (its instruction
 *	pointer is past the `syscall` instruction, which must run again);
 *	false if it stands before one already (procft_regs_restart())
 * @legacy: with clone() instead, whose five arguments are registers: for
 *	a process whose seccomp filter refuses clone3() (the call is made
 *	from user space, so the filter sees it).  Only what clone() can
 *	express: flags below 32 bits, exit signal, stack, both tid pointers
 *	and TLS.
 *
 * For clone3(), @args is written below the red zone of the caller's
 * stack, as procft_inject_clone() does.  The caller's registers for its
 * own call are the Rust side's to restore (procft_regs_restart()) once
 * its threads are made.
 *
 * Return: 0, or -EFAULT if the stack is not writable (nothing changed).
 */
int procft_inject_thread_clone(const struct clone_args *args, bool rewind, bool legacy)
{
	struct pt_regs *regs = task_pt_regs(current);
	unsigned long uargs = (regs->sp - 128 - sizeof(*args)) & ~15UL;

	if (legacy) {
		/* x86-64: clone(flags, newsp, parent_tid, child_tid, tls). */
		regs->ax = __NR_clone;
		regs->di = lower_32_bits(args->flags) | args->exit_signal;
		regs->si = args->stack;
		regs->dx = args->parent_tid;
		regs->r10 = args->child_tid;
		regs->r8 = args->tls;
	} else {
		if (copy_to_user((void __user *)uargs, args, sizeof(*args)))
			return -EFAULT;
		regs->ax = __NR_clone3;
		regs->di = uargs;
		regs->si = sizeof(*args);
	}
	if (rewind)
		regs->ip -= 2;
	return 0;
}

/**
 * procft_thread_state - what a thread's copy needs beyond its registers
 * @task: a thread of the caller's process, in the kernel
 * @fsbase: set to its FS base (its TLS pointer)
 * @clear_tid: set to its clear_child_tid address (0: none)
 */
void procft_thread_state(struct task_struct *task, unsigned long *fsbase,
			 unsigned long *clear_tid)
{
	*fsbase = task->thread.fsbase;
	*clear_tid = (unsigned long)READ_ONCE(task->clear_child_tid);
}

/* The global ids of @task's process's threads but @skip, not exiting. */
static int procft_ids(struct task_struct *task, struct task_struct *skip, pid_t *tids, int max)
{
	struct task_struct *t;
	int n = 0;

	rcu_read_lock();
	for_each_thread(task, t) {
		if (t == skip || (t->flags & PF_EXITING))
			continue;
		if (n < max)
			tids[n] = t->pid;
		n++;
	}
	rcu_read_unlock();
	return n;
}

/**
 * procft_thread_ids - the global ids of the caller's process's other
 * threads that are not exiting
 * @tids: room for @max ids
 *
 * Return: how many there are (more than @max if they did not all fit).
 */
int procft_thread_ids(pid_t *tids, int max)
{
	return procft_ids(current, current, tids, max);
}

/**
 * procft_process_thread_ids - the global ids of every thread of @task's
 * process that is not exiting
 * @tids: room for @max ids
 *
 * Return: how many there are (more than @max if they did not all fit).
 */
int procft_process_thread_ids(struct task_struct *task, pid_t *tids, int max)
{
	return procft_ids(task, NULL, tids, max);
}

/**
 * procft_regs_restart - restore @saved into @regs and make the task
 * re-issue the system call it was entering (as for -ERESTARTNOINTR: the
 * two-byte `syscall` instruction runs again with the same registers).
 */
void procft_regs_restart(struct pt_regs *regs, const void *saved)
{
	memcpy(regs, saved, sizeof(*regs));
	regs->ax = regs->orig_ax;
	regs->ip -= 2;
}

/**
 * procft_suppress - skip the system call being entered (sys_enter only):
 * with orig_ax at -1 the kernel runs nothing and returns regs->ax, which
 * procft_set_return() fills in later.
 */
void procft_suppress(struct pt_regs *regs)
{
	regs->orig_ax = -1;
}

/** procft_set_return - the value the caller's current system call returns */
void procft_set_return(long value)
{
	task_pt_regs(current)->ax = value;
}

/**
 * procft_restart_call - make the caller issue system call @nr again on its
 * return to user space (its argument registers are untouched)
 */
void procft_restart_call(long nr)
{
	struct pt_regs *regs = task_pt_regs(current);

	regs->ax = nr;
	regs->ip -= 2;
}

/**
 * procft_call_restarting - is the caller on its way back from a system
 * call that the kernel is about to restart (or to end with EINTR for a
 * signal handler), its registers not rewound yet?
 */
bool procft_call_restarting(void)
{
	struct pt_regs *regs = task_pt_regs(current);
	long ret = regs->ax;

	return syscall_get_nr(current, regs) >= 0 &&
	       ret >= -ERESTART_RESTARTBLOCK && ret <= -ERESTARTSYS;
}

/* ---- reading page tables: work bounded by what is mapped --------------- */

/* What a replica's page tables hold for an address. */
enum procft_entry {
	PROCFT_NONE,	/* nothing: the page was never touched, or was dropped */
	PROCFT_PAGE,	/* a present page (or huge page) */
	PROCFT_POISON,	/* the entry memory_failure() left for a poisoned frame */
	PROCFT_OTHER,	/* swap, migration or marker entry, or a bad table */
};

/*
 * What @mm's page tables hold for @addr (below @end).  *@next is where the
 * next entry may be: the end of an empty table, or of a huge mapping, is
 * skipped whole, so that walking a sparse mapping costs what is mapped,
 * not its size.  For a present page and for a poisoned-page entry *@pfn
 * is the frame of the page at @addr (in a huge mapping, the frame of the
 * small page at @addr).  Reads the tables as pte_offset_map() does: the
 * pmd once, under RCU, which keeps a page table khugepaged retracts from
 * being freed; the caller holds the mmap lock for reading (an anonymous
 * collapse takes it for writing).
 */
static enum procft_entry procft_entry(struct mm_struct *mm, unsigned long addr,
				      unsigned long end, unsigned long *next,
				      unsigned long *pfn)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	enum procft_entry kind = PROCFT_OTHER;
	p4d_t *p4d;
	pud_t *pud;
	pmd_t pmd;
	pte_t pte;
	softleaf_t entry;

	*next = pgd_addr_end(addr, end);
	if (pgd_none(*pgd))
		return PROCFT_NONE;
	if (pgd_bad(*pgd))
		return PROCFT_OTHER;
	p4d = p4d_offset(pgd, addr);
	*next = p4d_addr_end(addr, end);
	if (p4d_none(*p4d))
		return PROCFT_NONE;
	if (p4d_bad(*p4d))
		return PROCFT_OTHER;
	pud = pud_offset(p4d, addr);
	*next = pud_addr_end(addr, end);
	if (pud_none(*pud))
		return PROCFT_NONE;
	if (pud_leaf(*pud)) {
		*pfn = pud_pfn(*pud) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
		return PROCFT_PAGE;
	}
	if (pud_bad(*pud))
		return PROCFT_OTHER;
	rcu_read_lock();
	pmd = pmdp_get_lockless(pmd_offset(pud, addr));
	*next = pmd_addr_end(addr, end);
	if (pmd_none(pmd)) {
		kind = PROCFT_NONE;
	} else if (!pmd_present(pmd) || pmd_bad(pmd)) {
		kind = PROCFT_OTHER;
	} else if (pmd_leaf(pmd)) {
		kind = PROCFT_PAGE;
		*pfn = pmd_pfn(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	} else {
		*next = addr + PAGE_SIZE;
		pte = ptep_get_lockless(pte_offset_kernel(&pmd, addr));
		entry = softleaf_from_pte(pte);
		if (pte_none(pte)) {
			kind = PROCFT_NONE;
		} else if (pte_present(pte)) {
			kind = PROCFT_PAGE;
			*pfn = pte_pfn(pte);
		} else if (softleaf_is_hwpoison(entry)) {
			kind = PROCFT_POISON;
			*pfn = softleaf_to_pfn(entry);
		}
	}
	rcu_read_unlock();
	return kind;
}

/**
 * procft_read_lost - read @len bytes at the caller's user address @addr,
 * within one page it lost to memory failure, from that page's frame
 * @buf: where to put them
 *
 * Memory failure unmapped the frame, but what the caller wrote there is
 * still in it, except in the failed cache lines.  The kernel's own mapping
 * of a frame a machine check hit is gone too (set_mce_nospec()), so the
 * frame gets a mapping of its own for a machine-check-safe copy, which
 * stops at the failed lines.  For the output of a call that the kernel
 * wrote just before the page was lost.  May sleep.
 *
 * Return: 0, -EFAULT if the page is not one the caller lost, or -EIO if
 * the bytes asked for are among the failed ones (or no machine-check-safe
 * copy is available: without ERMS copy_mc_to_kernel() is a plain memcpy).
 */
int procft_read_lost(unsigned long addr, void *buf, size_t len)
{
	struct mm_struct *mm = current->mm;
	unsigned long next, pfn = 0, left;
	enum procft_entry kind;
	struct page *page;
	void *map;

	if (!mm || !len || offset_in_page(addr) + len > PAGE_SIZE)
		return -EFAULT;
	mmap_read_lock(mm);
	kind = procft_entry(mm, addr, addr + len, &next, &pfn);
	mmap_read_unlock(mm);
	if (kind != PROCFT_POISON || !pfn_valid(pfn))
		return -EFAULT;
	if (!boot_cpu_has(X86_FEATURE_ERMS))
		return -EIO;
	/* A poisoned frame is never handed out again. */
	page = pfn_to_page(pfn);
	map = vmap(&page, 1, VM_MAP, PAGE_KERNEL_RO);
	if (!map)
		return -EIO;
	left = copy_mc_to_kernel(buf, map + offset_in_page(addr), len);
	vunmap(map);
	return left ? -EIO : 0;
}

/*
 * The first page at or after @addr, below @end, for which @mm's page
 * tables hold anything (see procft_entry()), or @end.  The caller holds the
 * mmap lock for reading; may sleep.
 */
static unsigned long procft_skip_empty(struct mm_struct *mm, unsigned long addr,
				       unsigned long end)
{
	unsigned long next, pfn;

	while (addr < end && procft_entry(mm, addr, end, &next, &pfn) == PROCFT_NONE) {
		addr = next;
		cond_resched();
	}
	return min(addr, end);
}

/*
 * How many pages from @addr on (below @end, @max at most) @mm maps with a
 * present page-table entry (not a huge mapping) to a frame other than the
 * zero page: a run that one get_user_pages_remote() call can write without
 * populating anything.  The caller holds the mmap lock for reading.
 */
static unsigned long procft_present_run(struct mm_struct *mm, unsigned long addr,
					unsigned long end, unsigned long max)
{
	unsigned long n = 0, next, pfn;

	while (n < max && addr < end &&
	       procft_entry(mm, addr, end, &next, &pfn) == PROCFT_PAGE &&
	       next == addr + PAGE_SIZE && !is_zero_pfn(pfn)) {
		n++;
		addr += PAGE_SIZE;
	}
	return n;
}

/**
 * procft_unshare_some - give the calling task its own copy of the anonymous
 * pages it shares copy-on-write, a bounded number of pages at a time
 * @pos: the address to go on from (0 the first time); on return, where to
 *	 go on next time (the page that failed, after an error), or ULONG_MAX
 *	 once the walk has reached the end
 * @budget: page-table entries to act on, at most (present pages, and
 *	    swapped-out or migrating ones; empty page tables are skipped whole)
 * @hold: the step stops at the next page once this is not zero (the
 *	  primary is about to wait for the caller)
 *
 * Walks the caller's private writable (CoW) mappings from @pos and
 * write-faults every anonymous page, which copies it unless it is already
 * exclusive: in anonymous mappings, runs of present pages with one
 * get_user_pages_remote() call each; a swapped-out or migrating page is
 * brought back and written too; in private file mappings, which also hold
 * the file's own pages, present pages one by one, anonymous ones only.
 * Absent pages stay absent (a sparse mapping is not populated), and clean
 * page-cache pages and the zero page stay shared: memory failure recovers
 * a clean page-cache page by re-reading the file.  A poisoned entry is
 * skipped: that page is lost, and the kernel kills the caller for it.  The
 * caller resumes from *@pos; whatever happened to the address space
 * between two steps below *@pos is the caller's to account for (see the
 * Rust side's separation).
 *
 * The copying is background work: the caller runs it at nice 19 (for a
 * task of the normal scheduling policy) and gets its own back before
 * returning, so that a primary waking meanwhile on the same CPU is not kept
 * waiting for the step (with lazy preemption a task of equal weight may
 * be, for several ticks).
 *
 * Return: the number of pages written, or a negative errno: -EINTR if a
 * fatal signal came, or what get_user_pages_remote() returned.
 */
long procft_unshare_some(unsigned long *pos, unsigned long budget, const unsigned int *hold)
{
	struct mm_struct *mm = current->mm;
	long nice = task_nice(current);
	struct vm_area_struct *vma;
	unsigned long addr = *pos, seen = 0, run, next, pfn;
	long n = 0, got;

	if (!mm) {
		*pos = ULONG_MAX;
		return 0;
	}
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	set_user_nice(current, MAX_NICE);
	for (vma = find_vma(mm, addr); vma; vma = find_vma(mm, vma->vm_end)) {
		if (!vma_is_cow_mapping(vma) || !vma->anon_vma)
			continue;
		for (addr = max(addr, vma->vm_start); addr < vma->vm_end; addr += PAGE_SIZE) {
			enum procft_entry kind;
			struct page *page;
			bool anon;

			if (fatal_signal_pending(current)) {
				n = -EINTR;
				goto out;
			}
			if (READ_ONCE(*hold))
				goto out;
			cond_resched();
			addr = procft_skip_empty(mm, addr, vma->vm_end);
			if (addr >= vma->vm_end)
				break;
			if (seen++ == budget)
				goto out;
			kind = procft_entry(mm, addr, vma->vm_end, &next, &pfn);
			if (kind == PROCFT_POISON)
				continue;
			if (kind == PROCFT_OTHER)
				run = 1;
			else if (vma_is_anonymous(vma))
				run = procft_present_run(mm, addr, vma->vm_end, budget - seen + 1);
			else
				run = 0;
			if (run) {
				got = get_user_pages_remote(mm, addr, run, FOLL_WRITE | FOLL_FORCE,
							    NULL, NULL);
				if (got < 0 && got != -EHWPOISON) {
					n = got;
					goto out;
				}
				if (got > 0) {
					n += got;
					seen += got - 1;
					addr += (got - 1) * PAGE_SIZE;
				}
				continue;
			}
			/* Present and not special (the zero page is shared by all)? */
			if (get_user_pages_fast_only(addr, 1, 0, &page) != 1)
				continue;
			anon = PageAnon(page);
			put_page(page);
			if (anon && get_user_pages_remote(mm, addr, 1, FOLL_WRITE | FOLL_FORCE,
							  NULL, NULL) == 1)
				n++;
		}
	}
	addr = ULONG_MAX;
out:
	mmap_read_unlock(mm);
	set_user_nice(current, nice);
	*pos = addr;
	return n;
}

/*
 * The first page at or after @addr in a wipe-on-fork mapping of @mm for which
 * its page tables hold anything, in *@page; false if there is none.  Takes
 * the mmap lock for reading.
 */
static bool procft_next_wiped(struct mm_struct *mm, unsigned long addr, unsigned long *page)
{
	struct vm_area_struct *vma;
	bool found = false;

	mmap_read_lock(mm);
	for (vma = find_vma(mm, addr); vma && !found; vma = find_vma(mm, vma->vm_end)) {
		if (!(vma->vm_flags & VM_WIPEONFORK))
			continue;
		*page = procft_skip_empty(mm, max(addr, vma->vm_start), vma->vm_end);
		found = *page < vma->vm_end;
	}
	mmap_read_unlock(mm);
	return found;
}

/**
 * procft_copy_wipeonfork - give a new duplicate the caller's wipe-on-fork memory
 * @child: the duplicate the calling primary's fork() has just made
 *
 * fork() leaves the child's VM_WIPEONFORK mappings (madvise(MADV_WIPEONFORK);
 * mmap(MAP_DROPPABLE), which holds the C library's vgetrandom() state) empty,
 * where a duplicate must hold what the primary holds.  Copies every page of
 * those mappings that the caller's page tables hold (empty page tables are
 * skipped whole; a zero-page entry is still read) and that is not all
 * zeroes into @child at the same address, reading and writing with
 * FOLL_FORCE (a PROT_NONE page too).  Called in the caller's return from
 * the fork, before it runs another user instruction; the duplicate waits
 * for the copy before its first (the Rust side's replica::birth()).  A
 * page that cannot be read (poisoned) is left out.  The caller is stalled
 * for as long as its wipe-on-fork memory takes to copy.
 *
 * Return: 0, -EINTR if a fatal signal came, -ENOMEM, or -EFAULT if a page
 * could not be written into @child.
 */
int procft_copy_wipeonfork(struct task_struct *child)
{
	struct mm_struct *mm = current->mm;
	unsigned long addr = 0;
	void *buf;
	int err = 0;

	if (!mm)
		return 0;
	buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	while (procft_next_wiped(mm, addr, &addr)) {
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (access_process_vm(current, addr, buf, PAGE_SIZE, FOLL_FORCE) == PAGE_SIZE &&
		    memchr_inv(buf, 0, PAGE_SIZE) &&
		    access_process_vm(child, addr, buf, PAGE_SIZE,
				      FOLL_WRITE | FOLL_FORCE) != PAGE_SIZE) {
			err = -EFAULT;
			break;
		}
		addr += PAGE_SIZE;
		cond_resched();
	}
	kfree(buf);
	return err;
}

/**
 * procft_prefer_other_node - move the caller (a new duplicate, before it
 * copies its pages) to the CPUs of a memory node other than the one
 * @primary runs on, so that the pages it allocates from now on (local
 * allocation) are in other memory than the primary's
 *
 * Return: the node, or NUMA_NO_NODE (one node, or no usable CPU on another).
 */
int procft_prefer_other_node(struct task_struct *primary)
{
	int here = cpu_to_node(task_cpu(primary)), nid, found = NUMA_NO_NODE;
	cpumask_var_t mask;

	if (num_node_state(N_MEMORY) < 2 || !alloc_cpumask_var(&mask, GFP_KERNEL))
		return NUMA_NO_NODE;
	for_each_node_state(nid, N_MEMORY) {
		if (nid == here)
			continue;
		/* Within the CPUs the process may use, else the node's (a
		 * process pinned to one node still gets its duplicate elsewhere;
		 * a cpuset still has the last word).
		 */
		cpumask_and(mask, cpumask_of_node(nid), cpu_online_mask);
		if (cpumask_intersects(mask, current->cpus_ptr))
			cpumask_and(mask, mask, current->cpus_ptr);
		if (!cpumask_empty(mask) && !set_cpus_allowed_ptr(current, mask)) {
			found = nid;
			break;
		}
	}
	free_cpumask_var(mask);
	return found;
}

/**
 * procft_mce_policy - the calling task's memory-error kill policy, as
 * prctl(PR_MCE_KILL_GET) reports it
 *
 * Return: PR_MCE_KILL_LATE, PR_MCE_KILL_EARLY or PR_MCE_KILL_DEFAULT.
 */
int procft_mce_policy(void)
{
	if (!(current->flags & PF_MCE_PROCESS))
		return PR_MCE_KILL_DEFAULT;
	return current->flags & PF_MCE_EARLY ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE;
}

/**
 * procft_set_mce_policy - give @task memory-error kill policy @policy, as
 * prctl(PR_MCE_KILL) does (PR_MCE_KILL_LATE, _EARLY or _DEFAULT)
 * @task: the calling task, or a new child that has not run yet (a task's
 *	  flags are written by itself only)
 * @policy: the policy
 */
void procft_set_mce_policy(struct task_struct *task, int policy)
{
	task->flags &= ~(PF_MCE_PROCESS | PF_MCE_EARLY);
	if (policy == PR_MCE_KILL_EARLY)
		task->flags |= PF_MCE_PROCESS | PF_MCE_EARLY;
	else if (policy == PR_MCE_KILL_LATE)
		task->flags |= PF_MCE_PROCESS;
}

/*
 * The address at which @vma holds page offset @pgoff of its object, if
 * any, or 0; @start is the page offset @vma starts at (__vma_address() of
 * mm/internal.h, for one page).
 */
static unsigned long procft_vma_address(struct vm_area_struct *vma, pgoff_t pgoff,
					pgoff_t start)
{
	if (pgoff < start || pgoff - start >= vma_pages(vma))
		return 0;
	return vma->vm_start + ((pgoff - start) << PAGE_SHIFT);
}

/**
 * procft_frame_owner - where @task maps frame @pfn, found from the frame's
 * page offset instead of a walk of the task's pages
 * @task: the task asked about
 * @pfn: the frame
 * @poisoned: look for the poisoned-page entry memory_failure() left for
 *	      @pfn when it unmapped the frame, not for a present page
 * @addr: set to the user address of the page when it is found
 *
 * What the kernel's reverse map does (rmap_walk(), page_address_in_vma()),
 * for the VMAs of one address space: a folio keeps its page offset
 * (folio->index, the offset it had in the VMA that first faulted it, which
 * mremap() and stack growth keep in step with the VMA's vm_pgoff), so in
 * each VMA that can map it there is one address where the frame can be:
 * for an anonymous folio, in each VMA with an anon_vma, at its anonymous
 * page offset (vma_start_anon_pgoff(): a private file mapping's copied
 * pages keep the offset they were copied at); for a page-cache folio, in
 * each VMA of its file, at the file offset.  Only that page-table entry
 * is read, and it decides: a present page of @pfn (a huge mapping holding
 * it included), or with @poisoned the poisoned-page entry of @pfn.  The
 * anon_vma root is not compared (rmap walks only the VMAs of the folio's
 * anon_vma tree): the entry test is exact, and once memory_failure() has
 * unmapped the folio its anon_vma may be gone.  The folio's fields are read
 * with a reference held and under @task's mmap lock, which keeps its VMAs
 * (and an mremap() of them) still; only UFFDIO_MOVE gives an anonymous
 * folio a new index, and a folio it moves at that moment can be missed.
 * Work is one page-table lookup per VMA, whatever the size of the
 * process.  May sleep.
 *
 * memory_failure() splits a large folio before it unmaps it, and keeps
 * (for ever) the reference and the anonymous mapping of the folio it
 * retires, so the index and anon_vma of an anonymous page are there when
 * the poisoned entry is asked for; a page-cache folio is taken out of its
 * file, and its mapping cleared.
 *
 * Return: 1 if @task maps @pfn (*@addr is set), 0 if it does not, or
 * -EOPNOTSUPP if the frame's folio does not say where it is mapped: a KSM
 * or hugetlb folio, the zero page, a page a driver or a special mapping
 * inserted, a page-cache folio memory_failure() removed from its file, or a
 * folio split under the lookup.  Only a walk of @task's pages can tell
 * then (procft_find_pfn(), procft_find_poisoned()).
 */
int procft_frame_owner(struct task_struct *task, unsigned long pfn, bool poisoned,
		       unsigned long *addr)
{
	struct page *page = pfn_to_online_page(pfn);
	struct address_space *mapping = NULL;
	struct vm_area_struct *vma;
	unsigned long at, next, frame;
	enum procft_entry want = poisoned ? PROCFT_POISON : PROCFT_PAGE;
	struct mm_struct *mm;
	struct folio *folio;
	pgoff_t pgoff;
	bool anon;
	int ret = 0;

	/* No struct page (device memory): no VMA procft looks at maps it. */
	if (!page)
		return 0;
	if (is_zero_pfn(pfn))
		return -EOPNOTSUPP;
	folio = page_folio(page);
	/* Free, or frozen to be split or migrated: in no page table. */
	if (!folio_try_get(folio))
		return 0;
	if (folio != page_folio(page)) {
		folio_put(folio);
		return -EOPNOTSUPP;
	}
	mm = get_task_mm(task);
	if (!mm) {
		folio_put(folio);
		return 0;
	}
	mmap_read_lock(mm);
	anon = folio_test_anon(folio);
	if (folio_test_ksm(folio) || folio_test_hugetlb(folio)) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	if (!anon) {
		mapping = READ_ONCE(folio->mapping);
		if (!mapping) {
			if (poisoned || folio_mapped(folio))
				ret = -EOPNOTSUPP;
			goto out;
		}
	}
	pgoff = folio->index + folio_page_idx(folio, page);
	for (vma = find_vma(mm, 0); vma; vma = find_vma(mm, vma->vm_end)) {
		if (vma->vm_flags & (VM_IO | VM_PFNMAP))
			continue;
		if (anon && vma->anon_vma)
			at = procft_vma_address(vma, pgoff, vma_start_anon_pgoff(vma));
		else if (!anon && vma->vm_file && vma->vm_file->f_mapping == mapping)
			at = procft_vma_address(vma, pgoff, vma_start_pgoff(vma));
		else
			continue;
		if (at && procft_entry(mm, at, at + PAGE_SIZE, &next, &frame) == want &&
		    frame == pfn) {
			*addr = at;
			ret = 1;
			break;
		}
		cond_resched();
	}
out:
	mmap_read_unlock(mm);
	mmput(mm);
	folio_put(folio);
	return ret;
}

/**
 * procft_find_pfn - where does @task map page frame @pfn? (a walk)
 *
 * What procft_frame_owner() answers, for the frames it cannot place:
 * walks the pages the task's page tables hold (empty tables are skipped
 * whole, so a sparse reservation costs what is mapped in it; the work
 * grows with the resident size); may sleep.
 *
 * Return: the user address of the page, or 0 if @task does not map @pfn.
 */
unsigned long procft_find_pfn(struct task_struct *task, unsigned long pfn)
{
	struct mm_struct *mm = get_task_mm(task);
	struct vm_area_struct *vma;
	unsigned long addr, found = 0;

	if (!mm)
		return 0;
	mmap_read_lock(mm);
	for (vma = find_vma(mm, 0); vma && !found; vma = find_vma(mm, vma->vm_end)) {
		if (vma->vm_flags & (VM_IO | VM_PFNMAP))
			continue;
		for (addr = vma->vm_start; addr < vma->vm_end && !found; addr += PAGE_SIZE) {
			struct page *page;

			cond_resched();
			addr = procft_skip_empty(mm, addr, vma->vm_end);
			if (addr >= vma->vm_end)
				break;
			if (get_user_pages_remote(mm, addr, 1, FOLL_NOFAULT, &page, NULL) != 1)
				continue;
			if (page_to_pfn(page) == pfn)
				found = addr;
			put_page(page);
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);
	return found;
}

/**
 * procft_find_poisoned - where @task has the poisoned-page entry that
 * memory_failure() left when it unmapped frame @pfn from it (a walk)
 *
 * What procft_frame_owner() answers with @poisoned, for the frames it
 * cannot place: reads the page tables of the task's private mappings
 * (the work grows with the resident size); may sleep.
 *
 * Return: the user address of the page, or 0.
 */
unsigned long procft_find_poisoned(struct task_struct *task, unsigned long pfn)
{
	struct mm_struct *mm = get_task_mm(task);
	struct vm_area_struct *vma;
	unsigned long addr, next, frame, found = 0;

	if (!mm)
		return 0;
	mmap_read_lock(mm);
	for (vma = find_vma(mm, 0); vma && !found; vma = find_vma(mm, vma->vm_end)) {
		if (!vma->anon_vma)
			continue;
		for (addr = vma->vm_start; addr < vma->vm_end && !found; addr = next) {
			if (procft_entry(mm, addr, vma->vm_end, &next, &frame) == PROCFT_POISON &&
			    frame == pfn)
				found = addr;
			cond_resched();
		}
	}
	mmap_read_unlock(mm);
	mmput(mm);
	return found;
}

/**
 * procft_repair_page - replace the caller's page at @addr, which was on
 * the failed frame @pfn, by a fresh frame holding @from's copy
 * @addr: user address of the page in the caller (and in @from)
 * @pfn: the frame that failed
 * @from: a replica in the same state as the caller
 *
 * Waits (at most a second) for memory_failure() to have claimed @pfn, so
 * the frame cannot come back from the allocator, drops the caller's
 * mapping of the page and writes @from's copy into a newly faulted frame.
 *
 * Return: 0, or -errno if a copy failed (the page is then left unmapped).
 */
int procft_repair_page(unsigned long addr, unsigned long pfn, struct task_struct *from)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	void *buf;
	int i, ret = 0;

	for (i = 0; i < 1000 && !PageHWPoison(pfn_to_page(pfn)); i++)
		usleep_range(1000, 2000);
	buf = (void *)__get_free_page(GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (access_process_vm(from, addr, buf, PAGE_SIZE, FOLL_FORCE) != PAGE_SIZE) {
		ret = -EIO;
		goto out;
	}
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma)
		zap_vma_range(vma, addr, PAGE_SIZE);
	mmap_read_unlock(mm);
	if (!vma)
		ret = -EFAULT;
	else if (access_process_vm(current, addr, buf, PAGE_SIZE, FOLL_WRITE | FOLL_FORCE) != PAGE_SIZE)
		ret = -EIO;
out:
	free_page((unsigned long)buf);
	return ret;
}

/* ---- promotion: the primary takes a duplicate's state ------------------- */

/*
 * The page of @mm at @addr, with a reference (1), or -errno: present
 * pages are taken as they are; an absent one is faulted in for reading
 * (the zero page, the file's, or one in transit), and an entry of a
 * poisoned frame gives -EHWPOISON.
 */
static long procft_get_page(struct mm_struct *mm, unsigned long addr, struct page **page)
{
	long got;

	mmap_read_lock(mm);
	got = get_user_pages_remote(mm, addr, 1, FOLL_NOFAULT, page, NULL);
	if (got != 1)
		got = get_user_pages_remote(mm, addr, 1, FOLL_FORCE | FOLL_HWPOISON, page, NULL);
	mmap_read_unlock(mm);
	return got;
}

/*
 * Copies @from's page at @addr, if it has a private (anonymous) one there,
 * into the caller's memory at the same address, through @buf.  Returns 1 if
 * a page was copied, 0 if @from has none (the caller's page then faults in
 * as @from's would), -EHWPOISON if @from's page was lost to memory failure
 * meanwhile (an error can strike the duplicate while it is being copied),
 * or -EIO.  A page that is not mapped at the moment is faulted in for
 * reading, so a page in transit (migration) is not taken for an absent one.
 */
static int procft_adopt_page(struct mm_struct *from_mm, unsigned long addr, void *buf)
{
	struct page *page;
	long got = procft_get_page(from_mm, addr, &page);
	bool anon;

	if (got == -EHWPOISON)
		return -EHWPOISON;
	if (got != 1)
		return 0;
	anon = PageAnon(page);
	if (anon)
		memcpy_from_page(buf, page, 0, PAGE_SIZE);
	put_page(page);
	if (!anon)
		return 0;
	if (access_process_vm(current, addr, buf, PAGE_SIZE, FOLL_WRITE | FOLL_FORCE) != PAGE_SIZE)
		return -EIO;
	return 1;
}

/*
 * Whether @from_mm's page at @addr is an entry of a poisoned frame (its
 * copy is lost too).  A page that is merely absent is faulted in for
 * reading (the zero page, or the file's), which changes nothing @from can
 * see.
 */
static bool procft_page_poisoned(struct mm_struct *from_mm, unsigned long addr)
{
	struct page *page;
	long got = procft_get_page(from_mm, addr, &page);

	if (got == 1)
		put_page(page);
	return got == -EHWPOISON;
}

/**
 * procft_page_lost - whether @task's page at @addr is an entry of a
 * poisoned frame (memory failure unmapped it and nothing replaced it yet);
 * an absent page is faulted in for reading to find out.  May sleep.
 *
 * Return: 1 if it is lost, 0 if the page is there (or faulted in), -EFAULT
 * if @task has no memory or nothing readable at @addr.
 */
int procft_page_lost(struct task_struct *task, unsigned long addr)
{
	struct mm_struct *mm = get_task_mm(task);
	struct page *page;
	long got;

	if (!mm)
		return -EFAULT;
	got = procft_get_page(mm, addr, &page);
	mmput(mm);
	if (got == 1) {
		put_page(page);
		return 0;
	}
	return got == -EHWPOISON ? 1 : -EFAULT;
}

/*
 * The first page at or after @addr, below @end, that @mm's tables hold
 * anything for, or @end (procft_skip_empty() under @mm's mmap lock).
 */
static unsigned long procft_next_page(struct mm_struct *mm, unsigned long addr,
				      unsigned long end)
{
	cond_resched();
	mmap_read_lock(mm);
	addr = procft_skip_empty(mm, addr, end);
	mmap_read_unlock(mm);
	return addr;
}

/**
 * procft_read_stop - where a read of the caller's memory that went on from
 * @addr must have stopped
 * @addr: the first byte the kernel did not use
 * @end: the end of the buffer it was reading
 * @lost: set if the page the read stopped at is an entry of a poisoned frame
 *
 * The kernel reads a buffer in order and stops at the first page it cannot
 * read; it may drop what it read of the last chunk (a page-cache folio, a
 * socket buffer), so that page can lie a little past @addr.  Goes forward
 * from @addr's page over pages the kernel read: in a mapping that is not
 * PROT_NONE and held by the page tables (a swapped-out one is brought
 * back).  Work is bounded by what is resident, not by @end; may sleep.
 *
 * Return: the page the read stopped at, or @end if it could have read
 * every page up to @end (or a fatal signal came).
 */
unsigned long procft_read_stop(unsigned long addr, unsigned long end, bool *lost)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long next, pfn;
	struct page *page;
	long got;

	*lost = false;
	if (!mm)
		return end;
	mmap_read_lock(mm);
	for (addr &= PAGE_MASK; addr < end; addr += PAGE_SIZE) {
		if (fatal_signal_pending(current)) {
			addr = end;
			break;
		}
		cond_resched();
		vma = vma_lookup(mm, addr);
		/* PROT_NONE: unreadable (any access right implies reading on x86). */
		if (!vma || !(vma->vm_flags & VM_ACCESS_FLAGS))
			break;
		switch (procft_entry(mm, addr, end, &next, &pfn)) {
		case PROCFT_PAGE:
			continue;
		case PROCFT_POISON:
			*lost = true;
			goto out;
		case PROCFT_OTHER:
			got = get_user_pages_remote(mm, addr, 1, FOLL_HWPOISON, &page, NULL);
			if (got == 1) {
				put_page(page);
				continue;
			}
			*lost = got == -EHWPOISON;
			goto out;
		case PROCFT_NONE:
			goto out;
		}
	}
out:
	mmap_read_unlock(mm);
	return min(addr, end);
}

/**
 * procft_keep_going - for long loops in the caller's context: reschedule if
 * needed; may the caller go on (no fatal signal pending)?  May sleep.
 */
bool procft_keep_going(void)
{
	cond_resched();
	return !fatal_signal_pending(current);
}

/* VMA attributes two replicas in step must share. */
#define PROCFT_VM_LAYOUT (VM_READ | VM_WRITE | VM_EXEC | VM_SHARED | VM_MAYWRITE)

/*
 * Whether @b maps all of [@start, @end), with mappings one after another
 * whose layout flags are @flags: two replicas have the same layout even if
 * the kernel merged adjacent mappings in one and not in the other (their
 * anon_vma chains differ after a fork).  Sets *@anon if one of them has
 * private pages.
 */
static bool procft_covers(struct mm_struct *b, unsigned long start, unsigned long end,
			  vm_flags_t flags, bool *anon)
{
	struct vm_area_struct *vma;
	unsigned long addr = start;
	bool ok = true;

	mmap_read_lock(b);
	while (ok && addr < end) {
		vma = find_vma(b, addr);
		ok = vma && vma->vm_start <= addr &&
		     (vma->vm_flags & PROCFT_VM_LAYOUT) == (flags & PROCFT_VM_LAYOUT);
		if (ok) {
			*anon |= !!vma->anon_vma;
			addr = vma->vm_end;
		}
	}
	mmap_read_unlock(b);
	return ok;
}

/* Whether every mapping of @a is covered by @b (procft_covers()). */
static bool procft_covered(struct mm_struct *a, struct mm_struct *b)
{
	struct vm_area_struct *vma;
	unsigned long addr = 0, start, end;
	vm_flags_t flags;
	bool anon = false;

	for (;;) {
		mmap_read_lock(a);
		vma = find_vma(a, addr);
		if (vma) {
			start = vma->vm_start;
			end = vma->vm_end;
			flags = vma->vm_flags;
		}
		mmap_read_unlock(a);
		if (!vma)
			return true;
		if (!procft_covers(b, start, end, flags, &anon))
			return false;
		addr = end;
	}
}

/*
 * A duplicate standing at the caller's next call may have grown its stack
 * further down than the caller, which failed between two calls on the way
 * there: the caller's stack grows as far, each page written with the
 * duplicate's bytes from the top down, so that the page fault path extends
 * the stack as it would have.  Returns 0 or -errno (-EHWPOISON if a page
 * of @from_mm is lost).
 */
static int procft_grow_stack(struct mm_struct *from_mm, void *buf)
{
	struct mm_struct *mm = current->mm;
	unsigned long ours = 0, theirs = 0, top = 0, addr;
	struct vm_area_struct *vma;
	struct page *page;
	long got;

	mmap_read_lock(mm);
	vma = find_vma(mm, mm->start_stack);
	if (vma && (vma->vm_flags & VM_GROWSDOWN) && vma->vm_start <= mm->start_stack) {
		ours = vma->vm_start;
		top = vma->vm_end;
	}
	mmap_read_unlock(mm);
	if (!ours)
		return 0;
	mmap_read_lock(from_mm);
	vma = find_vma(from_mm, top - 1);
	if (vma && (vma->vm_flags & VM_GROWSDOWN) && vma->vm_end == top && vma->vm_start < ours)
		theirs = vma->vm_start;
	mmap_read_unlock(from_mm);
	for (addr = ours; theirs && addr > theirs;) {
		addr -= PAGE_SIZE;
		got = procft_get_page(from_mm, addr, &page);
		if (got == -EHWPOISON)
			return -EHWPOISON;
		if (got == 1) {
			memcpy_from_page(buf, page, 0, PAGE_SIZE);
			put_page(page);
		} else {
			memset(buf, 0, PAGE_SIZE);
		}
		if (copy_to_user((void __user *)addr, buf, PAGE_SIZE))
			return -EFAULT;
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	return 0;
}

/*
 * Walks the caller's mappings; with @apply false only checks that @from_mm
 * has the same layout, with @apply true replaces the caller's private
 * pages by copies of @from_mm's.  Returns pages copied or -errno.
 */
static long procft_adopt_walk(struct mm_struct *from_mm, void *buf, bool apply)
{
	struct mm_struct *mm = current->mm;
	unsigned long addr = 0, start, end;
	vm_flags_t flags;
	bool anon, peer_anon, cow;
	struct vm_area_struct *vma;
	long n = 0;
	int ret;

	for (;;) {
		if (fatal_signal_pending(current))
			return -EINTR;
		mmap_read_lock(mm);
		vma = find_vma(mm, addr);
		if (!vma) {
			mmap_read_unlock(mm);
			break;
		}
		start = vma->vm_start;
		end = vma->vm_end;
		flags = vma->vm_flags;
		anon = vma->anon_vma;
		cow = vma_is_cow_mapping(vma) && !(flags & (VM_IO | VM_PFNMAP));
		mmap_read_unlock(mm);
		/*
		 * The peer's mappings are looked at without holding ours: two
		 * mmap_locks are never held at once.  Ours cannot change
		 * meanwhile (only the caller, single-threaded and here, maps).
		 */
		peer_anon = false;
		if (!procft_covers(from_mm, start, end, flags, &peer_anon))
			return -ESTALE;
		cow = cow && (anon || peer_anon);
		if (apply && cow) {
			mmap_read_lock(mm);
			vma = vma_lookup(mm, start);
			if (!vma || vma->vm_start != start || vma->vm_end != end) {
				mmap_read_unlock(mm);
				return -EIO;
			}
			zap_vma_range(vma, start, end - start);
			mmap_read_unlock(mm);
		}
		/* Only the pages @from_mm's tables hold: the rest stay absent. */
		for (addr = start; !apply && cow && peer_anon; addr += PAGE_SIZE) {
			addr = procft_next_page(from_mm, addr, end);
			if (addr >= end)
				break;
			if (procft_page_poisoned(from_mm, addr))
				return -EHWPOISON;
			if (fatal_signal_pending(current))
				return -EINTR;
		}
		for (addr = start; apply && cow; addr += PAGE_SIZE) {
			addr = procft_next_page(from_mm, addr, end);
			if (addr >= end)
				break;
			ret = procft_adopt_page(from_mm, addr, buf);
			if (ret < 0)
				return ret;
			n += ret;
			if (fatal_signal_pending(current))
				return -EINTR;
		}
		addr = end;
	}
	if (!apply && !procft_covered(from_mm, mm))
		return -ESTALE;
	return n;
}

/**
 * procft_adopt_memory - make the caller's private memory a copy of @from's
 * @from: a duplicate stopped at a system-call boundary; it must have
 *	the caller's mappings (same ranges and protections, however the
 *	kernel merged adjacent ones), except that its stack may reach
 *	further down
 *
 * First grows the caller's stack as far as @from's (procft_grow_stack();
 * nothing the caller can see: those pages are below its stack pointer),
 * then checks, without changing anything else, that the layouts match and
 * that none of @from's private pages is lost to memory failure.  Then, for
 * every private writable mapping (where anonymous pages live), drops all
 * the caller's pages there, including entries of frames that memory
 * failure poisoned, and writes each anonymous page present in @from into
 * a freshly allocated frame of the caller.  Pages @from lacks (never
 * touched, or still the file's) are left absent and fault in as @from's
 * would.  Shared and read-only mappings are left alone: their pages are
 * the page cache's, which memory failure recovers by re-reading the file.
 * Both passes visit only the pages @from's page tables hold (empty tables
 * are skipped whole), so a sparse reservation costs what is mapped in it
 * and is not populated.
 *
 * Return: pages copied, -ESTALE if the layouts differ (nothing else changed),
 * -EHWPOISON if a page of @from is on a poisoned frame too (found before
 * anything changed, or while copying, when an error struck @from
 * meanwhile: adopting another replica's memory then redoes every page),
 * -ESRCH if @from has no memory, -ENOMEM, -EINTR on a fatal signal or
 * -EIO; after a failure past the check the caller's memory is incomplete
 * and it must not return to user space.
 */
long procft_adopt_memory(struct task_struct *from)
{
	struct mm_struct *from_mm = get_task_mm(from);
	void *buf;
	long ret;

	if (!from_mm)
		return -ESRCH;
	if (!current->mm || from_mm == current->mm) {
		mmput(from_mm);
		return -EINVAL;
	}
	buf = (void *)__get_free_page(GFP_KERNEL);
	if (!buf) {
		mmput(from_mm);
		return -ENOMEM;
	}
	ret = procft_grow_stack(from_mm, buf);
	if (!ret)
		ret = procft_adopt_walk(from_mm, buf, false);
	if (ret >= 0)
		ret = procft_adopt_walk(from_mm, buf, true);
	free_page((unsigned long)buf);
	mmput(from_mm);
	return ret;
}

/**
 * procft_get_mm - @from's address space, with a reference (mm_users), or
 * NULL if it has none left (exiting)
 */
struct mm_struct *procft_get_mm(struct task_struct *from)
{
	return get_task_mm(from);
}

/**
 * procft_take_mm - continue the caller on @mm, the address space of a
 * duplicate standing at the caller's next system call
 * @mm: from procft_get_mm(); its task has been sent SIGKILL first, so it
 *	never returns to user space to write to it, and its exit writes
 *	nothing there (a duplicate never has clear_child_tid or a robust
 *	list: set_tid_address() and set_robust_list() are the primary's calls)
 *
 * The caller's own address space, poisoned pages included, is released.
 * Cost: one pass over the mappings of both (the layout check), whatever
 * their size.
 *
 * Return: 0, the reference to @mm consumed; or, the reference still the
 * caller's: -ESTALE if @mm lacks one of the caller's mappings (it has
 * diverged; nothing changed), -EOPNOTSUPP without replace_mm(), -EINVAL
 * or -EINTR from replace_mm().
 */
int procft_take_mm(struct mm_struct *mm)
{
#ifdef PROCFT_HAVE_REPLACE_MM
	if (!current->mm || mm == current->mm)
		return -EINVAL;
	if (!procft_covered(current->mm, mm))
		return -ESTALE;
	return replace_mm(mm);
#else
	return -EOPNOTSUPP;
#endif
}

/**
 * procft_copy_regs - copy @from's user registers (procft_regs_size() bytes)
 * into @saved
 * @from: a duplicate stopped in procft code; the caller holds the group
 *	lock that keeps it from going on or exiting, so its stack is there
 */
void procft_copy_regs(struct task_struct *from, void *saved)
{
	memcpy(saved, task_pt_regs(from), sizeof(struct pt_regs));
}

/**
 * procft_set_regs - the caller's user registers become @saved (from
 * procft_copy_regs())
 */
void procft_set_regs(const void *saved)
{
	memcpy(task_pt_regs(current), saved, sizeof(struct pt_regs));
}

/* The regset that holds a task's whole FPU and extended state. */
static const struct user_regset *procft_fpu_regset(void)
{
	const struct user_regset_view *view = task_user_regset_view(current);
	const struct user_regset *rs = NULL;
	int i;

	for (i = 0; i < view->n; i++)
		if (view->regsets[i].core_note_type == NT_X86_XSTATE && view->regsets[i].n)
			rs = &view->regsets[i];
	for (i = 0; !rs && i < view->n; i++)
		if (view->regsets[i].core_note_type == NT_PRFPREG)
			rs = &view->regsets[i];
	return rs && rs->set ? rs : NULL;
}

/**
 * procft_fpu_copy - copy @from's FPU and extended register state (the x86
 * xstate regset, as ptrace would read it) into a new buffer, once it is
 * saved in memory
 * @from: a duplicate held in the kernel by procft (it cannot return to user
 *	space while the caller waits)
 * @data: set to the buffer, for procft_fpu_set() and then kfree()
 *	(procft_fpu_free())
 *
 * The user FPU registers are in memory only once @from was switched out
 * since it entered the kernel: switch_fpu() saves them and sets
 * TIF_NEED_FPU_LOAD, which stays set until it returns to user space.  A
 * duplicate that busy-polls still holds them in its CPU; it sleeps after
 * at most PROCFT_SPIN_NS, but its CPU (a vCPU of a loaded host) may be held
 * up for longer, so the wait is bounded by time, not by that.  May sleep.
 *
 * Return: the size of the state, or -errno (no buffer): -EBUSY if @from
 * has not been switched out within one second.
 */
int procft_fpu_copy(struct task_struct *from, void **data)
{
	const struct user_regset *rs = procft_fpu_regset();
	unsigned long until = jiffies + HZ;

	*data = NULL;
	/* Pairs with finish_task(): the save is complete. */
	while (!test_tsk_thread_flag(from, TIF_NEED_FPU_LOAD) || smp_load_acquire(&from->on_cpu)) {
		if (time_after(jiffies, until))
			return -EBUSY;
		usleep_range(10, 20);
	}
	if (!rs)
		return -EOPNOTSUPP;
	return regset_get_alloc(from, rs, rs->n * rs->size, data);
}

/**
 * procft_fpu_set - the caller's FPU and extended register state becomes
 * the @size bytes procft_fpu_copy() took
 *
 * The caller's own FPU registers are saved and marked stale first
 * (kernel_fpu_begin), so the state written here is what it restores on
 * its way back to user space.
 *
 * Return: 0 or -errno.
 */
int procft_fpu_set(const void *data, int size)
{
	const struct user_regset *rs = procft_fpu_regset();
	int ret;

	if (!rs)
		return -EOPNOTSUPP;
	kernel_fpu_begin();
	ret = rs->set(current, rs, 0, size, data, NULL);
	kernel_fpu_end();
	return ret;
}

/** procft_fpu_free - release procft_fpu_copy()'s buffer */
void procft_fpu_free(void *data)
{
	kfree(data);
}

/* A replica's signal state, as procft_copy_signals() takes it. */
struct procft_sigstate {
	struct k_sigaction action[_NSIG];
	sigset_t blocked;
	unsigned long sas_ss_sp;
	size_t sas_ss_size;
	unsigned int sas_ss_flags;
};

/** procft_sigstate_alloc - room for one procft_copy_signals(); NULL if out of memory */
void *procft_sigstate_alloc(void)
{
	return kmalloc(sizeof(struct procft_sigstate), GFP_KERNEL);
}

/** procft_sigstate_free - release procft_sigstate_alloc()'s room */
void procft_sigstate_free(void *state)
{
	kfree(state);
}

/**
 * procft_copy_signals - copy @from's signal state (the handlers of every
 * signal, the blocked mask, the alternate signal stack) into @state
 * @from: a duplicate standing at a system call; the caller holds the group
 *	lock under which it is listed, so it has not passed the exit probe
 *	and its sighand is still there.  Does not sleep.
 *
 * A duplicate's siglock comes after the group lock, a primary's before it
 * (the signal probes): one lock class, two ranks.  No task is both (the
 * registry refuses it), and nothing takes a procft lock under a
 * duplicate's siglock, so the two never meet in a cycle; lockdep is told
 * the rank with a subclass.  See Documentation/procft.rst, "Locking".
 */
void procft_copy_signals(struct task_struct *from, void *state)
{
	struct procft_sigstate *st = state;
	unsigned long flags;

	spin_lock_irqsave_nested(&from->sighand->siglock, flags, SINGLE_DEPTH_NESTING);
	memcpy(st->action, from->sighand->action, sizeof(st->action));
	st->blocked = from->blocked;
	spin_unlock_irqrestore(&from->sighand->siglock, flags);
	st->sas_ss_sp = from->sas_ss_sp;
	st->sas_ss_size = from->sas_ss_size;
	st->sas_ss_flags = from->sas_ss_flags;
}

/**
 * procft_set_signals - the caller's signal state becomes @state (from
 * procft_copy_signals()): state the duplicates set themselves with calls
 * that run in every replica, which a primary that failed between two
 * recorded calls may not have made yet.  The caller is single-threaded
 * (its sighand is its own).
 */
void procft_set_signals(const void *state)
{
	const struct procft_sigstate *st = state;
	sigset_t blocked = st->blocked;

	spin_lock_irq(&current->sighand->siglock);
	memcpy(current->sighand->action, st->action, sizeof(st->action));
	spin_unlock_irq(&current->sighand->siglock);
	sigprocmask(SIG_SETMASK, &blocked, NULL);
	current->sas_ss_sp = st->sas_ss_sp;
	current->sas_ss_size = st->sas_ss_size;
	current->sas_ss_flags = st->sas_ss_flags;
}

/**
 * procft_copy_thread - copy a thread of the caller's process for a new
 * duplicate: its user registers into @regs (procft_regs_size() bytes) and
 * its signal mask and alternate stack (with the process's handlers) into
 * @state (from procft_sigstate_alloc())
 * @task: another thread of the caller's process, held in the kernel
 *
 * Under its siglock, found through RCU as lock_task_sighand() does (which
 * is not exported): while the thread still has its sighand it has not
 * been released, so its stack, and the registers on it, are still there.
 *
 * Return: 0, or -ESRCH if the thread is exiting.
 */
int procft_copy_thread(struct task_struct *task, void *regs, void *state)
{
	struct procft_sigstate *st = state;
	struct sighand_struct *sighand;
	unsigned long flags;
	int ret = -ESRCH;

	rcu_read_lock();
	sighand = rcu_dereference(task->sighand);
	if (sighand) {
		spin_lock_irqsave(&sighand->siglock, flags);
		if (sighand == rcu_access_pointer(task->sighand) &&
		    !(task->flags & PF_EXITING)) {
			memcpy(regs, task_pt_regs(task), sizeof(struct pt_regs));
			memcpy(st->action, sighand->action, sizeof(st->action));
			st->blocked = task->blocked;
			st->sas_ss_sp = task->sas_ss_sp;
			st->sas_ss_size = task->sas_ss_size;
			st->sas_ss_flags = task->sas_ss_flags;
			ret = 0;
		}
		spin_unlock_irqrestore(&sighand->siglock, flags);
	}
	rcu_read_unlock();
	return ret;
}

/**
 * procft_set_thread_signals - the caller's own signal state (blocked mask,
 * alternate stack) becomes @state's, from procft_copy_thread(); the
 * process's handlers, which its other threads share, are left alone
 */
void procft_set_thread_signals(const void *state)
{
	const struct procft_sigstate *st = state;
	sigset_t blocked = st->blocked;

	sigprocmask(SIG_SETMASK, &blocked, NULL);
	current->sas_ss_sp = st->sas_ss_sp;
	current->sas_ss_size = st->sas_ss_size;
	current->sas_ss_flags = st->sas_ss_flags;
}

/**
 * procft_flush_sigbus - discard the SIGBUS the kernel queued to the caller
 * for a memory error it no longer has (its memory was just replaced),
 * keeping its disposition of SIGBUS.  Any other pending SIGBUS goes too.
 */
void procft_flush_sigbus(void)
{
	struct k_sigaction saved;

	spin_lock_irq(&current->sighand->siglock);
	saved = current->sighand->action[SIGBUS - 1];
	spin_unlock_irq(&current->sighand->siglock);
	/* Setting SIG_IGN flushes the pending SIGBUS (exported for kthreads). */
	kernel_sigaction(SIGBUS, SIG_IGN);
	spin_lock_irq(&current->sighand->siglock);
	current->sighand->action[SIGBUS - 1] = saved;
	spin_unlock_irq(&current->sighand->siglock);
}

/** procft_kill_self_sigbus - end the caller with SIGBUS, as a lost memory would */
void procft_kill_self_sigbus(void)
{
	force_sig(SIGBUS);
}

/**
 * procft_corrupt_byte - flip every bit of the byte at @addr in @task's
 * memory (test-only fault injection: a silent data corruption), as a
 * debugger's poke would
 *
 * Return: 0, or -EFAULT if @task has no writable byte there.
 */
int procft_corrupt_byte(struct task_struct *task, unsigned long addr)
{
	u8 b;

	if (access_process_vm(task, addr, &b, 1, FOLL_FORCE) != 1)
		return -EFAULT;
	b ^= 0xff;
	if (access_process_vm(task, addr, &b, 1, FOLL_WRITE | FOLL_FORCE) != 1)
		return -EFAULT;
	return 0;
}

/** procft_siginfo_size - sizeof(kernel_siginfo_t), for the Rust side's copy */
size_t procft_siginfo_size(void)
{
	return sizeof(kernel_siginfo_t);
}

/** procft_signal_pending - will the caller handle a signal before user code runs? */
bool procft_signal_pending(void)
{
	return task_sigpending(current);
}

/** procft_user_ip - the caller's user instruction pointer */
unsigned long procft_user_ip(void)
{
	return task_pt_regs(current)->ip;
}

/** procft_user_sp - the caller's user stack pointer */
unsigned long procft_user_sp(void)
{
	return task_pt_regs(current)->sp;
}

/**
 * procft_in_ia32_syscall - is the caller's system call a 32-bit one?
 *
 * True for int $0x80, and for sysenter and syscall from 32-bit code: the
 * call number and arguments are then the ia32 table's (for int $0x80
 * from a 64-bit program too), not the x86-64 one's.
 */
bool procft_in_ia32_syscall(void)
{
	return in_ia32_syscall();
}

/** procft_syscall_nr - the caller's system call number (-1 outside one) */
long procft_syscall_nr(void)
{
	return syscall_get_nr(current, task_pt_regs(current));
}

/**
 * procft_runtime_ns - CPU time the threads of @task's process have had so
 * far, in nanoseconds, as of their last scheduler update (at most a tick
 * old while one runs): a duplicate whose first thread waits while others
 * run is not idle
 */
u64 procft_runtime_ns(struct task_struct *task)
{
	struct task_struct *t;
	u64 ns = READ_ONCE(task->signal->sum_sched_runtime);

	rcu_read_lock();
	for_each_thread(task, t)
		ns += READ_ONCE(t->se.sum_exec_runtime);
	rcu_read_unlock();
	return ns;
}

/**
 * procft_get_user_words - copy @words 64-bit words from the caller's
 * memory at @addr to @to: the few structures of a time read's output, or
 * the aligned words holding the few bytes a call sends.
 *
 * One user-access section with a load per word, where copy_from_user()
 * costs a call and a copy loop for each structure; the faults are the
 * same (a page not present is faulted in, a poisoned one fails the copy).
 *
 * Return: 0, or -EFAULT (@to then partly written).
 */
int procft_get_user_words(u64 *to, unsigned long addr, unsigned int words)
{
	const u64 __user *from = (const u64 __user *)addr;
	unsigned int i;

	might_fault();
	if (!user_read_access_begin(from, (size_t)words * sizeof(u64)))
		return -EFAULT;
	for (i = 0; i < words; i++)
		unsafe_get_user(to[i], &from[i], efault);
	user_read_access_end();
	return 0;
efault:
	user_read_access_end();
	return -EFAULT;
}

/**
 * procft_put_user_words - copy @words 64-bit words from @from to the
 * caller's memory at @addr; procft_get_user_words() the other way.
 *
 * Return: 0, or -EFAULT (the memory at @addr then partly written).
 */
int procft_put_user_words(unsigned long addr, const u64 *from, unsigned int words)
{
	u64 __user *to = (u64 __user *)addr;
	unsigned int i;

	might_fault();
	if (!user_write_access_begin(to, (size_t)words * sizeof(u64)))
		return -EFAULT;
	for (i = 0; i < words; i++)
		unsafe_put_user(from[i], &to[i], efault);
	user_write_access_end();
	return 0;
efault:
	user_write_access_end();
	return -EFAULT;
}

/**
 * procft_syscall_arg - argument @i (0 to 5; 0 otherwise) of the caller's
 * system call, also at its sys_exit (the argument registers are kept)
 */
unsigned long procft_syscall_arg(unsigned int i)
{
	unsigned long args[6];

	if (i >= ARRAY_SIZE(args))
		return 0;
	syscall_get_arguments(current, task_pt_regs(current), args);
	return args[i];
}

/**
 * procft_take_clear_child_tid - the caller's clear_child_tid, which it
 * forgets: the exit of a duplicate's thread then writes nothing (procft
 * clears the word itself, at the point of the schedule where the
 * primary's thread exited)
 */
unsigned long procft_take_clear_child_tid(void)
{
	int __user *p = current->clear_child_tid;

	current->clear_child_tid = NULL;
	return (unsigned long)p;
}

/* ---- the vDSO's time functions made system calls ----------------------- */

/* The x86-64 vDSO functions that read the time (or the CPU), and their calls. */
static const struct {
	const char *name;
	unsigned int nr;
} procft_vdso_calls[] = {
	{ "__vdso_clock_gettime", __NR_clock_gettime },
	{ "__vdso_gettimeofday", __NR_gettimeofday },
	{ "__vdso_time", __NR_time },
	{ "__vdso_clock_getres", __NR_clock_getres },
	{ "__vdso_getcpu", __NR_getcpu },
};

/* "mov $nr, %eax; syscall; ret": the function's arguments are already in place. */
#define PROCFT_STUB_LEN	8
#define PROCFT_STUB_MOV_END	5	/* where the stub's instructions end */
#define PROCFT_STUB_SYSCALL_END	7

static void procft_stub(unsigned int nr, u8 stub[PROCFT_STUB_LEN])
{
	stub[0] = 0xb8;
	put_unaligned_le32(nr, &stub[1]);
	stub[5] = 0x0f;
	stub[6] = 0x05;
	stub[7] = 0xc3;
}

/*
 * Whether the caller's memory at @addr holds the stub for call @nr: 1 or
 * 0, or -EFAULT if it cannot be read.
 */
static int procft_stub_at(unsigned long addr, unsigned int nr)
{
	u8 stub[PROCFT_STUB_LEN], now[PROCFT_STUB_LEN];

	procft_stub(nr, stub);
	if (copy_from_user(now, (void __user *)addr, sizeof(now)))
		return -EFAULT;
	return !memcmp(now, stub, sizeof(stub));
}

/*
 * The vDSO image @mm's task runs with, and in *@base where it is mapped;
 * NULL if it has none.  The address is the one the kernel recorded, which
 * it does not clear on munmap.
 */
static const struct vdso_image *procft_vdso_of(struct mm_struct *mm, unsigned long *base)
{
	const struct vdso_image *image;

	if (!mm)
		return NULL;
	image = READ_ONCE(mm->context.vdso_image);
	*base = (unsigned long)READ_ONCE(mm->context.vdso);
	return *base ? image : NULL;
}

/*
 * The offset of dynamic symbol @name in the vDSO @image (its ELF file, linked
 * at 0), if it is a function of at least PROCFT_STUB_LEN bytes; -ENOENT
 * otherwise.  Everything read is checked against the image's size.
 */
static long procft_vdso_sym(const struct vdso_image *image, const char *name)
{
	const Elf64_Ehdr *eh = image->data;
	const Elf64_Shdr *sh, *str;
	const Elf64_Sym *sym;
	unsigned long size = image->size, i, n;

	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(*sh) ||
	    eh->e_shoff > size || eh->e_shnum > (size - eh->e_shoff) / sizeof(*sh))
		return -ENOENT;
	sh = image->data + eh->e_shoff;
	for (i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset)
			continue;
		str = &sh[sh[i].sh_link];
		if (str->sh_offset > size || str->sh_size > size - str->sh_offset)
			continue;
		sym = image->data + sh[i].sh_offset;
		n = sh[i].sh_size / sizeof(*sym);
		for (; n; n--, sym++) {
			const char *sname = image->data + str->sh_offset + sym->st_name;

			if (sym->st_name >= str->sh_size ||
			    strnlen(sname, str->sh_size - sym->st_name) == str->sh_size - sym->st_name ||
			    strcmp(sname, name))
				continue;
			if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC ||
			    sym->st_size < PROCFT_STUB_LEN || sym->st_value > size - PROCFT_STUB_LEN)
				return -ENOENT;
			return sym->st_value;
		}
	}
	return -ENOENT;
}

/**
 * procft_vdso_make_calls - turn the caller's vDSO time functions into system
 * calls
 *
 * A protected primary that found the vDSO at start reads the time there, in
 * user space, each replica at its own moment; a replica whose output depends
 * on it diverges.  This writes, at the entry of each of the vDSO's time (and
 * CPU) functions in the caller's address space, "mov $nr, %eax; syscall;
 * ret" with the function's own system call, as a debugger writes a
 * breakpoint: the page becomes the process's own copy (the vDSO mapping
 * allows it), everyone else keeps the kernel's.  The C library's calls then
 * reach procft as the system calls it records and replays.  Called by the
 * primary before it creates its first duplicate, which inherits the copy
 * (so do the children it forks later).  Already done (by an earlier
 * protection), no vDSO, or not the kernel's 64-bit vDSO mapping at the
 * address the kernel recorded (unmapped, or something else mapped there
 * since): nothing to do.  The caller is single-threaded and in a system
 * call; the one way it can be inside the rewritten bytes is a signal
 * handler making this call after interrupting one of those functions in
 * its first instructions (the first two or three): when the handler
 * returns, procft_vdso_fix_frame() takes it back to the entry.
 *
 * Return: how many functions were rewritten, or a negative errno
 * (-EFAULT if a write failed: the ones before it stay rewritten; -EINTR
 * if a fatal signal came, which the write then fails on).
 */
int procft_vdso_make_calls(void)
{
	struct mm_struct *mm = current->mm;
	const struct vdso_image *image;
	struct vm_area_struct *vma;
	unsigned long base;
	int i, done = 0;
	bool mapped;

	if (!mm)
		return 0;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	image = procft_vdso_of(mm, &base);
	vma = image ? vma_lookup(mm, base) : NULL;
	/* Only the vDSO itself, whole: x86 does not clear the address on munmap. */
	mapped = vma && vma->vm_start == base && vma->vm_end - base == image->size &&
		 vma->vm_ops && vma->vm_ops->name && !strcmp(vma->vm_ops->name(vma), "[vdso]");
	mmap_read_unlock(mm);
	if (!mapped)
		return 0;
	for (i = 0; i < ARRAY_SIZE(procft_vdso_calls); i++) {
		long off = procft_vdso_sym(image, procft_vdso_calls[i].name);
		u8 stub[PROCFT_STUB_LEN];
		int there;

		if (off < 0)
			continue;
		there = procft_stub_at(base + off, procft_vdso_calls[i].nr);
		if (there < 0)
			return there;
		if (there)
			continue;
		procft_stub(procft_vdso_calls[i].nr, stub);
		if (access_process_vm(current, base + off, stub, sizeof(stub),
				      FOLL_FORCE | FOLL_WRITE) != sizeof(stub))
			return fatal_signal_pending(current) ? -EINTR : -EFAULT;
		done++;
	}
	return done;
}

/*
 * Undoes the first @k bytes of instructions of the vDSO function whose
 * original code is @code, which the caller executed before a signal
 * interrupted it, on the registers its signal frame restores (@sc): pops
 * what they pushed from its stack.  Knows the instructions the x86-64
 * vDSO's time functions begin with: push (of a register other than %rsp),
 * "mov %rsp,%rbp" after a push of %rbp, and "cmp $imm8,%edi" (flags only).
 * Returns false, changing nothing, if @k does not end an instruction or
 * it meets another instruction.
 */
static bool procft_vdso_unwind(struct sigcontext *sc, const u8 *code, unsigned int k)
{
	/* What each instruction did, to undo: a register pushed, or nothing (-1). */
	int pushed[PROCFT_STUB_LEN], n = 0, i;
	/* By the register numbers of the push opcodes. */
	__u64 sp = sc->sp, *reg[16] = {
		&sc->ax, &sc->cx, &sc->dx, &sc->bx, NULL, &sc->bp, &sc->si, &sc->di,
		&sc->r8, &sc->r9, &sc->r10, &sc->r11, &sc->r12, &sc->r13, &sc->r14,
		&sc->r15,
	};
	unsigned int pos = 0;
	bool rbp_saved = false;
	__u64 vals[PROCFT_STUB_LEN];

	while (pos < k) {
		if (code[pos] >= 0x50 && code[pos] <= 0x57 && code[pos] != 0x54) {
			rbp_saved |= code[pos] == 0x55;
			pushed[n++] = code[pos] - 0x50;
			pos += 1;
		} else if (code[pos] == 0x41 && pos + 1 < PROCFT_STUB_LEN &&
			   code[pos + 1] >= 0x50 && code[pos + 1] <= 0x57) {
			pushed[n++] = 8 + code[pos + 1] - 0x50;
			pos += 2;
		} else if (pos + 2 < PROCFT_STUB_LEN && code[pos] == 0x48 && code[pos + 1] == 0x89 &&
			   code[pos + 2] == 0xe5 && rbp_saved) {
			/* mov %rsp,%rbp: %rbp comes back with the push before it. */
			pushed[n++] = -1;
			pos += 3;
		} else if (pos + 2 < PROCFT_STUB_LEN && code[pos] == 0x83 && code[pos + 1] == 0xff) {
			pushed[n++] = -1;
			pos += 3;
		} else {
			return false;
		}
	}
	if (pos != k)
		return false;
	/* Read everything first: a fault changes nothing. */
	for (i = n - 1; i >= 0; i--) {
		if (pushed[i] < 0)
			continue;
		if (get_user(vals[i], (__u64 __user *)sp))
			return false;
		sp += sizeof(__u64);
	}
	for (i = n - 1; i >= 0; i--)
		if (pushed[i] >= 0)
			*reg[pushed[i]] = vals[i];
	sc->sp = sp;
	return true;
}

/*
 * At the entry of rt_sigreturn (@regs: the caller's registers there), if
 * the signal frame the kernel is about to restore resumes inside a stub
 * procft_vdso_make_calls() wrote, where one of the
 * original instructions it replaced ended, changes the frame so that the
 * function starts again from its entry, what those instructions pushed
 * popped: the stub then runs whole, as if the function had just been
 * called.  The way there: a signal handler interrupted one of those
 * functions in its first instructions, then made the call at which they
 * were rewritten.  Where one of the stub's own instructions ends too (5
 * bytes in, after the mov; 7, after the syscall), a signal that came while
 * the stub ran resumes there rightly: that is told by the registers the
 * stub set (%rax is the call's number after the mov, %rcx the address
 * after the syscall, which the syscall instruction puts there), and left
 * alone.  Each replica does the same, at the same call.  A frame that
 * cannot be read is left to the kernel.  Only protected tasks come here:
 * a child forked in the handler, or a process whose protection ended
 * there, is not mended.
 */
static void procft_vdso_fix_frame(struct pt_regs *regs)
{
	struct rt_sigframe __user *frame = (struct rt_sigframe __user *)(regs->sp - sizeof(long));
	const struct vdso_image *image;
	struct sigcontext sc;
	unsigned long base;
	int i;

	image = procft_vdso_of(current->mm, &base);
	if (!image || in_ia32_syscall() ||
	    copy_from_user(&sc, &frame->uc.uc_mcontext, sizeof(sc)) ||
	    sc.ip - base >= image->size)
		return;
	for (i = 0; i < ARRAY_SIZE(procft_vdso_calls); i++) {
		long off = procft_vdso_sym(image, procft_vdso_calls[i].name);
		unsigned long k;

		if (off < 0)
			continue;
		k = sc.ip - (base + off);
		if (k == 0 || k >= PROCFT_STUB_LEN)
			continue;
		/* The stub itself, stopped after its mov or its syscall. */
		if ((k == PROCFT_STUB_MOV_END && sc.ax == procft_vdso_calls[i].nr) ||
		    (k == PROCFT_STUB_SYSCALL_END && sc.cx == sc.ip))
			return;
		if (procft_stub_at(base + off, procft_vdso_calls[i].nr) != 1 ||
		    !procft_vdso_unwind(&sc, (const u8 *)image->data + off, k))
			return;
		sc.ip = base + off;
		/* The general registers, sp and ip only: r8 up to ip. */
		if (copy_to_user(&frame->uc.uc_mcontext, &sc, offsetof(struct sigcontext, flags)))
			pr_debug("procft: pid %d: signal frame not mended\n", current->tgid);
		return;
	}
}

/**
 * procft_call_from_vdso - was the caller's system call made by the vDSO's
 * own code?  Its clock functions fall back to the system call when the
 * clocksource cannot be read in user space.  A call from one of the stubs
 * procft_vdso_make_calls() wrote is not: it stands for the program's own
 * call.  The caller is single-threaded (a protected process or a
 * duplicate), so its vDSO cannot move meanwhile.
 */
bool procft_call_from_vdso(void)
{
	struct pt_regs *regs = task_pt_regs(current);
	const struct vdso_image *image;
	unsigned long base;

	image = procft_vdso_of(current->mm, &base);
	if (!image || regs->ip - base >= image->size)
		return false;
	/* A stub's syscall ends PROCFT_STUB_SYSCALL_END bytes into it. */
	return regs->ip - base < PROCFT_STUB_SYSCALL_END ||
	       procft_stub_at(regs->ip - PROCFT_STUB_SYSCALL_END,
			      syscall_get_nr(current, regs)) != 1;
}

/**
 * procft_forget_auxv - turn every entry @type of the caller's saved
 * auxiliary vector (what /proc/<pid>/auxv shows) into AT_IGNORE
 */
void procft_forget_auxv(unsigned long type)
{
	unsigned long *auxv = current->mm->saved_auxv;
	size_t i;

	for (i = 0; i + 1 < ARRAY_SIZE(current->mm->saved_auxv) && auxv[i] != AT_NULL; i += 2)
		if (auxv[i] == type)
			auxv[i] = AT_IGNORE;
}

/**
 * procft_send_self - queue signal @sig with siginfo @info (a copy of a
 * kernel_siginfo_t) to the caller; it is delivered on the way back to user
 * space, as it was to the primary
 */
int procft_send_self(int sig, const void *info)
{
	kernel_siginfo_t copy;

	memcpy(&copy, info, sizeof(copy));
	return send_sig_info(sig, &copy, current);
}

/** procft_kill - send SIGKILL to @task's process; safe in atomic context */
void procft_kill(struct task_struct *task)
{
	/*
	 * To its whole thread group: a signal aimed at a leader that has
	 * already exited (its other threads going on) would not start the
	 * group's exit.
	 */
	rcu_read_lock();
	kill_pid(task_tgid(task), SIGKILL, 1);
	rcu_read_unlock();
}

/*
 * Tasks run procft code through task_works (duplicates wait there).  Each
 * work is counted from the moment it is queued; dropping the count is its
 * last act.  Module exit (procft_drain()) stops new works, waits for the
 * count to reach zero, then for an RCU-tasks grace period: a task between
 * that last act and its return out of module text has not yet made a
 * voluntary context switch.  A count, not a lock: works are queued by one
 * task and run by another.
 */
static atomic_t procft_works = ATOMIC_INIT(0);
static bool procft_unloading;
static DECLARE_WAIT_QUEUE_HEAD(procft_drain_wq);
static DECLARE_WAIT_QUEUE_HEAD(procft_wq);

static void procft_work_put(void)
{
	if (atomic_dec_and_test(&procft_works))
		wake_up_all(&procft_drain_wq);
}

/* Counts a work about to be queued; false (nothing counted) when unloading. */
static bool procft_work_get(void)
{
	atomic_inc(&procft_works);
	/* Pairs with smp_mb() in procft_drain(). */
	smp_mb__after_atomic();
	if (READ_ONCE(procft_unloading)) {
		procft_work_put();
		return false;
	}
	return true;
}

/* A queued call into procft_rs_task_work(). */
struct procft_work {
	struct callback_head cb;
	long nr;	/* the caller's system call when it was queued */
};

static bool procft_current_is_dup(void);

static void procft_task_work_fn(struct callback_head *cb)
{
	struct procft_work *w = container_of(cb, struct procft_work, cb);
	long nr = w->nr;

	kfree(w);
	procft_rs_task_work(nr, procft_current_is_dup());
	procft_work_put();
}

/*
 * Queues @cb (counted) to run @fn on @task; on failure frees @cb and drops
 * the count.
 */
static int procft_add_task_work(struct task_struct *task, struct callback_head *cb,
				task_work_func_t fn, enum task_work_notify_mode mode)
{
	init_task_work(cb, fn);
	if (task_work_add(task, cb, mode)) {
		kfree(cb);
		procft_work_put();
		return -ESRCH;
	}
	return 0;
}

/*
 * A task_work of @size bytes (its callback_head first), counted, for
 * procft_add_task_work(); an ERR_PTR: -ENOMEM, or -EBUSY while the module
 * is being unloaded.
 */
static void *procft_work_alloc(size_t size, gfp_t gfp)
{
	void *w = kmalloc(size, gfp);

	if (!w)
		return ERR_PTR(-ENOMEM);
	if (!procft_work_get()) {
		kfree(w);
		return ERR_PTR(-EBUSY);
	}
	return w;
}

/* procft_rs_task_work() on the caller, @gfp allocation. */
static int procft_queue_work(gfp_t gfp)
{
	struct procft_work *w = procft_work_alloc(sizeof(*w), gfp);

	if (IS_ERR(w))
		return PTR_ERR(w);
	w->nr = syscall_get_nr(current, task_pt_regs(current));
	return procft_add_task_work(current, &w->cb, procft_task_work_fn, TWA_RESUME);
}

/**
 * procft_queue_task_work - run procft_rs_task_work() in the calling task
 * before it returns to user space (or when it exits)
 *
 * Return: 0, -ENOMEM, -EBUSY (unloading), or -ESRCH if the task is exiting.
 */
int procft_queue_task_work(void)
{
	return procft_queue_work(GFP_KERNEL);
}

/**
 * procft_queue_task_work_atomic - procft_queue_task_work() for atomic
 * context (a probe under a spinlock): no sleeping allocation.
 *
 * Return: 0, -EBUSY (unloading), -ENOMEM or -ESRCH.
 */
int procft_queue_task_work_atomic(void)
{
	return procft_queue_work(GFP_ATOMIC);
}

/*
 * A task's own preallocated work (a duplicate's), used instead of a
 * kmalloc'd one for each call.  Its owner (the duplicate's record in its
 * group) may be freed while the work is queued: the exit probe runs
 * before exit_task_work(), which then runs it.  So the owner and a queued
 * work each hold a claim (@state: PROCFT_OWN_ORPHAN once the owner dropped
 * its own, PROCFT_OWN_QUEUED while queued), each dropped with one fully
 * ordered atomic operation that also says whether the other is still
 * held: whichever drops the last one frees it, and neither touches it
 * after dropping its own.
 */
struct procft_own_work {
	struct procft_work w;
	atomic_long_t state;
};

#define PROCFT_OWN_QUEUED	1L
#define PROCFT_OWN_ORPHAN	2L

static void procft_own_work_fn(struct callback_head *cb)
{
	struct procft_own_work *o = container_of(cb, struct procft_own_work, w.cb);
	long nr = o->w.nr;

	/* From here on it may be queued again (or freed by its owner). */
	if (atomic_long_fetch_andnot(PROCFT_OWN_QUEUED, &o->state) & PROCFT_OWN_ORPHAN)
		kfree(o);
	procft_rs_task_work(nr, procft_current_is_dup());
	procft_work_put();
}

/**
 * procft_own_work_alloc - a work for procft_queue_own_work(), charged to
 * the caller's memory cgroup, or NULL
 */
void *procft_own_work_alloc(void)
{
	return kzalloc(sizeof(struct procft_own_work), GFP_KERNEL_ACCOUNT);
}

/**
 * procft_own_work_free - drop the owner's claim on @work
 *
 * Frees it now, or, if it is queued, leaves that to its callback.  Does
 * not sleep.
 */
void procft_own_work_free(void *work)
{
	struct procft_own_work *o = work;

	if (!(atomic_long_fetch_or(PROCFT_OWN_ORPHAN, &o->state) & PROCFT_OWN_QUEUED))
		kfree(o);
}

/**
 * procft_queue_own_work - procft_queue_task_work() with @work, the
 * caller's own preallocated work (from procft_own_work_alloc(), whose
 * owner has not dropped it); a kmalloc'd one if @work is already queued
 *
 * Return: as procft_queue_task_work().
 */
int procft_queue_own_work(void *work)
{
	struct procft_own_work *o = work;

	if (atomic_long_fetch_or(PROCFT_OWN_QUEUED, &o->state) & PROCFT_OWN_QUEUED)
		return procft_queue_work(GFP_KERNEL);
	if (!procft_work_get()) {
		atomic_long_andnot(PROCFT_OWN_QUEUED, &o->state);
		return -EBUSY;
	}
	o->w.nr = syscall_get_nr(current, task_pt_regs(current));
	init_task_work(&o->w.cb, procft_own_work_fn);
	if (task_work_add(current, &o->w.cb, TWA_RESUME)) {
		atomic_long_andnot(PROCFT_OWN_QUEUED, &o->state);
		procft_work_put();
		return -ESRCH;
	}
	return 0;
}

/* The kick's work: nothing to do but let the task restart its call. */
static void procft_kick_fn(struct callback_head *cb)
{
	kfree(cb);
	procft_work_put();
}

/**
 * procft_kick - bring @task to a system-call boundary now
 *
 * Queues an empty task_work with TWA_SIGNAL: a task sleeping interruptibly
 * in a system call leaves it as for a signal, finds nothing to deliver,
 * and the kernel's restart logic makes the call again, through sys_enter.
 * Only for calls that the caller knows are restarted unseen.  Safe in
 * atomic context (the exit probe); nothing is queued while the module is
 * being unloaded.
 *
 * Return: 0, -EBUSY (unloading), -ENOMEM, or -ESRCH if @task is exiting.
 */
int procft_kick(struct task_struct *task)
{
	struct callback_head *cb = procft_work_alloc(sizeof(*cb), GFP_ATOMIC);

	if (IS_ERR(cb))
		return PTR_ERR(cb);
	return procft_add_task_work(task, cb, procft_kick_fn, TWA_SIGNAL);
}

/* A preemption of the run token's holder (procft_preempt()). */
struct procft_preempt {
	struct callback_head cb;
	u64 turn;
};

/* The preemption's work, in the preempted thread: procft's decision. */
static void procft_preempt_fn(struct callback_head *cb)
{
	struct procft_preempt *p = container_of(cb, struct procft_preempt, cb);
	u64 turn = p->turn;

	kfree(p);
	procft_rs_preempted(turn);
	procft_work_put();
}

/**
 * procft_preempt - stop @task, the thread of a multi-threaded primary that
 * holds procft's run token and runs on without a system call, on its way
 * back to user mode
 * @turn: the token's turn when it was found running on; passed back to
 *	  procft_rs_preempted(), which does nothing if the token changed
 *	  hands since
 *
 * Queues a task_work with TWA_SIGNAL: a task running user code is
 * interrupted at once.  Nothing is queued while the module is being
 * unloaded.
 *
 * Return: 0, -EBUSY (unloading), -ENOMEM, or -ESRCH if @task is exiting.
 */
int procft_preempt(struct task_struct *task, u64 turn)
{
	struct procft_preempt *p = procft_work_alloc(sizeof(*p), GFP_KERNEL);

	if (IS_ERR(p))
		return PTR_ERR(p);
	p->turn = turn;
	return procft_add_task_work(task, &p->cb, procft_preempt_fn, TWA_SIGNAL);
}

/**
 * procft_kick_threads - procft_kick() every other thread of the caller's
 * process
 *
 * For a takeover from a multi-threaded primary: each thread sleeping
 * interruptibly in a system call leaves it for its system-call boundary,
 * where procft holds it while the process's memory is replaced.  Threads
 * that are not in such a sleep find an empty task_work on their way back.
 *
 * Return: how many threads were kicked.
 */
int procft_kick_threads(void)
{
	struct task_struct *t;
	int n = 0;

	rcu_read_lock();
	for_each_thread(current, t) {
		if (t != current && !procft_kick(t))
			n++;
	}
	rcu_read_unlock();
	return n;
}

/**
 * procft_blocked_call - the system call @task sleeps in, interruptibly
 * @arg0: set to the call's first argument
 *
 * A snapshot: the task may wake at any moment.
 *
 * Return: the call's number, or -1 if @task is not sleeping interruptibly
 * inside a 64-bit system call.
 */
long procft_blocked_call(struct task_struct *task, unsigned long *arg0)
{
	struct pt_regs *regs = task_pt_regs(task);

	if (task == current || !(READ_ONCE(task->__state) & TASK_INTERRUPTIBLE))
		return -1;
	/* A 32-bit call's number is not the x86-64 table's. */
	if (IS_ENABLED(CONFIG_IA32_EMULATION) &&
	    (READ_ONCE(task_thread_info(task)->status) & TS_COMPAT))
		return -1;
	*arg0 = regs->di;
	return syscall_get_nr(task, regs);
}

/**
 * procft_fd_type - the file type bits (S_IFMT) of @task's descriptor @fd,
 * or 0 if it is not open
 */
unsigned int procft_fd_type(struct task_struct *task, unsigned int fd)
{
	unsigned int found = fd;
	struct file *file = fget_task_next(task, &found);
	unsigned int type = 0;

	if (!file)
		return 0;
	if (found == fd)
		type = file_inode(file)->i_mode & S_IFMT;
	fput(file);
	return type;
}

/*
 * How long a waiter polls before it sleeps: a duplicate close behind its
 * primary usually gets the next record within a few microseconds, and a
 * wakeup costs more than that (an IPI and two context switches).  Bounded
 * by time and by a number of turns (a turn takes at least a pause and a
 * clock read, some 50 ns on current CPUs), so that it ends whatever the
 * clock does, and cut short if the CPU is wanted.
 */
#define PROCFT_SPIN_NS 20000
#define PROCFT_SPIN_TURNS 1000

/*
 * Polls @ready(@arg) while the task with global id @owner, which would
 * make it hold, is runnable (task_is_runnable(): queued, and not a
 * blocked task whose dequeue the scheduler delayed): asleep in a blocking
 * call, it cannot make it hold before it is woken, and the poll would
 * only take a CPU from others.  Not only while it runs on a CPU
 * (owner_on_cpu(), as mutex spinning does): one waiting for this very CPU
 * runs when the poller is preempted, and the poller, still runnable, is
 * then not woken.  The task is held by a reference, not under RCU, so
 * that the poll stays preemptible.
 *
 * Return: 1 if @ready held at once; else 2 if it held later, 3 if @owner
 * was asleep (or gone) at the start or fell asleep meanwhile, 0 if the
 * poll ran out.
 */
static int procft_spin(bool (*ready)(const void *arg), const void *arg, pid_t owner)
{
	u64 end = ktime_get_ns() + PROCFT_SPIN_NS;
	struct task_struct *task;
	unsigned int turn;
	int ret = 0;

	if (ready(arg))
		return 1;
	rcu_read_lock();
	task = pid_task(find_pid_ns(owner, &init_pid_ns), PIDTYPE_PID);
	if (task)
		get_task_struct(task);
	rcu_read_unlock();
	if (!task)
		return 3;
	for (turn = 1; turn < PROCFT_SPIN_TURNS; turn++) {
		if (!task_is_runnable(task)) {
			ret = 3;
			break;
		}
		if (need_resched() || ktime_get_ns() >= end)
			break;
		cpu_relax();
		if (ready(arg)) {
			ret = 2;
			break;
		}
	}
	put_task_struct(task);
	return ret;
}

/*
 * A waiter of procft_wait_killable() with a key: only wake-ups for all or
 * for its own key wake it (its queue may be other keys' too).
 */
struct procft_keyed_wait {
	struct wait_queue_entry entry;
	long key;
};

static int procft_keyed_wake(struct wait_queue_entry *entry, unsigned int mode, int sync,
			     void *key)
{
	struct procft_keyed_wait *w = container_of(entry, struct procft_keyed_wait, entry);

	if (key && w->key && w->key != *(long *)key)
		return 0;
	return autoremove_wake_function(entry, mode, sync, key);
}

/**
 * procft_wait_killable - sleep on @wq until @cond(@arg) holds or a fatal
 * signal arrives; procft_wake() of @wq makes waiters re-check.
 * @wq: the queue of the group waited on
 * @cond: the condition, checked before each sleep
 * @ready: NULL, or a lock-free check polled for a few microseconds before
 *	   the first sleep: something may have changed (a record was
 *	   published), and the poll ends; @cond decides, as always
 * @arg: their argument
 * @key: 0, or a positive key: then only procft_wake() for all or for
 *	 this key wakes it (a thread of a duplicate waits for the records
 *	 of the primary's thread it mirrors, keyed by that thread's id)
 * @owner: the global id of the task that would make @ready hold: the poll
 *	   goes on only while it is runnable
 * @ticks: 0, or at most that many jiffies (then -ETIMEDOUT)
 *
 * A waiting replica is idle, not busy: it does not count in the load
 * average (TASK_NOLOAD).
 *
 * Return: once @cond holds after a sleep, 3 if @owner was asleep (or
 * gone) at the poll's start or end, else 0; if it held at the first
 * check, 2 if the poll saw @ready become true (it was not at the poll's
 * first look), else 1; or -ETIMEDOUT, or -ERESTARTSYS.
 */
int procft_wait_killable(struct wait_queue_head *wq, bool (*cond)(const void *arg),
			 bool (*ready)(const void *arg), const void *arg, long key, pid_t owner,
			 unsigned int ticks)
{
	struct procft_keyed_wait w = { .key = key };
	int spin = ready ? procft_spin(ready, arg, owner) : 0;
	long ret = spin == 2 ? 2 : 1;
	long left = ticks ? ticks : MAX_SCHEDULE_TIMEOUT;

	/* ___wait_event() with its own wake function. */
	init_wait_entry(&w.entry, 0);
	w.entry.func = procft_keyed_wake;
	for (;;) {
		long intr = prepare_to_wait_event(wq, &w.entry, TASK_KILLABLE | TASK_NOLOAD);

		if (cond(arg))
			break;
		if (intr) {
			ret = intr;
			break;
		}
		if (!left) {
			ret = -ETIMEDOUT;
			break;
		}
		left = schedule_timeout(left);
		ret = spin == 3 ? 3 : 0;
	}
	finish_wait(wq, &w.entry);
	return ret;
}

/**
 * procft_wait_killable_timeout - procft_wait_killable() for at most @ms
 * milliseconds.  0 once @cond holds, -ETIMEDOUT, or -ERESTARTSYS.
 */
int procft_wait_killable_timeout(struct wait_queue_head *wq, bool (*cond)(const void *arg),
				 const void *arg, unsigned int ms)
{
	long left = wait_event_killable_timeout(*wq, cond(arg), msecs_to_jiffies(ms));

	if (left < 0)
		return left;
	return left ? 0 : -ETIMEDOUT;
}

/**
 * procft_wait_interruptible - sleep on procft_wq until @cond(@arg) holds or
 * any signal arrives (a reader of the event log).  0 or -ERESTARTSYS.
 */
int procft_wait_interruptible(bool (*cond)(const void *arg), const void *arg)
{
	return wait_event_interruptible(procft_wq, cond(arg));
}

/**
 * procft_wake - make procft_wait_killable() sleepers on @n queues from @wq
 * re-check; no wake-up (not even a queue's lock) unless one sleeps there
 * @wq: the first queue, or NULL for procft_wq (the waits of no group)
 * @n: how many queues, one after the other in an array (1 for procft_wq)
 * @key: 0 for every sleeper; a positive key for the unkeyed sleepers and
 *	 those with that key
 */
void procft_wake(struct wait_queue_head *wq, unsigned int n, long key)
{
	unsigned int i;

	if (!wq) {
		wq = &procft_wq;
		n = 1;
	}
	/*
	 * As wq_has_sleeper(), with one barrier for all the queues: it pairs
	 * with the one in set_current_state() of a waiter.
	 */
	smp_mb();
	for (i = 0; i < n; i++)
		if (waitqueue_active(&wq[i])) /* Ordered by the barrier above. */
			__wake_up(&wq[i], TASK_NORMAL, 0, key ? &key : NULL);
}

/**
 * procft_drain - wait until no task runs, or is queued to run, procft code
 * through a task_work.  Called at module exit, after every replica was
 * told to die.
 */
void procft_drain(void)
{
	WRITE_ONCE(procft_unloading, true);
	/* Pairs with smp_mb__after_atomic() in procft_work_get(). */
	smp_mb();
	wait_event(procft_drain_wq, !atomic_read(&procft_works));
	synchronize_rcu_tasks();
}

/* ---- which processes the syscall probes look at ------------------------ */

/*
 * Tgids of protected processes.  The Rust registry is authoritative and
 * keeps this set in step with it (under its own lock).  Its lock is taken
 * under the registry's, which a primary's siglock may hold (a signal
 * probe), so it keeps interrupts off too (XA_FLAGS_LOCK_IRQ; irqsave
 * where the caller already has them off).
 *
 * With the kernel's system-call hook (kernel/patches/0003), the threads
 * of a process with an entry carry the hook's mark, and only they enter
 * procft's system-call code; the mark is set and cleared with the entry,
 * under the array's lock, so that the two never disagree for long (a
 * thread that fork was copying meanwhile is put right at its first call,
 * procft_filter_sync_mark()).  With the sys_enter/sys_exit tracepoints,
 * every system call of every task reaches the probes, and this lockless
 * xa_load() is what an unprotected process pays there.
 */
static DEFINE_XARRAY_FLAGS(procft_tgids, XA_FLAGS_LOCK_IRQ);

/* System calls of processes without an entry that reached procft's probes. */
static DEFINE_PER_CPU(unsigned long, procft_unprotected_calls);

/* Whether the system-call hook is in use (else the tracepoints). */
static bool procft_use_hook;

/*
 * Gives @t the hook's mark and word that filter entry @entry calls for:
 * marked if there is an entry, with the entry as its word if it is a
 * role, and with no word if it is a value (a policy to take back, which
 * the trampolines find in the array).
 */
static void procft_mark_task(struct task_struct *t, void *entry)
{
#ifdef PROCFT_HAVE_SYSCALL_HOOK
	if (entry)
		syscall_hook_mark_task(t, xa_is_value(entry) ? NULL : entry);
	else
		syscall_hook_unmark_task(t);
#endif
}

/*
 * Marks every thread of the process whose global tgid is @tgid for the
 * system-call hook as its new filter entry @entry says (NULL: unmarks
 * them).  Under the array's lock.
 */
static void procft_mark_tgid(pid_t tgid, void *entry)
{
	struct task_struct *p, *t;

	lockdep_assert_held(&procft_tgids.xa_lock);
	if (!procft_use_hook)
		return;
	rcu_read_lock();
	p = pid_task(find_pid_ns(tgid, &init_pid_ns), PIDTYPE_TGID);
	if (p) {
		for_each_thread(p, t)
			procft_mark_task(t, entry);
	}
	rcu_read_unlock();
}

/* Does @task carry the hook's mark? */
static bool procft_task_marked(struct task_struct *task)
{
#ifdef PROCFT_HAVE_SYSCALL_HOOK
	return procft_use_hook && syscall_hook_task_marked(task);
#else
	return false;
#endif
}

/**
 * procft_filter_sync_mark - make @task's hook mark say whether its process
 * has an entry: for a child that fork copied from a marked parent, and for
 * a thread that fork was copying while its process was (un)marked.
 * @task: the calling task, or a new child that has not run yet
 */
static void procft_filter_sync_mark(struct task_struct *task)
{
	unsigned long flags;

	if (!procft_use_hook)
		return;
	xa_lock_irqsave(&procft_tgids, flags);
	procft_mark_task(task, xa_load(&procft_tgids, task->tgid));
	xa_unlock_irqrestore(&procft_tgids, flags);
}

/** procft_filter_reserve - make room for @tgid; may sleep.  0 or -ENOMEM. */
int procft_filter_reserve(pid_t tgid)
{
	return xa_reserve_irq(&procft_tgids, tgid, GFP_KERNEL);
}

/**
 * procft_filter_release - drop a reservation procft_filter_add() did not
 * use (as xa_release()); interrupts on.
 */
void procft_filter_release(pid_t tgid)
{
	xa_cmpxchg_irq(&procft_tgids, tgid, XA_ZERO_ENTRY, NULL, 0);
}

/*
 * Filter entries: the process's role in its group, a pointer the Rust
 * side gives (struct procft_role, in include/procft_shim.h; never
 * dereferenced here), or, once its protection ended, a value:
 * PROCFT_RESTORE plus the memory-error kill policy (PR_MCE_KILL_*) it
 * takes back at its next system call (another task's flags may only be
 * written by itself).
 */
#define PROCFT_RESTORE	8

/* The role entry @entry is, or NULL (none, or a value). */
static const struct procft_role *procft_role(void *entry)
{
	return xa_is_value(entry) ? NULL : entry;
}

/* Whether the filter marks the caller a duplicate (lockless, as the probes). */
static bool procft_current_is_dup(void)
{
	const struct procft_role *role = procft_role(xa_load(&procft_tgids, current->tgid));

	return role && procft_role_is_dup(role);
}

/* Whether filter entry @entry makes its process a primary. */
static bool procft_is_primary(void *entry)
{
	const struct procft_role *role = procft_role(entry);

	return role && !procft_role_is_dup(role);
}

/*
 * Stores @entry for @tgid (the array's lock keeps interrupts off: the
 * signal probes read it under a siglock); returns the entry it replaced,
 * or an error entry.
 */
static void *procft_filter_store(pid_t tgid, void *entry, gfp_t gfp)
{
	unsigned long flags;
	void *old;

	xa_lock_irqsave(&procft_tgids, flags);
	old = __xa_store(&procft_tgids, tgid, entry, gfp);
	if (!xa_is_err(old)) {
		/*
		 * The entry before the walk of the threads: pairs with a fork,
		 * which lists its child before its probe reads the entry
		 * (procft_probe_fork()), so one of the two sees the other.
		 */
		smp_mb();
		procft_mark_tgid(tgid, entry);
	}
	xa_unlock_irqrestore(&procft_tgids, flags);
	return old;
}

/* The policy a filter value gives back, or -1. */
static int procft_restore_policy(void *entry)
{
	if (!xa_is_value(entry) || xa_to_value(entry) < PROCFT_RESTORE)
		return -1;
	return xa_to_value(entry) - PROCFT_RESTORE;
}

/*
 * In the task's own context (its sys_enter, or its exit): takes back the
 * policy its filter entry @entry holds, if any, and drops the entry.
 * Returns whether it did.
 */
static bool procft_filter_restore(struct task_struct *task, void *entry)
{
	int policy = procft_restore_policy(entry);
	unsigned long flags;

	if (policy < 0)
		return false;
	if (task == current)
		procft_set_mce_policy(current, policy);
	xa_lock_irqsave(&procft_tgids, flags);
	if (__xa_cmpxchg(&procft_tgids, task->tgid, entry, NULL, GFP_ATOMIC) == entry)
		procft_mark_tgid(task->tgid, NULL);
	xa_unlock_irqrestore(&procft_tgids, flags);
	return true;
}

/**
 * procft_filter_add - mark @tgid protected; after a reservation, never allocates
 * @tgid: the process
 * @role: its group's primary role; valid until a Tasks Trace RCU grace
 *	  period after the entry is replaced (procft_defer())
 *
 * Return: the memory-error kill policy an earlier protection of @tgid had
 * yet to give back (the process still has procft's), or -1; -ENOMEM if
 * the entry could not be stored (the reservation gone: another caller's
 * procft_filter_release() dropped it, and the non-sleeping allocation
 * failed).
 */
int procft_filter_add(pid_t tgid, const struct procft_role *role)
{
	void *old = procft_filter_store(tgid, (void *)role, GFP_NOWAIT);

	return xa_is_err(old) ? xa_err(old) : procft_restore_policy(old);
}

/**
 * procft_filter_add_atomic - mark a newly forked duplicate's @tgid, from
 * the fork tracepoint (no sleeping).  0 or -ENOMEM.
 * @tgid: the duplicate
 * @role: its group's duplicate role, valid as for procft_filter_add()
 */
int procft_filter_add_atomic(pid_t tgid, const struct procft_role *role)
{
	return xa_err(procft_filter_store(tgid, (void *)role, GFP_ATOMIC));
}

/**
 * procft_filter_remove - mark @tgid unprotected; atomic-safe
 * @tgid: a protected process or a duplicate
 * @policy: the memory-error kill policy (PR_MCE_KILL_*) the process takes
 *	    back at its next system call, or -1
 */
void procft_filter_remove(pid_t tgid, int policy)
{
	unsigned long flags;

	if (policy >= 0 &&
	    !xa_is_err(procft_filter_store(tgid, xa_mk_value(PROCFT_RESTORE + policy),
					   GFP_ATOMIC)))
		return;
	xa_lock_irqsave(&procft_tgids, flags);
	__xa_erase(&procft_tgids, tgid);
	procft_mark_tgid(tgid, NULL);
	xa_unlock_irqrestore(&procft_tgids, flags);
}

/**
 * procft_defer - call @fn(@head) after a Tasks Trace RCU grace period
 * @head: in the object @fn frees
 * @fn: the callback (softirq or kworker context, bottom halves off)
 *
 * For what the system-call hooks and probes may still be using: the
 * sys_enter/sys_exit tracepoints and the kernel's system-call hook run
 * them inside a Tasks Trace RCU read section, which is why this flavour
 * (checkpatch keeps it to BPF and RCU; scripts/lint.sh says why procft
 * is an exception).  Atomic-safe.
 */
void procft_defer(struct rcu_head *head, void (*fn)(struct rcu_head *head))
{
	call_rcu_tasks_trace(head, fn);
}

/** procft_defer_barrier - wait until every procft_defer() callback has run */
void procft_defer_barrier(void)
{
	rcu_barrier_tasks_trace();
}

/* ---- the time-stamp counter (kernel/patches/0005) ---------------------- */

/**
 * procft_tsc_can_trap - can procft trap rdtsc and rdtscp?  With
 * kernel/patches/0005, when it takes system calls from the kernel's hook.
 */
bool procft_tsc_can_trap(void)
{
#ifdef PROCFT_HAVE_TSC_HOOK
	return procft_use_hook;
#else
	return false;
#endif
}

/**
 * procft_tsc_trap_self - make the caller's rdtsc and rdtscp trap into the
 * hook (@on), or run natively again; children forked later inherit it
 *
 * Return: whether the kernel can trap them (procft_tsc_can_trap()).
 */
bool procft_tsc_trap_self(bool on)
{
	if (!procft_tsc_can_trap())
		return false;
#ifdef PROCFT_HAVE_TSC_HOOK
	/* The program's own PR_TSC_SIGSEGV stays: it gets its SIGSEGV. */
	if (on && test_thread_flag(TIF_NOTSC) && !current->syscall_hook_tsc)
		return true;
	syscall_hook_trap_tsc(on);
#endif
	return true;
}

/**
 * procft_tsc_read - what the caller's rdtsc would read, and in @aux the
 * TSC_AUX an rdtscp would give with it (the kernel sets it to the CPU and
 * its node, for getcpu())
 */
u64 procft_tsc_read(u32 *aux)
{
	unsigned int cpu = get_cpu();
	u64 tsc = rdtsc_ordered();

	*aux = (cpu_to_node(cpu) << 12) | cpu;
	put_cpu();
	return tsc;
}

/**
 * procft_tsc_emulate - finish the caller's trapped rdtsc (or rdtscp,
 * @rdtscp) in user mode as if it had read @tsc (and @aux): sets
 * %edx:%eax (and %ecx) and moves past the instruction
 */
void procft_tsc_emulate(bool rdtscp, u64 tsc, u32 aux)
{
	struct pt_regs *regs = task_pt_regs(current);

	regs->ax = (u32)tsc;
	regs->dx = tsc >> 32;
	if (rdtscp)
		regs->cx = aux;
	regs->ip += rdtscp ? 3 : 2;
}

/* ---- /proc/<pid>/ft_level (needs kernel/patches/0001) ------------------- */

#ifdef PROCFT_HAVE_PROC_FT_LEVEL
static const struct proc_ft_level_ops procft_level_ops = {
	.owner = THIS_MODULE,
	.show = procft_rs_level_show,
	.store = procft_rs_level_store,
};
#endif

/** procft_have_proc_ft_level - was the module built with /proc/<pid>/ft_level? */
bool procft_have_proc_ft_level(void)
{
#ifdef PROCFT_HAVE_PROC_FT_LEVEL
	return true;
#else
	return false;
#endif
}

/* ---- /proc/procft ------------------------------------------------------- */

/* Pids as the mount of proc this file was opened through shows them. */
static int procft_proc_show(struct seq_file *m, void *v)
{
	procft_rs_status_show(m, proc_pid_ns(file_inode(m->file)->i_sb));
	return 0;
}

/* ---- tracepoints ---------------------------------------------------------- */

/*
 * sched_process_exit runs in the exiting task's context (kernel/exit.c,
 * after PF_EXITING is set).  It is an ordinary tracepoint, so the Rust
 * side must not sleep.
 */
static void procft_probe_exit(void *data, struct task_struct *p, bool group_dead)
{
	void *entry;

	if (!group_dead)
		return;
	/*
	 * Every process the Rust side tracks (a primary, including one
	 * inside the clone3() procft injected, and a duplicate) has an
	 * entry for as long as it does; a pending restore is settled here.
	 */
	entry = xa_load(&procft_tgids, p->tgid);
	if (likely(!entry) || procft_filter_restore(p, entry))
		return;
	procft_rs_process_exit(p);
}

/*
 * A system call of a task whose process has no entry reached a probe: with
 * the tracepoints, any system call in the system; with the hook, only a
 * thread whose mark is stale (see procft_filter_sync_mark()).
 */
static void procft_unprotected_call(void)
{
	this_cpu_inc(procft_unprotected_calls);
	procft_filter_sync_mark(current);
}

#ifdef PROCFT_PROFILE
/* Profiling builds (make profile, rust/profile.rs): the time-stamp counter. */
u64 procft_profile_now(void)
{
	return rdtsc_ordered();
}
#define procft_profile_hook(section, t0) procft_rs_profile_hook(section, t0)
#else
static inline u64 procft_profile_now(void)
{
	return 0;
}
#define procft_profile_hook(section, t0) ((void)(section), (void)(t0))
#endif

/*
 * System-call entry of a task with the hook's mark or, with the sys_enter
 * tracepoint, of every task.  Both may fault: the Rust side may read the
 * caller's memory and take its mmap lock, but must not block for long
 * (see Documentation/procft.rst).
 */
/*
 * The caller's filter entry: @word, the hook's word for it (its role, set
 * with the entry), or, without one, the entry looked up.
 */
static void *procft_entry_of_current(void *word)
{
	return likely(word) ? word : xa_load(&procft_tgids, current->tgid);
}

static void procft_sys_enter(struct pt_regs *regs, long id, void *word)
{
	u64 t0 = procft_profile_now();
	void *entry = procft_entry_of_current(word);
	const struct procft_role *role;
	unsigned long args[6];

	if (unlikely(!entry)) {
		procft_unprotected_call();
		return;
	}
	role = procft_role(entry);
	if (unlikely(!role)) {
		procft_filter_restore(current, entry);
		return;
	}
	if (unlikely(id == __NR_rt_sigreturn))
		procft_vdso_fix_frame(regs);
	syscall_get_arguments(current, regs, args);
	procft_profile_hook(4, t0);
	procft_rs_sys_enter(regs, id, args, role);
	procft_profile_hook(procft_role_is_dup(role), t0);
}

/* Also runs in a new child before its first user instruction (ret_from_fork). */
static void procft_sys_exit(struct pt_regs *regs, long ret, void *word)
{
	u64 t0 = procft_profile_now();
	void *entry = procft_entry_of_current(word);
	const struct procft_role *role;

	if (unlikely(!entry)) {
		procft_unprotected_call();
		return;
	}
	role = procft_role(entry);
	if (!role)
		return;
	procft_profile_hook(4, t0);
	procft_rs_sys_exit(regs, ret, role);
	procft_profile_hook(2 + procft_role_is_dup(role), t0);
}

#ifdef PROCFT_HAVE_TSC_HOOK
/*
 * The hook's rdtsc/rdtscp (@rdtscp) trap of a marked task whose counter
 * reads procft traps (kernel/patches/0005), in the same kind of section as
 * the system-call callbacks: into Rust with the task's role.  False (the
 * kernel then stops the trapping and the instruction runs natively) for a
 * process whose protection has ended.
 */
static bool procft_tsc_trap(struct pt_regs *regs, bool rdtscp, void *word)
{
	const struct procft_role *role = procft_role(procft_entry_of_current(word));

	return role && procft_rs_tsc(rdtscp, role);
}
#endif

static void procft_probe_sys_enter(void *data, struct pt_regs *regs, long id)
{
	procft_sys_enter(regs, id, NULL);
}

static void procft_probe_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	procft_sys_exit(regs, ret, NULL);
}

/**
 * procft_unprotected_calls_sum - system calls of processes procft does not
 * protect that reached its probes since the module was loaded
 */
u64 procft_unprotected_calls_sum(void)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu(procft_unprotected_calls, cpu);
	return sum;
}

/** procft_uses_syscall_hook - does procft use the kernel's system-call hook? */
bool procft_uses_syscall_hook(void)
{
	return procft_use_hook;
}

/*
 * In the delivering task, under its siglock with interrupts off: the
 * Rust side only publishes a record (no allocation, no sleeping).  Only
 * primaries matter: duplicates get their signals from procft itself.
 */
static void procft_probe_signal_deliver(void *data, int sig, struct kernel_siginfo *info,
					struct k_sigaction *ka)
{
	if (likely(!procft_is_primary(xa_load(&procft_tgids, current->tgid))))
		return;
	if (!ka || ka->sa.sa_handler == SIG_IGN || ka->sa.sa_handler == SIG_DFL)
		return;
	if (info == SEND_SIG_NOINFO || info == SEND_SIG_PRIV)
		info = NULL;
	procft_rs_signal_deliver(sig, info, ka->sa.sa_flags & SA_RESTART,
				 task_pt_regs(current)->ip);
}

/*
 * Under the target's siglock, interrupts off.  The kernel is about to kill
 * a primary with SIGBUS because it consumed poisoned memory (action
 * required: a machine check in user mode, a hwpoisoned page it touched, or
 * MADV_HWPOISON).  If a duplicate can take over, the Rust side says so and
 * the primary's task_work, which runs before the signal is dequeued,
 * adopts the duplicate's state and discards the signal.
 */
static void procft_probe_signal_generate(void *data, int sig, struct kernel_siginfo *info,
					 struct task_struct *task, int group, int result)
{
	if (likely(sig != SIGBUS) || task != current || result != TRACE_SIGNAL_DELIVERED)
		return;
	if (info == SEND_SIG_NOINFO || info == SEND_SIG_PRIV || info->si_code != BUS_MCEERR_AR)
		return;
	if (!procft_is_primary(xa_load(&procft_tgids, task->tgid)))
		return;
	if (procft_rs_primary_poisoned((unsigned long)info->si_addr))
		procft_queue_task_work_atomic();
}

/* In the parent, after copy_process() and before the child can run. */
static void procft_probe_fork(void *data, struct task_struct *parent,
			      struct task_struct *child)
{
	bool listed = xa_load(&procft_tgids, parent->tgid);

	if (unlikely(listed))
		procft_rs_fork(parent, child);
	/*
	 * A child has its parent's hook mark: it keeps it, with its process's
	 * role as its word, only as a thread or a new duplicate (to which the
	 * Rust side just gave an entry), as the filter says now.  A thread is
	 * synced too: fork copied it while its process's entry could change
	 * (the kernel does not copy the word, but an older role copied here
	 * would name a group that may be freed).  So is one fork copied from
	 * a parent not marked yet, whose process got its entry meanwhile: it
	 * was listed after the marking walked the process's threads.
	 */
	if (unlikely(listed) || procft_task_marked(child))
		procft_filter_sync_mark(child);
}

/*
 * Machine checks: the decode chain runs in process context (a kworker) for
 * every logged error, one record at a time through every notifier in
 * priority order.  procft looks twice: before the kernel's own
 * uncorrected-error handler (MCE_PRIO_UC), which calls memory_failure()
 * for action-optional and deferred errors, it finds the replicas that map
 * the frame (the mappings are still there); after it, it acts only if that
 * handler retired the frame (MCE_HANDLED_UC), so procft follows the
 * kernel's decision and never frees a frame that is not yet poisoned.
 */
static int procft_mce_notify(struct notifier_block *nb, unsigned long val, void *data)
{
	struct mce *m = data;

	if (m && mce_is_memory_error(m) && mce_usable_address(m))
		procft_rs_memory_error((m->addr & MCI_ADDR_PHYSADDR) >> PAGE_SHIFT);
	return NOTIFY_DONE;
}

static int procft_mce_done(struct notifier_block *nb, unsigned long val, void *data)
{
	struct mce *m = data;

	if (m && mce_is_memory_error(m) && mce_usable_address(m))
		procft_rs_memory_error_done((m->addr & MCI_ADDR_PHYSADDR) >> PAGE_SHIFT,
					    m->kflags & MCE_HANDLED_UC);
	return NOTIFY_DONE;
}

static struct notifier_block procft_mce_nb = {
	.notifier_call = procft_mce_notify,
	.priority = MCE_PRIO_UC + 1,
};

static struct notifier_block procft_mce_done_nb = {
	.notifier_call = procft_mce_done,
	.priority = MCE_PRIO_UC - 1,
};

/*
 * Every memory failure the kernel handles, whatever reported it (the
 * machine-check decode chain, firmware-first GHES, hwpoison injection,
 * madvise), ends in the memory_failure_event tracepoint, after the frame
 * was unmapped from everyone.  The Rust side queues a retired frame's pfn
 * for a worker, which looks for it in the protected primaries' page
 * tables; the probe itself may not sleep.
 */
static void procft_probe_memory_failure(void *data, unsigned long pfn, int type, int result)
{
	/* Only frames the kernel retired; only if anything is protected. */
	if ((result != MF_RECOVERED && result != MF_DELAYED) || xa_empty(&procft_tgids))
		return;
	procft_rs_memory_failure(pfn);
}

/*
 * The system calls of the tasks procft marks, with the kernel's hook
 * (kernel/patches/0003): the same functions the sys_enter/sys_exit probes
 * call, under the same Tasks Trace RCU section.
 */
#ifdef PROCFT_HAVE_SYSCALL_HOOK
static const struct syscall_hook procft_syscall_hook = {
	.owner = THIS_MODULE,
	.enter = procft_sys_enter,
	.exit = procft_sys_exit,
#ifdef PROCFT_HAVE_TSC_HOOK
	.tsc = procft_tsc_trap,
#endif
};
#endif

struct procft_tp {
	const char *name;
	void *probe;
	bool syscall;	/* not wanted with the hook */
	struct tracepoint *tp;
};

static struct procft_tp procft_tps[] = {
	{ .name = "sched_process_exit", .probe = procft_probe_exit },
	{ .name = "sys_enter", .probe = procft_probe_sys_enter, .syscall = true },
	{ .name = "sys_exit", .probe = procft_probe_sys_exit, .syscall = true },
	{ .name = "sched_process_fork", .probe = procft_probe_fork },
	{ .name = "signal_deliver", .probe = procft_probe_signal_deliver },
	{ .name = "signal_generate", .probe = procft_probe_signal_generate },
	{ .name = "memory_failure_event", .probe = procft_probe_memory_failure },
};

static void procft_find_tp(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(procft_tps); i++)
		if (!strcmp(tp->name, procft_tps[i].name))
			procft_tps[i].tp = tp;
}

static void procft_unregister_tps(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(procft_tps); i++) {
		if (procft_tps[i].tp)
			tracepoint_probe_unregister(procft_tps[i].tp,
						    procft_tps[i].probe, NULL);
		procft_tps[i].tp = NULL;
	}
	/* No probe may still be running once the module text goes away. */
	tracepoint_synchronize_unregister();
#ifdef PROCFT_HAVE_SYSCALL_HOOK
	/* Unmarks every task, and waits for calls in progress. */
	if (procft_use_hook)
		syscall_hook_unregister(&procft_syscall_hook);
#endif
	procft_use_hook = false;
}

/*
 * The system-call hook, unless @force_tps or the kernel lacks it (then
 * the sys_enter/sys_exit tracepoints), and the other probes.
 */
static int procft_register_tps(bool force_tps)
{
	int i, ret;

#ifdef PROCFT_HAVE_SYSCALL_HOOK
	if (!force_tps) {
		ret = syscall_hook_register(&procft_syscall_hook);
		if (ret) {
			pr_err("procft: cannot register the system-call hook: %d\n", ret);
			return ret;
		}
		procft_use_hook = true;
	}
#endif
	for_each_kernel_tracepoint(procft_find_tp, NULL);
	for (i = 0; i < ARRAY_SIZE(procft_tps); i++) {
		struct tracepoint *tp = procft_tps[i].tp;

		procft_tps[i].tp = NULL;
		if (procft_tps[i].syscall && procft_use_hook)
			continue;
		if (!tp) {
			pr_err("procft: tracepoint %s not found\n", procft_tps[i].name);
			ret = -ENOENT;
			goto fail;
		}
		ret = tracepoint_probe_register(tp, procft_tps[i].probe, NULL);
		if (ret) {
			pr_err("procft: cannot attach to %s: %d\n", procft_tps[i].name, ret);
			goto fail;
		}
		procft_tps[i].tp = tp;
	}
	return 0;
fail:
	procft_unregister_tps();
	return ret;
}

/* ---- init/exit ------------------------------------------------------------ */

static struct proc_dir_entry *procft_proc_entry;

/**
 * procft_shim_init - create /proc/procft, attach the probes and register
 * the /proc/<pid>/ft_level handlers.  Undoes everything on failure.
 * @force_tps: take system calls from the sys_enter/sys_exit tracepoints
 *	       even if the kernel has the system-call hook
 */
int procft_shim_init(bool force_tps)
{
	int ret;

	procft_proc_entry = proc_create_single("procft", 0444, NULL, procft_proc_show);
	if (!procft_proc_entry)
		return -ENOMEM;
	ret = procft_register_tps(force_tps);
	if (ret)
		goto err_proc;
#ifdef PROCFT_HAVE_PROC_FT_LEVEL
	ret = proc_ft_level_register(&procft_level_ops);
	if (ret) {
		pr_err("procft: /proc/<pid>/ft_level is taken: %d\n", ret);
		goto err_tps;
	}
#endif
	mce_register_decode_chain(&procft_mce_nb);
	mce_register_decode_chain(&procft_mce_done_nb);
	return 0;
#ifdef PROCFT_HAVE_PROC_FT_LEVEL
err_tps:
	procft_unregister_tps();
#endif
err_proc:
	proc_remove(procft_proc_entry);
	return ret;
}

/**
 * procft_shim_exit - withdraw every entry point into Rust.  On return no
 * procfs handler or probe is running or can start.
 */
void procft_shim_exit(void)
{
	/* Each waits for a notifier call in progress (a blocking chain). */
	mce_unregister_decode_chain(&procft_mce_nb);
	mce_unregister_decode_chain(&procft_mce_done_nb);
#ifdef PROCFT_HAVE_PROC_FT_LEVEL
	proc_ft_level_unregister(&procft_level_ops);
#endif
	procft_unregister_tps();
	proc_remove(procft_proc_entry);
	/* No probe reads the filter any more; the registry is dropped next. */
	xa_destroy(&procft_tgids);
}

