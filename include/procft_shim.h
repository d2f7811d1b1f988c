/* SPDX-License-Identifier: GPL-2.0 */
/*
 * procft C shim: the kernel facilities that have no Rust abstraction
 * (procfs entries, tracepoint probes, the machine-check decode chain, pid
 * lookup, ptrace-style permission checks, mm/register/signal mechanisms;
 * see rust/procft_shim.c).  Every function here is a trampoline or one
 * mechanism; the decisions are made by the Rust side, whose entry points
 * are declared at the bottom.
 */
#ifndef _PROCFT_SHIM_H
#define _PROCFT_SHIM_H

#include <linux/types.h>

struct task_struct;
struct seq_file;
struct pid_namespace;
struct wait_queue_head;

/*
 * Set up and tear down every C-side hook.  Called once from module
 * init/exit.  @force_tps: system calls from the tracepoints, even if the
 * kernel has the system-call hook.
 */
int procft_shim_init(bool force_tps);
void procft_shim_exit(void);

/* sizeof(struct task_struct) and offsetof(tgid), for a layout check. */
void procft_task_layout(size_t *size, size_t *tgid_offset);
/* Look up a process by pid in the caller's pid namespace; takes a reference. */
struct task_struct *procft_get_task(pid_t nr);
struct task_struct *procft_get_thread(struct task_struct *task, pid_t tid);
/* @task's thread-group leader, with a reference taken. */
struct task_struct *procft_get_leader(struct task_struct *task);
/* Whether the caller may change @task's level: ptrace-attach rules (see procft_shim.c). */
bool procft_may_attach(struct task_struct *task);
/* True for kernel threads (PF_KTHREAD). */
bool procft_is_kthread(struct task_struct *task);
/* True once @task has started to exit (PF_EXITING). */
bool procft_is_exiting(struct task_struct *task);
/* Whether @task is stopped (SIGSTOP, ptrace) or frozen (any freezer): it runs no user code. */
bool procft_is_stopped(struct task_struct *task);
/* Number of threads in @task's thread group. */
int procft_nr_threads(struct task_struct *task);
/* Whether @task is being traced. */
bool procft_is_ptraced(struct task_struct *task);
/* Whether @task has a writable shared (VM_SHARED) mapping. */
bool procft_has_shared_writable(struct task_struct *task);
/* Whether KSM may merge @task's pages (PR_SET_MEMORY_MERGE, MADV_MERGEABLE). */
bool procft_merges_pages(struct task_struct *task);
bool procft_shares_memory(struct task_struct *task);
/* Whether @task maps memory fork() does not copy (VM_DONTCOPY). */
bool procft_has_dontfork(struct task_struct *task);
/* Whether a range of the caller's address space overlaps a shared mapping. */
bool procft_range_is_shared(unsigned long start, unsigned long len);
/*
 * A process's role in its group (rust/group.rs, Roles), the filter entry
 * of its tgid and, with kernel/patches/0003, the hook's word of its
 * threads: one of two words at the start of a 16-byte aligned pair in
 * the group, the primary's first, so that its address says which without
 * reading it.  Only the Rust side dereferences it, in the system-call
 * hooks (inside their Tasks Trace RCU section), and frees the group a
 * Tasks Trace RCU grace period after its last entry was replaced.
 */
struct procft_role {
	unsigned long word;
};

/* Whether @role is a duplicate's. */
static inline bool procft_role_is_dup(const struct procft_role *role)
{
	return (unsigned long)role & sizeof(*role);
}

/* The set of protected tgids the syscall probes filter on. */
int procft_filter_reserve(pid_t tgid);
void procft_filter_release(pid_t tgid);
int procft_filter_add(pid_t tgid, const struct procft_role *role);
void procft_filter_remove(pid_t tgid, int policy);
int procft_filter_add_atomic(pid_t tgid, const struct procft_role *role);
/* Runs @fn(@head) after a Tasks Trace RCU grace period; waits for all such. */
struct rcu_head;
void procft_defer(struct rcu_head *head, void (*fn)(struct rcu_head *head));
void procft_defer_barrier(void);
/* Replicas: creation, memory separation, waiting, killing. */
struct pt_regs;
size_t procft_regs_size(void);
struct clone_args;
int procft_inject_clone(struct pt_regs *regs, const struct clone_args *args, void *saved);
void procft_regs_restart(struct pt_regs *regs, const void *saved);
long procft_unshare_some(unsigned long *pos, unsigned long budget, const unsigned int *hold);
int procft_copy_wipeonfork(struct task_struct *child);
void procft_suppress(struct pt_regs *regs);
void procft_set_return(long value);
void procft_restart_call(long nr);
void procft_kill(struct task_struct *task);
int procft_mce_policy(void);
void procft_set_mce_policy(struct task_struct *task, int policy);
size_t procft_siginfo_size(void);
bool procft_signal_pending(void);
unsigned long procft_user_ip(void);
unsigned long procft_user_sp(void);
bool procft_in_ia32_syscall(void);
long procft_syscall_nr(void);
bool procft_call_from_vdso(void);
int procft_vdso_make_calls(void);
/* The caller's rdtsc/rdtscp: trapped into the hook (kernel/patches/0005), read, emulated. */
bool procft_tsc_trap_self(bool on);
bool procft_tsc_can_trap(void);
u64 procft_tsc_read(u32 *aux);
void procft_tsc_emulate(bool rdtscp, u64 tsc, u32 aux);
unsigned long procft_syscall_arg(unsigned int i);
/* Copy a few 64-bit words from or to the caller's memory; 0 or -EFAULT. */
int procft_get_user_words(u64 *to, unsigned long addr, unsigned int words);
int procft_put_user_words(unsigned long addr, const u64 *from, unsigned int words);
unsigned long procft_take_clear_child_tid(void);
u64 procft_runtime_ns(struct task_struct *task);
void procft_forget_auxv(unsigned long type);
int procft_send_self(int sig, const void *info);
int procft_frame_owner(struct task_struct *task, unsigned long pfn, bool poisoned,
		       unsigned long *addr);
