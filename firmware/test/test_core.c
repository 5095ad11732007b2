/* Host tests of the portable core: the wire format against the vectors the
 * Rust side writes (argv[1]), then the scheduler, limits and heartbeat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_fake.h"
#include "tb_config.h"

static int failures, checks;
#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		checks++;                                                       \
		if (!(cond)) {                                                  \
			failures++;                                             \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, "\n");                                  \
		}                                                               \
	} while (0)

/* ---- vectors ---- */
static unsigned long field(const char *fields, const char *name)
{
	char key[48];
	snprintf(key, sizeof key, " %s=", name);
	char padded[512];
	snprintf(padded, sizeof padded, " %s", fields);
	const char *p = strstr(padded, key);
	if (!p) {
		fprintf(stderr, "vector field %s missing in: %s\n", name, fields);
		exit(2);
	}
	return strtoul(p + strlen(key), NULL, 10);
}

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;
	for (; hex[0] && hex[1]; hex += 2) {
		unsigned v;
		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

static void check_command(const uint8_t *wire, size_t n, const char *f)
{
	tb_reader r;
	tb_reader_init(&r);
	uint8_t result = 0;
	for (size_t i = 0; i < n; i++)
		result = tb_reader_feed(&r, wire[i]);
	CHECK(result == TB_READ_FRAME, "%s: reader says %u", f, result);
	const uint8_t *p = tb_reader_payload(&r);
	CHECK(p[0] == field(f, "seq") && p[1] == field(f, "type"), "%s", f);
	const uint8_t *body = p + 2;
	uint8_t len = (uint8_t)(r.payload_len - 2);
	switch (p[1]) {
	case TB_SCHEDULE: {
		tb_schedule_msg m;
		CHECK(len == TB_SCHEDULE_LEN, "%s", f);
		tb_get_schedule(body, &m);
		CHECK(m.output == field(f, "output") && m.flags == field(f, "flags") && m.tag == field(f, "tag") &&
			      m.start_us == field(f, "start_us") && m.width_us == field(f, "width_us") &&
			      m.interval_us == field(f, "interval_us") && m.count == field(f, "count"),
		      "%s", f);
		break;
	}
	case TB_CONFIGURE:
		CHECK(len == TB_CONFIGURE_LEN && tb_get16(body) == field(f, "heartbeat_ms"), "%s", f);
		break;
	case TB_CANCEL:
		CHECK(len == TB_CANCEL_LEN && body[0] == field(f, "outputs"), "%s", f);
		break;
	case TB_SYNC:
		CHECK(len == TB_SYNC_LEN, "%s", f);
		break;
	default:
		CHECK(len == 0, "%s", f);
	}
}

static void check_reply(const uint8_t *wire, size_t n, const char *f)
{
	uint8_t b[TB_MAX_PAYLOAD], out[TB_MAX_ENCODED + 1];
	uint8_t type = (uint8_t)field(f, "type"), len = 0;
	switch (type) {
	case TB_RESULT: {
		tb_result_msg m = {field(f, "re"), field(f, "code"), field(f, "detail")};
		len = tb_put_result(b, &m);
		break;
	}
	case TB_HELLO_REPLY: {
		tb_hello_msg m = {field(f, "re"), field(f, "proto"), field(f, "fw_major"), field(f, "fw_minor"),
				  field(f, "outputs"), field(f, "reset_cause"), field(f, "min_width_us"),
				  field(f, "max_width_us"), field(f, "min_interval_us"), field(f, "min_gap_us"),
				  field(f, "max_rate_hz"), field(f, "rate_burst"), field(f, "heartbeat_ms")};
		len = tb_put_hello(b, &m);
		break;
	}
	case TB_SYNC_REPLY: {
		tb_sync_msg m = {field(f, "re"), field(f, "rx_us"), field(f, "prev_re"), field(f, "prev_tx_us")};
		len = tb_put_sync(b, &m);
		break;
	}
	case TB_STATUS_REPLY: {
		tb_status_msg m = {field(f, "re"), field(f, "armed"), field(f, "now_us"), field(f, "pending"), {0}};
		for (int k = 0; k < TB_STATUS_COUNTERS; k++) {
			char name[16];
			snprintf(name, sizeof name, "c%d", k);
			m.counters[k] = (uint16_t)field(f, name);
		}
		len = tb_put_status(b, &m);
		break;
	}
	case TB_FIRED: {
		tb_fired_msg m = {field(f, "output"), field(f, "tag"), field(f, "index"), field(f, "planned_us"),
				  field(f, "fired_us")};
		len = tb_put_fired(b, &m);
		break;
	}
	case TB_DISARMED: {
		tb_disarmed_msg m = {field(f, "reason"), field(f, "at_us"), field(f, "last_rx_us")};
		len = tb_put_disarmed(b, &m);
		break;
	}
	case TB_ERROR: {
		tb_error_msg m = {field(f, "code"), field(f, "output"), field(f, "tag"), field(f, "detail")};
		len = tb_put_error(b, &m);
		break;
	}
	default:
		CHECK(0, "unknown reply type in %s", f);
		return;
	}
	uint8_t w = tb_frame_encode((uint8_t)field(f, "seq"), type, b, len, out);
	CHECK(w == n && memcmp(out, wire, n) == 0, "%s: the firmware encodes it differently", f);
}

static void check_reject(const uint8_t *wire, size_t n, const char *f)
{
	tb_reader r;
	tb_reader_init(&r);
	uint8_t result = 0;
	for (size_t i = 0; i < n; i++)
		result = tb_reader_feed(&r, wire[i]);
	CHECK(result == field(f, "error"), "%s: reader says %u", f, result);
}

static void run_vectors(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		perror(path);
		exit(2);
	}
	char line[1024];
	int counts[3] = {0};
	while (fgets(line, sizeof line, fp)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = 0;
		char *kind = strtok(line, "\t"), *hex = strtok(NULL, "\t"), *fields = strtok(NULL, "\t");
		uint8_t wire[128];
		size_t n = unhex(hex, wire);
		if (!strcmp(kind, "command")) {
			check_command(wire, n, fields);
			counts[0]++;
		} else if (!strcmp(kind, "reply")) {
			check_reply(wire, n, fields);
			counts[1]++;
		} else if (!strcmp(kind, "reject")) {
			check_reject(wire, n, fields);
			counts[2]++;
		} else {
			CHECK(0, "unknown vector kind %s", kind);
		}
	}
	fclose(fp);
	CHECK(counts[0] >= 9 && counts[1] >= 7 && counts[2] >= 4, "too few vectors: %d %d %d", counts[0],
	      counts[1], counts[2]);
}

