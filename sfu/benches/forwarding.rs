//! The forwarding hot path: one SRTP packet from the teacher in, one per subscriber out.
//!
//! Measures `Router::handle_datagram` + draining its transmits with N connected subscribers:
//! SRTP decrypt once, then per subscriber a header rewrite (the payload is shared, not copied)
//! and SRTP encrypt. Run: `cargo bench -p tandem-sfu --bench forwarding`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tandem_sfu::Role;
use tandem_sfu::testkit::Harness;

fn lesson_with(subscribers: usize) -> (Harness, usize) {
    let mut h = Harness::new();
    let teacher = h.join(Role::Master);
    for _ in 0..subscribers {
        h.join(Role::Remote);
    }
    h.publish_audio(teacher);
    h.run_for(Duration::from_millis(300));
    // The first packet publishes the track; the subscribe legs then connect.
    h.send_packet(teacher, Bytes::from_static(&[0xf8; 160]));
    h.run_for(Duration::from_millis(1000));
    (h, teacher)
}

fn forwarding(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_one_packet");
    group.sample_size(30);
    for subscribers in [1usize, 10, 50] {
        let (mut h, teacher) = lesson_with(subscribers);
        let server = "127.0.0.1:8443".parse().unwrap();
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| {
                // Only the router's work is timed; the publisher's encryption is set-up.
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        h.send_packet(teacher, Bytes::from_static(&[0xf8; 160]));
                        let datagrams = h.take_publisher_datagrams(teacher);
                        let now = h.now;
                        let started = Instant::now();
                        for (from, data) in datagrams {
                            h.router.handle_datagram(now, server, from, &data);
                        }
                        let mut out = 0;
                        while h.router.poll_transmit().is_some() {
                            out += 1;
                        }
                        timed += started.elapsed();
                        assert!(out >= subscribers, "every subscriber gets the packet");
                    }
                    timed
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
