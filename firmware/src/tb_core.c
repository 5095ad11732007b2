#include "tb_core.h"
#include "tb_config.h"

void tb_core_init(tb_core *c, uint8_t reset_cause, uint32_t now_us)
{
	uint8_t *p = (uint8_t *)c;
	for (uint16_t i = 0; i < sizeof(*c); i++)
		p[i] = 0;
	tb_sched_init(&c->sched);
	tb_reader_init(&c->reader);
	c->reset_cause = reset_cause;
	c->heartbeat_ms = TB_HEARTBEAT_DEFAULT_MS;
	c->last_rx_us = now_us;
}

/* Room the unsolicited reports leave in the UART queue for replies: a
 * command's reply is never held back behind pulse reports. */
#define REPLY_RESERVE 64

/* Returns 0 if the UART had no room (beyond `reserve`). */
static uint8_t try_send(tb_core *c, uint8_t type, const uint8_t *body, uint8_t len, uint8_t sync,
			uint8_t reserve)
{
	uint8_t wire[TB_MAX_ENCODED + 1];
	uint8_t n = tb_frame_encode(c->tx_seq, type, body, len, wire);
	if (tb_port_room() < n + reserve || !tb_port_send(wire, n, sync))
		return 0;
	c->tx_seq++;
	return 1;
}

/* A reply: dropped (and counted) if the UART has no room; the host times out. */
static void send(tb_core *c, uint8_t type, const uint8_t *body, uint8_t len, uint8_t sync)
{
	if (!try_send(c, type, body, len, sync, 0))
		c->n.tx_dropped++;
}

static void result(tb_core *c, uint8_t re, uint8_t code, uint32_t detail)
{
	uint8_t b[TB_RESULT_LEN];
	tb_result_msg m = {re, code, detail};
	if (code != TB_OK)
		c->n.refused++;
	send(c, TB_RESULT, b, tb_put_result(b, &m), 0);
}

static void hello(tb_core *c, uint8_t re)
{
	uint8_t b[TB_HELLO_REPLY_LEN];
	tb_hello_msg m = {re, TB_PROTO_VERSION, TB_FIRMWARE_MAJOR, TB_FIRMWARE_MINOR, TB_OUTPUTS,
			  c->reset_cause, TB_MIN_WIDTH_US, TB_MAX_WIDTH_US, TB_MIN_INTERVAL_US,
			  TB_MIN_GAP_US, TB_MAX_RATE_HZ, TB_RATE_BURST, c->heartbeat_ms};
	send(c, TB_HELLO_REPLY, b, tb_put_hello(b, &m), 0);
}

static void status(tb_core *c, uint8_t re, uint32_t now_us)
{
	uint8_t b[TB_STATUS_REPLY_LEN];
	tb_status_msg m = {re, c->sched.armed, now_us, tb_sched_pending(&c->sched),
			   {c->n.crc, c->n.framing, c->n.truncated, c->n.oversized, c->n.unknown,
			    c->n.bad_length, c->n.seq_gaps, c->n.refused, c->sched.skipped,
			    (uint16_t)(c->sched.reports_dropped + c->n.tx_dropped)}};
	send(c, TB_STATUS_REPLY, b, tb_put_status(b, &m), 0);
}

static uint8_t body_len(uint8_t type)
{
	switch (type) {
	case TB_SYNC: return TB_SYNC_LEN;
	case TB_CONFIGURE: return TB_CONFIGURE_LEN;
	case TB_SCHEDULE: return TB_SCHEDULE_LEN;
	case TB_CANCEL: return TB_CANCEL_LEN;
	default: return 0;
	}
}

static uint8_t is_command(uint8_t type) { return type >= TB_HELLO && type <= TB_HEARTBEAT; }

