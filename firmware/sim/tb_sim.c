/* tb_sim: the trigger-box firmware in simavr, its UART on a pseudo-terminal,
 * its pins traced to a VCD file, simulated time paced to the wall clock.
 *
 *   tb_sim FIRMWARE.elf --vcd FILE [--ppm P] [--link PATH] [--delay-us D]
 *
 * Prints `pty PATH` then `clock w0_ns N ppm P delay_us D` on stdout, then
 * runs until SIGTERM/SIGINT (or its parent exits) and closes the VCD.
 *
 * Pacing: simulated cycle c belongs to wall time (CLOCK_MONOTONIC)
 * w0 + c / (16 MHz * (1 + P 1e-6)), so the device clock runs P ppm fast.
 * The simulation runs at most AHEAD_US ahead of that. Both directions of
 * the UART are delayed by exactly D us of simulated time: a byte read from
 * the pty at wall time t enters the UART at the cycle of t + D, and a byte
 * the firmware sends at cycle c is written to the pty at the wall time of
 * c + D. The two paths are thus symmetric, as clock sync assumes: a thread
 * blocked on the pty dates the host's bytes as they arrive, another sleeps
 * until the last byte of each frame of the box is due and writes the frame
 * (so that each side wakes once per frame: a thread woken every byte stays
 * hot and answers tens of µs sooner), and the simulation runs on a third.
 * D > AHEAD_US keeps input in the simulated future; the harness counts the
 * bytes it could not place on time (a machine too loaded to keep pace) and
 * prints them with its other figures when it stops.
 *
 * VCD signals: out1..out4 (PD4..PD7), armed (PB5), host_frame (toggles
 * when a frame delimiter from the host enters the UART), tov1 (Timer1
 * overflow pending: device time is a multiple of 32768 us there). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_vcd_file.h>
#include <avr_ioport.h>
#include <avr_uart.h>
#include <sim_cycle_timers.h>
#include <sim_interrupts.h>

#define F_CPU 16000000.0
#define AHEAD_US 1000
/* The simulation loop looks at the time at least this often. */
#define IDLE_WAIT_NS 200000LL
/* One byte on the wire as simavr's UART times it for the firmware's setting
 * (UBRR 16 with U2X: 8 * 17 cycles a bit, 11 bits a word as simavr counts,
 * a parity bit included): the host's bytes enter no faster, and the
 * firmware's bytes leave at the end of their own transmission, one after
 * the other, as from a real UART (simavr announces a byte when it is written
 * to UDR, before it is shifted out). */
#define BYTE_CYCLES (8 * 17 * 11)
#define TIMER1_OVF_VECTOR 13
#define QSIZE 65536

static avr_t *avr;
static int master = -1;
static volatile sig_atomic_t stop;
static int64_t w0;
static double cycles_per_ns;
static uint64_t delay_cycles, byte_cycles;

struct byteq {
	uint8_t byte[QSIZE];
	uint64_t cycle[QSIZE];
	unsigned head, tail;
};
/* Shared by the simulation and the I/O threads, under io_lock. */
static struct byteq in, out;
static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t out_ready = PTHREAD_COND_INITIALIZER;
/* The input thread wakes the simulation loop through this pipe. */
static int wake_pipe[2];
/* Placed late: host bytes that entered the UART after their cycle, box
 * frames written to the pty more than 20 us after their time (and by how
 * much at most). */
static unsigned long late_in, late_out;
/* Complete frames (delimiters) in `out`. */
static unsigned out_frames;
static int64_t late_out_max_ns;

static int64_t wall_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static uint64_t cycle_at(int64_t wall) { return wall <= w0 ? 0 : (uint64_t)((double)(wall - w0) * cycles_per_ns); }
static int64_t wall_at(uint64_t cycle) { return w0 + (int64_t)((double)cycle / cycles_per_ns); }

static int q_empty(const struct byteq *q) { return q->head == q->tail; }
static void q_push(struct byteq *q, uint8_t b, uint64_t cycle)
{
	if (((q->tail + 1) % QSIZE) == q->head) {
		fprintf(stderr, "tb_sim: byte queue overflow\n");
		exit(3);
	}
	q->byte[q->tail] = b;
	q->cycle[q->tail] = cycle;
	q->tail = (q->tail + 1) % QSIZE;
}

