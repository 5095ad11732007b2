#include "tb_sched.h"
#include "tb_proto.h"

/* Rate bucket: credit in microseconds, a pulse costs COST, full at CAP. */
#define COST_US (1000000UL / TB_MAX_RATE_HZ)
#define CAP_US (TB_RATE_BURST * COST_US)

static int32_t diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

void tb_sched_init(tb_sched *s)
{
	uint8_t *p = (uint8_t *)s;
	for (uint16_t i = 0; i < sizeof(*s); i++)
		p[i] = 0;
}

void tb_sched_arm(tb_sched *s, uint32_t now_us)
{
	if (s->armed)
		return;
	/* A train admitted while a heartbeat disarm interrupted its admission
	 * must not fire after a later ARM. */
	tb_sched_cancel(s, (1u << TB_OUTPUTS) - 1);
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		s->out[o].credit_us = CAP_US;
		s->out[o].credit_at_us = now_us;
	}
	s->armed = 1;
}

void tb_sched_cancel(tb_sched *s, uint8_t mask)
{
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		if (!(mask & (1u << o)))
			continue;
		tb_out *q = &s->out[o];
		q->head = q->tail;
		q->busy = 0;
		q->high = 0;
		q->has_last = 0;
	}
}

void tb_sched_disarm(tb_sched *s)
{
	s->armed = 0;
	tb_sched_cancel(s, (1u << TB_OUTPUTS) - 1);
}

uint8_t tb_sched_submit(tb_sched *s, uint8_t output, const tb_train *req, uint8_t immediate,
			uint32_t now_us, uint32_t *detail)
{
	*detail = 0;
	if (!s->armed)
		return TB_E_NOT_ARMED;
	if (output < 1 || output > TB_OUTPUTS) {
		*detail = TB_OUTPUTS;
		return TB_E_BAD_OUTPUT;
	}
	if (req->count < 1 || req->count > TB_MAX_COUNT) {
		*detail = TB_MAX_COUNT;
		return TB_E_COUNT;
	}
	if (req->width_us < TB_MIN_WIDTH_US) {
		*detail = TB_MIN_WIDTH_US;
		return TB_E_WIDTH;
	}
	if (req->width_us > TB_MAX_WIDTH_US) {
		*detail = TB_MAX_WIDTH_US;
		return TB_E_WIDTH;
	}
	if (req->count > 1) {
		uint32_t min = req->width_us + TB_MIN_GAP_US;
		if (min < TB_MIN_INTERVAL_US)
			min = TB_MIN_INTERVAL_US;
		if (req->interval_us < min) {
			*detail = min;
			return TB_E_INTERVAL;
		}
		/* count <= TB_MAX_COUNT keeps the train's length within 32 bits */
		if ((req->count - 1) * req->interval_us > TB_MAX_AHEAD_US || req->interval_us > TB_MAX_AHEAD_US) {
			*detail = TB_MAX_AHEAD_US;
			return TB_E_INTERVAL;
		}
	}
	uint32_t planned = immediate ? now_us : req->start_us;
	if (diff(planned, now_us) > (int32_t)TB_MAX_AHEAD_US) {
		*detail = TB_MAX_AHEAD_US;
		return TB_E_TOO_FAR;
	}
	if (diff(now_us, planned) > (int32_t)TB_MAX_LATE_US) {
		*detail = TB_MAX_LATE_US;
		return TB_E_TOO_LATE;
	}
	uint32_t asap = now_us + TB_ASAP_US;
	uint32_t start = diff(planned, asap) >= 0 ? planned : asap;
	tb_out *q = &s->out[output - 1];
	if (q->has_last) {
		uint32_t after = q->last_width_us + TB_MIN_GAP_US;
		if (after < TB_MIN_INTERVAL_US)
			after = TB_MIN_INTERVAL_US;
		uint32_t earliest = q->last_start_us + after;
		if (diff(start, earliest) < 0) {
			*detail = earliest;
			return TB_E_OVERLAP;
		}
	}
	if ((uint8_t)(q->tail - q->head) >= TB_QUEUE) {
		*detail = TB_QUEUE;
		return TB_E_QUEUE_FULL;
	}
	tb_train *slot = &q->queue[q->tail % TB_QUEUE];
	*slot = *req;
	slot->planned_us = planned;
	slot->start_us = start;
	if (slot->count == 1)
		slot->interval_us = 0;
	q->has_last = 1;
	q->last_start_us = start + (uint32_t)(slot->count - 1) * slot->interval_us;
	q->last_width_us = slot->width_us;
	/* publish: the slot is written before the edge interrupt can see it */
	__asm__ __volatile__("" ::: "memory");
	q->tail++;
	*detail = start;
	return TB_OK;
}

void tb_sched_expire(tb_sched *s, uint32_t now_us)
{
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		tb_out *q = &s->out[o];
		if (q->has_last && diff(now_us, q->last_start_us + q->last_width_us + TB_MIN_INTERVAL_US) > 0)
			q->has_last = 0;
	}
}

