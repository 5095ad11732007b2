/* Board glue for the ATmega328P at 16 MHz (Arduino Uno / Nano): the device
 * clock, the UART, the output pins, the watchdog. Everything else is the
 * portable core (tb_core, tb_sched, tb_proto), tested on the host.
 *
 * Pins: outputs 1-4 on PD4-PD7 (Arduino D4-D7), armed LED on PB5 (D13, the
 * on-board LED). UART 115200 8N1 on PD0/PD1.
 *
 * Clock: Timer1 at clk/8 (0.5-us ticks), its overflows counted in software:
 * device time in us = 32768 us per overflow + TCNT1 / 2, a 32-bit count that
 * wraps every 71.6 minutes. An edge is placed by waking LEAD_US early on a Timer1
 * compare and spinning on TCNT1 with interrupts off, so other interrupts
 * (UART, overflow) can delay the wake-up but not the edge.
 *
 * The compare flags are never cleared by hand: a stale flag costs one
 * spurious interrupt, which looks at the time again and finds nothing to do.
 * (simavr 1.6 also clears every pending Timer1 flag, the overflow's included,
 * on any write to TIFR1: writing it lost edges and clock ticks there.) */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "tb_core.h"

#define OUT_SHIFT 4
#define OUT_MASK (((1u << TB_OUTPUTS) - 1) << OUT_SHIFT)
/* The compare wakes this long before an edge: the scheduler's work before an
 * edge of all four outputs at once (about 1700 cycles, 106 us, measured in
 * simavr) plus another interrupt that may delay the wake-up. */
#define LEAD_US 160
/* A compare less than this far ahead might pass before it is written. */
#define MIN_COMPARE_US 8

static tb_core core;

/* Reset cause, saved before anything can clear it; the watchdog is stopped
 * at once so that a watchdog reset does not loop. */
static uint8_t reset_cause __attribute__((section(".noinit")));
void save_reset_cause(void) __attribute__((naked, used, section(".init3")));
void save_reset_cause(void)
{
	reset_cause = MCUSR;
	MCUSR = 0;
	wdt_disable();
}

/* ---- device clock ---- */
/* Device time at the last counted overflow: a multiple of 32768 us. */
static volatile uint32_t overflow_us;

ISR(TIMER1_OVF_vect) { overflow_us += 32768; }

/* Interrupts off. */
static uint32_t now_us_locked(void)
{
	uint16_t t = TCNT1;
	uint32_t base = overflow_us;
	if ((TIFR1 & _BV(TOV1)) && t < 0x8000)
		base += 32768; /* wrapped, not yet counted */
	return base + (t >> 1);
}

static uint32_t now_us(void)
{
	uint8_t s = SREG;
	cli();
	uint32_t v = now_us_locked();
	SREG = s;
	return v;
}

static uint8_t lock_sreg;
void tb_port_lock(void)
{
	lock_sreg = SREG;
	cli();
}
void tb_port_unlock(void) { SREG = lock_sreg; }

/* ---- pins ---- */
static void show_armed(void)
{
	if (core.sched.armed)
		PORTB |= _BV(PB5);
	else
		PORTB &= ~_BV(PB5);
}

/* ---- UART input ---- */
#define RX_SIZE 64
#define RX_DELIMS 8
static volatile uint8_t rx_buf[RX_SIZE], rx_head, rx_tail;
static volatile uint32_t rx_delim_us[RX_DELIMS];
static volatile uint8_t rx_delim_head, rx_delim_tail;

/* Interrupts off. Moves a received byte, if any, into the ring: from the
 * receive interrupt, and from the edge loop, which may keep interrupts off
 * longer than the UART's two-byte buffer lasts at 115200 baud. */
static void rx_poll(void)
{
	if (!(UCSR0A & _BV(RXC0)))
		return;
	uint8_t b = UDR0;
	uint8_t next = (uint8_t)((rx_head + 1) % RX_SIZE);
	if (next == rx_tail)
		return; /* full: the frame loses a byte and fails its check */
	if (b == 0) {
		rx_delim_us[rx_delim_head % RX_DELIMS] = now_us_locked();
		rx_delim_head++;
	}
	rx_buf[rx_head] = b;
	rx_head = next;
}

ISR(USART_RX_vect) { rx_poll(); }

/* ---- edges ---- */
/* Interrupts off. Fires every edge due within LEAD_US, then sets the compare
 * to wake LEAD_US before the next one. Called by the compare interrupt and by
 * the main loop after a command changed the schedule. */
static void edges(void)
{
	for (;;) {
		rx_poll();
		uint32_t now = now_us_locked(), at = 0;
		if (!tb_sched_next(&core.sched, now, &at)) {
			TIMSK1 &= ~_BV(OCIE1A);
			return;
		}
		int32_t ahead = (int32_t)(at - now);
		if (ahead > LEAD_US + MIN_COMPARE_US) {
			/* A compare beyond this timer period matches early, and
			 * this function then sets it again. */
			OCR1A = (uint16_t)((at << 1) - 2 * LEAD_US);
			TIMSK1 |= _BV(OCIE1A);
			return;
		}
		uint8_t rise, fall;
		tb_sched_take(&core.sched, at, &rise, &fall);
		uint8_t pins = (uint8_t)((PORTD & ~(fall << OUT_SHIFT)) | (rise << OUT_SHIFT));
		if (!core.sched.armed)
			pins &= (uint8_t)~OUT_MASK;
		/* `at` is within LEAD_US plus the time take() took, so 16 bits of
		 * timer ticks compare it without ambiguity. */
		uint16_t t16 = (uint16_t)(at << 1);
		uint8_t late = ahead < 0 || (int16_t)(TCNT1 - t16) > 0;
		if (!late) {
			while ((int16_t)(TCNT1 - t16) < -40)
				rx_poll();
			uint8_t lo = (uint8_t)t16;
			while ((int8_t)(TCNT1L - lo) < 0) {
			}
		}
		PORTD = pins;
		if (late && rise)
			tb_sched_stamp(&core.sched, rise, now_us_locked());
		if (!core.sched.armed)
			show_armed();
	}
}

