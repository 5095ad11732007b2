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
	q->tail++; /* publish */
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

/* The next edge of one output, if any. */
static uint8_t out_next(const tb_out *q, uint32_t *at)
{
	if (q->busy) {
		*at = q->next_us;
		return 1;
	}
	if (q->head != q->tail) {
		*at = q->queue[q->head % TB_QUEUE].start_us;
		return 1;
	}
	return 0;
}

uint8_t tb_sched_next(const tb_sched *s, uint32_t now_us, uint32_t *at_us)
{
	uint8_t any = 0;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		uint32_t at;
		if (out_next(&s->out[o], &at) && (!any || diff(at, now_us) < diff(*at_us, now_us))) {
			*at_us = at;
			any = 1;
		}
	}
	return any;
}

static void push_report(tb_sched *s, const tb_report *r)
{
	if ((uint8_t)(s->rep_tail - s->rep_head) >= TB_REPORTS) {
		s->reports_dropped++;
		return;
	}
	s->reports[s->rep_tail % TB_REPORTS] = *r;
	s->rep_tail++;
}

/* Whether the limits let output `q` rise at `at`; takes the rate credit. */
static uint8_t may_rise(tb_out *q, uint32_t at, uint8_t *why)
{
	if (q->has_rise && diff(at, q->last_rise_us) < (int32_t)TB_MIN_INTERVAL_US) {
		*why = TB_E_SKIPPED_INTERVAL;
		return 0;
	}
	uint32_t elapsed = at - q->credit_at_us;
	uint32_t credit = elapsed >= CAP_US ? CAP_US : q->credit_us + elapsed;
	if (credit > CAP_US)
		credit = CAP_US;
	q->credit_at_us = at;
	if (credit < COST_US) {
		q->credit_us = credit;
		*why = TB_E_SKIPPED_RATE;
		return 0;
	}
	q->credit_us = credit - COST_US;
	return 1;
}

void tb_sched_take(tb_sched *s, uint32_t at_us, uint8_t *rise, uint8_t *fall)
{
	*rise = 0;
	*fall = 0;
	s->rep_batch = s->rep_tail;
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		tb_out *q = &s->out[o];
		uint8_t bit = (uint8_t)(1u << o);
		if (!s->armed) {
			if (q->high)
				*fall |= bit;
			q->busy = q->high = 0;
			q->head = q->tail;
			continue;
		}
		if (!q->busy && q->head != q->tail && diff(q->queue[q->head % TB_QUEUE].start_us, at_us) <= 0) {
			q->cur = q->queue[q->head % TB_QUEUE];
			q->head++;
			q->busy = 1;
			q->high = 0;
			q->index = 0;
			q->next_us = q->cur.start_us;
		}
		if (!q->busy || diff(q->next_us, at_us) > 0)
			continue;
		if (q->high) {
			*fall |= bit;
			q->high = 0;
			q->index++;
		} else {
			uint8_t why;
			tb_report r = {TB_FIRED, (uint8_t)(o + 1), 0, q->cur.tag, q->index,
				       q->cur.planned_us + q->index * q->cur.interval_us, 0};
			if (may_rise(q, at_us, &why)) {
				*rise |= bit;
				q->high = 1;
				q->next_us = at_us + q->cur.width_us; /* until stamped */
				push_report(s, &r);
				continue;
			}
			r.type = TB_ERROR;
			r.code = why;
			s->skipped++;
			push_report(s, &r);
			q->index++;
		}
		if (q->index >= q->cur.count)
			q->busy = 0;
		else
			q->next_us = q->cur.start_us + q->index * q->cur.interval_us;
	}
}

void tb_sched_stamp(tb_sched *s, uint8_t rise, uint32_t fired_us)
{
	for (uint8_t o = 0; o < TB_OUTPUTS; o++) {
		if (!(rise & (1u << o)))
			continue;
		tb_out *q = &s->out[o];
		q->next_us = fired_us + q->cur.width_us;
		q->has_rise = 1;
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
		n += (uint8_t)(s->out[o].tail - s->out[o].head) + s->out[o].busy;
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
