//! The weights of one MoE layer: Hugging Face DeepSeek layout on the host, the layouts the
//! fused device operators want, random initialisation and safetensors files.
//!
//! Invariant: a [`MoeWeights`] always matches its [`MoeConfig`], which is valid. Every
//! constructor ([`MoeWeights::random`], [`MoeWeights::from_parts`], [`load_safetensors`])
//! checks the configuration and every shape, so the accessors and the device layouts never
//! meet a mismatched array.
//!
//! Host layout (nn.Linear weights are `[out, in]`), with H = hidden, E = routed experts,
//! I = expert width, Is = `n_shared_experts * I`:
//!
//! | tensor | shape | Hugging Face name under `model.layers.{N}.mlp.` |
//! |---|---|---|
//! | router | `[E, H]` | `gate.weight` |
//! | selection bias (sigmoid gating only) | `[E]` | `gate.e_score_correction_bias` |
//! | expert e | `[I, H]`, `[I, H]`, `[H, I]` | `experts.{e}.{gate_proj,up_proj,down_proj}.weight` |
//! | shared experts (if any) | `[Is, H]`, `[Is, H]`, `[H, Is]` | `shared_experts.{gate_proj,up_proj,down_proj}.weight` |
//!
//! Files: [`load_safetensors`] takes one safetensors file or a directory of checkpoint shards
//! and reads only the headers and the layer's own tensors (F32, F16 or BF16);
//! [`MoeWeights::save_safetensors`] writes one layer to one file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut2, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensorError};

use super::config::{ConfigError, MoeConfig};
use super::precision::Precision;

/// One SwiGLU MLP in Hugging Face layout: `down_proj(silu(gate_proj(x)) * up_proj(x))`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// `[width, H]`
    pub gate_proj: Array2<f32>,
    /// `[width, H]`
    pub up_proj: Array2<f32>,
    /// `[H, width]`
    pub down_proj: Array2<f32>,
}

impl Mlp {
    /// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, PyTorch's nn.Linear initialisation.
    fn random(hidden: usize, width: usize, rng: &mut StdRng) -> Mlp {
        Mlp {
            gate_proj: uniform((width, hidden), fan_in_bound(hidden), rng),
            up_proj: uniform((width, hidden), fan_in_bound(hidden), rng),
            down_proj: uniform((hidden, width), fan_in_bound(width), rng),
        }
    }

    /// The MLP's width (rows of `gate_proj`).
    pub fn width(&self) -> usize {
        self.gate_proj.nrows()
    }

    fn map(&self, f: impl Fn(f32) -> f32 + Copy) -> Mlp {
        Mlp {
            gate_proj: self.gate_proj.mapv(f),
            up_proj: self.up_proj.mapv(f),
            down_proj: self.down_proj.mapv(f),
        }
    }

    /// `[H, 2*width]`: `gate_proj^T` then `up_proj^T` along the last axis, so that SwiGLU's
    /// first half (the gated one) is the gate projection.
    fn w13(&self) -> Array2<f32> {
        let (width, hidden) = self.gate_proj.dim();
        let mut out = Array2::zeros((hidden, 2 * width));
        self.w13_into(out.view_mut());
        out
    }

    /// Writes [`Mlp::w13`]'s layout into `out [H, 2*width]`.
    fn w13_into(&self, mut out: ArrayViewMut2<'_, f32>) {
        let width = self.width();
        transpose_into(self.gate_proj.view(), out.slice_mut(s![.., ..width]));
        transpose_into(self.up_proj.view(), out.slice_mut(s![.., width..]));
    }

    /// `[width, H]`: `down_proj^T`.
    fn w2(&self) -> Array2<f32> {
        let (hidden, width) = self.down_proj.dim();
        let mut out = Array2::zeros((width, hidden));
        transpose_into(self.down_proj.view(), out.view_mut());
        out
    }
}

/// The weights of one MoE layer (see the module docs for layouts and names).
#[derive(Clone, Debug, PartialEq)]
pub struct MoeWeights {
    config: MoeConfig,
    gate: Array2<f32>,
    e_score_correction_bias: Option<Array1<f32>>,
    experts: Vec<Mlp>,
    shared_experts: Option<Mlp>,
}

/// Why weights could not be built, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("MoE weights: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MoE weights: {} is not a valid safetensors file: {source}", path.display())]
    Format {
        path: PathBuf,
        source: SafeTensorError,
    },
    #[error("MoE weights: tensor {name} is missing from {}", path.display())]
    MissingTensor { name: String, path: PathBuf },
    #[error("MoE weights: tensor {name} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "MoE weights: tensor {name} is stored as {dtype}; only F32, F16 and BF16 are read \
         (dequantise FP8 checkpoints first)"
    )]
    UnsupportedDtype { name: String, dtype: String },
    #[error("MoE weights: no *.safetensors files in {}", path.display())]
    NoShards { path: PathBuf },
    #[error(
        "MoE weights: tensor {name} is in both {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateTensor {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("MoE weights: {name} {problem}")]
    Presence { name: String, problem: &'static str },
}

/// Hugging Face name of a tensor of layer `layer`: `model.layers.{layer}.mlp.{suffix}`.
pub fn hf_name(layer: usize, suffix: &str) -> String {
    format!("model.layers.{layer}.mlp.{suffix}")
}

const PROJECTIONS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