/* host -> firmware */
static avr_irq_t *uart_in, *host_frame;
static uint32_t host_frame_level;
/* Simulation thread: the cycle at which the line can take the next byte. */
static uint64_t line_free;

/* The cycle timer that feeds the UART: each queued byte at its cycle, or
 * when the line is free, whichever is later. */
static avr_cycle_count_t inject(avr_t *a, avr_cycle_count_t when, void *param)
{
	(void)a;
	(void)param;
	pthread_mutex_lock(&io_lock);
	avr_cycle_count_t next = 0;
	if (!q_empty(&in)) {
		uint64_t due = in.cycle[in.head] > line_free ? in.cycle[in.head] : line_free;
		if (due > when) {
			next = due;
		} else {
			uint8_t b = in.byte[in.head];
			in.head = (in.head + 1) % QSIZE;
			avr_raise_irq(uart_in, b);
			if (b == 0) {
				host_frame_level ^= 1;
				avr_raise_irq(host_frame, host_frame_level);
			}
			line_free = when + byte_cycles;
			if (!q_empty(&in))
				next = in.cycle[in.head] > line_free ? in.cycle[in.head] : line_free;
		}
	}
	pthread_mutex_unlock(&io_lock);
	return next;
}

/* Set by the input thread when it queued bytes. */
static volatile int input_pending;

/* Starts the inject timer for newly queued bytes; a byte whose cycle has
 * passed already (the simulation ran too far ahead of a late input thread)
 * enters at once and is counted. */
static void schedule_input(void)
{
	pthread_mutex_lock(&io_lock);
	int queued = !q_empty(&in);
	uint64_t at = queued ? in.cycle[in.head] : 0;
	pthread_mutex_unlock(&io_lock);
	if (!queued || avr_cycle_timer_status(avr, inject, NULL))
		return;
	if (at < line_free)
		at = line_free;
	if (at <= avr->cycle) {
		/* more than a microsecond late counts */
		late_in += avr->cycle - at > 16;
		at = avr->cycle + 1;
	}
	avr_cycle_timer_register(avr, at - avr->cycle, inject, NULL);
}

/* The I/O threads date bytes: real-time priority, when permitted, keeps the
 * wake-up latency of a loaded machine off the link's timing (the simulation
 * thread keeps the normal policy: it is busy). */
static volatile int io_normal_priority;
static void io_priority(void)
{
	struct sched_param p = {.sched_priority = 20};
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &p) != 0)
		io_normal_priority = 1;
}

static void *input_thread(void *arg)
{
	(void)arg;
	io_priority();
	uint8_t buf[512];
	while (!stop) {
		struct pollfd p = {master, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(master, buf, sizeof buf);
		int64_t t = wall_ns();
		if (n <= 0)
			continue;
		uint64_t at = cycle_at(t) + delay_cycles;
		pthread_mutex_lock(&io_lock);
		for (ssize_t i = 0; i < n; i++)
			q_push(&in, buf[i], at);
		pthread_mutex_unlock(&io_lock);
		__atomic_store_n(&input_pending, 1, __ATOMIC_RELEASE);
		if (write(wake_pipe[1], "", 1) < 0 && errno != EAGAIN)
			perror("tb_sim: wake");
	}
	return NULL;
}

/* firmware -> host */
static uint64_t tx_busy_until;

static void uart_out_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)param;
	uint64_t start = avr->cycle > tx_busy_until ? avr->cycle : tx_busy_until;
	tx_busy_until = start + byte_cycles;
	pthread_mutex_lock(&io_lock);
	q_push(&out, (uint8_t)value, tx_busy_until + delay_cycles);
	if (value == 0) {
		out_frames++;
		pthread_cond_signal(&out_ready);
	}
	pthread_mutex_unlock(&io_lock);
}

static void sleep_until(int64_t wall)
{
	struct timespec t = {wall / 1000000000LL, wall % 1000000000LL};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR && !stop) {
	}
}

/* Writes each frame of the box to the pty when its last byte is due: the
 * host's frames arrive whole too (one write, one wake-up each way). */
