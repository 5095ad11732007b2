/* The host <-> trigger-box wire format (docs/protocol.md; the Rust side,
 * src/protocol.rs, defines it and writes the test vectors the host tests of
 * this file read). A frame on the wire is COBS(payload) followed by 0x00;
 * payload = seq u8, type u8, body, CRC-16/CCITT-FALSE (LE) of seq..body.
 * Multi-byte fields are little-endian. */
#ifndef TB_PROTO_H
#define TB_PROTO_H

#include <stdint.h>

#define TB_PROTO_VERSION 1
/* Largest decoded payload (seq + type + body + crc) and its COBS encoding. */
#define TB_MAX_PAYLOAD 32
#define TB_MAX_ENCODED (TB_MAX_PAYLOAD + 1)

enum tb_msg {
	/* host -> box */
	TB_HELLO = 0x01,
	TB_SYNC = 0x02,
	TB_CONFIGURE = 0x03,
	TB_ARM = 0x04,
	TB_DISARM = 0x05,
	TB_SCHEDULE = 0x06,
	TB_CANCEL = 0x07,
	TB_STATUS = 0x08,
	TB_HEARTBEAT = 0x09,
	/* box -> host */
	TB_RESULT = 0x80,
	TB_HELLO_REPLY = 0x81,
	TB_SYNC_REPLY = 0x82,
	TB_STATUS_REPLY = 0x88,
	TB_FIRED = 0x90,
	TB_DISARMED = 0x91,
	TB_ERROR = 0x92,
};

/* Body lengths. SYNC is padded to the length of its reply so that both
 * directions spend the same time on the wire (docs/protocol.md, clock sync). */
#define TB_SYNC_LEN 10
#define TB_CONFIGURE_LEN 2
#define TB_SCHEDULE_LEN 18
#define TB_CANCEL_LEN 1
#define TB_RESULT_LEN 6
#define TB_HELLO_REPLY_LEN 24
#define TB_SYNC_REPLY_LEN 10
#define TB_STATUS_REPLY_LEN 27
#define TB_FIRED_LEN 13
#define TB_DISARMED_LEN 9
#define TB_ERROR_LEN 8

/* SCHEDULE flags. */
#define TB_FLAG_IMMEDIATE 0x01

/* Result and error codes. */
enum tb_code {
	TB_OK = 0,
	TB_E_UNKNOWN_TYPE = 1,
	TB_E_BAD_LENGTH = 2,
	TB_E_NOT_ARMED = 3,
	TB_E_BAD_OUTPUT = 4,
	TB_E_WIDTH = 5,
	TB_E_INTERVAL = 6,
	TB_E_COUNT = 7,
	TB_E_TOO_LATE = 8,
	TB_E_TOO_FAR = 9,
	TB_E_QUEUE_FULL = 10,
	TB_E_OVERLAP = 11,
	TB_E_BAD_VALUE = 12,
	/* reported unsolicited (TB_ERROR) */
	TB_E_CRC = 20,
	TB_E_FRAMING = 21,
	TB_E_TRUNCATED = 22,
	TB_E_OVERSIZED = 23,
	TB_E_SEQ_GAP = 24,
	TB_E_SKIPPED_INTERVAL = 30,
	TB_E_SKIPPED_RATE = 31,
	TB_E_REPORTS_DROPPED = 32,
};

/* DISARMED reasons. */
enum tb_disarm_reason {
	TB_DISARM_HOST = 1,
	TB_DISARM_HEARTBEAT = 2,
};

uint16_t tb_crc16(const uint8_t *data, uint8_t len);

/* COBS-encode `len` (< 254) bytes into `out` (len + 1 bytes, no delimiter).
 * Returns the encoded length. */
uint8_t tb_cobs_encode(const uint8_t *in, uint8_t len, uint8_t *out);
/* Decode `len` encoded bytes (no delimiter) in place. Returns the decoded
 * length, or -1 if the encoding is invalid (a zero byte or a code past the end). */
int tb_cobs_decode(uint8_t *buf, uint8_t len);

