//! Helper shared by the tests that run the controller over in-memory data.

use neuroloop::controller::{Block, Controller};
use neuroloop::event::{Event, Outbox};

/// Every event of `controller` over interleaved `data` (`channels` per frame),
/// cut into blocks of `next_size()` frames, then `finish`.
pub fn run_blocks(
    mut controller: Controller,
    channels: usize,
    data: &[f64],
    mut next_size: impl FnMut() -> usize,
) -> Vec<Event> {
    let mut outbox = Outbox::with_capacity(4096);
    let mut events = Vec::new();
    let frames = data.len() / channels;
    let mut start = 0;
    while start < frames {
        let n = next_size().clamp(1, frames - start);
        let block = Block {
            start: start as u64,
            channels,
            samples: &data[start * channels..(start + n) * channels],
        };
        outbox.clear();
        controller.process_block(&block, &mut outbox).unwrap();
        events.extend_from_slice(outbox.events());
        start += n;
    }
    outbox.clear();
    controller.finish(&mut outbox);
    events.extend_from_slice(outbox.events());
    events
}