ISR(TIMER1_COMPA_vect) { edges(); }

/* ---- heartbeat ---- */
static void disarmed_now(void)
{
	PORTD &= ~OUT_MASK;
	show_armed();
}

ISR(TIMER1_COMPB_vect)
{
	if (!core.sched.armed) {
		TIMSK1 &= ~_BV(OCIE1B);
		return;
	}
	if (tb_core_check_heartbeat(&core, now_us_locked())) {
		disarmed_now();
		TIMSK1 &= ~_BV(OCIE1B);
	}
	/* otherwise the deadline is in a later timer period: match again then */
}

/* Interrupts off. */
static void set_deadline(void)
{
	if (!core.sched.armed) {
		TIMSK1 &= ~_BV(OCIE1B);
		return;
	}
	OCR1B = (uint16_t)(tb_core_deadline(&core) << 1);
	TIMSK1 |= _BV(OCIE1B);
}

/* ---- UART output ---- */
/* 256 bytes: the uint8_t indices wrap by themselves. */
static volatile uint8_t tx_buf[256], tx_head, tx_tail;
/* The first byte of a SYNC reply, whose departure the core wants. */
static volatile uint8_t tx_sync_at, tx_sync_pending;

ISR(USART_UDRE_vect)
{
	if (tx_head == tx_tail) {
		UCSR0B &= ~_BV(UDRIE0);
		return;
	}
	UDR0 = tx_buf[tx_tail];
	if (tx_sync_pending && tx_tail == tx_sync_at) {
		tb_core_sync_sent(&core, now_us_locked());
		tx_sync_pending = 0;
	}
	tx_tail++;
}

uint8_t tb_port_room(void) { return (uint8_t)(255 - (uint8_t)(tx_head - tx_tail)); }

uint8_t tb_port_send(const uint8_t *wire, uint8_t len, uint8_t sync)
{
	if (len > tb_port_room())
		return 0;
	uint8_t h = tx_head;
	for (uint8_t i = 0; i < len; i++)
		tx_buf[h++] = wire[i];
	uint8_t s = SREG;
	cli();
	if (sync) {
		tx_sync_at = tx_head;
		tx_sync_pending = 1;
	}
	tx_head = h;
	UCSR0B |= _BV(UDRIE0);
	SREG = s;
	return 1;
}

static void uart_init(void)
{
	/* 115200 baud with double speed: 16 MHz / (8 * (16 + 1)) = 117647 (+2.1 %). */
	UCSR0A = _BV(U2X0);
	UBRR0 = (uint16_t)(F_CPU / (8 * TB_BAUD) - 1);
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
	UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

int main(void)
{
	/* Outputs low before they are driven, so they never glitch high. */
	PORTD &= ~OUT_MASK;
	DDRD |= OUT_MASK;
	PORTB &= ~_BV(PB5);
	DDRB |= _BV(PB5);

	TCCR1A = 0;
	TCCR1B = _BV(CS11); /* clk/8: 0.5-us ticks */
	TIMSK1 = _BV(TOIE1);
	uart_init();
	wdt_enable(WDTO_120MS);
	tb_core_init(&core, reset_cause, now_us());
	set_sleep_mode(SLEEP_MODE_IDLE);
	sei();

	for (;;) {
		/* The Timer1 overflow wakes the loop every 32.8 ms at least. */
		wdt_reset();
		while (rx_tail != rx_head) {
			uint8_t b = rx_buf[rx_tail];
			rx_tail = (uint8_t)((rx_tail + 1) % RX_SIZE);
			uint32_t at = 0;
			if (b == 0) {
				at = rx_delim_us[rx_delim_tail % RX_DELIMS];
				rx_delim_tail++;
			}
			uint8_t apply = tb_core_rx(&core, b, at, now_us());
			cli();
			if (apply & TB_APPLY_PINS) {
				PORTD = (uint8_t)((PORTD & ~OUT_MASK) | (tb_sched_high(&core.sched) << OUT_SHIFT));
				show_armed();
				edges();
			}
			if (apply & TB_APPLY_DEADLINE)
				set_deadline();
			sei();
		}
		cli();
		if (tb_core_check_heartbeat(&core, now_us_locked()))
			disarmed_now();
		sei();
		tb_core_poll(&core, now_us());
		/* Sleep until an interrupt: a byte, an edge, the UART ready for more. */
		cli();
		if (rx_tail == rx_head) {
			sleep_enable();
			sei();
			sleep_cpu();
			sleep_disable();
		}
		sei();
	}
}