static void *output_thread(void *arg)
{
	(void)arg;
	io_priority();
	uint8_t buf[512];
	pthread_mutex_lock(&io_lock);
	while (!stop) {
		if (!out_frames) {
			struct timespec t;
			clock_gettime(CLOCK_REALTIME, &t);
			t.tv_nsec += 100000000L;
			if (t.tv_nsec >= 1000000000L) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&out_ready, &io_lock, &t);
			continue;
		}
		size_t n = 0;
		unsigned i = out.head;
		while (out.byte[i] != 0 && n < sizeof buf - 1) {
			buf[n++] = out.byte[i];
			i = (i + 1) % QSIZE;
		}
		buf[n++] = out.byte[i];
		int64_t due = wall_at(out.cycle[i]);
		out.head = (i + 1) % QSIZE;
		out_frames--;
		pthread_mutex_unlock(&io_lock);
		sleep_until(due);
		int64_t late = wall_ns() - due;
		if (write(master, buf, n) < 0 && errno != EAGAIN)
			perror("tb_sim: write");
		pthread_mutex_lock(&io_lock);
		if (late > 20000) {
			late_out++;
			if (late > late_out_max_ns)
				late_out_max_ns = late;
		}
	}
	pthread_mutex_unlock(&io_lock);
	return NULL;
}

/* Bounds how far a sleeping core jumps ahead in one avr_run. */
static avr_cycle_count_t tick(avr_t *a, avr_cycle_count_t when, void *param)
{
	(void)a;
	(void)param;
	return when + (avr_cycle_count_t)(F_CPU * 50e-6);
}

/* simavr's default sleep callback calls usleep; the pacing is ours. */
static void no_sleep(avr_t *a, avr_cycle_count_t how_long)
{
	(void)a;
	(void)how_long;
}

/* simavr's warnings and its watchdog reset (a trace message), prefixed with
 * where the firmware was. The reset clears every cycle timer, the harness's
 * included: the main loop registers them again after it. */
static unsigned watchdog_resets, timers_lost;

