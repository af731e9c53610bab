//! The MoE layer with its routed experts sharded over N devices (expert parallelism):
//! [`ExpertParallelLayer`] runs the same pipeline as [`MoeLayer`](super::MoeLayer), but each
//! rank (one device, one stream, one [`Communicator`]) holds only a contiguous block of the
//! routed experts, and token rows travel to the rank that owns their expert and back with
//! all-to-all collectives.
//!
//! # Sharding
//!
//! - **Experts**: rank `r` owns the contiguous block [`ExpertParallelLayer::experts_of`]`(r)`
//!   of the E routed experts ([`Blocks`]: sizes E/N or E/N + 1, the larger blocks first, so
//!   E need not be a multiple of N). `1 <= N <= E` is required, so every rank owns at least
//!   one expert. A rank's grouped-matmul weights hold only its block: `w13 [E_r, H, 2I]`,
//!   `w2 [E_r, I, H]`.
//! - **Replicated on every rank**: the router (`router_t [H, E]`), the selection bias and the
//!   shared expert. The shared expert runs on each token's home rank.
//! - **Tokens**: the caller gives each rank its "home" tokens, a contiguous block of rows
//!   ([`ExpertParallelLayer::scatter`] splits `x [T, H]` with [`Blocks`]: T need not be a
//!   multiple of N, and a rank may have no home tokens when T < N). A rank's output rows are
//!   the layer's output for its home tokens, in the same order.
//!
//! # One pass ([`ExpertParallelLayer::forward`])
//!
//! Each rank runs its pass on its own host thread, as it would in its own process on a
//! cluster: it queues its work on its stream, and the collectives meet on the streams. A
//! rank that fails part-way leaves its peers' next collective waiting for it until HCCL's
//! timeout fails that collective too; [`ExpertParallelLayer::forward`] returns the earliest
//! failure, the cause.
//!
//! 1. **Gating** (each rank, its home tokens `x_r [T_r, H]`): router matmul and gating
//!    (the very code of the single-device layer), then `moe_init_routing` over all E
//!    experts: the `T_r·K` expanded rows sorted by expert, and the tokens per expert `[E]`.
//!    Because rows are sorted by expert and a rank owns a contiguous block of experts, the
//!    rows bound for rank `d` are one contiguous run, and they come in rank order.
//! 2. **Dispatch**: an all-gather of every rank's tokens per expert (`[N, E]` i64 on every
//!    rank), read to the host: the only device-to-host read of a pass, `N·E` integers,
//!    because HCCL takes all-to-all counts as host arrays. From it each rank knows the rows it sends
//!    to each peer (the sums over the peer's expert block) and receives from each (the sums
//!    of the peer's counts over its own block). Then `all_to_all_v` of the expanded rows:
//!    rank `d` receives `R_d` rows, ordered by source rank and, within a source, by expert.
//! 3. **Experts** (each rank with rows): the grouped matmul needs the rows of each local
//!    expert contiguous, but rows of one expert arrive from several sources. When the
//!    received local expert ids are already non-decreasing (one source with rows, or one
//!    local expert) the rows are used as they are, with the counts per local expert as the
//!    group list. Otherwise the rows are regrouped on the device: `moe_init_routing` of the
//!    received rows with their local expert ids (`[R_d, 1]` i32, built on the host from the
//!    counts of step 2, never from activations) sorts them by expert and counts them; after
//!    the grouped matmuls (`w13`, SwiGLU, `w2`) `moe_finalize_routing` with K = 1 and no
//!    scales puts each result back in the position its row arrived in.
//! 4. **Combine**: `all_to_all_v` of the results back to their home ranks with the counts
//!    of step 2 swapped. Each peer returns the rows in the order they were sent, so the home
//!    rank gets them in its expanded-row order of step 1.
//! 5. **Finalize** (each rank with home tokens): the shared expert on `x_r`, then
//!    `moe_finalize_routing` with step 1's expanded-row permutation, routing weights and the
//!    shared output, exactly as the single-device layer does.
//!
//! Every row goes through the same operators as in the single-device layer (matmuls are
//! row-independent; the permutations and the all-to-all copies are exact), so in f32 the
//! output equals the single-device layer's up to the summation order inside the matmuls.
//!
//! Timing: each rank records an event on its stream at every phase boundary; the phase
//! times of a rank ([`PhaseTimes`]) are the device time between them, so a rank waiting for
//! its peers in a collective counts that wait in the collective's phase.
//!
//! Invariants:
//! - rank `r` runs on `devices[r]` with its own context, stream and communicator (rank id
//!   `r`); its tensors all live on that device;
//! - the rows a rank sends to `d` are `Σ_{e ∈ experts_of(d)} counts[e]`, and the sums over
//!   all peers are `T_r·K` (checked on the host before any row moves);
//! - activations never leave the devices; intermediates come from each device's pool.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ascend_rt::ops::{self, GroupList};
use ascend_rt::{
    Communicator, Context, DeviceBuffer, DeviceRepr, Error, Event, Result, Stream, Tensor,
};
use ndarray::{Array2, ArrayRef2, Axis, s};

