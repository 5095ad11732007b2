/* The box's protocol handling in portable C (host-tested): frames in,
 * commands applied to the scheduler, replies and reports out, the host
 * heartbeat. The board glue (main.c) supplies the clock, the UART and the
 * pins; tests supply fakes. */
#ifndef TB_CORE_H
#define TB_CORE_H

#include <stdint.h>
#include "tb_proto.h"
#include "tb_sched.h"

/* Provided by the glue: queue one encoded frame for the UART; `sync` marks a
 * SYNC reply, whose first byte's departure the glue reports through
 * tb_core_sync_sent. Returns 0 when there is no room (the frame is dropped). */
uint8_t tb_port_send(const uint8_t *wire, uint8_t len, uint8_t sync);
/* Provided by the glue: bytes the UART queue can take now. */
uint8_t tb_port_room(void);
/* Provided by the glue: keep the edge and heartbeat interrupts out while the
 * main loop changes state they share (arm, disarm, cancel). Not nested. */
void tb_port_lock(void);
void tb_port_unlock(void);

/* What the glue must apply after a call (bit set). */
#define TB_APPLY_PINS 0x01   /* outputs, armed LED and edge timer changed */
#define TB_APPLY_DEADLINE 0x02 /* heartbeat deadline moved */

typedef struct {
	uint16_t crc, framing, truncated, oversized, unknown, bad_length, seq_gaps, refused, tx_dropped;
} tb_counters;

typedef struct {
	tb_sched sched;
	tb_reader reader;
	tb_counters n;
	uint8_t tx_seq;
	uint8_t rx_seq_next, rx_seq_known;
	uint8_t reset_cause;
	uint16_t heartbeat_ms;
	uint32_t last_rx_us;
	/* a DISARMED report waiting for the UART */
	uint8_t disarmed_reason;
	uint32_t disarmed_at_us;
	/* frame errors not yet reported: code of the last one, how many */
	uint8_t frame_error_code;
	uint16_t frame_errors;
	/* the last SYNC reply: its request's seq, and when its first byte left */
	uint8_t sync_pending_re, sync_sent_re, sync_sent;
	uint32_t sync_sent_us;
} tb_core;

void tb_core_init(tb_core *c, uint8_t reset_cause, uint32_t now_us);
/* One received byte; `rx_us` is when it arrived (the delimiter's time dates
 * the frame). Returns TB_APPLY_* flags. */
uint8_t tb_core_rx(tb_core *c, uint8_t byte, uint32_t rx_us, uint32_t now_us);
/* When the box disarms for want of a heartbeat (armed only). */
uint32_t tb_core_deadline(const tb_core *c);
/* Disarm if the heartbeat deadline has passed. Returns 1 if it disarmed
 * (the caller drives the outputs low). Safe from an interrupt. */
uint8_t tb_core_check_heartbeat(tb_core *c, uint32_t now_us);
/* Send what is waiting (reports, errors) while the UART has room. */
void tb_core_poll(tb_core *c, uint32_t now_us);
/* The glue saw the first byte of the pending SYNC reply leave at `us`. */
void tb_core_sync_sent(tb_core *c, uint32_t us);

#endif