/* Frame reader: feed bytes one at a time; a 0x00 ends a frame. */
enum tb_read_result {
	TB_READ_MORE = 0,     /* byte consumed, no frame complete */
	TB_READ_FRAME = 1,    /* a valid frame: see reader.payload/len */
	TB_READ_EMPTY = 2,    /* a lone delimiter (idle line, resync): ignored */
	TB_READ_CRC = TB_E_CRC,
	TB_READ_FRAMING = TB_E_FRAMING,
	TB_READ_TRUNCATED = TB_E_TRUNCATED,
	TB_READ_OVERSIZED = TB_E_OVERSIZED,
};

typedef struct {
	uint8_t buf[TB_MAX_ENCODED];
	uint8_t len;
	uint8_t overflow;
	/* After TB_READ_FRAME: seq, type and body (payload without the CRC). */
	uint8_t payload_len;
} tb_reader;

void tb_reader_init(tb_reader *r);
uint8_t tb_reader_feed(tb_reader *r, uint8_t byte);
/* Valid after TB_READ_FRAME: the payload without its CRC. */
static inline const uint8_t *tb_reader_payload(const tb_reader *r) { return r->buf; }

/* Build a frame: seq, type, body -> COBS + delimiter in `out`
 * (TB_MAX_ENCODED + 1 bytes). Returns the wire length. */
uint8_t tb_frame_encode(uint8_t seq, uint8_t type, const uint8_t *body, uint8_t body_len,
			uint8_t *out);

/* Message bodies. The layout of each lives here only; the host tests check it
 * against the vectors the Rust side writes. */
typedef struct {
	uint8_t output; /* 1-based */
	uint8_t flags;
	uint16_t tag;
	uint32_t start_us, width_us, interval_us;
	uint16_t count;
} tb_schedule_msg;

typedef struct {
	uint8_t re, code;
	uint32_t detail;
} tb_result_msg;

typedef struct {
	uint8_t re, proto, fw_major, fw_minor, outputs, reset_cause;
	uint16_t min_width_us;
	uint32_t max_width_us, min_interval_us;
	uint16_t min_gap_us, max_rate_hz, rate_burst, heartbeat_ms;
} tb_hello_msg;

typedef struct {
	uint8_t re;
	uint32_t rx_us;
	uint8_t prev_re;
	uint32_t prev_tx_us;
} tb_sync_msg;

#define TB_STATUS_COUNTERS 10
typedef struct {
	uint8_t re, armed;
	uint32_t now_us;
	uint8_t pending;
	/* crc, framing, truncated, oversized, unknown, bad_length, seq_gaps,
	 * refused, skipped, reports_dropped */
	uint16_t counters[TB_STATUS_COUNTERS];
} tb_status_msg;

typedef struct {
	uint8_t output;
	uint16_t tag, index;
	uint32_t planned_us, fired_us;
} tb_fired_msg;

typedef struct {
	uint8_t reason;
	uint32_t at_us, last_rx_us;
} tb_disarmed_msg;

typedef struct {
	uint8_t code, output;
	uint16_t tag;
	uint32_t detail;
} tb_error_msg;

void tb_get_schedule(const uint8_t *body, tb_schedule_msg *m);
/* Each writes the body and returns its length. */
uint8_t tb_put_result(uint8_t *b, const tb_result_msg *m);
uint8_t tb_put_hello(uint8_t *b, const tb_hello_msg *m);
uint8_t tb_put_sync(uint8_t *b, const tb_sync_msg *m);
uint8_t tb_put_status(uint8_t *b, const tb_status_msg *m);
uint8_t tb_put_fired(uint8_t *b, const tb_fired_msg *m);
uint8_t tb_put_disarmed(uint8_t *b, const tb_disarmed_msg *m);
uint8_t tb_put_error(uint8_t *b, const tb_error_msg *m);

/* Little-endian field access (functions, not inline: flash is the scarce resource). */
uint16_t tb_get16(const uint8_t *p);
uint32_t tb_get32(const uint8_t *p);
void tb_put16(uint8_t *p, uint16_t v);
void tb_put32(uint8_t *p, uint32_t v);

#endif