use super::config::{Gating, MoeConfig};
use super::layer::{MoeElement, check_supported, route, shared_expert, to_element, upload};
use super::weights::MoeWeights;

const API: &str = "ExpertParallelLayer";

fn invalid(api: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        api,
        reason: reason.into(),
    }
}

/// A split of `total` items into contiguous blocks whose sizes differ by at most one, the
/// larger blocks first: block `p` of `n` has `total / n` items, plus one when
/// `p < total % n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// `parts + 1` boundaries, from 0 to `total`.
    starts: Vec<usize>,
}

impl Blocks {
    /// `total` items in `parts` blocks; `None` when `parts` is 0.
    pub fn new(total: usize, parts: usize) -> Option<Blocks> {
        if parts == 0 {
            return None;
        }
        let (base, extra) = (total / parts, total % parts);
        let mut starts = Vec::with_capacity(parts + 1);
        let mut at = 0;
        starts.push(at);
        for p in 0..parts {
            at += base + usize::from(p < extra);
            starts.push(at);
        }
        Some(Blocks { starts })
    }

    /// The number of blocks.
    pub fn parts(&self) -> usize {
        self.starts.len() - 1
    }

    /// The number of items.
    pub fn total(&self) -> usize {
        self.starts[self.parts()]
    }

    /// The items of block `part` (empty when `part` is out of range).
    pub fn range(&self, part: usize) -> Range<usize> {
        match (self.starts.get(part), self.starts.get(part + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// The size of block `part`.
    pub fn size(&self, part: usize) -> usize {
        self.range(part).len()
    }

    /// The block holding `item`; `None` when `item >= total`.
    pub fn owner(&self, item: usize) -> Option<usize> {
        if item >= self.total() {
            return None;
        }
        // The last boundary <= item: blocks may be empty, so take the last such start.
        Some(self.starts.partition_point(|&s| s <= item) - 1)
    }
}

/// Device time of each phase of one pass on one rank, in milliseconds (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Router matmul, gating and the permutation by expert (`moe_init_routing`).
    pub gating_ms: f64,
    /// All-gather of the counts, the host read of them, and the all-to-all of the rows.
    pub dispatch_ms: f64,
    /// Regrouping (when needed), the grouped matmuls and SwiGLU on the received rows.
    pub experts_ms: f64,
    /// The all-to-all of the results back to their home ranks.
    pub combine_ms: f64,
    /// The shared expert and `moe_finalize_routing` on the home rank.
    pub finalize_ms: f64,
}

impl PhaseTimes {
    /// The sum of the phases.
    pub fn total_ms(&self) -> f64 {
        self.gating_ms + self.dispatch_ms + self.experts_ms + self.combine_ms + self.finalize_ms
    }

    /// The phases with their names, in pass order.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("gating", self.gating_ms),
            ("dispatch all-to-all", self.dispatch_ms),
            ("expert compute", self.experts_ms),
            ("combine all-to-all", self.combine_ms),
            ("finalize", self.finalize_ms),
        ]
    }

    /// The larger of each phase in `self` and `other` (the slowest rank bounds a phase).
    pub fn max(&self, other: &PhaseTimes) -> PhaseTimes {
        PhaseTimes {
            gating_ms: self.gating_ms.max(other.gating_ms),
            dispatch_ms: self.dispatch_ms.max(other.dispatch_ms),
            experts_ms: self.experts_ms.max(other.experts_ms),
            combine_ms: self.combine_ms.max(other.combine_ms),
            finalize_ms: self.finalize_ms.max(other.finalize_ms),
        }
    }
}

/// What one rank did in a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct RankStats {
    /// The rank.
    pub rank: usize,
    /// Its device.
    pub device: i32,
    /// The routed experts it owns.
    pub experts: Range<usize>,
    /// Its home tokens.
    pub home_tokens: usize,
    /// Expanded rows (token-expert pairs) it sent to each rank, itself included.
    pub rows_sent: Vec<usize>,
    /// Expanded rows it received from each rank, itself included.
    pub rows_received_from: Vec<usize>,
    /// Rows received per local expert (index 0 is `experts.start`).
    pub rows_per_local_expert: Vec<usize>,
    /// Whether the received rows had to be regrouped by expert on the device.
    pub regrouped: bool,
    /// Device time of each phase.
    pub phases: PhaseTimes,
}

