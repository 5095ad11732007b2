#include "tb_proto.h"

uint16_t tb_get16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

uint32_t tb_get32(const uint8_t *p) { return tb_get16(p) | ((uint32_t)tb_get16(p + 2) << 16); }

void tb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void tb_put32(uint8_t *p, uint32_t v)
{
	tb_put16(p, (uint16_t)v);
	tb_put16(p + 2, (uint16_t)(v >> 16));
}

uint16_t tb_crc16(const uint8_t *data, uint8_t len)
{
	/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout. */
	uint16_t crc = 0xFFFF;
	for (uint8_t i = 0; i < len; i++) {
		crc ^= (uint16_t)data[i] << 8;
		for (uint8_t b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

uint8_t tb_cobs_encode(const uint8_t *in, uint8_t len, uint8_t *out)
{
	uint8_t code_at = 0, code = 1, o = 1;
	for (uint8_t i = 0; i < len; i++) {
		if (in[i] == 0) {
			out[code_at] = code;
			code_at = o++;
			code = 1;
		} else {
			out[o++] = in[i];
			code++;
		}
	}
	out[code_at] = code;
	return o;
}

int tb_cobs_decode(uint8_t *buf, uint8_t len)
{
	/* In place: the output never overtakes the input (each block's code byte
	 * becomes at most one zero). */
	uint8_t i = 0, o = 0;
	while (i < len) {
		uint8_t code = buf[i];
		if (code == 0 || (uint16_t)i + code > len)
			return -1;
		i++;
		for (uint8_t k = 1; k < code; k++)
			buf[o++] = buf[i++];
		if (code < 0xFF && i < len)
			buf[o++] = 0;
	}
	return o;
}

void tb_reader_init(tb_reader *r)
{
	r->len = 0;
	r->overflow = 0;
	r->payload_len = 0;
}

uint8_t tb_reader_feed(tb_reader *r, uint8_t byte)
{
	if (byte != 0) {
		if (r->len < TB_MAX_ENCODED)
			r->buf[r->len++] = byte;
		else
			r->overflow = 1;
		return TB_READ_MORE;
	}
	uint8_t len = r->len, overflow = r->overflow;
	r->len = 0;
	r->overflow = 0;
	if (overflow)
		return TB_READ_OVERSIZED;
	if (len == 0)
		return TB_READ_EMPTY;
	int n = tb_cobs_decode(r->buf, len);
	if (n < 0)
		return TB_READ_FRAMING;
	if (n < 4)
		return TB_READ_TRUNCATED;
	uint16_t crc = tb_get16(r->buf + n - 2);
	if (tb_crc16(r->buf, (uint8_t)(n - 2)) != crc)
		return TB_READ_CRC;
	r->payload_len = (uint8_t)(n - 2);
	return TB_READ_FRAME;
}

uint8_t tb_frame_encode(uint8_t seq, uint8_t type, const uint8_t *body, uint8_t body_len,
			uint8_t *out)
{
	uint8_t payload[TB_MAX_PAYLOAD];
	uint8_t n = 0;
	payload[n++] = seq;
	payload[n++] = type;
	for (uint8_t i = 0; i < body_len; i++)
		payload[n++] = body[i];
	tb_put16(payload + n, tb_crc16(payload, n));
	n += 2;
	uint8_t w = tb_cobs_encode(payload, n, out);
	out[w++] = 0;
	return w;
}

void tb_get_schedule(const uint8_t *b, tb_schedule_msg *m)
{
	m->output = b[0];
	m->flags = b[1];
	m->tag = tb_get16(b + 2);
	m->start_us = tb_get32(b + 4);
	m->width_us = tb_get32(b + 8);
	m->interval_us = tb_get32(b + 12);
	m->count = tb_get16(b + 16);
}

uint8_t tb_put_result(uint8_t *b, const tb_result_msg *m)
{
	b[0] = m->re;
	b[1] = m->code;
	tb_put32(b + 2, m->detail);
	return TB_RESULT_LEN;
}

uint8_t tb_put_hello(uint8_t *b, const tb_hello_msg *m)
{
	b[0] = m->re;
	b[1] = m->proto;
	b[2] = m->fw_major;
	b[3] = m->fw_minor;
	b[4] = m->outputs;
	b[5] = m->reset_cause;
	tb_put16(b + 6, m->min_width_us);
	tb_put32(b + 8, m->max_width_us);
	tb_put32(b + 12, m->min_interval_us);
	tb_put16(b + 16, m->min_gap_us);
	tb_put16(b + 18, m->max_rate_hz);
	tb_put16(b + 20, m->rate_burst);
	tb_put16(b + 22, m->heartbeat_ms);
	return TB_HELLO_REPLY_LEN;
}

uint8_t tb_put_sync(uint8_t *b, const tb_sync_msg *m)
{
	b[0] = m->re;
	tb_put32(b + 1, m->rx_us);
	b[5] = m->prev_re;
	tb_put32(b + 6, m->prev_tx_us);
	return TB_SYNC_REPLY_LEN;
}

uint8_t tb_put_status(uint8_t *b, const tb_status_msg *m)
{
	b[0] = m->re;
	b[1] = m->armed;
	tb_put32(b + 2, m->now_us);
	b[6] = m->pending;
	for (uint8_t i = 0; i < TB_STATUS_COUNTERS; i++)
		tb_put16(b + 7 + 2 * i, m->counters[i]);
	return TB_STATUS_REPLY_LEN;
}

uint8_t tb_put_fired(uint8_t *b, const tb_fired_msg *m)
{
	b[0] = m->output;
	tb_put16(b + 1, m->tag);
	tb_put16(b + 3, m->index);
	tb_put32(b + 5, m->planned_us);
	tb_put32(b + 9, m->fired_us);
	return TB_FIRED_LEN;
}

uint8_t tb_put_disarmed(uint8_t *b, const tb_disarmed_msg *m)
{
	b[0] = m->reason;
	tb_put32(b + 1, m->at_us);
	tb_put32(b + 5, m->last_rx_us);
	return TB_DISARMED_LEN;
}

uint8_t tb_put_error(uint8_t *b, const tb_error_msg *m)
{
	b[0] = m->code;
	b[1] = m->output;
	tb_put16(b + 2, m->tag);
	tb_put32(b + 4, m->detail);
	return TB_ERROR_LEN;
}