/* A frame whose CRC checked: apply it. */
static uint8_t handle(tb_core *c, const uint8_t *p, uint8_t len, uint32_t rx_us, uint32_t now_us)
{
	uint8_t seq = p[0], type = p[1];
	const uint8_t *body = p + 2;
	uint8_t apply = TB_APPLY_DEADLINE;
	if (c->rx_seq_known && seq != c->rx_seq_next)
		c->n.seq_gaps++;
	c->rx_seq_known = 1;
	c->rx_seq_next = (uint8_t)(seq + 1);
	/* the heartbeat interrupt reads it */
	tb_port_lock();
	c->last_rx_us = rx_us;
	tb_port_unlock();
	if (!is_command(type)) {
		c->n.unknown++;
		result(c, seq, TB_E_UNKNOWN_TYPE, type);
		return apply;
	}
	if (len - 2 != body_len(type)) {
		c->n.bad_length++;
		result(c, seq, TB_E_BAD_LENGTH, body_len(type));
		return apply;
	}
	switch (type) {
	case TB_HELLO:
		hello(c, seq);
		break;
	case TB_SYNC: {
		/* The previous reply's departure (two-step, docs/protocol.md); none
		 * yet is said with prev_re = re. */
		uint8_t b[TB_SYNC_REPLY_LEN];
		tb_sync_msg m = {seq, rx_us, c->sync_sent ? c->sync_sent_re : seq, c->sync_sent ? c->sync_sent_us : 0};
		c->sync_pending_re = seq;
		send(c, TB_SYNC_REPLY, b, tb_put_sync(b, &m), 1);
		break;
	}
	case TB_CONFIGURE: {
		uint16_t ms = tb_get16(body);
		if (ms < TB_HEARTBEAT_MIN_MS || ms > TB_HEARTBEAT_MAX_MS) {
			result(c, seq, TB_E_BAD_VALUE, ms < TB_HEARTBEAT_MIN_MS ? TB_HEARTBEAT_MIN_MS : TB_HEARTBEAT_MAX_MS);
			break;
		}
		c->heartbeat_ms = ms;
		result(c, seq, TB_OK, ms);
		break;
	}
	case TB_ARM:
		tb_port_lock();
		tb_sched_arm(&c->sched, now_us);
		tb_port_unlock();
		result(c, seq, TB_OK, 0);
		apply |= TB_APPLY_PINS;
		break;
	case TB_DISARM:
		tb_port_lock();
		tb_sched_disarm(&c->sched);
		tb_port_unlock();
		result(c, seq, TB_OK, 0);
		apply |= TB_APPLY_PINS;
		break;
	case TB_SCHEDULE: {
		tb_schedule_msg m;
		tb_get_schedule(body, &m);
		tb_train t = {0, m.start_us, m.width_us, m.interval_us, m.count, m.tag};
		uint32_t detail;
		uint8_t code = tb_sched_submit(&c->sched, m.output, &t, m.flags & TB_FLAG_IMMEDIATE, now_us, &detail);
		result(c, seq, code, detail);
		apply |= TB_APPLY_PINS;
		break;
	}
	case TB_CANCEL:
		tb_port_lock();
		tb_sched_cancel(&c->sched, body[0]);
		tb_port_unlock();
		result(c, seq, TB_OK, 0);
		apply |= TB_APPLY_PINS;
		break;
	case TB_STATUS:
		status(c, seq, now_us);
		break;
	case TB_HEARTBEAT:
		result(c, seq, TB_OK, 0);
		break;
	}
	return apply;
}

uint8_t tb_core_rx(tb_core *c, uint8_t byte, uint32_t rx_us, uint32_t now_us)
{
	uint8_t r = tb_reader_feed(&c->reader, byte);
	switch (r) {
	case TB_READ_MORE:
	case TB_READ_EMPTY:
		return 0;
	case TB_READ_FRAME:
		return handle(c, tb_reader_payload(&c->reader), c->reader.payload_len, rx_us, now_us);
	case TB_READ_CRC: c->n.crc++; break;
	case TB_READ_FRAMING: c->n.framing++; break;
	case TB_READ_TRUNCATED: c->n.truncated++; break;
	case TB_READ_OVERSIZED: c->n.oversized++; break;
	}
	c->frame_error_code = r;
	c->frame_errors++;
	return 0;
}

uint32_t tb_core_deadline(const tb_core *c) { return c->last_rx_us + (uint32_t)c->heartbeat_ms * 1000UL; }

uint8_t tb_core_check_heartbeat(tb_core *c, uint32_t now_us)
{
	if (!c->sched.armed || (int32_t)(now_us - tb_core_deadline(c)) < 0)
		return 0;
	tb_sched_disarm(&c->sched);
	c->disarmed_reason = TB_DISARM_HEARTBEAT;
	c->disarmed_at_us = now_us;
	return 1;
}

void tb_core_poll(tb_core *c, uint32_t now_us)
{
	uint8_t b[TB_MAX_PAYLOAD];
	tb_sched_expire(&c->sched, now_us);
	/* the heartbeat interrupt writes it */
	tb_port_lock();
	tb_disarmed_msg m = {c->disarmed_reason, c->disarmed_at_us, c->last_rx_us};
	tb_port_unlock();
	if (m.reason) {
		if (!try_send(c, TB_DISARMED, b, tb_put_disarmed(b, &m), 0, REPLY_RESERVE))
			return;
		c->disarmed_reason = 0;
	}
	if (c->frame_errors) {
		/* One report per burst of bad frames: the last kind and how many. */
		tb_error_msg m = {c->frame_error_code, 0, c->frame_errors, 0};
		if (!try_send(c, TB_ERROR, b, tb_put_error(b, &m), 0, REPLY_RESERVE))
			return;
		c->frame_errors = 0;
	}
	tb_report r;
	while (tb_sched_peek_report(&c->sched, &r)) {
		uint8_t n;
		if (r.type == TB_FIRED) {
			tb_fired_msg m = {r.output, r.tag, r.index, r.planned_us, r.fired_us};
			n = tb_put_fired(b, &m);
		} else {
			tb_error_msg m = {r.code, r.output, r.tag, r.index};
			n = tb_put_error(b, &m);
		}
		if (!try_send(c, r.type, b, n, 0, REPLY_RESERVE))
			return; /* the UART is busy: the next poll sends it */
		tb_sched_pop_report(&c->sched);
	}
}

void tb_core_sync_sent(tb_core *c, uint32_t us)
{
	c->sync_sent_re = c->sync_pending_re;
	c->sync_sent_us = us;
	c->sync_sent = 1;
}