impl RankStats {
    /// Expanded rows received in total.
    pub fn rows_received(&self) -> usize {
        self.rows_received_from.iter().sum()
    }
}

/// The result of [`ExpertParallelLayer::forward`].
#[derive(Debug)]
pub struct EpOutput<T: DeviceRepr> {
    /// Each rank's output for its home tokens, `[T_r, H]` on its device (`T_r` may be 0).
    pub y: Vec<Tensor<T>>,
    /// What each rank did.
    pub stats: Vec<RankStats>,
    /// Host wall time of the pass, from the first queued operator to the end of the last
    /// rank's work, in milliseconds.
    pub wall_ms: f64,
}

impl<T: MoeElement> EpOutput<T> {
    /// The whole output `[T, H]` on the host, in f32: the ranks' rows in rank order.
    pub fn gather(&self) -> Result<Array2<f32>> {
        let mut parts = Vec::with_capacity(self.y.len());
        let mut width = 0;
        for y in &self.y {
            let (rows, h) = (y.shape()[0], y.shape()[1]);
            width = h;
            let values: Vec<f32> = y.to_vec()?.into_iter().map(T::to_f32).collect();
            parts.push(
                Array2::from_shape_vec((rows, h), values)
                    .map_err(|e| invalid("EpOutput::gather", e.to_string()))?,
            );
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        if views.is_empty() {
            return Ok(Array2::zeros((0, width)));
        }
        ndarray::concatenate(Axis(0), &views)
            .map_err(|e| invalid("EpOutput::gather", e.to_string()))
    }

    /// The slowest rank's time of each phase.
    pub fn max_phases(&self) -> PhaseTimes {
        self.stats
            .iter()
            .fold(PhaseTimes::default(), |m, s| m.max(&s.phases))
    }
}

/// One rank: its device's stream and communicator and its share of the weights.
#[derive(Debug)]
struct Rank<T: MoeElement> {
    device: i32,
    stream: Arc<Stream>,
    /// Locked by the rank's thread for a pass (a communicator is used by one thread at a
    /// time).
    comm: Mutex<Communicator>,
    experts: Range<usize>,
    /// `[H, E]`, replicated.
    router_t: Tensor<T>,
    /// `[E]`, sigmoid gating only; replicated.
    bias: Option<Tensor<T>>,
    /// `[1]`, softmax gating with a scaling factor other than 1.
    softmax_scale: Option<Tensor<T>>,
    /// `[E_r, H, 2I]`: this rank's experts only.
    w13: Tensor<T>,
    /// `[E_r, I, H]`: this rank's experts only.
    w2: Tensor<T>,
    /// `[H, 2Is]` and `[Is, H]`, replicated, when the layer has shared experts.
    shared: Option<(Tensor<T>, Tensor<T>)>,
}

/// One rank's pass: its output rows and what it did.
type RankResult<T> = Result<(Tensor<T>, RankStats)>;

/// The MoE layer with its routed experts sharded over N devices (see the module docs).
#[derive(Debug)]
pub struct ExpertParallelLayer<T: MoeElement> {
    config: MoeConfig,
    experts: Blocks,
    ranks: Vec<Rank<T>>,
    /// Held by [`ExpertParallelLayer::forward`] for a whole pass: the collectives of two
    /// passes must not interleave (rank 0 in one pass while rank 1 is in the other would
    /// leave each waiting for the other).
    pass: Mutex<()>,
}

impl<T: MoeElement> ExpertParallelLayer<T> {
    /// The layer over `ranks` devices `0..ranks` (see [`Self::new`]).
    pub fn with_ranks(weights: &MoeWeights, ranks: usize) -> Result<ExpertParallelLayer<T>> {
        let devices: Vec<i32> = (0..ranks)
            .map(|r| i32::try_from(r).map_err(|_| invalid(API, format!("{ranks} ranks"))))
            .collect::<Result<_>>()?;
        Self::new(weights, &devices)
    }

