//! Streams and events on the mock: cross-stream ordering inserted by the
//! access tracker, event timing, host functions, and several threads each
//! driving its own stream.
#![cfg(feature = "mock")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ascend_rt::{DeviceBuffer, Event, PinnedBuffer};

const N: usize = 1 << 20;

fn data(seed: u32) -> Vec<u32> {
    (0..N as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) ^ seed)
        .collect()
}

fn as_i32(v: Vec<u32>) -> Vec<i32> {
    v.into_iter().map(|x| x as i32).collect()
}

/// A write queued on a slow stream A, then a read queued on stream B: the
/// tracker must make B wait, or B copies the zeros that were there before.
#[test]
fn a_read_on_another_stream_waits_for_the_write() {
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let expected = as_i32(data(1));
    let src = PinnedBuffer::from_slice(&ctx, &expected).unwrap();
    let mut dev = DeviceBuffer::<i32>::zeroed(&ctx, N).unwrap();
    let mut out = PinnedBuffer::<i32>::zeroed(&ctx, N).unwrap();

    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    dev.copy_from_pinned(&src, &a).unwrap(); // write on A, after the sleep
    dev.copy_to_pinned(&mut out, &b).unwrap(); // read on B
    assert_eq!(dev.tracked_streams(), (Some(a.id()), vec![b.id()]));
    // Reading `out` waits for B (its writer), and B waited for A.
    assert!(out.as_slice().unwrap() == &expected[..]);
}

/// Two writers on two streams: the second must land last.
#[test]
fn writes_on_two_streams_land_in_program_order() {
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let first = PinnedBuffer::from_slice(&ctx, &as_i32(data(2))).unwrap();
    let second = as_i32(data(3));
    let second_dev = DeviceBuffer::from_host(&ctx, &second).unwrap();
    let mut dev = DeviceBuffer::<i32>::zeroed(&ctx, N).unwrap();

    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    dev.copy_from_pinned(&first, &a).unwrap();
    dev.copy_from(&second_dev, &b).unwrap();
    assert_eq!(dev.tracked_streams(), (Some(b.id()), vec![]));
    assert!(dev.to_vec().unwrap() == second);
    // A's write must not land afterwards either.
    a.synchronize().unwrap();
    assert!(
        dev.to_vec().unwrap() == second,
        "the first write landed last"
    );
}

/// A read on slow stream A, then a write on B: the read must see the old
/// contents.
#[test]
fn a_write_on_another_stream_waits_for_earlier_reads() {
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let old = as_i32(data(4));
    let mut dev = DeviceBuffer::from_host(&ctx, &old).unwrap();
    let mut out = PinnedBuffer::<i32>::zeroed(&ctx, N).unwrap();

    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    dev.copy_to_pinned(&mut out, &a).unwrap(); // read on A
    dev.memset_async(0, &b).unwrap(); // write on B
    assert!(out.as_slice().unwrap() == &old[..]);
    assert!(dev.to_vec().unwrap().iter().all(|&x| x == 0));
}

/// On one stream the tracker only compares ids.
#[test]
fn one_stream_needs_no_cross_stream_waits() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let src = DeviceBuffer::from_host(&ctx, &[1u8, 2, 3]).unwrap();
    let mut dst = DeviceBuffer::<u8>::zeroed(&ctx, 3).unwrap();
    dst.copy_from(&src, &s).unwrap();
    let mut again = DeviceBuffer::<u8>::zeroed(&ctx, 3).unwrap();
    again.copy_from(&dst, &s).unwrap();
    assert_eq!(dst.tracked_streams(), (Some(s.id()), vec![s.id()]));
    assert_eq!(src.tracked_streams(), (None, vec![s.id()]));
    assert_eq!(again.to_vec().unwrap(), [1, 2, 3]);
    // The host read waited for the writer and forgot it.
    assert_eq!(again.tracked_streams(), (None, vec![]));
}

/// Dropping a buffer waits for the queued work that writes it. (The mock's
/// `aclrtFree` also drains queued work, so on the mock this checks the
/// contract end to end rather than the tracker alone.)
#[test]
fn dropping_a_buffer_waits_for_its_queued_work() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let mut dev = DeviceBuffer::<f32>::zeroed(&ctx, 1024).unwrap();
    s.launch_host_fn(move || {
        std::thread::sleep(Duration::from_millis(200));
        flag.store(true, Ordering::SeqCst);
    })
    .unwrap();
    dev.memset_async(0, &s).unwrap();
    drop(dev);
    assert!(done.load(Ordering::SeqCst), "the buffer was freed early");
}