impl MoeWeights {
    /// Random weights for `config`, the same for the same `seed`: every linear layer
    /// uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)); the selection bias (sigmoid gating)
    /// uniform(-0.05, 0.05), small next to the spread of the sigmoid scores but enough to
    /// change some choices. Each tensor draws from its own stream derived from `seed`, so
    /// the result does not depend on how many threads generate it.
    pub fn random(config: &MoeConfig, seed: u64) -> Result<MoeWeights, ConfigError> {
        config.validate()?;
        let (h, e, i) = (
            config.hidden,
            config.n_routed_experts,
            config.moe_intermediate,
        );
        let mut rng = stream_rng(seed, 0);
        let gate = uniform((e, h), fan_in_bound(h), &mut rng);
        let e_score_correction_bias = config.gating.uses_bias().then(|| {
            let mut rng = stream_rng(seed, 1);
            Array1::from_shape_fn(e, |_| rng.random_range(-0.05f32..0.05))
        });
        let experts = parallel_map(e, |expert| {
            Mlp::random(h, i, &mut stream_rng(seed, 2 + expert as u64))
        });
        let shared_experts = (config.n_shared_experts > 0).then(|| {
            Mlp::random(
                h,
                config.shared_intermediate(),
                &mut stream_rng(seed, u64::MAX),
            )
        });
        Ok(MoeWeights {
            config: *config,
            gate,
            e_score_correction_bias,
            experts,
            shared_experts,
        })
    }

    /// Weights from their parts, checked against `config`: `gate [E, H]`, the bias `[E]`
    /// exactly when the gating is sigmoid, E experts of width I and a shared MLP of width
    /// `n_shared_experts * I` exactly when `n_shared_experts > 0`.
    pub fn from_parts(
        config: MoeConfig,
        gate: Array2<f32>,
        e_score_correction_bias: Option<Array1<f32>>,
        experts: Vec<Mlp>,
        shared_experts: Option<Mlp>,
    ) -> Result<MoeWeights, WeightsError> {
        config.validate()?;
        let (h, e, i) = (
            config.hidden,
            config.n_routed_experts,
            config.moe_intermediate,
        );
        check_shape("gate.weight", &[e, h], gate.shape())?;
        match (&e_score_correction_bias, config.gating.uses_bias()) {
            (Some(bias), true) => check_shape("gate.e_score_correction_bias", &[e], bias.shape())?,
            (None, false) => {}
            (None, true) => {
                return Err(WeightsError::Presence {
                    name: "gate.e_score_correction_bias".into(),
                    problem: "is required by sigmoid gating",
                });
            }
            (Some(_), false) => {
                return Err(WeightsError::Presence {
                    name: "gate.e_score_correction_bias".into(),
                    problem: "was given but softmax gating has no selection bias",
                });
            }
        }
        check_shape("experts", &[e], &[experts.len()])?;
        for (index, mlp) in experts.iter().enumerate() {
            check_mlp(&format!("experts.{index}"), mlp, h, i)?;
        }
        match (&shared_experts, config.n_shared_experts > 0) {
            (Some(mlp), true) => check_mlp("shared_experts", mlp, h, config.shared_intermediate())?,
            (None, false) => {}
            (None, true) => {
                return Err(WeightsError::Presence {
                    name: "shared_experts".into(),
                    problem: "is required: the config has shared experts",
                });
            }
            (Some(_), false) => {
                return Err(WeightsError::Presence {
                    name: "shared_experts".into(),
                    problem: "was given but the config has n_shared_experts = 0",
                });
            }
        }
        Ok(MoeWeights {
            config,
            gate,
            e_score_correction_bias,
            experts,
            shared_experts,
        })
    }

    /// The configuration these weights belong to.
    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    /// Router `gate.weight [E, H]`.
    pub fn gate(&self) -> &Array2<f32> {
        &self.gate
    }

    /// Selection bias `gate.e_score_correction_bias [E]`; `Some` exactly for sigmoid gating.
    pub fn e_score_correction_bias(&self) -> Option<&Array1<f32>> {
        self.e_score_correction_bias.as_ref()
    }

    /// The E routed experts.
    pub fn experts(&self) -> &[Mlp] {
        &self.experts
    }

    /// The shared-expert MLP (width `n_shared_experts * I`); `None` without shared experts.
    pub fn shared_experts(&self) -> Option<&Mlp> {
        self.shared_experts.as_ref()
    }

    /// Router weight for `x [T, H] @ router_t [H, E] = logits [T, E]`.
    pub fn router_t(&self) -> Array2<f32> {
        self.gate.t().as_standard_layout().into_owned()
    }

    /// Grouped-matmul weight of the gate and up projections, `[E, H, 2I]`: for expert `e`,
    /// `w13[e, :, ..I] = gate_proj^T` and `w13[e, :, I..] = up_proj^T`, so SwiGLU on
    /// `x @ w13[e]` gates with the first half.
    pub fn w13(&self) -> Array3<f32> {
        self.w13_of(0..self.config.n_routed_experts)
    }

    /// [`MoeWeights::w13`] of the experts in `experts` only, `[experts.len(), H, 2I]` (the
    /// shard of an expert-parallel rank). Experts past E are left out.
    pub fn w13_of(&self, experts: std::ops::Range<usize>) -> Array3<f32> {
        let (h, i) = (self.config.hidden, self.config.moe_intermediate);
        let experts = self.experts_in(experts);
        let mut out = Array3::zeros((experts.len(), h, 2 * i));
        let mut slabs: Vec<_> = out.outer_iter_mut().collect();
        parallel_for_each(&mut slabs, |index, slab| {
            experts[index].w13_into(slab.view_mut())
        });
        out
    }