/* ---- core behaviour ---- */
static tb_core core;
static uint8_t host_seq;

static uint8_t feed(uint8_t type, const uint8_t *body, uint8_t len, uint32_t now)
{
	uint8_t wire[TB_MAX_ENCODED + 1];
	uint8_t n = tb_frame_encode(host_seq++, type, body, len, wire);
	uint8_t apply = 0;
	for (uint8_t i = 0; i < n; i++)
		apply |= tb_core_rx(&core, wire[i], now, now);
	return apply;
}

/* The RESULT code of the last frame the box sent. */
static uint8_t last_result(uint32_t *detail)
{
	const sent_frame *f = &sent[n_sent - 1];
	if (f->type != TB_RESULT)
		return 0xFF;
	if (detail)
		*detail = tb_get32(f->body + 2);
	return f->body[1];
}

static uint8_t schedule(uint8_t output, uint8_t flags, uint16_t tag, uint32_t start, uint32_t width,
			uint32_t interval, uint16_t count, uint32_t now, uint32_t *detail)
{
	uint8_t b[TB_SCHEDULE_LEN] = {output, flags};
	tb_put16(b + 2, tag);
	tb_put32(b + 4, start);
	tb_put32(b + 8, width);
	tb_put32(b + 12, interval);
	tb_put16(b + 16, count);
	feed(TB_SCHEDULE, b, sizeof b, now);
	return last_result(detail);
}

static void fresh(uint32_t now)
{
	tb_core_init(&core, 0, now);
	n_sent = 0;
	host_seq = 0;
}

