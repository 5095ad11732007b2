/* Pulse scheduler and per-output limits, in portable C (host-tested).
 *
 * Ownership on the AVR: the main loop admits trains (tb_sched_submit writes a
 * queue slot, then publishes it by advancing `tail`); the edge interrupt
 * consumes them (tb_sched_next/take/stamp own the firing state and advance
 * `head`). Disarm and cancel run with interrupts off. Reports flow back the
 * other way through a ring the interrupt fills and the main loop drains.
 * Times are microseconds of the 32-bit device clock, compared by signed
 * difference (valid within +-35 minutes). */
#ifndef TB_SCHED_H
#define TB_SCHED_H

#include <stdint.h>
#include "tb_config.h"

typedef struct {
	uint32_t planned_us; /* what the host asked for pulse 0 (reports) */
	uint32_t start_us;   /* when pulse 0 fires (later if the request was late) */
	uint32_t width_us;
	uint32_t interval_us;
	uint16_t count;
	uint16_t tag;
} tb_train;

typedef struct {
	uint8_t type;   /* TB_FIRED or TB_ERROR */
	uint8_t output; /* 1-based */
	uint8_t code;   /* TB_ERROR: why */
	uint16_t tag;
	uint16_t index;
	uint32_t planned_us;
	uint32_t fired_us;
} tb_report;

typedef struct {
	/* queue[head % TB_QUEUE] is the train firing (busy) or next to fire */
	tb_train queue[TB_QUEUE];
	volatile uint8_t head, tail;
	/* firing state (edge interrupt) */
	uint8_t busy, high;
	const tb_train *cur; /* while busy: the train at head */
	uint16_t index;      /* its pulse */
	uint32_t next_us;    /* its next edge */
	uint32_t rise_us;    /* while high: when the pulse after it rises */
	uint32_t planned_us; /* what the host asked for this pulse (reports) */
	uint8_t has_rise;
	uint32_t last_rise_us;
	uint32_t credit_us, credit_at_us;
	/* admission state (main loop): the last pulse of the last accepted train */
	uint8_t has_last;
	uint32_t last_start_us, last_width_us;
} tb_out;

typedef struct {
	tb_out out[TB_OUTPUTS];
	volatile uint8_t armed;
	tb_report reports[TB_REPORTS];
	volatile uint8_t rep_head, rep_tail;
	uint8_t rep_batch;
	volatile uint16_t reports_dropped, skipped;
} tb_sched;

void tb_sched_init(tb_sched *s);
/* Arm: outputs may fire; every rate bucket starts full. */
void tb_sched_arm(tb_sched *s, uint32_t now_us);
/* Disarm: drop every train, mark every output low (the caller drives the pins). */
void tb_sched_disarm(tb_sched *s);
/* Drop the trains of the outputs in `mask` (bit k = output k+1). */
void tb_sched_cancel(tb_sched *s, uint8_t mask);

/* Admit a train on `output` (1-based). `immediate` ignores req->start_us.
 * Returns TB_OK with the device time of its first pulse in *detail (later
 * than asked if that was too soon), or the refusal code with the limit. */
uint8_t tb_sched_submit(tb_sched *s, uint8_t output, const tb_train *req, uint8_t immediate,
			uint32_t now_us, uint32_t *detail);
/* Forget admission history that has passed (call at least every few seconds). */
void tb_sched_expire(tb_sched *s, uint32_t now_us);

/* The earliest pending edge (loading trains newly admitted): returns 0 if none. */
uint8_t tb_sched_next(tb_sched *s, uint32_t now_us, uint32_t *at_us);
/* Take every edge due at or before `at_us`, as if it happens at `at_us`:
 * *rise / *fall get the outputs that go high / low (bit k = output k+1).
 * Rising pulses that would break a limit are skipped and reported. Runs
 * between two edges that may be TB_MIN_WIDTH_US apart: kept short. */
void tb_sched_take(tb_sched *s, uint32_t at_us, uint8_t *rise, uint8_t *fall);
/* The rising outputs went high late, at `fired_us`: the reports say so, and
 * the rest of each train moves by as much, so that it keeps its intervals. */
void tb_sched_stamp(tb_sched *s, uint8_t rise, uint32_t fired_us);
/* Outputs that are high now (bit k = output k+1). */
uint8_t tb_sched_high(const tb_sched *s);
/* Trains queued or firing. */
uint8_t tb_sched_pending(const tb_sched *s);

/* Reports, oldest first: returns 0 when none is waiting. */
uint8_t tb_sched_peek_report(const tb_sched *s, tb_report *r);
void tb_sched_pop_report(tb_sched *s);

#endif