    /// Uploads `weights` (rounded to `T`) sharded over `devices`, rank `r` on `devices[r]`:
    /// each rank gets its block of routed experts and a copy of the router and the shared
    /// expert, and the ranks form one HCCL communicator. Needs `1 <= N <= E` distinct
    /// devices that exist.
    pub fn new(weights: &MoeWeights, devices: &[i32]) -> Result<ExpertParallelLayer<T>> {
        let config = *weights.config();
        check_supported(API, &config)?;
        let n = devices.len();
        let e = config.n_routed_experts;
        if n == 0 || n > e {
            return Err(invalid(
                API,
                format!(
                    "{n} ranks for {e} routed experts; 1 <= ranks <= experts is required so \
                     that every rank owns an expert"
                ),
            ));
        }
        let available = ascend_rt::Device::count()?;
        for (r, &d) in devices.iter().enumerate() {
            if d < 0 || d as u32 >= available {
                return Err(invalid(
                    API,
                    format!(
                        "rank {r} is on device {d}, but the backend has {available} device(s) \
                         (0..{available}); on the mock, raise ASCEND_MOCK_DEVICES or \
                         configure more devices before first use"
                    ),
                ));
            }
            if devices[..r].contains(&d) {
                return Err(invalid(
                    API,
                    format!("device {d} is given twice; each rank needs its own device"),
                ));
            }
        }
        let experts = Blocks::new(e, n).expect("n >= 1");
        let contexts: Vec<Arc<Context>> = devices
            .iter()
            .map(|&d| Context::new(d))
            .collect::<Result<_>>()?;
        let streams: Vec<Arc<Stream>> = contexts
            .iter()
            .map(|c| c.new_stream())
            .collect::<Result<_>>()?;
        let comms = Communicator::init_all_in(&contexts)?;

        let router_t = weights.router_t();
        let shared_w13 = weights.shared_w13();
        let shared_w2 = weights.shared_w2();
        let mut ranks = Vec::with_capacity(n);
        for (r, ((stream, comm), &device)) in
            streams.into_iter().zip(comms).zip(devices).enumerate()
        {
            let ctx = stream.context().clone();
            let block = experts.range(r);
            let softmax_scale = match config.gating {
                Gating::Softmax { scaling, .. } if scaling != 1.0 => {
                    Some(Tensor::from_slice(&stream, &[T::from_f32(scaling)], &[1])?)
                }
                _ => None,
            };
            let shared = match (&shared_w13, &shared_w2) {
                (Some(a), Some(b)) => Some((upload(&ctx, a.clone())?, upload(&ctx, b.clone())?)),
                _ => None,
            };
            ranks.push(Rank {
                device,
                comm: Mutex::new(comm),
                experts: block.clone(),
                router_t: upload(&ctx, router_t.clone())?,
                bias: match weights.e_score_correction_bias() {
                    Some(b) => Some(upload(&ctx, b.clone())?),
                    None => None,
                },
                softmax_scale,
                w13: upload(&ctx, weights.w13_of(block.clone()))?,
                w2: upload(&ctx, weights.w2_of(block))?,
                shared,
                stream,
            });
        }
        Ok(ExpertParallelLayer {
            config,
            experts,
            ranks,
            pass: Mutex::new(()),
        })
    }

    /// The configuration the layer was built from.
    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    /// The number of ranks N.
    pub fn ranks(&self) -> usize {
        self.ranks.len()
    }

    /// The routed experts rank `rank` owns (empty for a rank that does not exist).
    pub fn experts_of(&self, rank: usize) -> Range<usize> {
        self.experts.range(rank)
    }

    /// The rank owning routed expert `expert`.
    pub fn owner_of(&self, expert: usize) -> Option<usize> {
        self.experts.owner(expert)
    }

    /// The stream rank `rank` runs on.
    pub fn stream(&self, rank: usize) -> Option<&Arc<Stream>> {
        self.ranks.get(rank).map(|r| &r.stream)
    }

    /// Bytes of device memory each rank's weights occupy.
    pub fn weight_bytes(&self) -> Vec<usize> {
        let n = |t: &Tensor<T>| t.layout().numel();
        self.ranks
            .iter()
            .map(|r| {
                let mut elements = n(&r.router_t) + n(&r.w13) + n(&r.w2);
                elements += r.bias.as_ref().map_or(0, n);
                if let Some((a, b)) = &r.shared {
                    elements += n(a) + n(b);
                }
                elements * T::DTYPE.size()
            })
            .collect()
    }

    /// How `tokens` rows are split into home tokens: rank `r` gets `range(r)`.
    pub fn token_split(&self, tokens: usize) -> Blocks {
        Blocks::new(tokens, self.ranks.len()).expect("a layer has at least one rank")
    }

    /// Uploads each rank's home tokens of `x [T, H]` (rounded to `T`) to its device, split
    /// by [`Self::token_split`]; ranks without home tokens get a `[0, H]` tensor.
    pub fn scatter(&self, x: &ArrayRef2<f32>) -> Result<Vec<Tensor<T>>> {
        let h = self.config.hidden;
        if x.ncols() != h || x.nrows() == 0 {
            return Err(invalid(
                "ExpertParallelLayer::scatter",
                format!(
                    "x has shape {:?}; [tokens >= 1, {h}] is required",
                    x.shape()
                ),
            ));
        }
        let split = self.token_split(x.nrows());
        self.ranks
            .iter()
            .enumerate()
            .map(|(r, rank)| {
                let rows = split.range(r);
                if rows.is_empty() {
                    return empty_rows(&rank.stream, h);
                }
                let part = to_element::<T, _>(&x.slice(s![rows, ..]));
                Tensor::from_array(&rank.stream, part.view())
            })
            .collect()
    }

