/* SPDX-License-Identifier: GPL-2.0 */
/*
 * procft tracepoints (events/procft/ in tracefs): what happens to
 * protected processes, for perf and trace-cmd.  The same events feed the
 * event log read from /dev/procft.  Fired from rust/events.rs through the
 * procft_trace_*() wrappers in the shim.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM procft

#if !defined(_PROCFT_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _PROCFT_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(procft_memory_error,
	TP_PROTO(pid_t pid, pid_t replica, bool primary, unsigned long pfn),
	TP_ARGS(pid, replica, primary, pfn),
	TP_STRUCT__entry(
		__field(pid_t, pid)
		__field(pid_t, replica)
		__field(bool, primary)
		__field(unsigned long, pfn)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->replica = replica;
		__entry->primary = primary;
		__entry->pfn = pfn;
	),
	TP_printk("pid=%d replica=%d role=%s frame=%#lx", __entry->pid, __entry->replica,
		  __entry->primary ? "primary" : "duplicate", __entry->pfn)
);

DECLARE_EVENT_CLASS(procft_replica,
	TP_PROTO(pid_t pid, pid_t replica),
	TP_ARGS(pid, replica),
	TP_STRUCT__entry(
		__field(pid_t, pid)
		__field(pid_t, replica)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->replica = replica;
	),
	TP_printk("pid=%d replica=%d", __entry->pid, __entry->replica)
);

/* A duplicate died without procft asking. */
DEFINE_EVENT(procft_replica, procft_replica_lost,
	TP_PROTO(pid_t pid, pid_t replica),
	TP_ARGS(pid, replica));

/* A duplicate was created to restore the level. */
DEFINE_EVENT(procft_replica, procft_respawn,
	TP_PROTO(pid_t pid, pid_t replica),
	TP_ARGS(pid, replica));

/* A duplicate disagreed with the primary and is replaced. */
DEFINE_EVENT(procft_replica, procft_divergence,
	TP_PROTO(pid_t pid, pid_t replica),
	TP_ARGS(pid, replica));

#define PROCFT_CAUSE_POISON	0
#define PROCFT_CAUSE_OUTVOTED	1
#define PROCFT_CAUSE_INJECTED	2

TRACE_EVENT(procft_promotion,
	TP_PROTO(pid_t pid, pid_t from, int cause, unsigned long pages, unsigned long us),
	TP_ARGS(pid, from, cause, pages, us),
	TP_STRUCT__entry(
		__field(pid_t, pid)
		__field(pid_t, from)
		__field(int, cause)
		__field(unsigned long, pages)
		__field(unsigned long, us)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->from = from;
		__entry->cause = cause;
		__entry->pages = pages;
		__entry->us = us;
	),
	TP_printk("pid=%d from=%d cause=%s pages=%lu us=%lu", __entry->pid, __entry->from,
		  __print_symbolic(__entry->cause,
				   { PROCFT_CAUSE_POISON, "poison" },
				   { PROCFT_CAUSE_OUTVOTED, "outvoted" },
				   { PROCFT_CAUSE_INJECTED, "injected" }),
		  __entry->pages, __entry->us)
);

#endif /* _PROCFT_TRACE_H */

/* This part must be outside the multi-read protection. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE procft_trace
#include <trace/define_trace.h>
