/* Fuzz of the box's input path on the host (address and undefined-behaviour
 * sanitizers on): random bytes and mutated valid frames into tb_core_rx.
 * Checks that nothing crashes, that every delimiter is accounted for (a
 * frame handled or an error counted), and that the armed state changes only
 * when a valid ARM or DISARM frame was handled. */
#include <stdio.h>
#include <stdlib.h>

#include "port_fake.h"

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static tb_core core;
static unsigned long delimiters, handled, arm_changes, valid_arm_frames;

static void feed_byte(uint8_t b, uint32_t now)
{
	uint8_t armed = core.sched.armed;
	unsigned long errors = core.n.crc + core.n.framing + core.n.truncated + core.n.oversized;
	uint8_t apply = tb_core_rx(&core, b, now, now);
	if (b == 0)
		delimiters++;
	unsigned long errors_after = core.n.crc + core.n.framing + core.n.truncated + core.n.oversized;
	if (apply)
		handled++;
	if (b != 0 && (apply || errors_after != errors)) {
		fprintf(stderr, "a non-delimiter byte completed a frame\n");
		exit(1);
	}
	if (core.sched.armed != armed) {
		arm_changes++;
		uint8_t type = core.reader.buf[1];
		if (!(apply & TB_APPLY_PINS) || (type != TB_ARM && type != TB_DISARM)) {
			fprintf(stderr, "armed changed without a valid ARM/DISARM frame (type %#x)\n", type);
			exit(1);
		}
		valid_arm_frames++;
	}
	/* Let scheduled pulses fire as the interrupt would. */
	uint32_t at;
	while (tb_sched_next(&core.sched, now, &at) && (int32_t)(at - now) <= 0) {
		uint8_t rise, fall;
		tb_sched_take(&core.sched, at, &rise, &fall);
		tb_sched_stamp(&core.sched, rise, at);
	}
	n_sent = 0;
	tb_core_poll(&core, now);
}

static uint8_t valid_frame(uint8_t *wire)
{
	static const uint8_t types[] = {TB_HELLO, TB_SYNC, TB_CONFIGURE, TB_ARM, TB_DISARM, TB_SCHEDULE,
					TB_CANCEL, TB_STATUS, TB_HEARTBEAT};
	static const uint8_t lens[] = {0, TB_SYNC_LEN, TB_CONFIGURE_LEN, 0, 0, TB_SCHEDULE_LEN, TB_CANCEL_LEN, 0, 0};
	unsigned k = rnd() % sizeof types;
	uint8_t body[TB_SCHEDULE_LEN];
	for (unsigned i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)rnd();
	if (types[k] == TB_SCHEDULE) {
		body[0] = (uint8_t)(1 + rnd() % 4);
		tb_put32(body + 8, 50 + rnd() % 2000);
		tb_put16(body + 16, (uint16_t)(1 + rnd() % 3));
	}
	return tb_frame_encode((uint8_t)rnd(), types[k], body, lens[k], wire);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 100000;
	tb_core_init(&core, 0, 0);
	uint32_t now = 0;
	uint8_t wire[TB_MAX_ENCODED + 8];
	for (long r = 0; r < rounds; r++) {
		now += rnd() % 3000;
		switch (rnd() % 4) {
		case 0: { /* random bytes, zeros included */
			unsigned n = rnd() % 40;
			for (unsigned i = 0; i < n; i++)
				feed_byte((rnd() % 8) ? (uint8_t)rnd() : 0, now);
			break;
		}
		case 1: { /* a valid frame */
			uint8_t n = valid_frame(wire);
			for (uint8_t i = 0; i < n; i++)
				feed_byte(wire[i], now);
			break;
		}
		default: { /* a mutated valid frame: flips, cuts, insertions */
			uint8_t n = valid_frame(wire);
			unsigned m = rnd() % 3;
			if (m == 0)
				wire[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			else if (m == 1)
				n = (uint8_t)(1 + rnd() % n);
			else {
				unsigned at = rnd() % n;
				for (unsigned i = n; i > at; i--)
					wire[i] = wire[i - 1];
				wire[at] = (uint8_t)rnd();
				n++;
			}
			for (uint8_t i = 0; i < n; i++)
				feed_byte(wire[i], now);
			feed_byte(0, now); /* resynchronise */
		}
		}
	}
	unsigned long errors = core.n.crc + core.n.framing + core.n.truncated + core.n.oversized;
	printf("fuzz: %ld rounds, %lu delimiters: %lu frames handled, %lu rejected (crc %u, framing %u, "
	       "truncated %u, oversized %u); armed changed %lu times, each by a valid ARM/DISARM\n",
	       rounds, delimiters, handled, errors, core.n.crc, core.n.framing, core.n.truncated,
	       core.n.oversized, arm_changes);
	/* Empty frames (two delimiters in a row) are neither. */
	if (handled + errors > delimiters || errors == 0 || handled == 0 || arm_changes == 0) {
		fprintf(stderr, "fuzz: implausible counts\n");
		return 1;
	}
	printf("1 passed, 0 failed\n");
	return 0;
}