    /// Runs one pass on each rank's home tokens `x[r] [T_r, H]` (on rank `r`'s device;
    /// `T_r` may be 0, but not on every rank), as described in the module docs. Waits for
    /// the pass to finish (the phase times need it). Passes of one layer run one at a time:
    /// a call from another thread waits for the running pass.
    pub fn forward(&self, x: &[Tensor<T>]) -> Result<EpOutput<T>> {
        const FWD: &str = "ExpertParallelLayer::forward";
        let n = self.ranks.len();
        let h = self.config.hidden;
        if x.len() != n {
            return Err(invalid(
                FWD,
                format!("{} input tensors for {n} ranks", x.len()),
            ));
        }
        for (r, (xr, rank)) in x.iter().zip(&self.ranks).enumerate() {
            let shape = xr.shape();
            if shape.len() != 2 || shape[1] != h {
                return Err(invalid(
                    FWD,
                    format!("x[{r}] has shape {shape:?}; [tokens, {h}] is required"),
                ));
            }
            if xr.buffer().device().ordinal() != rank.device {
                return Err(invalid(
                    FWD,
                    format!(
                        "x[{r}] is on device {} but rank {r} runs on device {}",
                        xr.buffer().device().ordinal(),
                        rank.device
                    ),
                ));
            }
        }
        if x.iter().all(|xr| xr.shape()[0] == 0) {
            return Err(invalid(FWD, "no rank has tokens"));
        }
        let _one_pass_at_a_time = self.pass.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        // Each rank's result with the moment its thread finished.
        let results: Vec<(RankResult<T>, Instant)> = std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .ranks
                .iter()
                .zip(x)
                .enumerate()
                .map(|(r, (rank, xr))| {
                    scope.spawn(move || (self.rank_pass(r, rank, xr), Instant::now()))
                })
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join().unwrap_or_else(|_| {
                        (
                            Err(invalid(FWD, "a rank's thread panicked")),
                            Instant::now(),
                        )
                    })
                })
                .collect()
        });
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        // The earliest failure is the cause; peers that failed later were most likely left
        // waiting for the failed rank in a collective until it timed out.
        let first_failure = results
            .iter()
            .filter(|(r, _)| r.is_err())
            .min_by_key(|(_, at)| *at)
            .map(|(_, at)| *at);
        let mut y = Vec::with_capacity(n);
        let mut stats = Vec::with_capacity(n);
        for (result, at) in results {
            match result {
                Ok((yr, st)) => {
                    y.push(yr);
                    stats.push(st);
                }
                Err(e) if Some(at) == first_failure => return Err(e),
                Err(_) => {}
            }
        }
        Ok(EpOutput { y, stats, wall_ms })
    }

    /// One rank's part of a pass, on its own host thread: the five phases of the module
    /// docs, an event on the rank's stream at each boundary. Waits for the rank's stream.
    fn rank_pass(&self, r: usize, rank: &Rank<T>, x: &Tensor<T>) -> RankResult<T> {
        let (n, c) = (self.ranks.len(), &self.config);
        let (e, h, k) = (c.n_routed_experts, c.hidden, c.top_k);
        let s = &rank.stream;
        // Only this thread uses the rank's communicator during the pass.
        let comm = rank.comm.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events = Vec::with_capacity(6);
        events.push(mark(s)?);

        // 1. Gating and the permutation by expert, on the home tokens.
        let tokens = x.shape()[0];
        let (routed, counts) = if tokens == 0 {
            (None, Tensor::<i64>::zeros(s, &[e])?)
        } else {
            let (logits, routing_weights, expert_idx) = route(
                s,
                c,
                x,
                &rank.router_t,
                rank.bias.as_ref(),
                rank.softmax_scale.as_ref(),
            )?;
            drop(logits);
            let routing = ops::moe_init_routing(s, x, &expert_idx, e)?;
            let counts = routing.tokens_per_expert;
            let home = (
                routing_weights,
                expert_idx,
                routing.expanded_x,
                routing.expanded_row_idx,
            );
            (Some(home), counts)
        };
        events.push(mark(s)?);

        // 2. Dispatch: every rank's counts to every rank, then the rows to their experts.
        // SAFETY: the all-gather queued next writes all N·E elements before anything reads
        // them (the tracker orders the host read below after it).
        let mut all = unsafe { DeviceBuffer::<i64>::alloc_pooled(s, n * e) }?;
        comm.all_gather(counts.buffer(), &mut all, s)?;
        // A collective that failed (a peer that never joined it times out) fails this read:
        // the host wait before it reports failed work queued before it.
        let matrix = counts_matrix(&all.to_vec()?, n, e)?;
        let plan = plan_rank(&matrix, &self.experts, r, tokens * k)?;
        let rows: usize = plan.rows_received_from.iter().sum();
        // SAFETY: the all-to-all queued next writes every one of the `rows·H` elements (the
        // receive counts sum to them) before anything reads them.
        let mut received = unsafe { DeviceBuffer::<T>::alloc_pooled(s, rows * h) }?;
        let nothing = empty_buffer::<T>(s)?;
        let send = match &routed {
            Some((_, _, expanded_x, _)) => expanded_x.buffer(),
            None => &nothing,
        };
        comm.all_to_all_v(
            send,
            &scaled(&plan.rows_sent, h),
            &mut received,
            &scaled(&plan.rows_received_from, h),
            s,
        )?;
        events.push(mark(s)?);

        // 3. The local experts on the received rows, regrouped by expert when needed.
        let ids = local_expert_ids(&plan.received_counts);
        let regrouped = !ids.is_sorted();
        let results = if rows == 0 {
            None
        } else {
            let received = Tensor::from_buffer(received, &[rows, h])?;
            Some(if regrouped {
                let ids = Tensor::from_slice(s, &ids, &[rows, 1])?;
                let local = ops::moe_init_routing(s, &received, &ids, rank.experts.len())?;
                drop(received);
                let out = experts_mlp(rank, &local.expanded_x, &local.tokens_per_expert)?;
                // K = 1 and no scales: row t of the result is `out[expanded_row_idx[t]]`, the
                // result of the t-th received row.
                ops::moe_finalize_routing(s, &out, &local.expanded_row_idx, None, None, None, None)?
            } else {
                let per_expert: Vec<i64> = plan
                    .rows_per_local_expert
                    .iter()
                    .map(|&c| c as i64)
                    .collect();
                let per_expert = Tensor::from_slice(s, &per_expert, &[per_expert.len()])?;
                experts_mlp(rank, &received, &per_expert)?
            })
        };
        events.push(mark(s)?);

        // 4. Combine: the results back to their home ranks, in the order they were sent.
        // SAFETY: the all-to-all queued next writes every one of the `T_r·K·H` elements (the
        // receive counts, the rows this rank sent, sum to `T_r·K`) before anything reads them.
        let mut returned = unsafe { DeviceBuffer::<T>::alloc_pooled(s, tokens * k * h) }?;
        let send = results.as_ref().map_or(&nothing, Tensor::buffer);
        comm.all_to_all_v(
            send,
            &scaled(&plan.rows_received_from, h),
            &mut returned,
            &scaled(&plan.rows_sent, h),
            s,
        )?;
        drop(results);
        events.push(mark(s)?);

        // 5. Finalize on the home rank: un-permute, weight, add the shared expert.
        let y = match &routed {
            None => empty_rows(s, h)?,
            Some((routing_weights, expert_idx, _, expanded_row_idx)) => {
                let returned = Tensor::from_buffer(returned, &[tokens * k, h])?;
                let shared = match &rank.shared {
                    Some((w13, w2)) => Some(shared_expert(s, x, w13, w2)?),
                    None => None,
                };
                let skip = shared.as_ref().map(Tensor::view);
                ops::moe_finalize_routing(
                    s,
                    &returned,
                    expanded_row_idx,
                    Some(&routing_weights.view()),
                    Some(&expert_idx.view()),
                    skip.as_ref(),
                    None,
                )?
            }
        };
        events.push(mark(s)?);
        s.synchronize()?;

        let ms = |i: usize| -> Result<f64> { Ok(f64::from(events[i].elapsed_ms(&events[i + 1])?)) };
        let stats = RankStats {
            rank: r,
            device: rank.device,
            experts: rank.experts.clone(),
            home_tokens: tokens,
            rows_sent: plan.rows_sent,
            rows_received_from: plan.rows_received_from,
            rows_per_local_expert: plan.rows_per_local_expert,
            regrouped: rows > 0 && regrouped,
            phases: PhaseTimes {
                gating_ms: ms(0)?,
                dispatch_ms: ms(1)?,
                experts_ms: ms(2)?,
                combine_ms: ms(3)?,
                finalize_ms: ms(4)?,
            },
        };
        Ok((y, stats))
    }
}

