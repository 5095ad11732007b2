//! The packet parser, the framer and the acquisition loop on byte streams.

use super::*;

fn collect(parser: &mut Parser, bytes: &[u8]) -> Vec<(Packet, u64)> {
    let mut out = Vec::new();
    parser.feed(bytes, |p, m| out.push((p, m)));
    out
}

#[test]
fn decodes_24_bit_twos_complement_vectors() {
    // Vectors from the OpenBCI data-format page and the limits.
    assert_eq!(decode_i24([0x7F, 0xFF, 0xFF]), 8_388_607);
    assert_eq!(decode_i24([0xFF, 0xFF, 0xFF]), -1);
    assert_eq!(decode_i24([0x80, 0x00, 0x00]), -8_388_608);
    assert_eq!(decode_i24([0x00, 0x00, 0x01]), 1);
    assert_eq!(decode_i24([0x01, 0x02, 0x03]), 0x010203);
    for v in [-8_388_608, -1, 0, 1, 12345, 8_388_607] {
        assert_eq!(decode_i24(encode_i24(v)), v);
    }
    assert_eq!(decode_i24(encode_i24(1 << 24)), 8_388_607, "clamped");
}

#[test]
fn scale_matches_the_datasheet_for_gain_24() {
    // 4.5 V / 24 / (2^23 − 1) = 0.02235 µV per count.
    assert!((uv_per_count(24) - 0.022_351_744).abs() < 1e-9);
    assert!((uv_per_count(1) - 0.536_441_867).abs() < 1e-9);
}

#[test]
fn parses_a_hand_written_packet() {
    let mut bytes = vec![0xA0, 0x07];
    bytes.extend_from_slice(&[0x00, 0x00, 0x01]); // ch1 = 1
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF]); // ch2 = -1
    bytes.extend_from_slice(&[0x80, 0x00, 0x00]); // ch3 = min
    bytes.extend_from_slice(&[0x7F, 0xFF, 0xFF]); // ch4 = max
    bytes.extend_from_slice(&[0; 12]); // ch5–8
    bytes.extend_from_slice(&[0; 6]); // aux
    bytes.push(0xC1);
    assert_eq!(bytes.len(), PACKET_LEN);
    let out = collect(&mut Parser::new(), &bytes);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.counter, 7);
    assert_eq!(out[0].0.counts, [1, -1, -8_388_608, 8_388_607, 0, 0, 0, 0]);
}

#[test]
fn any_chunking_gives_the_same_packets() {
    let mut stream = Vec::new();
    for k in 0..20u8 {
        stream.extend_from_slice(&encode_packet(k, &[k as i32 * 1000 - 7; 8]));
    }
    let whole = collect(&mut Parser::new(), &stream);
    assert_eq!(whole.len(), 20);
    let mut parser = Parser::new();
    let mut bytewise = Vec::new();
    for b in &stream {
        parser.feed(std::slice::from_ref(b), |p, m| bytewise.push((p, m)));
    }
    assert_eq!(bytewise, whole);
    assert_eq!(parser.counters.garbage_bytes, 0);
}

#[test]
fn resyncs_after_garbage_including_false_headers() {
    let mut stream = Vec::new();
    stream.extend_from_slice(&encode_packet(0, &[1; 8]));
    // Garbage with false headers, then a truncated packet.
    stream.extend_from_slice(&[0xA0, 0x13, 0x55, 0xA0, 0xC0, 0x00]);
    stream.extend_from_slice(&encode_packet(1, &[2; 8])[..20]);
    stream.extend_from_slice(&encode_packet(2, &[3; 8]));
    stream.extend_from_slice(&encode_packet(3, &[4; 8]));
    let mut parser = Parser::new();
    let out = collect(&mut parser, &stream);
    let counters: Vec<u8> = out.iter().map(|(p, _)| p.counter).collect();
    assert_eq!(counters, vec![0, 2, 3]);
    assert_eq!(out[1].1, 1, "packet 1 was cut: one missing before 2");
    assert_eq!(out[1].0.counts, [3; 8]);
    assert_eq!(parser.counters.garbage_bytes, 6 + 20);
    assert_eq!(parser.counters.resyncs, 1);
    assert_eq!(parser.counters.dropped_packets, 1);
}

#[test]
fn counts_drops_across_the_counter_wrap() {
    let mut stream = Vec::new();
    for k in [253u8, 254, 2, 3] {
        stream.extend_from_slice(&encode_packet(k, &[0; 8]));
    }
    let mut parser = Parser::new();
    let missing: Vec<u64> = collect(&mut parser, &stream).iter().map(|x| x.1).collect();
    assert_eq!(missing, vec![0, 0, 3, 0]); // 255, 0, 1 missing
    assert_eq!(parser.counters.dropped_packets, 3);
}

#[test]
fn framer_scales_and_leaves_gaps_for_drops() {
    let mut framer = Framer::new(false, 24);
    let mut frame = [0.0; 16];
    let p = |counter| Packet {
        counter,
        counts: [1000, -1000, 0, 0, 0, 0, 0, 1],
    };
    assert_eq!(framer.push(&p(10), 0, &mut frame), Some(0));
    assert!((frame[0] - 1000.0 * uv_per_count(24)).abs() < 1e-12);
    assert_eq!(framer.push(&p(13), 2, &mut frame), Some(3));
    assert_eq!(framer.dropped_frames, 2);
}

#[test]
fn daisy_pairs_even_and_odd_packets_into_16_channels() {
    let mut framer = Framer::new(true, 24);
    assert_eq!(framer.channels(), 16);
    assert_eq!(framer.rate_hz(), 125.0);
    let mut frame = [0.0; 16];
    let daisy = Packet {
        counter: 2,
        counts: [200; 8],
    };
    let cyton = Packet {
        counter: 3,
        counts: [100; 8],
    };
    // An odd packet without its even partner (stream start) gives nothing.
    assert_eq!(
        framer.push(
            &Packet {
                counter: 1,
                ..cyton
            },
            0,
            &mut frame
        ),
        None
    );
    assert_eq!(framer.push(&daisy, 0, &mut frame), None);
    assert_eq!(framer.push(&cyton, 0, &mut frame), Some(0));
    let k = uv_per_count(24);
    assert!((frame[0] - 100.0 * k).abs() < 1e-12);
    assert!((frame[15] - 200.0 * k).abs() < 1e-12);
    // Packets 4 and 5 lost: one frame dropped, the next pair is frame 2.
    assert_eq!(
        framer.push(
            &Packet {
                counter: 6,
                ..daisy
            },
            2,
            &mut frame
        ),
        None
    );
    assert_eq!(
        framer.push(
            &Packet {
                counter: 7,
                ..cyton
            },
            0,
            &mut frame
        ),
        Some(2)
    );
    assert_eq!(framer.dropped_frames, 1);
}

#[test]
fn channel_commands_round_trip() {
    assert_eq!(&channel_command(0, 24).unwrap(), b"x1060110X");
    assert_eq!(&channel_command(8, 1).unwrap(), b"xQ000110X");
    assert_eq!(parse_channel_command(b"x1060110X"), Some((0, 24)));
    assert_eq!(parse_channel_command(b"xI030110X"), Some((15, 6)));
    assert!(channel_command(0, 3).is_none());
    assert!(channel_command(16, 24).is_none());
}