/* Run the edge loop as the interrupt does, up to `until`: returns pulses fired. */
static unsigned run_edges(uint32_t until, uint8_t *high_seen)
{
	unsigned rises = 0;
	uint32_t at;
	while (tb_sched_next(&core.sched, until, &at) && (int32_t)(at - until) <= 0) {
		uint8_t rise, fall;
		tb_sched_take(&core.sched, at, &rise, &fall);
		if (high_seen)
			*high_seen |= rise;
		for (uint8_t o = 0; o < TB_OUTPUTS; o++)
			rises += (rise >> o) & 1;
		tb_sched_stamp(&core.sched, rise, at);
	}
	return rises;
}

static void test_hello_and_single_pulse(void)
{
	fresh(1000);
	feed(TB_HELLO, NULL, 0, 1000);
	CHECK(n_sent == 1 && sent[0].type == TB_HELLO_REPLY && sent[0].body[1] == TB_PROTO_VERSION &&
		      sent[0].body[4] == TB_OUTPUTS && tb_get32(sent[0].body + 8) == TB_MAX_WIDTH_US,
	      "hello reply");
	uint32_t d;
	CHECK(schedule(2, 0, 7, 20000, 1000, 0, 1, 1000, &d) == TB_E_NOT_ARMED, "disarmed box refuses");
	CHECK(feed(TB_ARM, NULL, 0, 2000) & TB_APPLY_PINS, "arm applies pins");
	CHECK(core.sched.armed, "armed");
	CHECK(schedule(2, 0, 7, 20000, 1000, 0, 1, 2000, &d) == TB_OK && d == 20000, "accepted, to start at %u", d);
	uint32_t at;
	CHECK(tb_sched_next(&core.sched, 2000, &at) && at == 20000, "next edge %u", at);
	uint8_t rise, fall;
	tb_sched_take(&core.sched, 20000, &rise, &fall);
	CHECK(rise == 0x2 && fall == 0, "rise %x fall %x", rise, fall);
	tb_sched_stamp(&core.sched, rise, 20000);
	CHECK(tb_sched_high(&core.sched) == 0x2, "output 2 high");
	CHECK(tb_sched_next(&core.sched, 20000, &at) && at == 21000, "fall at %u", at);
	tb_sched_take(&core.sched, 21000, &rise, &fall);
	CHECK(rise == 0 && fall == 0x2, "fall");
	CHECK(!tb_sched_next(&core.sched, 21000, &at), "nothing left");
	n_sent = 0;
	tb_core_poll(&core, 22000);
	CHECK(n_sent == 1 && sent[0].type == TB_FIRED && sent[0].body[0] == 2 && tb_get16(sent[0].body + 1) == 7 &&
		      tb_get32(sent[0].body + 5) == 20000 && tb_get32(sent[0].body + 9) == 20000,
	      "fired report");
}