/// The routed-expert MLP of `rank` on `x [M, H]` whose rows are grouped by local expert with
/// `counts [E_r]` i64: `swiglu(x @ w13[e]) @ w2[e]` per group.
fn experts_mlp<T: MoeElement>(
    rank: &Rank<T>,
    x: &Tensor<T>,
    counts: &Tensor<i64>,
) -> Result<Tensor<T>> {
    let s = &rank.stream;
    let up = ops::grouped_matmul(s, x, &rank.w13, counts, GroupList::Counts)?;
    let act = ops::swiglu(s, &up, -1)?;
    drop(up);
    ops::grouped_matmul(s, &act, &rank.w2, counts, GroupList::Counts)
}

/// An event recorded on `stream` now.
fn mark(stream: &Arc<Stream>) -> Result<Event> {
    let ev = Event::new(stream.context())?;
    ev.record(stream)?;
    Ok(ev)
}

/// A `[0, h]` tensor on `stream`'s device.
fn empty_rows<T: MoeElement>(stream: &Arc<Stream>, h: usize) -> Result<Tensor<T>> {
    Tensor::from_buffer(empty_buffer(stream)?, &[0, h])
}

/// A buffer of no elements on `stream`'s device (no memory behind it).
fn empty_buffer<T: DeviceRepr>(stream: &Arc<Stream>) -> Result<DeviceBuffer<T>> {
    // SAFETY: a buffer of no elements has nothing to read before it is written.
    unsafe { DeviceBuffer::alloc_pooled(stream, 0) }
}

