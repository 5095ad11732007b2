//! The trigger box on the bench: which USB boards it is built on, its HELLO
//! in one line (`neuroloop devices`) and a pulse on each output
//! (`neuroloop trigger-box test`).

use std::time::{Duration, Instant};

use super::{TriggerBox, TriggerBoxConfig};
use crate::device::{DeviceError, TriggerOutput};
use crate::protocol::{Code, Schedule};

/// USB vendor:product ids of the boards and USB-serial chips it is built on.
pub const USB_IDS: [(u16, u16, &str); 5] = [
    (0x2341, 0x0043, "Arduino Uno (ATmega16U2)"),
    (0x2341, 0x0001, "Arduino Uno (ATmega8U2)"),
    (0x2A03, 0x0043, "Arduino Uno (arduino.org)"),
    (0x1A86, 0x7523, "CH340 USB-serial (Nano clones)"),
    (0x0403, 0x6001, "FTDI FT232R (Nano)"),
];

/// The board behind a USB vendor:product id, if the box can be built on it.
pub fn board(vid: u16, pid: u16) -> Option<&'static str> {
    USB_IDS
        .iter()
        .find(|(v, p, _)| *v == vid && *p == pid)
        .map(|(_, _, name)| *name)
}

/// Say HELLO on `port` and describe the answer in one line (`neuroloop
/// devices`). The box stays disarmed; an Arduino resets when its port opens.
pub fn hello(port: &str) -> Result<String, DeviceError> {
    let h = TriggerBox::connect(&TriggerBoxConfig::new(port), 1.0)?.hello;
    let reset = match h.reset_cause {
        c if c & 8 != 0 => "watchdog",
        c if c & 4 != 0 => "brown-out",
        c if c & 2 != 0 => "reset pin",
        c if c & 1 != 0 => "power-on",
        _ => "unknown",
    };
    Ok(format!(
        "trigger box, firmware {}.{}, protocol {}, {} outputs; pulses {}-{} µs, starts >= {} µs apart, \
         <= {} Hz (bursts of {}); last reset: {reset}",
        h.firmware.0,
        h.firmware.1,
        h.protocol,
        h.outputs,
        h.min_width_us,
        h.max_width_us,
        h.min_interval_us,
        h.max_rate_hz,
        h.rate_burst
    ))
}

/// What `neuroloop trigger-box test` saw on one output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputCheck {
    pub output: u8,
    pub pulses: u16,
    /// As the box reported them, and the latest against its planned time.
    pub fired: u16,
    pub late_max_us: i64,
    pub refused: Option<Code>,
}

/// Arm the box and fire the train of `c` (its width, count and interval) on
/// each of `outputs` in turn, each 50 ms after the previous one ended; then
/// disarm. The box's reports say what fired.
pub fn pulse_outputs(
    c: &TriggerBoxConfig,
    outputs: &[u8],
) -> Result<Vec<OutputCheck>, DeviceError> {
    const LEAD: Duration = Duration::from_millis(50);
    let mut tb = TriggerBox::open(c, c.width_ms.unwrap_or(1.0))?;
    for &output in outputs {
        let train = Schedule {
            output,
            ..tb.train()
        };
        let start = tb.device_us_at(Instant::now() + LEAD);
        tb.schedule(train, start, 0)?;
        let span_us =
            u64::from(train.count - 1) * u64::from(train.interval_us) + u64::from(train.width_us);
        let until = Instant::now() + LEAD * 2 + Duration::from_micros(span_us);
        while Instant::now() < until {
            tb.service()?;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    TriggerOutput::disarm(&mut tb)?;
    Ok(tb
        .deliveries()
        .iter()
        .zip(outputs)
        .map(|(d, &output)| OutputCheck {
            output,
            pulses: tb.schedule.count,
            fired: d.pulses_fired,
            late_max_us: d.late_max_us,
            refused: d.refused,
        })
        .collect())
}