unsigned long procft_find_pfn(struct task_struct *task, unsigned long pfn);
int procft_prefer_other_node(struct task_struct *primary);
unsigned long procft_find_poisoned(struct task_struct *task, unsigned long pfn);
int procft_repair_page(unsigned long addr, unsigned long pfn, struct task_struct *from);
int procft_queue_task_work(void);
void *procft_own_work_alloc(void);
void procft_own_work_free(void *work);
int procft_queue_own_work(void *work);
int procft_kick(struct task_struct *task);
int procft_kick_threads(void);
int procft_preempt(struct task_struct *task, u64 turn);
bool procft_call_restarting(void);
int procft_read_lost(unsigned long addr, void *buf, size_t len);
int procft_inject_thread_clone(const struct clone_args *args, bool rewind, bool legacy);
void procft_thread_state(struct task_struct *task, unsigned long *fsbase,
			 unsigned long *clear_tid);
int procft_thread_ids(pid_t *tids, int max);
int procft_process_thread_ids(struct task_struct *task, pid_t *tids, int max);
int procft_copy_thread(struct task_struct *task, void *regs, void *state);
void procft_set_thread_signals(const void *state);
long procft_blocked_call(struct task_struct *task, unsigned long *arg0);
unsigned int procft_fd_type(struct task_struct *task, unsigned int fd);
int procft_queue_task_work_atomic(void);
/* Promotion: the primary takes a duplicate's memory and registers. */
long procft_adopt_memory(struct task_struct *from);
struct mm_struct *procft_get_mm(struct task_struct *from);
int procft_take_mm(struct mm_struct *mm);
void procft_copy_regs(struct task_struct *from, void *saved);
void procft_set_regs(const void *saved);
int procft_fpu_copy(struct task_struct *from, void **data);
int procft_fpu_set(const void *data, int size);
void procft_fpu_free(void *data);
void *procft_sigstate_alloc(void);
void procft_sigstate_free(void *state);
void procft_copy_signals(struct task_struct *from, void *state);
void procft_set_signals(const void *state);
void procft_flush_sigbus(void);
int procft_corrupt_byte(struct task_struct *task, unsigned long addr);
int procft_page_lost(struct task_struct *task, unsigned long addr);
unsigned long procft_read_stop(unsigned long addr, unsigned long end, bool *lost);
bool procft_keep_going(void);
void procft_kill_self_sigbus(void);
int procft_wait_killable(struct wait_queue_head *wq, bool (*cond)(const void *arg),
			 bool (*ready)(const void *arg), const void *arg, long key, pid_t owner,
			 unsigned int ticks);
int procft_wait_interruptible(bool (*cond)(const void *arg), const void *arg);
int procft_wait_killable_timeout(struct wait_queue_head *wq, bool (*cond)(const void *arg),
				 const void *arg, unsigned int ms);
void procft_wake(struct wait_queue_head *wq, unsigned int n, long key);
void procft_drain(void);
/* Tracepoints of procft's own (include/procft_trace.h). */
void procft_trace_memory_error(pid_t pid, pid_t replica, bool primary, unsigned long pfn);
void procft_trace_replica(int what, pid_t pid, pid_t replica);
void procft_trace_promotion(pid_t pid, pid_t from, int cause, unsigned long pages,
			    unsigned long us);
/* Whether /proc/<pid>/ft_level is provided (the kernel carries the patch). */
bool procft_have_proc_ft_level(void);
/* Whether procft_may_attach() is the kernel's ptrace_may_access() (kernel/patches/0002). */
bool procft_have_ptrace_may_access(void);
bool procft_have_replace_mm(void);
/* Whether system calls come from the kernel's hook (kernel/patches/0003), not tracepoints. */
bool procft_uses_syscall_hook(void);
/* System calls of unprotected processes that reached procft's probes. */
u64 procft_unprotected_calls_sum(void);

/* Implemented in Rust. */
int procft_rs_level_show(struct task_struct *task);
int procft_rs_level_store(struct task_struct *task, unsigned int level);
void procft_rs_status_show(struct seq_file *m, struct pid_namespace *ns);
void procft_rs_process_exit(struct task_struct *task);
void procft_rs_sys_enter(struct pt_regs *regs, long nr, const unsigned long *args,
			 const struct procft_role *role);
void procft_rs_sys_exit(struct pt_regs *regs, long ret, const struct procft_role *role);
#ifdef PROCFT_PROFILE
/*
 * Profiling builds only (rust/profile.rs): section @section (0-3: the
 * primary's and a duplicate's sys_enter, then sys_exit hooks; 4: their C
 * part) took the time since TSC value @t0.
 */
void procft_rs_profile_hook(size_t section, u64 t0);
u64 procft_profile_now(void);
#endif
void procft_rs_fork(struct task_struct *parent, struct task_struct *child);
void procft_rs_task_work(long nr, bool dup);
void procft_rs_preempted(u64 turn);
bool procft_rs_tsc(bool rdtscp, const struct procft_role *role);
void procft_rs_memory_error(unsigned long pfn);
void procft_rs_memory_error_done(unsigned long pfn, bool handled);
void procft_rs_memory_failure(unsigned long pfn);
bool procft_rs_primary_poisoned(unsigned long addr);
struct kernel_siginfo;
void procft_rs_signal_deliver(int sig, const struct kernel_siginfo *info, bool restart,
			      unsigned long ip);

#endif /* _PROCFT_SHIM_H */