    /// The experts of `range` that exist.
    fn experts_in(&self, range: std::ops::Range<usize>) -> &[Mlp] {
        let start = range.start.min(self.experts.len());
        &self.experts[start..range.end.clamp(start, self.experts.len())]
    }

    /// Grouped-matmul weight of the down projections, `[E, I, H]`: `w2[e] = down_proj^T`.
    pub fn w2(&self) -> Array3<f32> {
        self.w2_of(0..self.config.n_routed_experts)
    }

    /// [`MoeWeights::w2`] of the experts in `experts` only, `[experts.len(), I, H]`. Experts
    /// past E are left out.
    pub fn w2_of(&self, experts: std::ops::Range<usize>) -> Array3<f32> {
        let (h, i) = (self.config.hidden, self.config.moe_intermediate);
        let experts = self.experts_in(experts);
        let mut out = Array3::zeros((experts.len(), i, h));
        let mut slabs: Vec<_> = out.outer_iter_mut().collect();
        parallel_for_each(&mut slabs, |index, slab| {
            transpose_into(experts[index].down_proj.view(), slab.view_mut())
        });
        out
    }

    /// The shared experts' gate and up projections for one matmul, `[H, 2*Is]` (gate half
    /// first); `None` without shared experts.
    pub fn shared_w13(&self) -> Option<Array2<f32>> {
        self.shared_experts.as_ref().map(Mlp::w13)
    }

    /// The shared experts' down projection, `[Is, H]`; `None` without shared experts.
    pub fn shared_w2(&self) -> Option<Array2<f32>> {
        self.shared_experts.as_ref().map(Mlp::w2)
    }

    /// A copy with every weight rounded through `precision` (see [`Precision::round`]), so
    /// a host reference computed from it sees exactly the values a half-precision upload
    /// puts on the device.
    pub fn rounded_to(&self, precision: Precision) -> MoeWeights {
        let round = move |x: f32| precision.round(x);
        MoeWeights {
            config: self.config,
            gate: self.gate.mapv(round),
            e_score_correction_bias: self.e_score_correction_bias.as_ref().map(|b| b.mapv(round)),
            experts: self.experts.iter().map(|m| m.map(round)).collect(),
            shared_experts: self.shared_experts.as_ref().map(|m| m.map(round)),
        }
    }

    /// Every tensor with its Hugging Face name for layer `layer`, in file order.
    fn named_tensors(&self, layer: usize) -> Vec<(String, ndarray::ArrayViewD<'_, f32>)> {
        let mut out = vec![(hf_name(layer, "gate.weight"), self.gate.view().into_dyn())];
        if let Some(bias) = &self.e_score_correction_bias {
            out.push((
                hf_name(layer, "gate.e_score_correction_bias"),
                bias.view().into_dyn(),
            ));
        }
        fn mlp_tensors<'a>(
            layer: usize,
            prefix: &str,
            mlp: &'a Mlp,
            out: &mut Vec<(String, ndarray::ArrayViewD<'a, f32>)>,
        ) {
            for (proj, array) in
                PROJECTIONS
                    .iter()
                    .zip([&mlp.gate_proj, &mlp.up_proj, &mlp.down_proj])
            {
                out.push((
                    hf_name(layer, &format!("{prefix}.{proj}.weight")),
                    array.view().into_dyn(),
                ));
            }
        }
        for (index, mlp) in self.experts.iter().enumerate() {
            mlp_tensors(layer, &format!("experts.{index}"), mlp, &mut out);
        }
        if let Some(mlp) = &self.shared_experts {
            mlp_tensors(layer, "shared_experts", mlp, &mut out);
        }
        out
    }

    /// [`load_safetensors`] as an associated function.
    pub fn load_safetensors(
        path: impl AsRef<Path>,
        layer: usize,
        config: &MoeConfig,
    ) -> Result<MoeWeights, WeightsError> {
        load_safetensors(path, layer, config)
    }

    /// Writes the layer to a safetensors file as F32 tensors named as in Hugging Face
    /// DeepSeek checkpoints (`model.layers.{layer}.mlp....`).
    pub fn save_safetensors(
        &self,
        path: impl AsRef<Path>,
        layer: usize,
    ) -> Result<(), WeightsError> {
        self.save_safetensors_as(path, layer, Precision::F32)
    }

    /// Like [`MoeWeights::save_safetensors`], with the tensors stored as `precision`
    /// (values rounded to nearest even).
    pub fn save_safetensors_as(
        &self,
        path: impl AsRef<Path>,
        layer: usize,
        precision: Precision,
    ) -> Result<(), WeightsError> {
        let path = path.as_ref();
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .named_tensors(layer)
            .into_iter()
            .map(|(name, array)| {
                let shape = array.shape().to_vec();
                (name, shape, encode(array.iter().copied(), precision))
            })
            .collect();
        let dtype = match precision {
            Precision::F32 => Dtype::F32,
            Precision::F16 => Dtype::F16,
            Precision::Bf16 => Dtype::BF16,
        };
        let format_error = |source| WeightsError::Format {
            path: path.to_path_buf(),
            source,
        };
        let views = encoded
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(dtype, shape.clone(), bytes).map(|view| (name.as_str(), view))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(format_error)?;
        safetensors::serialize_to_file(views, None, path).map_err(|source| match source {
            SafeTensorError::IoError(source) => WeightsError::Io {
                action: "write",
                path: path.to_path_buf(),
                source,
            },
            other => format_error(other),
        })
    }
}

