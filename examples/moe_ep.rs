//! The DeepSeek-style MoE layer with its routed experts sharded over N devices (expert
//! parallelism over HCCL, `ascend::moe::ep`), checked against the single-device layer on the
//! same weights and tokens. On a machine without an NPU it runs on N mock devices.
//!
//! ```sh
//! cargo run --release --example moe_ep
//! cargo run --release --example moe_ep -- --ranks 8
//! cargo run --release --example moe_ep -- --ranks 2 --config v2-lite --tokens 128 --dtype bf16
//! ```
//!
//! Options (defaults first): `--ranks N` (4), `--config small|v2-lite`, `--tokens T` (the
//! preset's), `--dtype f32|f16|bf16`, `--seed S` (0), `--passes P` (3 timed passes after a
//! warm-up). On the mock the example sets the device count to at least N before the mock
//! starts, so `--ranks 8` needs nothing else (`ASCEND_MOCK_DEVICES` still works and is raised
//! to N when it is smaller).
//!
//! It prints the backend, the expert blocks and token split, the single-device and
//! expert-parallel pass times, the maximum relative error between the two outputs, the rows
//! each rank received (from each source) and the device time of each phase on each rank
//! (gating, dispatch all-to-all, expert compute, combine all-to-all, finalize). It exits with
//! status 1 when the error is over the tolerance (1e-5 in f32), 2 on a bad command line.

use std::process::ExitCode;
use std::time::Instant;

use ascend::moe::ep::{ExpertParallelLayer, PhaseTimes};
use ascend::moe::layer::to_element;
use ascend::moe::{
    MoeConfig, MoeElement, MoeLayer, MoeWeights, Precision, format_bytes, max_rel_err,
    random_tokens,
};
use ascend_rt::{Context, Tensor, bf16, f16};
use ndarray::Array2;

const USAGE: &str = "usage: moe_ep [--ranks N] [--config small|v2-lite] [--tokens T] \
                     [--dtype f32|f16|bf16] [--seed S] [--passes P]\n\
                     N ranks run on devices 0..N (default 4). On the mock device the example \
                     configures N devices itself, so 8 ranks are simply `--ranks 8` \
                     (cargo run --release --example moe_ep -- --ranks 8).";

struct Args {
    ranks: usize,
    config: String,
    tokens: Option<usize>,
    dtype: Precision,
    seed: u64,
    passes: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        ranks: 4,
        config: "small".into(),
        tokens: None,
        dtype: Precision::F32,
        seed: 0,
        passes: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a non-negative integer, not {value:?}"))
        };
        match flag.as_str() {
            "--ranks" => args.ranks = number("--ranks")? as usize,
            "--config" => args.config = value.clone(),
            "--tokens" => args.tokens = Some(number("--tokens")? as usize),
            "--dtype" => {
                args.dtype = Precision::parse(&value)
                    .ok_or_else(|| format!("unknown dtype {value:?} (f32, f16 or bf16)"))?
            }
            "--seed" => args.seed = number("--seed")?,
            "--passes" => args.passes = (number("--passes")? as usize).max(1),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if args.ranks == 0 {
        return Err("--ranks must be at least 1".into());
    }
    Ok(args)
}