static void test_limits_refused(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t now = 1000000, d;
	CHECK(schedule(0, 0, 1, now + 5000, 1000, 0, 1, now, &d) == TB_E_BAD_OUTPUT, "output 0");
	CHECK(schedule(5, 0, 1, now + 5000, 1000, 0, 1, now, &d) == TB_E_BAD_OUTPUT, "output 5");
	CHECK(schedule(1, 0, 1, now + 5000, TB_MIN_WIDTH_US - 1, 0, 1, now, &d) == TB_E_WIDTH &&
		      d == TB_MIN_WIDTH_US, "too narrow");
	CHECK(schedule(1, 0, 1, now + 5000, TB_MAX_WIDTH_US + 1, 0, 1, now, &d) == TB_E_WIDTH &&
		      d == TB_MAX_WIDTH_US, "too wide");
	CHECK(schedule(1, 0, 1, now + 5000, 100, 2000, 0, now, &d) == TB_E_COUNT, "no pulses");
	CHECK(schedule(1, 0, 1, now + 5000, 100, 2000, TB_MAX_COUNT + 1, now, &d) == TB_E_COUNT, "too many");
	CHECK(schedule(1, 0, 1, now + 5000, 100, TB_MIN_INTERVAL_US - 1, 2, now, &d) == TB_E_INTERVAL &&
		      d == TB_MIN_INTERVAL_US, "too fast");
	CHECK(schedule(1, 0, 1, now + 5000, 5000, 5000 + TB_MIN_GAP_US - 1, 2, now, &d) == TB_E_INTERVAL &&
		      d == 5000 + TB_MIN_GAP_US, "no gap");
	CHECK(schedule(1, 0, 1, now + TB_MAX_AHEAD_US + 1, 100, 0, 1, now, &d) == TB_E_TOO_FAR, "far");
	CHECK(schedule(1, 0, 1, now - TB_MAX_LATE_US - 1, 100, 0, 1, now, &d) == TB_E_TOO_LATE, "late");
	CHECK(tb_sched_pending(&core.sched) == 0, "nothing admitted");
	/* Overlap with the previous train and a full queue. */
	CHECK(schedule(3, 0, 1, now + 10000, 1000, 2000, 3, now, &d) == TB_OK, "train");
	/* its last pulse starts at +14000 and lasts 1000: the next may start
	 * a minimum interval or the width plus a gap later, whichever is more */
	uint32_t after = 1000 + TB_MIN_GAP_US > TB_MIN_INTERVAL_US ? 1000 + TB_MIN_GAP_US : TB_MIN_INTERVAL_US;
	CHECK(schedule(3, 0, 2, now + 14000 + after - 1, 100, 0, 1, now, &d) == TB_E_OVERLAP &&
		      d == now + 14000 + after, "overlap, earliest %u", d);
	for (int k = 1; k < TB_QUEUE; k++)
		CHECK(schedule(3, 0, 3, now + 20000 + 2000 * k, 100, 0, 1, now, &d) == TB_OK, "queued %d", k);
	CHECK(schedule(3, 0, 4, now + 40000, 100, 0, 1, now, &d) == TB_E_QUEUE_FULL, "queue full");
	CHECK(core.n.refused == 12, "refusals counted: %u", core.n.refused);
}

static void test_late_and_immediate(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t now = 500000, d, at;
	CHECK(schedule(1, 0, 9, now - 3000, 200, 0, 1, now, &d) == TB_OK && d == now + TB_ASAP_US,
	      "late start accepted, to start at %u", d);
	CHECK(tb_sched_next(&core.sched, now, &at) && at == now + TB_ASAP_US, "fires asap: %u", at);
	run_edges(now + 10000, NULL);
	CHECK(schedule(2, TB_FLAG_IMMEDIATE, 10, 0, 200, 0, 1, now + 20000, &d) == TB_OK, "immediate");
	CHECK(tb_sched_next(&core.sched, now + 20000, &at) && at == now + 20000 + TB_ASAP_US, "asap %u", at);
	run_edges(now + 30000, NULL);
	n_sent = 0;
	tb_core_poll(&core, now + 30000);
	CHECK(n_sent == 2 && tb_get32(sent[0].body + 5) == now - 3000 &&
		      tb_get32(sent[0].body + 9) == now + TB_ASAP_US,
	      "the late pulse reports its planned and fired times");
	CHECK(tb_get32(sent[1].body + 5) == now + 20000, "immediate: planned = when received");
}

static void test_rate_limit_at_fire_time(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t now = 100000, d;
	/* A full burst at 1 kHz, then another train right after: the bucket
	 * has refilled only for the time elapsed. */
	CHECK(schedule(1, 0, 1, now + 1000, 100, 1000, TB_RATE_BURST, now, &d) == TB_OK, "burst");
	uint32_t second = now + 1000 + TB_RATE_BURST * 1000;
	CHECK(schedule(1, 0, 2, second, 100, 1000, 20, now, &d) == TB_OK, "second");
	uint8_t seen = 0;
	unsigned fired = run_edges(second + 30000, &seen);
	/* The documented bound, reached: over the span from the first to the
	 * last pulse, at most the burst plus the rate times the span. */
	unsigned long span_us = (TB_RATE_BURST + 20 - 1) * 1000UL;
	unsigned bound = (unsigned)(TB_RATE_BURST + span_us * TB_MAX_RATE_HZ / 1000000UL);
	CHECK(fired == bound, "fired %u, bound %u", fired, bound);
	CHECK(core.sched.skipped == TB_RATE_BURST + 20 - bound, "skipped %u", core.sched.skipped);
}