/// Reads layer `layer` of a DeepSeek MoE from a safetensors checkpoint holding the Hugging
/// Face names (see the module docs): `path` is one `.safetensors` file, or a directory whose
/// `*.safetensors` files are the shards of one checkpoint (as Hugging Face model repositories
/// ship them; a layer may span two shards). Only the file headers and the layer's own
/// tensors are read. Tensors may be F32, F16 or BF16; other tensors are ignored. A missing
/// tensor, a wrong shape or another dtype is an error naming the tensor.
pub fn load_safetensors(
    path: impl AsRef<Path>,
    layer: usize,
    config: &MoeConfig,
) -> Result<MoeWeights, WeightsError> {
    config.validate()?;
    let checkpoint = Checkpoint::open(path.as_ref())?;
    let (h, e, i) = (
        config.hidden,
        config.n_routed_experts,
        config.moe_intermediate,
    );
    let read2 = |suffix: &str, rows: usize, cols: usize| -> Result<Array2<f32>, WeightsError> {
        let name = hf_name(layer, suffix);
        let values = checkpoint.read(&name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), values).map_err(|_| WeightsError::WrongShape {
            name,
            expected: vec![rows, cols],
            found: vec![],
        })
    };
    let read_mlp = |prefix: &str, width: usize| -> Result<Mlp, WeightsError> {
        Ok(Mlp {
            gate_proj: read2(&format!("{prefix}.gate_proj.weight"), width, h)?,
            up_proj: read2(&format!("{prefix}.up_proj.weight"), width, h)?,
            down_proj: read2(&format!("{prefix}.down_proj.weight"), h, width)?,
        })
    };
    let gate = read2("gate.weight", e, h)?;
    let bias = if config.gating.uses_bias() {
        let name = hf_name(layer, "gate.e_score_correction_bias");
        Some(Array1::from(checkpoint.read(&name, &[e])?))
    } else {
        None
    };
    let experts = (0..e)
        .map(|index| read_mlp(&format!("experts.{index}"), i))
        .collect::<Result<Vec<_>, _>>()?;
    let shared = if config.n_shared_experts > 0 {
        Some(read_mlp("shared_experts", config.shared_intermediate())?)
    } else {
        None
    };
    MoeWeights::from_parts(*config, gate, bias, experts, shared)
}

/// Largest header the safetensors format allows.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One safetensors file opened by its header: where its data starts and where each tensor is.
struct Shard {
    path: PathBuf,
    file: File,
    data_start: u64,
    metadata: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Shard, WeightsError> {
        let io_error = |source| WeightsError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        };
        let format_error = |source| WeightsError::Format {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let file_len = file.metadata().map_err(io_error)?.len();
        let mut len_bytes = [0u8; 8];
        if file_len < 8 {
            return Err(format_error(SafeTensorError::HeaderTooSmall));
        }
        file.read_exact(&mut len_bytes).map_err(io_error)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(format_error(SafeTensorError::HeaderTooLarge));
        }
        if 8 + header_len > file_len {
            return Err(format_error(SafeTensorError::InvalidHeaderLength));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io_error)?;
        // Deserialising checks that the tensors tile the data area exactly.
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| format_error(SafeTensorError::InvalidHeaderDeserialization(e)))?;
        let data_start = 8 + header_len;
        if data_start + metadata.data_len() as u64 != file_len {
            return Err(format_error(SafeTensorError::MetadataIncompleteBuffer));
        }
        Ok(Shard {
            path: path.to_path_buf(),
            file,
            data_start,
            metadata,
        })
    }

    /// The raw bytes of tensor `info`.
    fn bytes(&self, info: &TensorInfo) -> Result<Vec<u8>, WeightsError> {
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.data_start + start as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|source| WeightsError::Io {
                action: "read",
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }
}

/// A checkpoint of one or more shards, with the shard holding each tensor name.
struct Checkpoint {
    root: PathBuf,
    shards: Vec<Shard>,
    index: HashMap<String, usize>,
}

impl Checkpoint {
    fn open(root: &Path) -> Result<Checkpoint, WeightsError> {
        let paths = if root.is_dir() {
            let entries = std::fs::read_dir(root).map_err(|source| WeightsError::Io {
                action: "list",
                path: root.to_path_buf(),
                source,
            })?;
            let mut paths = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| WeightsError::Io {
                    action: "list",
                    path: root.to_path_buf(),
                    source,
                })?;
                let path = entry.path();
                if path.is_file() && path.extension().is_some_and(|x| x == "safetensors") {
                    paths.push(path);
                }
            }
            if paths.is_empty() {
                return Err(WeightsError::NoShards {
                    path: root.to_path_buf(),
                });
            }
            paths.sort();
            paths
        } else {
            vec![root.to_path_buf()]
        };
        let mut shards = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for path in paths {
            let shard = Shard::open(&path)?;
            for name in shard.metadata.tensors().into_keys() {
                if let Some(&first) = index.get(&name) {
                    let first: &Shard = &shards[first];
                    return Err(WeightsError::DuplicateTensor {
                        name,
                        first: first.path.clone(),
                        second: path,
                    });
                }
                index.insert(name, shards.len());
            }
            shards.push(shard);
        }
        Ok(Checkpoint {
            root: root.to_path_buf(),
            shards,
            index,
        })
    }

    /// The values of tensor `name`, checked to have `shape`, converted to f32.
    fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let shard = self
            .index
            .get(name)
            .map(|&i| &self.shards[i])
            .ok_or_else(|| WeightsError::MissingTensor {
                name: name.to_string(),
                path: self.root.clone(),
            })?;
        let info = shard
            .metadata
            .info(name)
            .ok_or_else(|| WeightsError::MissingTensor {
                name: name.to_string(),
                path: shard.path.clone(),
            })?;
        check_shape(name, shape, &info.shape)?;
        if !matches!(info.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(WeightsError::UnsupportedDtype {
                name: name.to_string(),
                dtype: info.dtype.to_string(),
            });
        }
        let data = shard.bytes(info)?;
        Ok(match info.dtype {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => data
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        })
    }
}

