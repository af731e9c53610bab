//! A DeepSeek-style Mixture-of-Experts layer on the device through CANN's fused MoE
//! operators (the mock device on a machine without an NPU), checked against the plain host
//! reference.
//!
//! ```sh
//! cargo run --release --example moe
//! cargo run --release --example moe -- --config v2-lite --dtype bf16 --tokens 128
//! cargo run --release --example moe -- --config v3 --v3-width 128
//! cargo run --release --example moe -- --config v2-lite --weights model.safetensors --layer 1
//! ```
//!
//! Options (defaults first): `--config small|v2-lite|v3`, `--dtype f32|f16|bf16`,
//! `--tokens N` (the preset's), `--weights FILE|DIR` with `--layer N` (1) to read a Hugging
//! Face DeepSeek checkpoint instead of random weights, `--seed S` (0), `--passes N` (timed
//! passes), `--v3-width W` (the expert width the `v3` preset scales down to, 128).
//!
//! It prints the backend, the configuration (and what the V3 preset scaled down), the
//! weight bytes, the mean time of a forward pass after a warm-up, the error against the
//! reference, the tokens per expert and the pool statistics. It exits with status 1 when
//! the error is over the tolerance of the element type, 2 on a bad command line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use ascend::moe::layer::{check_pass, to_element};
use ascend::moe::{
    MoeConfig, MoeElement, MoeLayer, MoeWeights, Precision, format_bytes, histogram,
    load_safetensors, moe_reference, random_tokens,
};
use ascend_rt::{Context, Stream, Tensor, bf16, f16};

/// The command line.
struct Args {
    config: String,
    dtype: Precision,
    tokens: Option<usize>,
    weights: Option<String>,
    layer: usize,
    seed: u64,
    passes: Option<usize>,
    v3_width: usize,
}

const USAGE: &str = "usage: moe [--config small|v2-lite|v3] [--dtype f32|f16|bf16] [--tokens N] \
                     [--weights FILE|DIR] [--layer N] [--seed S] [--passes N] [--v3-width W]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: "small".into(),
        dtype: Precision::F32,
        tokens: None,
        weights: None,
        layer: 1,
        seed: 0,
        passes: None,
        v3_width: 128,
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
            "--config" => args.config = value.clone(),
            "--dtype" => {
                args.dtype = Precision::parse(&value)
                    .ok_or_else(|| format!("unknown dtype {value:?} (f32, f16 or bf16)"))?
            }
            "--tokens" => args.tokens = Some(number("--tokens")? as usize),
            "--weights" => args.weights = Some(value.clone()),
            "--layer" => args.layer = number("--layer")? as usize,
            "--seed" => args.seed = number("--seed")?,
            "--passes" => args.passes = Some((number("--passes")? as usize).max(1)),
            "--v3-width" => args.v3_width = number("--v3-width")? as usize,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(args)
}