fn config_of(args: &Args) -> Result<MoeConfig, String> {
    let config = match args.config.as_str() {
        "small" => MoeConfig::small(),
        "v2-lite" | "v2_lite" => MoeConfig::v2_lite(),
        other => return Err(format!("unknown config {other:?} (small or v2-lite)")),
    };
    let config = match args.tokens {
        Some(t) => config.with_tokens(t),
        None => config,
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Relative tolerance of the EP output against the single-device output (`tests/moe_ep.rs`
/// argues them): the same operators on the same rows, so at most one rounding of a stored
/// intermediate apart.
fn tolerance(p: Precision) -> f32 {
    match p {
        Precision::F32 => 1e-5,
        Precision::F16 => 2f32.powi(-11),
        Precision::Bf16 => 2f32.powi(-8),
    }
}

/// Gives the mock at least `ranks` devices. Must run before the first runtime call; the
/// mock's settings do not matter when the backend turns out to be CANN.
fn ensure_mock_devices(ranks: usize) -> Result<(), String> {
    let mut cfg = ascend_mock::Config::from_env().map_err(|e| e.to_string())?;
    cfg.devices = cfg.devices.max(ranks as u32);
    ascend_mock::configure(cfg).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let parsed = parse_args().and_then(|a| config_of(&a).map(|c| (a, c)));
    let (args, config) = match parsed {
        Ok(v) => v,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("moe_ep: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = ensure_mock_devices(args.ranks) {
        eprintln!("moe_ep: {msg}");
        return ExitCode::from(1);
    }
    let result = match args.dtype {
        Precision::F32 => run::<f32>(&args, config),
        Precision::F16 => run::<f16>(&args, config),
        Precision::Bf16 => run::<bf16>(&args, config),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("moe_ep: {e}");
            ExitCode::from(1)
        }
    }
}

fn run<T: MoeElement>(args: &Args, config: MoeConfig) -> Result<bool, Box<dyn std::error::Error>> {
    let p = T::PRECISION;
    let api = ascend_rt::api()?;
    let kind = ascend_rt::backend_kind().ok_or("no backend was chosen")?;
    println!("backend: {kind} ({})", api.origin());
    if ascend_rt::is_mock() {
        println!(
            "running on the mock device: the CPU stands in for {} NPU(s) and HCCL",
            ascend_rt::Device::count()?
        );
    }
    println!("config: {config}");
    println!("dtype: {p}; ranks: {}", args.ranks);

    let weights = MoeWeights::random(&config, args.seed)?;
    let weights = if p == Precision::F32 {
        weights
    } else {
        weights.rounded_to(p)
    };
    let x = p.round_array(&random_tokens(&config, args.seed.wrapping_add(1)));

    // The single-device layer on device 0, read back and freed before the EP layer uploads.
    let (want, single_ms) = {
        let ctx = Context::new(0)?;
        let stream = ctx.new_stream()?;
        let layer = MoeLayer::<T>::new(&stream, &weights)?;
        let xd = Tensor::from_array(&stream, to_element::<T, _>(&x).view())?;
        drop(layer.forward(&stream, &xd)?);
        stream.synchronize()?;
        let started = Instant::now();
        let mut out = None;
        for _ in 0..args.passes {
            out = Some(layer.forward(&stream, &xd)?);
        }
        stream.synchronize()?;
        let ms = started.elapsed().as_secs_f64() * 1e3 / args.passes as f64;
        let y = out.ok_or("no pass ran")?.y.to_array_d::<ndarray::Ix2>()?;
        (y.mapv(T::to_f32), ms)
    };

    let started = Instant::now();
    let ep = ExpertParallelLayer::<T>::with_ranks(&weights, args.ranks)?;
    let upload_s = started.elapsed().as_secs_f64();
    let split = ep.token_split(config.tokens);
    for r in 0..ep.ranks() {
        println!(
            "rank {r}: device {r}, experts {:?}, home tokens {:?}, weights {}",
            ep.experts_of(r),
            split.range(r),
            format_bytes(ep.weight_bytes()[r] as u64)
        );
    }
    println!("EP weights uploaded in {upload_s:.2} s");
    let xs = ep.scatter(&x)?;
    drop(ep.forward(&xs)?); // warm-up: pools and communicators

    let mut wall = 0.0;
    let mut sums = vec![PhaseTimes::default(); ep.ranks()];
    let mut last = None;
    for _ in 0..args.passes {
        let out = ep.forward(&xs)?;
        wall += out.wall_ms;
        for (sum, st) in sums.iter_mut().zip(&out.stats) {
            *sum = add(sum, &st.phases);
        }
        last = Some(out);
    }
    let out = last.ok_or("no pass ran")?;
    let passes = args.passes as f64;
    let got: Array2<f32> = out.gather()?;
    let err = max_rel_err(&got, &want)?;
    let tol = tolerance(p);
    let ok = err <= tol;

    println!(
        "single-device layer: {single_ms:.3} ms a pass; expert-parallel on {} ranks: {:.3} ms \
         a pass (host wall time, mean of {})",
        ep.ranks(),
        wall / passes,
        args.passes
    );
    println!(
        "max relative error EP vs single device: {err:.3e} (tolerance {tol:.1e}): {}",
        if ok { "PASS" } else { "FAIL" }
    );
    println!("rows (token-expert pairs) each rank received, by source rank:");
    for st in &out.stats {
        println!(
            "  rank {}: {:>6} rows from {:?}; per local expert {:?}{}",
            st.rank,
            st.rows_received(),
            st.rows_received_from,
            st.rows_per_local_expert,
            if st.regrouped {
                " (regrouped by expert on the device)"
            } else {
                ""
            }
        );
    }
    println!(
        "device time of each phase, ms (mean of {} passes; a rank waiting for its peers counts \
         the wait in the collective's phase):",
        args.passes
    );
    print!("  {:<7}", "rank");
    for (name, _) in PhaseTimes::default().named() {
        print!(" {name:>20}");
    }
    println!(" {:>10}", "total");
    let mut slowest = PhaseTimes::default();
    for (r, sum) in sums.iter().enumerate() {
        let mean = scale(sum, 1.0 / passes);
        slowest = slowest.max(&mean);
        print!("  {r:<7}");
        for (_, ms) in mean.named() {
            print!(" {ms:>20.3}");
        }
        println!(" {:>10.3}", mean.total_ms());
    }
    print!("  {:<7}", "slowest");
    for (_, ms) in slowest.named() {
        print!(" {ms:>20.3}");
    }
    println!(" {:>10.3}", slowest.total_ms());
    Ok(ok)
}

fn add(a: &PhaseTimes, b: &PhaseTimes) -> PhaseTimes {
    PhaseTimes {
        gating_ms: a.gating_ms + b.gating_ms,
        dispatch_ms: a.dispatch_ms + b.dispatch_ms,
        experts_ms: a.experts_ms + b.experts_ms,
        combine_ms: a.combine_ms + b.combine_ms,
        finalize_ms: a.finalize_ms + b.finalize_ms,
    }
}

fn scale(a: &PhaseTimes, f: f64) -> PhaseTimes {
    PhaseTimes {
        gating_ms: a.gating_ms * f,
        dispatch_ms: a.dispatch_ms * f,
        experts_ms: a.experts_ms * f,
        combine_ms: a.combine_ms * f,
        finalize_ms: a.finalize_ms * f,
    }
}