uint8_t tb_sched_next(tb_sched *s, uint32_t now_us, uint32_t *at_us)
{
	uint8_t any = 0;
	int32_t best = 0;
	tb_out *q = s->out;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++, q++) {
		if (!q->busy) {
			if (q->head == q->tail)
				continue;
			const tb_train *t = &q->queue[q->head % TB_QUEUE];
			q->cur = t;
			q->busy = 1;
			q->high = 0;
			q->index = 0;
			q->next_us = t->start_us;
			q->planned_us = t->planned_us;
		}
		int32_t ahead = diff(q->next_us, now_us);
		if (!any || ahead < best) {
			best = ahead;
			any = 1;
		}
	}
	*at_us = now_us + (uint32_t)best;
	return any;
}

/* 0 if the limits let output `q` rise at `at` (the rate credit is taken),
 * otherwise why not. */
static uint8_t may_rise(tb_out *q, uint32_t at)
{
	if (q->has_rise && diff(at, q->last_rise_us) < (int32_t)TB_MIN_INTERVAL_US)
		return TB_E_SKIPPED_INTERVAL;
	uint32_t elapsed = at - q->credit_at_us;
	uint32_t credit = elapsed >= CAP_US ? CAP_US : q->credit_us + elapsed;
	if (credit > CAP_US)
		credit = CAP_US;
	q->credit_at_us = at;
	if (credit < COST_US) {
		q->credit_us = credit;
		return TB_E_SKIPPED_RATE;
	}
	q->credit_us = credit - COST_US;
	return 0;
}

/* The current pulse is done (fell or was skipped): on to the next one, which
 * rises at `next_rise_us`, or off the train. */
static void pulse_done(tb_out *q, uint32_t next_rise_us)
{
	q->high = 0;
	if (++q->index >= q->cur->count) {
		q->busy = 0;
		q->head++;
		return;
	}
	q->next_us = next_rise_us;
	q->planned_us += q->cur->interval_us;
}

void tb_sched_take(tb_sched *s, uint32_t at_us, uint8_t *rise, uint8_t *fall)
{
	uint8_t up = 0, down = 0, bit = 1;
	tb_out *q = s->out;
	s->rep_batch = s->rep_tail;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++, q++, bit <<= 1) {
		if (!s->armed) {
			if (q->high)
				down |= bit;
			q->busy = q->high = 0;
			q->head = q->tail;
			continue;
		}
		if (!q->busy || diff(q->next_us, at_us) > 0)
			continue;
		const tb_train *t = q->cur;
		if (q->high) {
			down |= bit;
			pulse_done(q, q->rise_us);
			continue;
		}
		uint8_t why = may_rise(q, at_us);
		if ((uint8_t)(s->rep_tail - s->rep_head) < TB_REPORTS) {
			tb_report *r = &s->reports[s->rep_tail % TB_REPORTS];
			r->type = why ? TB_ERROR : TB_FIRED;
			r->output = (uint8_t)(o + 1);
			r->code = why;
			r->tag = t->tag;
			r->index = q->index;
			r->planned_us = q->planned_us;
			r->fired_us = at_us;
			s->rep_tail++;
		} else {
			s->reports_dropped++;
		}
		if (why) {
			s->skipped++;
			pulse_done(q, q->next_us + t->interval_us);
			continue;
		}
		up |= bit;
		q->high = 1;
		q->next_us = at_us + t->width_us;
		q->rise_us = at_us + t->interval_us;
		q->has_rise = 1;
		q->last_rise_us = at_us;
	}
	*rise = up;
	*fall = down;
}

void tb_sched_stamp(tb_sched *s, uint8_t rise, uint32_t fired_us)
{
	tb_out *q = s->out;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++, q++) {
		if (!(rise & (1u << o)))
			continue;
		q->next_us = fired_us + q->cur->width_us;
		q->rise_us = fired_us + q->cur->interval_us;
		q->last_rise_us = fired_us;
	}
	for (uint8_t i = s->rep_batch; i != s->rep_tail; i++) {
		tb_report *r = &s->reports[i % TB_REPORTS];
		if (r->type == TB_FIRED)
			r->fired_us = fired_us;
	}
}

uint8_t tb_sched_high(const tb_sched *s)
{
	uint8_t m = 0;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++)
		if (s->out[o].high)
			m |= (uint8_t)(1u << o);
	return m;
}

uint8_t tb_sched_pending(const tb_sched *s)
{
	uint8_t n = 0;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++)
		n += (uint8_t)(s->out[o].tail - s->out[o].head);
	return n;
}

uint8_t tb_sched_peek_report(const tb_sched *s, tb_report *r)
{
	if (s->rep_head == s->rep_tail)
		return 0;
	*r = s->reports[s->rep_head % TB_REPORTS];
	return 1;
}

void tb_sched_pop_report(tb_sched *s) { s->rep_head++; }
