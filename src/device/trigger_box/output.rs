//! The trigger box as a session's [`TriggerOutput`].

use super::*;

impl TriggerOutput for TriggerBox {
    fn name(&self) -> &'static str {
        DEVICE
    }

    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError> {
        let start = self.device_us_at(command.due);
        self.schedule(self.schedule, start, command.decision.onset)?;
        self.drain()
    }

    fn check(&mut self) -> Result<(), DeviceError> {
        self.service()
    }

    fn check_period(&self) -> Duration {
        self.heartbeat
    }

    fn disarm(&mut self) -> Result<(), DeviceError> {
        self.armed = false;
        let result = self.command_ok(Command::Disarm);
        // Reports of pulses that fired before the disarm are still on the wire.
        let _ = self.settle(Duration::from_millis(50));
        if let Ok(Some(s)) = self.status() {
            self.box_status = Some(s);
        }
        result
    }

    fn schedules_ahead(&self) -> bool {
        true
    }

    fn device_times(&self) -> Vec<DeviceTime> {
        self.deliveries.iter().map(|d| d.time).collect()
    }

    fn report(&self) -> Option<serde_json::Value> {
        let late: Vec<f64> = self
            .deliveries
            .iter()
            .filter_map(|d| d.time.fired_us.map(|f| f as f64 - d.time.planned_us as f64))
            .collect();
        let status = match self.box_status {
            Some(Reply::Status {
                armed,
                pending,
                counters,
                ..
            }) => {
                let mut m = serde_json::Map::new();
                m.insert("armed".into(), armed.into());
                m.insert("pending".into(), pending.into());
                for (name, v) in protocol::STATUS_COUNTERS.iter().zip(counters) {
                    m.insert((*name).into(), v.into());
                }
                serde_json::Value::Object(m)
            }
            _ => serde_json::Value::Null,
        };
        let never_fired = self
            .deliveries
            .iter()
            .filter(|d| d.time.fired_us.is_none() && d.refused.is_none())
            .count();
        Some(serde_json::json!({
            "device": DEVICE,
            "port": self.port_name,
            "firmware": format!("{}.{}", self.hello.firmware.0, self.hello.firmware.1),
            "protocol": self.hello.protocol,
            "output": self.schedule.output,
            "width_us": self.schedule.width_us,
            "count": self.schedule.count,
            "interval_us": self.schedule.interval_us,
            "counts": self.counts,
            "host_frames": *self.host_frames.lock().unwrap_or_else(|e| e.into_inner()),
            "not_fired": never_fired,
            "fired_minus_planned_us": {
                "max": late.iter().cloned().fold(f64::NAN, f64::max),
                "min": late.iter().cloned().fold(f64::NAN, f64::min),
            },
            "clock_sync": self.sync.summary(),
            "box": status,
        }))
    }
}