static void logger(avr_t *a, const int level, const char *format, va_list ap)
{
	int reset = !strncmp(format, "WATCHDOG: timer fired without", 29);
	if (level > LOG_WARNING && !reset)
		return;
	if (reset) {
		watchdog_resets++;
		timers_lost = 1;
	}
	fprintf(stderr, "tb_sim: %.6f s simulated, pc 0x%04x: ", (double)a->cycle / F_CPU, (unsigned)a->pc);
	vfprintf(stderr, format, ap);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: tb_sim FIRMWARE.elf --vcd FILE [--ppm P] [--link PATH] [--delay-us D]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *elf = NULL, *vcd_path = NULL, *link = NULL;
	double ppm = 0, delay_us = 5000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--vcd") && i + 1 < argc)
			vcd_path = argv[++i];
		else if (!strcmp(argv[i], "--ppm") && i + 1 < argc)
			ppm = atof(argv[++i]);
		else if (!strcmp(argv[i], "--link") && i + 1 < argc)
			link = argv[++i];
		else if (!strcmp(argv[i], "--delay-us") && i + 1 < argc)
			delay_us = atof(argv[++i]);
		else if (argv[i][0] != '-' && !elf)
			elf = argv[i];
		else
			usage();
	}
	if (!elf || !vcd_path || !(delay_us > AHEAD_US) || !(ppm > -1000 && ppm < 1000))
		usage();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_TIMERSLACK, 1);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* the test may stop reading our stdout once it has the pty */
	signal(SIGPIPE, SIG_IGN);

	elf_firmware_t f;
	memset(&f, 0, sizeof f);
	if (elf_read_firmware(elf, &f) != 0) {
		fprintf(stderr, "tb_sim: cannot read %s\n", elf);
		return 1;
	}
	strcpy(f.mmcu, "atmega328p");
	f.frequency = (uint32_t)F_CPU;
	avr = avr_make_mcu_by_name(f.mmcu);
	if (!avr) {
		fprintf(stderr, "tb_sim: simavr has no atmega328p\n");
		return 1;
	}
	avr_init(avr);
	avr_load_firmware(avr, &f);
	avr->sleep = no_sleep;
	avr_global_logger_set(logger);
	avr->log = LOG_TRACE;

	int slave;
	char name[256];
	if (openpty(&master, &slave, name, NULL, NULL) < 0) {
		perror("tb_sim: openpty");
		return 1;
	}
	struct termios tio;
	tcgetattr(slave, &tio);
	cfmakeraw(&tio);
	tcsetattr(slave, TCSANOW, &tio);
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	/* the slave stays open here so that the master never reads a hang-up */
	if (link) {
		unlink(link);
		if (symlink(name, link) != 0) {
			perror("tb_sim: symlink");
			return 1;
		}
	}

	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	flags &= ~AVR_UART_FLAG_STDIO;
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
				uart_out_hook, NULL);

	static const char *host_names[] = {"host_frame"};
	host_frame = avr_alloc_irq(&avr->irq_pool, 0, 1, host_names);
	avr_vcd_t vcd;
	if (avr_vcd_init(avr, vcd_path, &vcd, 1000) != 0) {
		fprintf(stderr, "tb_sim: cannot write %s\n", vcd_path);
		return 1;
	}
	static const char *outs[] = {"out1", "out2", "out3", "out4"};
	for (int k = 0; k < 4; k++)
		avr_vcd_add_signal(&vcd, avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 4 + k), 1, outs[k]);
	avr_vcd_add_signal(&vcd, avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 5), 1, "armed");
	avr_vcd_add_signal(&vcd, host_frame, 1, "host_frame");
	avr_vcd_add_signal(&vcd, avr_get_interrupt_irq(avr, TIMER1_OVF_VECTOR), 1, "tov1");
	avr_vcd_start(&vcd);

	cycles_per_ns = F_CPU * (1.0 + ppm * 1e-6) / 1e9;
	delay_cycles = (uint64_t)(delay_us * 1e-6 * F_CPU);
	byte_cycles = BYTE_CYCLES;
	avr_cycle_timer_register(avr, 1, tick, NULL);
	w0 = wall_ns();
	printf("pty %s\nclock w0_ns %lld ppm %g delay_us %g\n", name, (long long)w0, ppm, delay_us);
	fflush(stdout);

	uint64_t ahead = (uint64_t)(AHEAD_US * 1e-6 * F_CPU);
	int64_t max_lag_ns = 0;
	uint16_t min_sp = (uint16_t)avr->ramend;
	pthread_t input, output;
	if (pipe2(wake_pipe, O_NONBLOCK) != 0 || pthread_create(&input, NULL, input_thread, NULL) != 0 ||
	    pthread_create(&output, NULL, output_thread, NULL) != 0) {
		perror("tb_sim: threads");
		return 1;
	}
	while (!stop) {
		char drain[64];
		while (read(wake_pipe[0], drain, sizeof drain) > 0) {
		}
		schedule_input();
		int64_t now = wall_ns();
		uint64_t target = cycle_at(now) + ahead;
		int64_t lag = now - wall_at(avr->cycle);
		if (lag > max_lag_ns)
			max_lag_ns = lag;
		while (avr->cycle < target) {
			if (__atomic_exchange_n(&input_pending, 0, __ATOMIC_ACQUIRE))
				schedule_input();
			unsigned lost = timers_lost;
			int state = avr_run(avr);
			uint16_t sp = (uint16_t)(avr->data[R_SPL] | avr->data[R_SPH] << 8);
			if (sp < min_sp)
				min_sp = sp;
			if (lost) {
				/* the reset happened in this step */
				timers_lost = 0;
				avr_cycle_timer_register(avr, 1, tick, NULL);
				schedule_input();
			}
			if (state == cpu_Done || state == cpu_Crashed) {
				fprintf(stderr, "tb_sim: the firmware %s at cycle %llu\n",
					state == cpu_Done ? "stopped" : "crashed", (unsigned long long)avr->cycle);
				avr_vcd_close(&vcd);
				return 1;
			}
		}
		struct pollfd p = {wake_pipe[0], POLLIN, 0};
		struct timespec ts = {0, IDLE_WAIT_NS};
		ppoll(&p, 1, &ts, NULL);
	}
	pthread_cond_signal(&out_ready);
	pthread_join(input, NULL);
	pthread_join(output, NULL);
	avr_vcd_close(&vcd);
	fprintf(stderr,
		"tb_sim: stopped at %.6f s simulated; max lag behind the wall clock %.3f ms; "
		"host bytes late %lu; box frames late %lu (max %.3f ms); "
		"I/O threads %s; watchdog resets %u; deepest stack %u bytes\n",
		(double)avr->cycle / F_CPU, (double)max_lag_ns / 1e6, late_in, late_out,
		(double)late_out_max_ns / 1e6, io_normal_priority ? "at normal priority" : "real-time",
		watchdog_resets, (unsigned)(avr->ramend - min_sp));
	close(slave);
	if (link)
		unlink(link);
	return 0;
}
