//! Lists the Ascend devices of the active backend: a real NPU through CANN,
//! or the mock device on a machine without one, and says which.
//!
//! ```sh
//! cargo run --example device_info                       # CANN if installed, else the mock
//! ASCEND_RT_BACKEND=mock cargo run --example device_info
//! ```
//!
//! Then it moves a buffer through each device and times the copies with
//! events, to show that the devices work, not only that they are listed.

use ascend_rt::{Device, DeviceBuffer, Event, PinnedBuffer};

fn main() -> Result<(), ascend_rt::Error> {
    let api = ascend_rt::api()?;
    let kind = ascend_rt::backend_kind().expect("the backend is chosen by api()");
    println!("backend: {kind} ({})", api.origin());
    if ascend_rt::is_mock() {
        println!("running on the mock device: the CPU stands in for the NPU");
    }

    let devices = Device::all()?;
    println!("{} device(s)", devices.len());
    for device in devices {
        let mem = device.memory_info()?;
        println!(
            "device {}: {}, {:.1} GiB of {:.1} GiB free",
            device.ordinal(),
            device.soc_name()?,
            mem.free as f64 / (1u64 << 30) as f64,
            mem.total as f64 / (1u64 << 30) as f64,
        );

        // 16 MiB to the device and back through pinned memory, timed on a stream.
        let ctx = device.context()?;
        let stream = ctx.new_stream()?;
        let n = 4 << 20;
        let host = PinnedBuffer::from_slice(&ctx, &(0..n).map(|i| i as f32).collect::<Vec<_>>())?;
        let mut dev = DeviceBuffer::<f32>::zeroed(&ctx, n)?;
        let mut back = PinnedBuffer::<f32>::zeroed(&ctx, n)?;
        let (start, end) = (Event::new(&ctx)?, Event::new(&ctx)?);
        start.record(&stream)?;
        dev.copy_from_pinned(&host, &stream)?;
        dev.copy_to_pinned(&mut back, &stream)?;
        end.record(&stream)?;
        let ok = back.as_slice()? == host.as_slice()?;
        let ms = start.elapsed_ms(&end)?;
        let gib = 2.0 * (n * 4) as f64 / (1u64 << 30) as f64;
        println!(
            "  16 MiB host -> device -> host: {ms:.2} ms ({:.1} GiB/s), data {}",
            gib / (ms as f64 / 1e3),
            if ok { "intact" } else { "CORRUPTED" }
        );
        if !ok {
            std::process::exit(1);
        }
    }
    Ok(())
}