/// Row counts scaled to element counts (`H` elements a row), as HCCL takes them.
fn scaled(rows: &[usize], h: usize) -> Vec<usize> {
    rows.iter().map(|&r| r * h).collect()
}

/// The all-gathered tokens per expert, `all [N·E]`, as `[N][E]` counts; refuses negative
/// values (a device fault, not a routing).
fn counts_matrix(all: &[i64], n: usize, e: usize) -> Result<Vec<Vec<usize>>> {
    if all.len() != n * e {
        return Err(invalid(
            API,
            format!("{} gathered counts for {n} ranks of {e} experts", all.len()),
        ));
    }
    all.chunks(e)
        .enumerate()
        .map(|(src, row)| {
            row.iter()
                .enumerate()
                .map(|(ex, &c)| {
                    usize::try_from(c).map_err(|_| {
                        invalid(
                            API,
                            format!("rank {src} reports {c} tokens for expert {ex}"),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// What one rank sends and receives in a pass, from every rank's tokens per expert.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RankPlan {
    /// Rows to each rank: the sums of this rank's counts over each rank's experts.
    rows_sent: Vec<usize>,
    /// Rows from each rank: the sums of its counts over this rank's experts.
    rows_received_from: Vec<usize>,
    /// `[N][E_r]`: rows from each rank for each local expert.
    received_counts: Vec<Vec<usize>>,
    /// Rows for each local expert, from all ranks.
    rows_per_local_expert: Vec<usize>,
}

/// The plan of rank `r` from `matrix [N][E]` (tokens per expert of each rank); `expanded` is
/// the number of rows rank `r` routed (`T_r·K`), which its counts must sum to.
fn plan_rank(
    matrix: &[Vec<usize>],
    experts: &Blocks,
    r: usize,
    expanded: usize,
) -> Result<RankPlan> {
    let own = &matrix[r];
    let rows_sent: Vec<usize> = (0..experts.parts())
        .map(|d| own[experts.range(d)].iter().sum())
        .collect();
    let sent: usize = rows_sent.iter().sum();
    if sent != expanded {
        return Err(invalid(
            API,
            format!("rank {r} routed {sent} rows but has {expanded} (tokens x top_k)"),
        ));
    }
    let local = experts.range(r);
    let received_counts: Vec<Vec<usize>> = matrix
        .iter()
        .map(|row| row[local.clone()].to_vec())
        .collect();
    let rows_received_from = received_counts.iter().map(|c| c.iter().sum()).collect();
    let rows_per_local_expert = (0..local.len())
        .map(|j| received_counts.iter().map(|c| c[j]).sum())
        .collect();
    Ok(RankPlan {
        rows_sent,
        rows_received_from,
        received_counts,
        rows_per_local_expert,
    })
}

/// The local expert id of each received row, in arrival order: by source rank, then by
/// expert (`received_counts[src][j]` rows of local expert `j` from `src`).
fn local_expert_ids(received_counts: &[Vec<usize>]) -> Vec<i32> {
    let mut ids = Vec::new();
    for per_expert in received_counts {
        for (j, &c) in per_expert.iter().enumerate() {
            ids.extend(std::iter::repeat_n(j as i32, c));
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_evenly_with_the_larger_blocks_first() {
        let b = Blocks::new(8, 3).unwrap();
        assert_eq!((b.parts(), b.total()), (3, 8));
        assert_eq!([b.range(0), b.range(1), b.range(2)], [0..3, 3..6, 6..8]);
        assert_eq!(b.range(3), 0..0);
        let owners: Vec<_> = (0..9).map(|i| b.owner(i)).collect();
        let want = [0, 0, 0, 1, 1, 1, 2, 2].map(Some);
        assert_eq!(owners[..8], want);
        assert_eq!(owners[8], None);
        // Fewer items than blocks: the last blocks are empty and own nothing.
        let b = Blocks::new(3, 8).unwrap();
        assert_eq!(
            (0..8).map(|p| b.size(p)).collect::<Vec<_>>(),
            [1, 1, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            [b.owner(0), b.owner(2), b.owner(3)],
            [Some(0), Some(2), None]
        );
        assert_eq!(Blocks::new(16, 4).unwrap().range(3), 12..16);
        assert!(Blocks::new(5, 0).is_none());
        assert_eq!(Blocks::new(0, 2).unwrap().owner(0), None);
    }

    #[test]
    fn the_plan_sums_counts_over_expert_blocks() {
        // 3 ranks, 5 experts in blocks 0..2, 2..4, 4..5.
        let experts = Blocks::new(5, 3).unwrap();
        let matrix = vec![
            vec![1, 0, 2, 3, 0], // rank 0: 6 rows
            vec![0, 4, 0, 0, 2], // rank 1: 6 rows
            vec![0, 0, 0, 0, 0], // rank 2: no home tokens
        ];
        let p0 = plan_rank(&matrix, &experts, 0, 6).unwrap();
        assert_eq!(p0.rows_sent, [1, 5, 0]);
        assert_eq!(p0.rows_received_from, [1, 4, 0]);
        assert_eq!(p0.received_counts, [vec![1, 0], vec![0, 4], vec![0, 0]]);
        assert_eq!(p0.rows_per_local_expert, [1, 4]);
        let p2 = plan_rank(&matrix, &experts, 2, 0).unwrap();
        assert_eq!(p2.rows_sent, [0, 0, 0]);
        assert_eq!(p2.rows_received_from, [0, 2, 0]);
        assert_eq!(p2.rows_per_local_expert, [2]);
        // Counts that do not add up to T_r·K are refused before any row moves.
        let e = plan_rank(&matrix, &experts, 1, 8).unwrap_err();
        assert!(e.to_string().contains("routed 6 rows but has 8"), "{e}");
    }

    #[test]
    fn local_ids_follow_arrival_order() {
        // From source 0: 1 row of expert 0, 2 of expert 1; source 1: 2 rows of expert 0.
        let ids = local_expert_ids(&[vec![1, 2], vec![2, 0]]);
        assert_eq!(ids, [0, 1, 1, 0, 0]);
        assert!(!ids.is_sorted());
        // One source with rows: already grouped.
        assert!(local_expert_ids(&[vec![0, 0], vec![3, 1]]).is_sorted());
        assert!(local_expert_ids(&[vec![], vec![]]).is_empty());
    }

    #[test]
    fn gathered_counts_are_checked() {
        assert_eq!(
            counts_matrix(&[1, 2, 3, 4, 5, 6], 2, 3).unwrap(),
            [vec![1, 2, 3], vec![4, 5, 6]]
        );
        let e = counts_matrix(&[1, -2, 3, 4], 2, 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("rank 0 reports -2 tokens for expert 1"),
            "{e}"
        );
        assert!(counts_matrix(&[1, 2, 3], 2, 2).is_err());
        assert_eq!(scaled(&[2, 0, 3], 4), [8, 0, 12]);
    }

    #[test]
    fn the_layer_can_be_shared_between_threads() {
        fn shared<L: Send + Sync>() {}
        shared::<ExpertParallelLayer<f32>>();
        shared::<EpOutput<f32>>();
    }

    #[test]
    fn phase_times_add_up_and_take_the_slowest() {
        let a = PhaseTimes {
            gating_ms: 1.0,
            dispatch_ms: 2.0,
            experts_ms: 3.0,
            combine_ms: 4.0,
            finalize_ms: 5.0,
        };
        let b = PhaseTimes {
            experts_ms: 7.0,
            ..PhaseTimes::default()
        };
        assert_eq!(a.total_ms(), 15.0);
        assert_eq!(a.max(&b).experts_ms, 7.0);
        assert_eq!(a.max(&b).gating_ms, 1.0);
        assert_eq!(a.named()[1], ("dispatch all-to-all", 2.0));
    }
}