/// Little-endian bytes of `values` stored as `precision`.
fn encode(values: impl ExactSizeIterator<Item = f32>, precision: Precision) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * precision.bytes());
    for x in values {
        match precision {
            Precision::F32 => out.extend_from_slice(&x.to_le_bytes()),
            Precision::F16 => out.extend_from_slice(&f16::from_f32(x).to_le_bytes()),
            Precision::Bf16 => out.extend_from_slice(&bf16::from_f32(x).to_le_bytes()),
        }
    }
    out
}

fn check_shape(name: &str, expected: &[usize], found: &[usize]) -> Result<(), WeightsError> {
    if expected == found {
        Ok(())
    } else {
        Err(WeightsError::WrongShape {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

fn check_mlp(prefix: &str, mlp: &Mlp, hidden: usize, width: usize) -> Result<(), WeightsError> {
    let name = |proj: &str| format!("{prefix}.{proj}.weight");
    check_shape(&name("gate_proj"), &[width, hidden], mlp.gate_proj.shape())?;
    check_shape(&name("up_proj"), &[width, hidden], mlp.up_proj.shape())?;
    check_shape(&name("down_proj"), &[hidden, width], mlp.down_proj.shape())
}

fn fan_in_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in as f32).sqrt()
}

fn uniform(shape: (usize, usize), bound: f32, rng: &mut StdRng) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-bound..bound))
}

/// A generator for stream `stream` of `seed`: the two are mixed (SplitMix64 finaliser) so
/// that neighbouring seeds and streams give unrelated sequences.
pub(crate) fn stream_rng(seed: u64, stream: u64) -> StdRng {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

fn worker_count(n: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n.max(1))
}

/// `(0..n).map(f)` computed on up to `available_parallelism` scoped threads, in order.
pub(crate) fn parallel_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = worker_count(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || (start..(start + chunk).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(part) => part,
                // A panic in `f` is a bug in this crate; carry it to the caller's thread.
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    })
}

/// `f(index, item)` for every item, on up to `available_parallelism` scoped threads.
fn parallel_for_each<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
    let threads = worker_count(items.len());
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        for (part, slice) in items.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (offset, item) in slice.iter_mut().enumerate() {
                    f(part * chunk + offset, item);
                }
            });
        }
    });
}