static void test_min_interval_between_trains_at_fire_time(void)
{
	/* Admission keeps trains apart; the firing side checks again. */
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	tb_out *q = &core.sched.out[0];
	q->has_rise = 1;
	q->last_rise_us = 99500;
	uint32_t d;
	CHECK(schedule(1, 0, 1, 100000, 100, 0, 1, 90000, &d) == TB_OK, "accepted");
	uint8_t seen = 0;
	CHECK(run_edges(101000, &seen) == 0 && seen == 0, "skipped: 500 us after the last pulse");
	CHECK(core.sched.skipped == 1, "counted");
}

static void test_a_late_pulse_moves_the_rest_of_its_train(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t d, at;
	CHECK(schedule(1, 0, 5, 10000, 200, TB_MIN_INTERVAL_US, 3, 0, &d) == TB_OK, "train");
	uint8_t rise, fall;
	CHECK(tb_sched_next(&core.sched, 0, &at) && at == 10000, "first rise at %u", at);
	tb_sched_take(&core.sched, at, &rise, &fall);
	tb_sched_stamp(&core.sched, rise, 10030); /* the edge loop was 30 us late */
	CHECK(tb_sched_next(&core.sched, 10030, &at) && at == 10230, "falls a width after it rose: %u", at);
	tb_sched_take(&core.sched, at, &rise, &fall);
	CHECK(tb_sched_next(&core.sched, 10230, &at) && at == 10030 + TB_MIN_INTERVAL_US,
	      "the next pulse keeps the interval: %u", at);
	run_edges(20000, NULL);
	CHECK(core.sched.skipped == 0, "nothing skipped for the minimum interval");
	n_sent = 0;
	tb_core_poll(&core, 20000);
	CHECK(n_sent == 3 && tb_get32(sent[0].body + 5) == 10000 && tb_get32(sent[0].body + 9) == 10030 &&
		      tb_get32(sent[1].body + 5) == 10000 + TB_MIN_INTERVAL_US &&
		      tb_get32(sent[1].body + 9) == 10030 + TB_MIN_INTERVAL_US,
	      "reports: planned as asked, fired 30 us later");
}

static void test_reports_leave_room_for_replies(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t d;
	schedule(1, 0, 1, 1000, 100, 0, 1, 0, &d);
	run_edges(2000, NULL);
	port_room = 60; /* less than the reports' reserve */
	n_sent = 0;
	tb_core_poll(&core, 2000);
	CHECK(n_sent == 0, "the report waits");
	feed(TB_HEARTBEAT, NULL, 0, 2100);
	CHECK(n_sent == 1 && last_result(NULL) == TB_OK, "the reply goes out");
	port_room = 255;
	tb_core_poll(&core, 2200);
	CHECK(n_sent == 2 && sent[1].type == TB_FIRED, "then the report");
}

static void test_arm_starts_from_an_empty_schedule(void)
{
	/* A heartbeat disarm that interrupts the admission of a train leaves it
	 * queued; the next ARM must not fire it. */
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t d;
	CHECK(schedule(2, 0, 1, 50000, 100, 0, 1, 0, &d) == TB_OK, "admitted");
	core.sched.armed = 0; /* as the interrupt would, mid-admission */
	feed(TB_ARM, NULL, 0, 1000);
	CHECK(core.sched.armed && tb_sched_pending(&core.sched) == 0, "armed with nothing pending");
}

static void test_cancel_and_disarm_bring_outputs_low(void)
{
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	uint32_t d;
	schedule(1, 0, 1, 10000, 5000, 0, 1, 0, &d);
	schedule(4, 0, 2, 10000, 5000, 0, 1, 0, &d);
	run_edges(10000, NULL);
	CHECK(tb_sched_high(&core.sched) == 0x9, "both high");
	uint8_t mask = 0x1;
	feed(TB_CANCEL, &mask, 1, 11000);
	CHECK(tb_sched_high(&core.sched) == 0x8, "output 1 low after cancel");
	feed(TB_DISARM, NULL, 0, 12000);
	CHECK(tb_sched_high(&core.sched) == 0 && !core.sched.armed && tb_sched_pending(&core.sched) == 0,
	      "disarmed: all low, nothing pending");
	CHECK(schedule(1, 0, 1, 30000, 100, 0, 1, 13000, &d) == TB_E_NOT_ARMED, "refused after disarm");
}