/// Writing a pinned buffer from the host waits for a queued copy that still
/// reads it; otherwise the slow copy would send the new values.
#[test]
fn host_writes_to_pinned_memory_wait_for_queued_reads() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let original = as_i32(data(5));
    let mut host = PinnedBuffer::from_slice(&ctx, &original).unwrap();
    let mut dev = DeviceBuffer::<i32>::zeroed(&ctx, N).unwrap();
    s.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    dev.copy_from_pinned(&host, &s).unwrap();
    host.as_mut_slice().unwrap().fill(-7);
    assert!(dev.to_vec().unwrap() == original);
    assert!(host.as_slice().unwrap().iter().all(|&x| x == -7));
}

#[test]
fn elapsed_time_between_events_is_plausible() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let start = Event::new(&ctx).unwrap();
    let end = Event::new(&ctx).unwrap();
    start.record(&s).unwrap();
    s.launch_host_fn(|| std::thread::sleep(Duration::from_millis(50)))
        .unwrap();
    end.record(&s).unwrap();
    end.synchronize().unwrap();
    assert!(start.is_complete().unwrap() && end.is_complete().unwrap());
    let ms = start.elapsed_ms(&end).unwrap();
    assert!(ms >= 45.0, "{ms} ms for a 50 ms sleep");
    assert!(ms < 60_000.0, "{ms} ms for a 50 ms sleep");
    s.synchronize().unwrap();
    assert!(s.is_complete().unwrap());
}

#[test]
fn a_stream_waits_for_an_event_of_another() {
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let (set, seen) = (flag.clone(), Arc::new(AtomicBool::new(false)));
    let seen2 = seen.clone();
    a.launch_host_fn(move || {
        std::thread::sleep(Duration::from_millis(200));
        set.store(true, Ordering::SeqCst);
    })
    .unwrap();
    let ev = a.record_event().unwrap();
    b.wait(&ev).unwrap();
    drop(ev); // b keeps it alive until it has passed the wait
    b.launch_host_fn(move || seen2.store(flag.load(Ordering::SeqCst), Ordering::SeqCst))
        .unwrap();
    b.synchronize().unwrap();
    assert!(seen.load(Ordering::SeqCst), "b ran before a's work");
}

#[test]
fn several_threads_drive_their_own_streams() {
    let ctx = common::ctx();
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let s = ctx.new_stream().unwrap();
                for round in 0..5u32 {
                    let seed = t * 100 + round;
                    let want: Vec<i64> = (0..20_000)
                        .map(|i| i64::from(seed) * 1_000_000 + i)
                        .collect();
                    let host = PinnedBuffer::from_slice(&ctx, &want).unwrap();
                    let mut a = DeviceBuffer::<i64>::zeroed(&ctx, want.len()).unwrap();
                    let mut b = DeviceBuffer::<i64>::zeroed(&ctx, want.len()).unwrap();
                    a.copy_from_pinned(&host, &s).unwrap();
                    b.copy_from(&a, &s).unwrap();
                    a.memset_async(0, &s).unwrap();
                    let mut out = PinnedBuffer::<i64>::zeroed(&ctx, want.len()).unwrap();
                    b.copy_to_pinned(&mut out, &s).unwrap();
                    assert!(
                        out.as_slice().unwrap() == &want[..],
                        "thread {t} round {round}"
                    );
                    assert!(a.to_vec().unwrap().iter().all(|&x| x == 0));
                }
                s.synchronize().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_panicking_host_function_does_not_take_the_process_down() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    s.launch_host_fn(|| panic!("deliberate panic in a host function"))
        .unwrap();
    s.synchronize().unwrap();
    let b = DeviceBuffer::from_host(&ctx, &[9u8]).unwrap();
    assert_eq!(b.to_vec().unwrap(), [9]);
}

/// Streams of two contexts of one device share a buffer: the tracker joins
/// them across the contexts.
#[test]
fn streams_of_two_contexts_on_one_device_are_ordered() {
    let ctx = common::ctx();
    let other = ascend_rt::Context::new_explicit(0).unwrap();
    let a = ctx.new_stream().unwrap();
    let b = other.new_stream().unwrap();
    let expected = as_i32(data(6));
    let src = PinnedBuffer::from_slice(&ctx, &expected).unwrap();
    let mut dev = DeviceBuffer::<i32>::zeroed(&ctx, N).unwrap();
    let mut out = PinnedBuffer::<i32>::zeroed(&other, N).unwrap();
    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    dev.copy_from_pinned(&src, &a).unwrap();
    dev.copy_to_pinned(&mut out, &b).unwrap();
    assert!(out.as_slice().unwrap() == &expected[..]);
}
