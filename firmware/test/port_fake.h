/* The glue the core needs, faked for host tests: frames the box sends are
 * decoded into `sent`. */
#ifndef PORT_FAKE_H
#define PORT_FAKE_H

#include <string.h>
#include "tb_core.h"

typedef struct {
	uint8_t type, len;
	uint8_t body[TB_MAX_PAYLOAD];
} sent_frame;

static sent_frame sent[256];
static unsigned n_sent;
static uint8_t port_full;
/* Bytes the fake UART queue can take (it never fills up by itself). */
static uint8_t port_room = 255;

uint8_t tb_port_send(const uint8_t *wire, uint8_t len, uint8_t sync)
{
	(void)sync;
	if (port_full)
		return 0;
	tb_reader r;
	tb_reader_init(&r);
	uint8_t result = 0;
	for (uint8_t i = 0; i < len; i++)
		result = tb_reader_feed(&r, wire[i]);
	if (result != TB_READ_FRAME || n_sent >= 256)
		return 1; /* tests check n_sent; a frame the box could not encode shows up as missing */
	sent_frame *f = &sent[n_sent++];
	f->type = r.buf[1];
	f->len = (uint8_t)(r.payload_len - 2);
	memcpy(f->body, r.buf + 2, f->len);
	return 1;
}

uint8_t tb_port_room(void) { return port_full ? 0 : port_room; }

void tb_port_lock(void) {}
void tb_port_unlock(void) {}

#endif