fn config_of(args: &Args) -> Result<MoeConfig, String> {
    let config = match args.config.as_str() {
        "small" => MoeConfig::small(),
        "v2-lite" | "v2_lite" => MoeConfig::v2_lite(),
        "v3" => MoeConfig::v3_routing(args.v3_width),
        other => return Err(format!("unknown config {other:?} (small, v2-lite or v3)")),
    };
    let config = match args.tokens {
        Some(t) => config.with_tokens(t),
        None => config,
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Relative tolerance of `y` against the reference (see `tests/moe.rs` for the argument):
/// f32 differs only in summation order; f16 and bf16 round seven stored intermediates.
fn tolerance(p: Precision) -> f32 {
    match p {
        Precision::F32 => 1e-4,
        Precision::F16 => 3.4e-3,
        Precision::Bf16 => 2.7e-2,
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("moe: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match config_of(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("moe: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.dtype {
        Precision::F32 => run::<f32>(&args, config),
        Precision::F16 => run::<f16>(&args, config),
        Precision::Bf16 => run::<bf16>(&args, config),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("moe: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the example in element type `T`; `Ok(false)` when the check failed.
fn run<T: MoeElement>(args: &Args, config: MoeConfig) -> Result<bool, Box<dyn std::error::Error>> {
    let p = T::PRECISION;
    let api = ascend_rt::api()?;
    let kind = ascend_rt::backend_kind().ok_or("no backend was chosen")?;
    println!("backend: {kind} ({})", api.origin());
    if ascend_rt::is_mock() {
        println!("running on the mock device: the CPU stands in for the NPU");
    }
    println!("config: {config}");
    println!("dtype: {p}");
    if let Some(note) = config.scaling_note(p) {
        println!("scaled for this machine: {note}");
    }

    let started = Instant::now();
    let weights = match &args.weights {
        Some(path) => {
            let w = load_safetensors(path, args.layer, &config)?;
            println!("weights: layer {} of {path}", args.layer);
            w
        }
        None => {
            println!("weights: random (seed {})", args.seed);
            MoeWeights::random(&config, args.seed)?
        }
    };
    // The device holds `T`; the reference runs on the same rounded values.
    let weights = if p == Precision::F32 {
        weights
    } else {
        weights.rounded_to(p)
    };
    let x = p.round_array(&random_tokens(&config, args.seed.wrapping_add(1)));
    let host_s = started.elapsed().as_secs_f64();

    let ctx = Context::new(0)?;
    let stream = ctx.new_stream()?;
    let started = Instant::now();
    let layer = MoeLayer::<T>::new(&stream, &weights)?;
    stream.synchronize()?;
    println!(
        "weight bytes: {} on the device ({} parameters); host set-up {host_s:.2} s, upload {:.2} s",
        format_bytes(layer.weight_bytes() as u64),
        config.parameter_count(),
        started.elapsed().as_secs_f64()
    );
    let xd = Tensor::from_array(&stream, to_element::<T, _>(&x).view())?;

    let out = timed_passes(args, &config, &stream, &layer, &xd)?;

    let started = Instant::now();
    let reference = moe_reference(&weights, &x)?;
    let reference_s = started.elapsed().as_secs_f64();

    // The device's gating must be the host rule on the device's own logits; tokens that
    // broke a near-tie differently from the f32-logit reference are checked under the
    // device's routing (`check_pass`).
    let check = check_pass(&weights, &x, &out, &reference)?;
    let tol = tolerance(p);
    let ok = check.passes(tol);
    println!(
        "check against the host reference ({reference_s:.2} s): max relative error {:.3e} \
         (max abs {:.3e}, tolerance {tol:.1e}); {} of {} token(s) broke a near-tie \
         differently from the f32-logit reference and were checked under the device's \
         routing; device gating {} the host rule on its own logits; counts {}: {}",
        check.max_rel_err,
        check.max_abs_err,
        check.rerouted,
        config.tokens,
        if check.gating_matches {
            "matches"
        } else {
            "DIFFERS FROM"
        },
        if check.counts_match {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        if ok { "PASS" } else { "FAIL" }
    );
    print!("{}", histogram(&check.tokens_per_expert, 40));
    let stats = ctx.pool().stats();
    println!(
        "pool: {} device allocations, {} cache hits, {} in use, {} reserved, peak {} in use, \
         {} segments, {} free blocks",
        stats.device_allocs,
        stats.cache_hits,
        format_bytes(stats.in_use as u64),
        format_bytes(stats.reserved as u64),
        format_bytes(stats.peak_in_use as u64),
        stats.segments,
        stats.free_blocks
    );
    Ok(ok)
}

/// A warm-up pass, then the mean of several timed passes (wall clock between two stream
/// synchronizations); returns the last pass's output.
fn timed_passes<T: MoeElement>(
    args: &Args,
    config: &MoeConfig,
    stream: &Arc<Stream>,
    layer: &MoeLayer<T>,
    x: &Tensor<T>,
) -> Result<ascend::moe::MoeOutput<T>, ascend_rt::Error> {
    let started = Instant::now();
    drop(layer.forward(stream, x)?);
    stream.synchronize()?;
    let warm_up = started.elapsed().as_secs_f64();
    // About a second of timed passes, at least 3 and at most 50.
    let passes = args
        .passes
        .unwrap_or_else(|| ((0.5 / warm_up.max(1e-6)) as usize).clamp(3, 50));
    let allocs = stream.context().pool().stats().device_allocs;
    let started = Instant::now();
    for _ in 1..passes {
        drop(layer.forward(stream, x)?);
    }
    let out = layer.forward(stream, x)?;
    stream.synchronize()?;
    let mean = started.elapsed().as_secs_f64() / passes as f64;
    let new_allocs = stream.context().pool().stats().device_allocs - allocs;
    println!(
        "forward pass: {:.3} ms mean of {passes} (warm-up {:.3} ms), {:.0} tokens/s; \
         {new_allocs} device allocation(s) after the warm-up",
        mean * 1e3,
        warm_up * 1e3,
        config.tokens as f64 / mean
    );
    Ok(out)
}