static void test_heartbeat(void)
{
	fresh(0);
	uint8_t b[2];
	tb_put16(b, 20);
	feed(TB_CONFIGURE, b, 2, 0);
	CHECK(last_result(NULL) == TB_OK && core.heartbeat_ms == 20, "20 ms is the minimum");
	tb_put16(b, 250);
	feed(TB_CONFIGURE, b, 2, 0);
	CHECK(core.heartbeat_ms == 250 && last_result(NULL) == TB_OK, "configured");
	tb_put16(b, TB_HEARTBEAT_MAX_MS + 1);
	feed(TB_CONFIGURE, b, 2, 0);
	CHECK(last_result(NULL) == TB_E_BAD_VALUE && core.heartbeat_ms == 250, "out of range refused");
	feed(TB_ARM, NULL, 0, 1000);
	feed(TB_HEARTBEAT, NULL, 0, 100000);
	uint32_t d;
	schedule(2, 0, 1, 400000, 100, 0, 1, 100000, &d);
	CHECK(tb_core_deadline(&core) == 350000, "deadline %u", tb_core_deadline(&core));
	CHECK(!tb_core_check_heartbeat(&core, 349999), "not yet");
	CHECK(tb_core_check_heartbeat(&core, 350000), "disarms at the deadline");
	CHECK(!core.sched.armed && tb_sched_pending(&core.sched) == 0, "disarmed and emptied");
	n_sent = 0;
	tb_core_poll(&core, 350100);
	CHECK(n_sent == 1 && sent[0].type == TB_DISARMED && sent[0].body[0] == TB_DISARM_HEARTBEAT &&
		      tb_get32(sent[0].body + 1) == 350000 && tb_get32(sent[0].body + 5) == 100000,
	      "reported");
	/* A full UART delays the report, never loses it. */
	fresh(0);
	feed(TB_ARM, NULL, 0, 0);
	tb_core_check_heartbeat(&core, 10000000);
	port_full = 1;
	n_sent = 0;
	tb_core_poll(&core, 10000001);
	port_full = 0;
	tb_core_poll(&core, 10000002);
	CHECK(n_sent == 1 && sent[0].type == TB_DISARMED, "sent once there is room");
}

static void test_sync_and_sequence(void)
{
	fresh(0);
	uint8_t pad[TB_SYNC_LEN] = {0};
	feed(TB_SYNC, pad, sizeof pad, 5000);
	CHECK(sent[0].type == TB_SYNC_REPLY && tb_get32(sent[0].body + 1) == 5000 && sent[0].body[5] == sent[0].body[0],
	      "first sync: no previous");
	tb_core_sync_sent(&core, 5300);
	feed(TB_SYNC, pad, sizeof pad, 9000);
	CHECK(sent[1].body[0] == 1 && tb_get32(sent[1].body + 1) == 9000 && sent[1].body[5] == 0 &&
		      tb_get32(sent[1].body + 6) == 5300,
	      "second sync carries the first reply's departure");
	CHECK(core.n.seq_gaps == 0, "no gap");
	host_seq += 3;
	feed(TB_HEARTBEAT, NULL, 0, 10000);
	CHECK(core.n.seq_gaps == 1, "gap counted");
	feed(TB_SYNC, NULL, 0, 11000);
	CHECK(last_result(NULL) == TB_E_BAD_LENGTH && core.n.bad_length == 1, "short sync refused");
	feed(0x7E, NULL, 0, 12000);
	CHECK(last_result(NULL) == TB_E_UNKNOWN_TYPE && core.n.unknown == 1, "unknown type refused");
	feed(TB_FIRED, NULL, 0, 12000);
	CHECK(last_result(NULL) == TB_E_UNKNOWN_TYPE && core.n.unknown == 2, "a reply type is no command");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_core VECTORS.tsv\n");
		return 2;
	}
	run_vectors(argv[1]);
	test_hello_and_single_pulse();
	test_limits_refused();
	test_late_and_immediate();
	test_rate_limit_at_fire_time();
	test_min_interval_between_trains_at_fire_time();
	test_a_late_pulse_moves_the_rest_of_its_train();
	test_arm_starts_from_an_empty_schedule();
	test_reports_leave_room_for_replies();
	test_cancel_and_disarm_bring_outputs_low();
	test_heartbeat();
	test_sync_and_sequence();
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