/// `dst = src^T`, copied in square tiles so that reads and writes both stay in cache.
fn transpose_into(src: ArrayView2<'_, f32>, mut dst: ArrayViewMut2<'_, f32>) {
    const TILE: usize = 32;
    let (rows, cols) = src.dim();
    debug_assert_eq!(dst.dim(), (cols, rows));
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[[c, r]] = src[[r, c]];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::config::Gating;
    use ndarray::Array1;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "ascend-moe-weights-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn softmax_small() -> MoeConfig {
        MoeConfig {
            n_shared_experts: 2,
            ..MoeConfig::small().with_gating(Gating::Softmax {
                normalize: true,
                scaling: 1.0,
            })
        }
    }

    #[test]
    fn expert_shards_are_slices_of_the_full_layouts() {
        let w = MoeWeights::random(&MoeConfig::small(), 3).unwrap();
        let (w13, w2) = (w.w13(), w.w2());
        for range in [0..8, 0..3, 3..6, 7..8, 5..5] {
            assert_eq!(
                w.w13_of(range.clone()),
                w13.slice(s![range.clone(), .., ..])
            );
            assert_eq!(w.w2_of(range.clone()), w2.slice(s![range, .., ..]));
        }
        // Experts past E are left out instead of panicking.
        assert_eq!(w.w13_of(6..12).dim(), (2, 128, 128));
        assert_eq!(w.w2_of(9..12).dim(), (0, 64, 128));
    }

    #[test]
    fn random_weights_are_deterministic_per_seed() {
        let config = MoeConfig::small();
        let a = MoeWeights::random(&config, 7).unwrap();
        let b = MoeWeights::random(&config, 7).unwrap();
        let c = MoeWeights::random(&config, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.gate(), c.gate());
        assert_ne!(a.experts()[3], c.experts()[3]);
        // Different experts of one seed are different draws.
        assert_ne!(a.experts()[0], a.experts()[1]);
    }

    #[test]
    fn random_weights_have_the_configured_shapes_and_scale() {
        let config = MoeConfig::small();
        let (h, e, i) = (
            config.hidden,
            config.n_routed_experts,
            config.moe_intermediate,
        );
        let w = MoeWeights::random(&config, 1).unwrap();
        assert_eq!(w.gate().dim(), (e, h));
        assert_eq!(w.experts().len(), e);
        let bias = w
            .e_score_correction_bias()
            .expect("sigmoid gating has a bias");
        assert_eq!(bias.len(), e);
        assert!(bias.iter().all(|b| b.abs() <= 0.05));
        let bound_h = 1.0 / (h as f32).sqrt();
        let bound_i = 1.0 / (i as f32).sqrt();
        for mlp in w.experts() {
            assert_eq!(mlp.gate_proj.dim(), (i, h));
            assert_eq!(mlp.down_proj.dim(), (h, i));
            assert!(mlp.gate_proj.iter().all(|x| x.abs() <= bound_h));
            assert!(mlp.down_proj.iter().all(|x| x.abs() <= bound_i));
        }
        // Uniform(-b, b) has standard deviation b / sqrt(3); 16 k samples land within 5%.
        let g = &w.experts()[0].gate_proj;
        let mean = g.mean().unwrap();
        let std = (g.mapv(|x| (x - mean) * (x - mean)).mean().unwrap()).sqrt();
        assert!((std / (bound_h / 3f32.sqrt()) - 1.0).abs() < 0.05, "{std}");
        let shared = w.shared_experts().expect("one shared expert");
        assert_eq!(shared.width(), config.shared_intermediate());

        let soft = MoeWeights::random(&softmax_small(), 1).unwrap();
        assert!(soft.e_score_correction_bias().is_none());
        assert_eq!(soft.shared_experts().unwrap().width(), 2 * i);
        let none = MoeConfig {
            n_shared_experts: 0,
            ..config
        };
        let w = MoeWeights::random(&none, 1).unwrap();
        assert!(
            w.shared_experts().is_none() && w.shared_w13().is_none() && w.shared_w2().is_none()
        );
    }

    #[test]
    fn random_rejects_an_invalid_config() {
        let bad = MoeConfig::small().with_tokens(0);
        assert_eq!(
            MoeWeights::random(&bad, 0).unwrap_err(),
            ConfigError::Zero { field: "tokens" }
        );
    }

    #[test]
    fn device_layouts_agree_with_the_hf_matrices() {
        let config = MoeConfig::small();
        let (h, e, i) = (
            config.hidden,
            config.n_routed_experts,
            config.moe_intermediate,
        );
        let w = MoeWeights::random(&config, 3).unwrap();
        let router_t = w.router_t();
        assert_eq!(router_t.dim(), (h, e));
        assert!(router_t.is_standard_layout());
        let w13 = w.w13();
        let w2 = w.w2();
        assert_eq!(w13.dim(), (e, h, 2 * i));
        assert_eq!(w2.dim(), (e, i, h));
        for (ex, mlp) in w.experts().iter().enumerate() {
            for hh in 0..h {
                assert_eq!(router_t[[hh, ex]], w.gate()[[ex, hh]]);
                for ii in 0..i {
                    assert_eq!(w13[[ex, hh, ii]], mlp.gate_proj[[ii, hh]]);
                    assert_eq!(w13[[ex, hh, i + ii]], mlp.up_proj[[ii, hh]]);
                    assert_eq!(w2[[ex, ii, hh]], mlp.down_proj[[hh, ii]]);
                }
            }
        }
        let shared = w.shared_experts().unwrap();
        let is = config.shared_intermediate();
        let sw13 = w.shared_w13().unwrap();
        let sw2 = w.shared_w2().unwrap();
        assert_eq!(sw13.dim(), (h, 2 * is));
        assert_eq!(sw2.dim(), (is, h));
        assert!(sw2.is_standard_layout());
        assert_eq!(sw13.slice(s![.., ..is]), shared.gate_proj.t());
        assert_eq!(sw13.slice(s![.., is..]), shared.up_proj.t());
        assert_eq!(sw2, shared.down_proj.t());
    }

    #[test]
    fn device_layouts_compute_the_expert_mlp() {
        // x @ w13[e] -> SwiGLU (first half gated) -> @ w2[e] equals the HF expert MLP.
        let config = MoeConfig::small();
        let i = config.moe_intermediate;
        let w = MoeWeights::random(&config, 4).unwrap();
        let x = Array1::from_shape_fn(config.hidden, |k| ((k * 37 % 11) as f32 - 5.0) / 5.0);
        let silu = |v: f32| v / (1.0 + (-v).exp());
        let (w13, w2) = (w.w13(), w.w2());
        for (ex, mlp) in w.experts().iter().enumerate() {
            let hidden = x.dot(&w13.slice(s![ex, .., ..]));
            let act = Array1::from_shape_fn(i, |k| silu(hidden[k]) * hidden[i + k]);
            let device = act.dot(&w2.slice(s![ex, .., ..]));
            let hf_act = mlp.gate_proj.dot(&x).mapv(silu) * mlp.up_proj.dot(&x);
            let hf = mlp.down_proj.dot(&hf_act);
            let err = (&device - &hf)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &b| a.max(b));
            assert!(err < 1e-5, "expert {ex}: {err}");
        }
    }

    #[test]
    fn rounding_rounds_every_tensor() {
        let w = MoeWeights::random(&MoeConfig::small(), 5).unwrap();
        let r = w.rounded_to(Precision::Bf16);
        assert_eq!(r.config(), w.config());
        let check = |a: &Array2<f32>, b: &Array2<f32>| {
            assert!(
                a.iter()
                    .zip(b)
                    .all(|(x, y)| *y == Precision::Bf16.round(*x))
            );
        };
        check(w.gate(), r.gate());
        check(&w.experts()[5].up_proj, &r.experts()[5].up_proj);
        check(
            &w.shared_experts().unwrap().down_proj,
            &r.shared_experts().unwrap().down_proj,
        );
        let bias = w.e_score_correction_bias().unwrap();
        let rbias = r.e_score_correction_bias().unwrap();
        assert!(
            bias.iter()
                .zip(rbias)
                .all(|(x, y)| *y == Precision::Bf16.round(*x))
        );
        assert_ne!(w, r);
        assert_eq!(w.rounded_to(Precision::F32), w);
    }

    #[test]
    fn safetensors_round_trip_in_f32_f16_and_bf16() {
        let dir = TempDir::new("roundtrip");
        for config in [MoeConfig::small(), softmax_small()] {
            let w = MoeWeights::random(&config, 11).unwrap();
            for precision in Precision::ALL {
                let path = dir.0.join(format!("layer-{precision}.safetensors"));
                w.save_safetensors_as(&path, 3, precision).unwrap();
                let loaded = MoeWeights::load_safetensors(&path, 3, &config).unwrap();
                assert_eq!(loaded, w.rounded_to(precision), "{precision}");
            }
            let path = dir.0.join("plain.safetensors");
            w.save_safetensors(&path, 0).unwrap();
            assert_eq!(load_safetensors(&path, 0, &config).unwrap(), w);
        }
    }

    #[test]
    fn saved_files_use_the_hugging_face_names() {
        let dir = TempDir::new("names");
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 2).unwrap();
        let path = dir.0.join("l.safetensors");
        w.save_safetensors_as(&path, 12, Precision::Bf16).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort();
        assert_eq!(names.len(), 2 + 3 * config.n_routed_experts + 3);
        for name in [
            "model.layers.12.mlp.gate.weight",
            "model.layers.12.mlp.gate.e_score_correction_bias",
            "model.layers.12.mlp.experts.0.gate_proj.weight",
            "model.layers.12.mlp.experts.7.down_proj.weight",
            "model.layers.12.mlp.shared_experts.up_proj.weight",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let up = file
            .tensor("model.layers.12.mlp.experts.2.up_proj.weight")
            .unwrap();
        assert_eq!(up.dtype(), Dtype::BF16);
        assert_eq!(up.shape(), &[config.moe_intermediate, config.hidden]);
    }

    /// Writes `tensors` (name, shape, F32 values) to `path`.
    fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, v)| {
                (
                    n.clone(),
                    s.clone(),
                    encode(v.iter().copied(), Precision::F32),
                )
            })
            .collect();
        let views: Vec<(&str, TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| {
                (
                    n.as_str(),
                    TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    fn layer_tensors(w: &MoeWeights, layer: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        w.named_tensors(layer)
            .into_iter()
            .map(|(n, a)| (n, a.shape().to_vec(), a.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_missing_tensor_is_named() {
        let dir = TempDir::new("missing");
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 2).unwrap();
        let path = dir.0.join("m.safetensors");
        let missing = "model.layers.1.mlp.experts.5.up_proj.weight";
        let tensors: Vec<_> = layer_tensors(&w, 1)
            .into_iter()
            .filter(|(n, _, _)| n != missing)
            .collect();
        write_f32(&path, &tensors);
        let err = load_safetensors(&path, 1, &config).unwrap_err();
        match &err {
            WeightsError::MissingTensor { name, path: p } => {
                assert_eq!(name, missing);
                assert_eq!(p, &path);
            }
            other => panic!("expected MissingTensor, got {other:?}"),
        }
        assert!(err.to_string().contains(missing), "{err}");
        // Asking for another layer finds nothing of it.
        let err = load_safetensors(&path, 2, &config).unwrap_err();
        assert!(
            matches!(&err, WeightsError::MissingTensor { name, .. } if name == "model.layers.2.mlp.gate.weight"),
            "{err:?}"
        );
    }

    #[test]
    fn a_wrong_shape_is_named_with_expected_and_found() {
        let dir = TempDir::new("shape");
        let config = MoeConfig::small();
        let (h, i) = (config.hidden, config.moe_intermediate);
        let w = MoeWeights::random(&config, 2).unwrap();
        let path = dir.0.join("s.safetensors");
        let target = "model.layers.0.mlp.experts.3.down_proj.weight";
        let tensors: Vec<_> = layer_tensors(&w, 0)
            .into_iter()
            .map(|(n, s, v)| {
                if n == target {
                    // Stored transposed: [I, H] instead of [H, I].
                    (n, vec![i, h], v)
                } else {
                    (n, s, v)
                }
            })
            .collect();
        write_f32(&path, &tensors);
        let err = load_safetensors(&path, 0, &config).unwrap_err();
        match &err {
            WeightsError::WrongShape {
                name,
                expected,
                found,
            } => {
                assert_eq!(name, target);
                assert_eq!(expected, &vec![h, i]);
                assert_eq!(found, &vec![i, h]);
            }
            other => panic!("expected WrongShape, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!("MoE weights: tensor {target} has shape [{i}, {h}], expected [{h}, {i}]")
        );
    }

    #[test]
    fn other_dtypes_and_bad_files_are_clear_errors() {
        let dir = TempDir::new("dtype");
        let config = MoeConfig::small();
        let path = dir.0.join("i32.safetensors");
        let data = vec![0u8; config.n_routed_experts * config.hidden * 4];
        let view = TensorView::new(
            Dtype::I32,
            vec![config.n_routed_experts, config.hidden],
            &data,
        )
        .unwrap();
        safetensors::serialize_to_file([("model.layers.0.mlp.gate.weight", view)], None, &path)
            .unwrap();
        let err = load_safetensors(&path, 0, &config).unwrap_err();
        assert!(
            matches!(&err, WeightsError::UnsupportedDtype { name, dtype } if name == "model.layers.0.mlp.gate.weight" && dtype == "I32"),
            "{err:?}"
        );

        let garbage = dir.0.join("garbage.safetensors");
        std::fs::write(&garbage, b"not a safetensors file").unwrap();
        assert!(matches!(
            load_safetensors(&garbage, 0, &config),
            Err(WeightsError::Format { .. })
        ));
        let absent = dir.0.join("absent.safetensors");
        let err = load_safetensors(&absent, 0, &config).unwrap_err();
        assert!(
            matches!(err, WeightsError::Io { action: "read", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("absent.safetensors"));
        let err = MoeWeights::random(&config, 0)
            .unwrap()
            .save_safetensors(dir.0.join("no/such/dir/x.safetensors"), 0)
            .unwrap_err();
        assert!(
            matches!(
                err,
                WeightsError::Io {
                    action: "write",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_layer_is_read_from_a_sharded_checkpoint_directory() {
        let dir = TempDir::new("shards");
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 13).unwrap();
        let mut tensors = layer_tensors(&w, 5);
        // Another layer's tensors and an attention weight live in the same shards.
        tensors.extend(layer_tensors(&MoeWeights::random(&config, 14).unwrap(), 6));
        tensors.push((
            "model.layers.5.self_attn.o_proj.weight".into(),
            vec![4, 4],
            vec![1.0; 16],
        ));
        // Split in the middle of layer 5's experts, as size-based sharding does.
        let second = tensors.split_off(10);
        write_f32(&dir.0.join("model-00001-of-00002.safetensors"), &tensors);
        write_f32(&dir.0.join("model-00002-of-00002.safetensors"), &second);
        std::fs::write(dir.0.join("model.safetensors.index.json"), b"{}").unwrap();
        assert_eq!(load_safetensors(&dir.0, 5, &config).unwrap(), w);

        // The same tensor in two shards is ambiguous.
        write_f32(&dir.0.join("model-extra.safetensors"), &second[..1]);
        let err = load_safetensors(&dir.0, 5, &config).unwrap_err();
        assert!(
            matches!(&err, WeightsError::DuplicateTensor { name, .. } if name == &second[0].0),
            "{err:?}"
        );
        let empty = TempDir::new("empty");
        let err = load_safetensors(&empty.0, 0, &config).unwrap_err();
        assert!(matches!(err, WeightsError::NoShards { .. }), "{err:?}");
    }

    #[test]
    fn a_truncated_file_is_a_format_error() {
        let dir = TempDir::new("truncated");
        let config = MoeConfig::small();
        let path = dir.0.join("t.safetensors");
        MoeWeights::random(&config, 1)
            .unwrap()
            .save_safetensors(&path, 0)
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = load_safetensors(&path, 0, &config).unwrap_err();
        assert!(
            matches!(
                &err,
                WeightsError::Format {
                    source: SafeTensorError::MetadataIncompleteBuffer,
                    ..
                }
            ),
            "{err:?}"
        );
        std::fs::write(&path, &bytes[..5]).unwrap();
        assert!(matches!(
            load_safetensors(&path, 0, &config),
            Err(WeightsError::Format {
                source: SafeTensorError::HeaderTooSmall,
                ..
            })
        ));
        // A header length past the end of the file.
        std::fs::write(&path, &bytes[..100]).unwrap();
        assert!(matches!(
            load_safetensors(&path, 0, &config),
            Err(WeightsError::Format {
                source: SafeTensorError::InvalidHeaderLength,
                ..
            })
        ));
    }

    #[test]
    fn from_parts_checks_every_shape() {
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 9).unwrap();
        let parts = || {
            (
                w.gate().clone(),
                w.e_score_correction_bias().cloned(),
                w.experts().to_vec(),
                w.shared_experts().cloned(),
            )
        };
        let (g, b, e, s) = parts();
        assert_eq!(MoeWeights::from_parts(config, g, b, e, s).unwrap(), w);

        let (_, b, e, s) = parts();
        let err = MoeWeights::from_parts(config, Array2::zeros((8, 3)), b, e, s).unwrap_err();
        assert!(matches!(&err, WeightsError::WrongShape { name, .. } if name == "gate.weight"));

        let (g, _, e, s) = parts();
        let err = MoeWeights::from_parts(config, g, None, e, s).unwrap_err();
        assert!(
            err.to_string().contains("required by sigmoid gating"),
            "{err}"
        );

        let (g, b, mut e, s) = parts();
        e.pop();
        let err = MoeWeights::from_parts(config, g, b, e, s).unwrap_err();
        assert!(
            matches!(&err, WeightsError::WrongShape { name, found, .. } if name == "experts" && found == &vec![7])
        );

        let (g, b, mut e, s) = parts();
        e[4].up_proj = Array2::zeros((3, 3));
        let err = MoeWeights::from_parts(config, g, b, e, s).unwrap_err();
        assert!(
            matches!(&err, WeightsError::WrongShape { name, .. } if name == "experts.4.up_proj.weight")
        );

        let (g, b, e, _) = parts();
        let err = MoeWeights::from_parts(config, g, b, e, None).unwrap_err();
        assert!(matches!(&err, WeightsError::Presence { name, .. } if name == "shared_experts"));

        let (g, b, e, s) = parts();
        let soft = config.with_gating(Gating::Softmax {
            normalize: false,
            scaling: 1.0,
        });
        let err = MoeWeights::from_parts(soft, g, b, e, s).unwrap_err();
        assert!(
            err.to_string()
                .contains("softmax gating has no selection bias"),
            "{err}"
        );
    }

    #[test]
    fn parallel_map_keeps_order() {
        assert_eq!(
            parallel_map(10, |i| i * i),
            (0..10).map(|i| i * i).collect::<Vec<_>>()
        );
        assert!(parallel_map(0, |i| i).is_empty());
    }
}
