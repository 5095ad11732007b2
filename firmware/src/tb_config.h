/* Compile-time limits of the trigger box. The firmware enforces them whatever
 * the host sends; changing one means rebuilding and reflashing (and the host
 * reads the values in the HELLO reply). Times are microseconds of the device
 * clock (Timer1, 0.5-us ticks, extended to 32 bits in software). */
#ifndef TB_CONFIG_H
#define TB_CONFIG_H

#define TB_FIRMWARE_MAJOR 1
#define TB_FIRMWARE_MINOR 0

#define TB_OUTPUTS 4

/* One pulse is at least this long and at most this long (high time). */
#define TB_MIN_WIDTH_US 50UL
#define TB_MAX_WIDTH_US 100000UL
/* Consecutive pulses on one output start at least this far apart and leave
 * at least TB_MIN_GAP_US low between them. */
#define TB_MIN_INTERVAL_US 1000UL
#define TB_MIN_GAP_US 50UL
/* Sustained rate per output: a bucket of TB_RATE_BURST pulses refilled at
 * TB_MAX_RATE_HZ. In any window of T seconds an output fires at most
 * TB_RATE_BURST + TB_MAX_RATE_HZ * T pulses. Checked as each pulse fires. */
#define TB_MAX_RATE_HZ 200UL
#define TB_RATE_BURST 50UL
/* A train has at most this many pulses. */
#define TB_MAX_COUNT TB_RATE_BURST

/* A schedule may start at most this far ahead, and at most this late: a
 * start in the past fires as soon as possible (its report shows how late). */
#define TB_MAX_AHEAD_US 60000000UL
#define TB_MAX_LATE_US 100000UL
/* Lead time of the earliest pulse the box can place exactly ("immediate"). */
#define TB_ASAP_US 40UL

/* Host heartbeat: with no valid frame for this long, the box disarms. The
 * host chooses within the bounds (CONFIGURE); the default holds until it does. */
#define TB_HEARTBEAT_MIN_MS 20U
#define TB_HEARTBEAT_MAX_MS 5000U
#define TB_HEARTBEAT_DEFAULT_MS 500U

/* Pending trains per output (beyond the one firing). */
#define TB_QUEUE 4
/* Fired-pulse and error reports waiting for the UART. */
#define TB_REPORTS 16

#define TB_BAUD 115200UL

#endif
